"""`destroy`: remove everything this name created, and nothing else.

Found by tags, in the warehouse's VPC (bastion.vpc_id, else discovered; a warehouse that is
gone leaves the tags alone to go by, as long as they name one VPC). A name is owned per
region: resources of this name in another VPC belong to another config, and are refused,
never touched. The order matters on real AWS: our rule on the warehouse group first, then the host
(waited for, since a group in use cannot be deleted), the Instance Connect Endpoint (waited
for: its group is in use until it is gone), the address, the rule by which the bastion group
admits the endpoint's group, the groups (the endpoint's first), the key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.aws import tags as t
from bastion.aws.apply import Runner
from bastion.aws.discover import discover_warehouse
from bastion.aws.facts import LIVE_STATES
from bastion.aws.gateway import AwsGateway
from bastion.aws.permissions import flatten
from bastion.aws.plan import Step, new_step
from bastion.changes import Plan
from bastion.config.settings import Settings
from bastion.errors import BastionError, ConfigError
from bastion.progress import Progress

if TYPE_CHECKING:
    import boto3


def plan_destroy(gateway: AwsGateway, name: str, vpc_id: str | None = None) -> list[Step]:
    """The steps that remove this name's resources; empty when nothing is left."""
    steps: list[Step] = []
    found = gateway.describe_security_groups(t.ours(name))
    live = [
        i for i in gateway.describe_instances(t.ours(name)) if i["State"]["Name"] in LIVE_STATES
    ]
    endpoints = _endpoints(gateway, name, found)
    vpcs = {g.get("VpcId") for g in found} | {i.get("VpcId") for i in live}
    vpcs |= {e.get("VpcId") for e in endpoints}
    holders = [(g["GroupId"], g.get("VpcId")) for g in found]
    holders += [(i["InstanceId"], i.get("VpcId")) for i in live]
    holders += [(e["InstanceConnectEndpointId"], e.get("VpcId")) for e in endpoints]
    if vpc_id is None and len(vpcs - {None}) > 1:
        listed = ", ".join(f"{rid} in {vpc}" for rid, vpc in holders)
        raise ConfigError(
            f"name {name!r} is held in several VPCs ({listed}) and the warehouse's is unknown; "
            "nothing was changed",
            hint="set bastion.vpc_id to the VPC of the bastion to destroy",
        )
    foreign = [(rid, vpc) for rid, vpc in holders if vpc_id and vpc and vpc != vpc_id]
    if foreign:
        listed = ", ".join(f"{rid} in {vpc}" for rid, vpc in foreign)
        raise ConfigError(
            f"name {name!r} is also held in this region by another bastion: {listed} (this "
            f"config's warehouse is in {vpc_id}); nothing was changed",
            hint="destroy it from the config that made it; a name is owned per region",
        )
    # the endpoint's group first: the bastion group's rule naming it goes just before it
    groups = [g["GroupId"] for g in sorted(found, key=lambda g: (not _serves(g), g["GroupId"]))]
    between: list[Step] = []  # our rules that name another of our groups
    for group in groups:
        referencing = gateway.describe_security_groups(
            [{"Name": "ip-permission.group-id", "Values": [group]}]
        )
        for other in referencing:
            if other["GroupId"] == group:
                continue
            for rule in flatten(other.get("IpPermissions", [])):
                if rule.source == group and other["GroupId"] in groups:
                    between.append(
                        new_step(
                            "security_group_rule",
                            "delete",
                            f"{rule.describe('from')} on {other['GroupId']}",
                            "revoke_ingress",
                            group=other["GroupId"],
                            rule=rule,
                        )
                    )
                elif rule.source == group:
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
    instances = live
    own = [g for g in groups if g not in {f["GroupId"] for f in found if _serves(f)}]
    if instances and own:
        # Bump the generation first: if the run stops here, the next host gets a new token.
        generation = max([_int(t.tag_map(i).get(t.GENERATION_TAG)) for i in instances] + [0]) + 1
        steps.append(
            new_step(
                "security_group",
                "update",
                f"{own[0]}: generation -> {generation}",
                "set_generation",
                group=own[0],
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
    for endpoint in sorted(e["InstanceConnectEndpointId"] for e in endpoints):
        steps.append(
            new_step(
                "instance_connect_endpoint",
                "delete",
                endpoint,
                "delete_instance_connect_endpoint",
                endpoint=endpoint,
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
    steps += between
    for group in groups:
        resource = "security_group" if group in own else "instance_connect_endpoint_group"
        steps.append(new_step(resource, "delete", group, "delete_security_group", group=group))
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
        steps = plan_destroy(gateway, name, _warehouse_vpc(settings, gateway))
    runner = Runner(gateway, progress)
    runner.run(steps)
    return Plan(changes=runner.made, notices=runner.notices)


def _serves(group: dict[str, Any]) -> bool:
    """The Instance Connect Endpoint's own group (admin_access = "eice")."""
    return t.tag_map(group).get(t.ROLE_TAG) == t.ENDPOINT_ROLE


def _endpoints(
    gateway: AwsGateway, name: str, groups: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The Instance Connect Endpoints this name created and that are not already going: only
    asked where the endpoint's group shows there was one (an emulator may lack the call)."""
    if not any(_serves(g) for g in groups):
        return []
    found = gateway.describe_instance_connect_endpoints(t.ours(name))
    return [e for e in found if e.get("State") not in ("delete-in-progress", "delete-complete")]


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _warehouse_vpc(settings: Settings, gateway: AwsGateway) -> str | None:
    """bastion.vpc_id, else the warehouse's VPC; None when the warehouse is gone."""
    if settings.bastion.vpc_id:
        return settings.bastion.vpc_id
    try:
        return discover_warehouse(settings, gateway).vpc_id
    except BastionError:
        return None
