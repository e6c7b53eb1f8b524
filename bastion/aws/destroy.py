"""`destroy`: remove everything this name created, and nothing else.

Found by tags alone (no warehouse discovery, so it works after the warehouse is gone).
The order matters on real AWS: our rule on the warehouse group first, then the host
(waited for, since a group in use cannot be deleted), the address, the group, the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.aws import tags as t
from bastion.aws.apply import Runner
from bastion.aws.facts import LIVE_STATES
from bastion.aws.gateway import AwsGateway
from bastion.aws.permissions import flatten
from bastion.aws.plan import Step, new_step
from bastion.changes import Plan
from bastion.config.settings import Settings
from bastion.progress import Progress

if TYPE_CHECKING:
    import boto3


def plan_destroy(gateway: AwsGateway, name: str) -> list[Step]:
    """The steps that remove this name's resources; empty when nothing is left."""
    steps: list[Step] = []
    groups = sorted(g["GroupId"] for g in gateway.describe_security_groups(t.ours(name)))
    for group in groups:
        referencing = gateway.describe_security_groups(
            [{"Name": "ip-permission.group-id", "Values": [group]}]
        )
        for other in referencing:
            if other["GroupId"] in groups:
                continue
            for rule in flatten(other.get("IpPermissions", [])):
                if rule.source == group:
                    steps.append(
                        new_step(
                            "warehouse_rule",
                            "delete",
                            f"{rule.describe('from')} on {other['GroupId']}",
                            "revoke_ingress",
                            group=other["GroupId"],
                            rule=rule,
                        )
                    )
    instances = [
        i for i in gateway.describe_instances(t.ours(name)) if i["State"]["Name"] in LIVE_STATES
    ]
    if instances and groups:
        # Bump the generation first: if the run stops here, the next host gets a new token.
        generation = max([_int(t.tag_map(i).get(t.GENERATION_TAG)) for i in instances] + [0]) + 1
        steps.append(
            new_step(
                "security_group",
                "update",
                f"{groups[0]}: generation -> {generation}",
                "set_generation",
                group=groups[0],
                generation=generation,
            )
        )
    for instance in sorted(i["InstanceId"] for i in instances):
        steps.append(
            new_step(
                "instance",
                "delete",
                f"terminate {instance}",
                "terminate_instance",
                instance=instance,
                wait=True,
            )
        )
    for address in sorted(
        gateway.describe_addresses(t.ours(name)), key=lambda a: a["AllocationId"]
    ):
        steps.append(
            new_step(
                "elastic_ip",
                "delete",
                f"release {address.get('PublicIp')} ({address['AllocationId']})",
                "release_address",
                allocation=address["AllocationId"],
            )
        )
    for group in groups:
        steps.append(
            new_step("security_group", "delete", group, "delete_security_group", group=group)
        )
    for pair in gateway.describe_key_pairs(t.resource_name(name)):
        if (
            t.tag_map(pair).get("managed-by") == t.MANAGED_BY
            and t.tag_map(pair).get(t.NAME_TAG) == name
        ):
            steps.append(
                new_step(
                    "key_pair", "delete", pair["KeyName"], "delete_key_pair", name=pair["KeyName"]
                )
            )
    return steps


def destroy_aws(settings: Settings, session: boto3.Session, progress: Progress) -> Plan:
    """Remove this name's AWS resources; the returned Plan holds what was removed."""
    name = settings.name
    gateway = AwsGateway(session)
    with progress.status("finding resources tagged bastion:name=" + name):
        steps = plan_destroy(gateway, name)
    runner = Runner(gateway, progress)
    runner.run(steps)
    return Plan(changes=runner.made, notices=runner.notices)


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
