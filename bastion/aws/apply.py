"""The operations behind each planned step: the only code in bastion.aws that changes AWS.

A step names its operation and arguments; `Runner.run` resolves references to ids made
earlier in the same run (a new group, host or address) and calls the gateway.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bastion.aws import tags as t
from bastion.aws.gateway import AlreadyExists, AlreadyGone, AwsGateway
from bastion.aws.permissions import SecurityGroupRule
from bastion.aws.plan import Ref, Step
from bastion.changes import Change
from bastion.errors import AwsError, BastionError
from bastion.progress import Progress

INSTANCE_WAIT_SECONDS = 600.0
ENDPOINT_WAIT_SECONDS = 900.0  # an Instance Connect Endpoint takes minutes either way


@dataclass
class Runner:
    """Runs steps in order and remembers what each made and changed."""

    gateway: AwsGateway
    progress: Progress
    ids: dict[str, str] = field(default_factory=dict)
    made: list[Change] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def run(self, steps: list[Step]) -> None:
        """Run every step; a failure says which changes were already made."""
        for step in steps:
            operation = _OPERATIONS[step.op]
            args = {key: self.resolve(value) for key, value in step.args.items()}
            try:
                done = operation(self, **args)
            except BastionError as exc:
                if self.made:
                    made = "; ".join(str(change) for change in self.made)
                    exc.message = f"{exc.message}\n  already changed: {made}\n  re-run to finish"
                raise
            if done is not False:
                self.made.append(step.change)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, Ref):
            if value.name not in self.ids:
                raise AwsError(f"internal: {value} was not made before it was needed")
            return self.ids[value.name]
        if isinstance(value, SecurityGroupRule) and value.source.startswith("(new "):
            made = {str(Ref(name)): made_id for name, made_id in self.ids.items()}
            if value.source not in made:
                raise AwsError(f"internal: {value.source} was not made before it was needed")
            return replace(value, source=made[value.source])
        return value


def create_security_group(run: Runner, name: str, vpc_id: str, tags: dict[str, str]) -> None:
    """Create the group; one of ours by that name already there (a retry whose answer was
    lost, a concurrent run) is adopted, a stranger's is not."""
    group, found = _create_or_adopt_group(
        run, name, vpc_id, tags, "dbt-bastion: SSH from dbt Cloud and admins only"
    )
    # an adopted group's launch must use its generation: the same ClientToken, the same host
    if found.get(t.GENERATION_TAG):
        run.ids["generation"] = found[t.GENERATION_TAG]
    run.ids["security_group"] = group


def create_endpoint_group(run: Runner, name: str, vpc_id: str, tags: dict[str, str]) -> None:
    """The Instance Connect Endpoint's own group (egress: SSH to the bastion group only)."""
    description = "dbt-bastion: the Instance Connect Endpoint, SSH to the bastion only"
    run.ids["endpoint_group"] = _create_or_adopt_group(run, name, vpc_id, tags, description)[0]


def _create_or_adopt_group(
    run: Runner, name: str, vpc_id: str, tags: dict[str, str], description: str
) -> tuple[str, dict[str, str]]:
    """The group's id, and the tags of one of ours adopted by name (none when created)."""
    try:
        return run.gateway.create_security_group(name, description, vpc_id, tags), {}
    except AlreadyExists:
        mine = run.gateway.describe_security_groups(
            [{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]},
             *t.ours(tags[t.NAME_TAG])]
        )  # fmt: skip
        if not mine:
            raise
        found = {tag["Key"]: tag["Value"] for tag in mine[0].get("Tags", [])}
        return str(mine[0]["GroupId"]), found


def create_instance_connect_endpoint(
    run: Runner, subnet_id: str, group: str, tags: dict[str, str], client_token: str
) -> None:
    """Create the endpoint and wait until it opens tunnels (minutes on AWS)."""
    made = run.gateway.create_instance_connect_endpoint(subnet_id, group, tags, client_token)
    endpoint_id = str(made["InstanceConnectEndpointId"])
    run.ids["instance_connect_endpoint"] = endpoint_id
    wait_endpoint(run.gateway, run.progress, endpoint_id, ready=True)


def delete_instance_connect_endpoint(run: Runner, endpoint: str) -> None:
    """Delete the endpoint and wait until it is gone: its group can be deleted only then."""
    run.gateway.delete_instance_connect_endpoint(endpoint)
    wait_endpoint(run.gateway, run.progress, endpoint, ready=False)


def wait_endpoint(
    gateway: AwsGateway,
    progress: Progress,
    endpoint_id: str,
    *,
    ready: bool,
    timeout: float = ENDPOINT_WAIT_SECONDS,
) -> None:
    """Poll until the endpoint is create-complete (`ready`) or deleted; EC2 has no waiter."""
    goal = "ready" if ready else "deleted"
    deadline = time.monotonic() + timeout
    with progress.status(f"waiting for the Instance Connect Endpoint {endpoint_id} to be {goal}"):
        while True:
            found = gateway.describe_instance_connect_endpoints(endpoint_ids=[endpoint_id])
            state = str(found[0].get("State", "")) if found else "delete-complete"
            if ready and state == "create-complete":
                return
            if not ready and state == "delete-complete":
                return
            if state.endswith("-failed"):
                message = found[0].get("StateMessage", "") if found else ""
                raise AwsError(
                    f"the Instance Connect Endpoint {endpoint_id} is {state}: {message}",
                    hint="one endpoint per VPC is allowed by default: look for another in the "
                    "VPC (use it with bastion.eice_id) or raise the quota",
                )
            if time.monotonic() >= deadline:
                raise AwsError(
                    f"the Instance Connect Endpoint {endpoint_id} is still {state} after "
                    f"{timeout:.0f} s",
                    hint="creation takes minutes on AWS: re-run later, bastion picks it up",
                )
            time.sleep(max(gateway.waiter_delay, 0.01))


def set_generation(run: Runner, group: str, generation: int) -> None:
    run.gateway.create_tags(group, {t.GENERATION_TAG: str(generation)})


def set_ssh_port(run: Runner, group: str, port: int) -> None:
    run.gateway.create_tags(group, {t.SSH_PORT_TAG: str(port)})


def record_host_key(run: Runner, instance: str, fingerprint: str) -> None:
    run.gateway.create_tags(instance, {t.HOST_KEY_TAG: fingerprint})


def authorize_ingress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    with contextlib.suppress(AlreadyExists):  # the rule is there: the goal is met
        run.gateway.authorize_ingress(group, [rule.permission()])


def revoke_ingress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    # The rule as read, description included: moto matches group sources on it.
    with contextlib.suppress(AlreadyGone):
        run.gateway.revoke_ingress(group, [rule.permission()])


def describe_ingress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    run.gateway.update_ingress_descriptions(group, [rule.permission()])


def authorize_egress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    with contextlib.suppress(AlreadyExists):  # the rule is there: the goal is met
        run.gateway.authorize_egress(group, [rule.permission()])


def revoke_egress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    with contextlib.suppress(AlreadyGone):
        run.gateway.revoke_egress(group, [rule.permission()])


def describe_egress(run: Runner, group: str, rule: SecurityGroupRule) -> None:
    run.gateway.update_egress_descriptions(group, [rule.permission()])


def import_key_pair(run: Runner, name: str, public_key: str, tags: dict[str, str]) -> None:
    try:
        run.gateway.import_key_pair(name, public_key, tags)
    except AlreadyExists:  # ours (a lost answer, a concurrent run) is adopted
        pairs = run.gateway.describe_key_pairs(name)
        if not any(
            {"Key": t.NAME_TAG, "Value": tags[t.NAME_TAG]} in pair.get("Tags", []) for pair in pairs
        ):
            raise


def replace_key_pair(run: Runner, name: str, public_key: str, tags: dict[str, str]) -> None:
    run.gateway.delete_key_pair(name)
    run.gateway.import_key_pair(name, public_key, tags)


def run_instance(
    run: Runner,
    ami: str,
    instance_type: str,
    subnet_id: str,
    group: str,
    key_name: str,
    tags: dict[str, str],
    client_token: str,
    user_data: str = "",
) -> None:
    """Launch the host: IMDSv2 only, encrypted gp3 root, no instance profile."""
    adopted = run.ids.get("generation")
    if adopted and adopted != tags.get(t.GENERATION_TAG):  # see create_security_group
        tags = {**tags, t.GENERATION_TAG: adopted}
        client_token = t.client_token(tags[t.NAME_TAG], int(adopted))
    image = run.gateway.describe_image(ami)
    root = image.get("RootDeviceName") or "/dev/xvda"
    # The image's own root size (AWS's default); 8 GiB when the image does not say.
    sizes = [
        m["Ebs"]["VolumeSize"]
        for m in image.get("BlockDeviceMappings", [])
        if m.get("DeviceName") == root and m.get("Ebs", {}).get("VolumeSize")
    ]
    size = int(max([*sizes, 8]))
    tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
    extra = {"UserData": user_data} if user_data else {}
    instance = run.gateway.run_instance(
        {
            **extra,
            "ImageId": ami,
            "InstanceType": instance_type,
            "KeyName": key_name,
            "SubnetId": subnet_id,
            "SecurityGroupIds": [group],
            "ClientToken": client_token,
            "MetadataOptions": {
                "HttpTokens": "required",
                "HttpPutResponseHopLimit": 1,
                "HttpEndpoint": "enabled",
            },
            "BlockDeviceMappings": [
                {
                    "DeviceName": root,
                    "Ebs": {
                        "VolumeType": "gp3",
                        "VolumeSize": size,
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                }
            ],
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        }
    )
    instance_id = str(instance["InstanceId"])
    if instance.get("State", {}).get("Name") in {"shutting-down", "terminated"}:
        raise AwsError(
            f"RunInstances returned the terminated host {instance_id}: its ClientToken is still bound",
            hint="run `bastion provision --replace` to start a new generation",
        )
    run.ids["instance"] = instance_id
    _wait_running(run, instance_id)


def start_instance(run: Runner, instance: str) -> None:
    run.gateway.start_instance(instance)
    run.ids["instance"] = instance
    _wait_running(run, instance)


def set_instance_groups(run: Runner, instance: str, group: str) -> None:
    run.gateway.set_instance_groups(instance, group)


def needs_replace(run: Runner) -> bool:
    """A change only `--replace` makes: reported, not done."""
    return False


def terminate_instance(run: Runner, instance: str, wait: bool = False) -> None:
    run.gateway.terminate_instance(instance)
    if wait:
        with run.progress.status(f"waiting for {instance} to terminate"):
            run.gateway.wait(
                "ec2", "instance_terminated", max_wait=INSTANCE_WAIT_SECONDS, InstanceIds=[instance]
            )


def delete_security_group(run: Runner, group: str) -> None:
    run.gateway.delete_security_group(group)


def delete_key_pair(run: Runner, name: str) -> None:
    run.gateway.delete_key_pair(name)


def allocate_address(run: Runner, tags: dict[str, str]) -> None:
    """Allocate, then keep one address per name: AllocateAddress has no ClientToken."""
    mine = str(run.gateway.allocate_address(tags)["AllocationId"])
    keep_one_address(run, tags[t.NAME_TAG], mine)


def keep_one_address(run: Runner, name: str, mine: str) -> None:
    """Of this name's addresses keep an attached one, else the lowest id; release the rest.

    Every run that allocated applies the same rule after its allocation, so concurrent
    runs converge on one address; an attached address is never released here.
    """
    found = sorted(
        run.gateway.describe_addresses(t.ours(name)),
        key=lambda a: (not a.get("AssociationId"), a["AllocationId"]),
    )
    keep = str(found[0]["AllocationId"]) if found else mine
    for extra in found[1:]:
        if not extra.get("AssociationId"):
            run.gateway.release_address(extra["AllocationId"], missing_ok=True)
    if keep != mine:
        run.notices.append(f"another run allocated {keep} first; released the duplicate {mine}")
    run.ids["elastic_ip"] = keep


def release_address(run: Runner, allocation: str) -> None:
    for address in run.gateway.describe_addresses(
        [{"Name": "allocation-id", "Values": [allocation]}]
    ):
        if address.get("AssociationId"):
            run.gateway.disassociate_address(address["AssociationId"])
    run.gateway.release_address(allocation)


def associate_address(run: Runner, allocation: str, instance: str) -> None:
    run.gateway.associate_address(allocation, instance)


_OPERATIONS: dict[str, Callable[..., Any]] = {
    f.__name__: f
    for f in (
        create_security_group, set_generation, set_ssh_port, record_host_key, authorize_ingress, revoke_ingress,
        describe_ingress, authorize_egress, revoke_egress, describe_egress, import_key_pair,
        replace_key_pair, run_instance, start_instance, set_instance_groups, needs_replace,
        terminate_instance, allocate_address, delete_security_group, delete_key_pair, release_address, associate_address,
        create_endpoint_group, create_instance_connect_endpoint, delete_instance_connect_endpoint,
    )
}  # fmt: skip


def _wait_running(run: Runner, instance_id: str) -> None:
    with run.progress.status(f"waiting for {instance_id} to be running"):
        run.gateway.wait(
            "ec2", "instance_running", max_wait=INSTANCE_WAIT_SECONDS, InstanceIds=[instance_id]
        )
