"""What exists on AWS for this name, read in one pass and never changed here.

Everything is found by tags (and the warehouse group by id), so `plan`, `status` and a
re-run from a fresh CI runner all see the same state without local files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.aws import tags as t
from bastion.aws.discover import WarehouseLocation
from bastion.aws.gateway import AwsGateway
from bastion.aws.instance_connect import InstanceConnectEndpoint
from bastion.aws.permissions import SecurityGroupRule, flatten
from bastion.endpoint import Endpoint
from bastion.errors import AwsError, ConfigError

LIVE_STATES = ("pending", "running", "stopping", "stopped")


@dataclass
class AwsFacts:
    """The bastion's AWS resources as they are (None where a resource does not exist)."""

    warehouse: Endpoint
    warehouse_group_id: str | None = None
    vpc_id: str | None = None
    subnet_id: str | None = None
    instance_id: str | None = None
    instance_state: str | None = None
    instance_type: str | None = None
    ami: str | None = None
    public_ip: str | None = None
    host_key_tag: str | None = None
    security_group_id: str | None = None
    # details the planner compares
    private_ip: str | None = None
    instance_subnet_id: str | None = None
    instance_groups: list[str] = field(default_factory=list)
    instance_generation: int | None = None
    extra_instance_ids: list[str] = field(default_factory=list)
    used_generations: set[int] = field(default_factory=set)
    generation: int | None = None
    ssh_port: int | None = None  # tag bastion:ssh-port: where sshd is known to answer
    ingress: list[SecurityGroupRule] = field(default_factory=list)
    egress: list[SecurityGroupRule] = field(default_factory=list)
    warehouse_rules: list[SecurityGroupRule] = field(default_factory=list)
    key_pair: str | None = None
    key_fingerprint: str | None = None
    allocation_id: str | None = None
    association_id: str | None = None
    eip_instance_id: str | None = None
    extra_allocation_ids: list[str] = field(default_factory=list)
    latest_ami: str | None = None
    vpc_ipv6: bool = False  # the VPC has an IPv6 block (read only when the group is new)
    # admin_access = "eice": the endpoint (the tool's own, or eice_id) and its group
    endpoint: InstanceConnectEndpoint | None = None
    endpoint_owned: bool = False
    endpoint_addresses: list[str] = field(default_factory=list)  # what sshd sees connect
    endpoint_group_id: str | None = None  # the tool's endpoint group
    endpoint_group_egress: list[SecurityGroupRule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The summary `status --json` shows."""
        return {
            "instance_id": self.instance_id,
            "instance_state": self.instance_state,
            "instance_type": self.instance_type,
            "ami": self.ami,
            "public_ip": self.public_ip,
            "private_ip": self.private_ip,
            "host_key_fingerprint": self.host_key_tag,
            "security_group_id": self.security_group_id,
            "vpc_id": self.vpc_id,
            "subnet_id": self.instance_subnet_id or self.subnet_id,
            "warehouse": str(self.warehouse),
            "warehouse_group_id": self.warehouse_group_id,
            "ingress": [r.describe() for r in self.ingress],
            "egress": [r.describe("to") for r in self.egress],
            "instance_connect_endpoint": (
                {
                    "id": self.endpoint.endpoint_id,
                    "state": self.endpoint.state,
                    "addresses": self.endpoint_addresses,
                    "owned": self.endpoint_owned,
                }
                if self.endpoint is not None
                else None
            ),
        }


def read_facts(
    gateway: AwsGateway,
    name: str,
    location: WarehouseLocation,
    subnet_id: str | None,
    *,
    admin_access: str = "direct",
    eice_id: str = "",
) -> AwsFacts:
    """Read every resource of `name` and our rule on the warehouse group (and, with
    `admin_access = "eice"` or an endpoint of ours left, the Instance Connect Endpoint)."""
    facts = AwsFacts(
        warehouse=location.endpoint,
        warehouse_group_id=location.security_group_id,
        vpc_id=location.vpc_id,
        subnet_id=subnet_id,
    )
    _read_group(gateway, name, facts)
    _read_instances(gateway, name, facts)
    if facts.security_group_id is None and facts.vpc_id:
        # a new group gets AWS's default egress, ::/0 too in a dual-stack VPC: plan it away
        facts.vpc_ipv6 = gateway.vpc_has_ipv6(facts.vpc_id)
    _read_addresses(gateway, name, facts)
    _read_key_pair(gateway, name, facts)
    if admin_access == "eice" or facts.endpoint_group_id:
        _read_endpoint(gateway, name, facts, eice_id if admin_access == "eice" else "")
    if facts.warehouse_group_id and facts.security_group_id:
        group = gateway.security_group(facts.warehouse_group_id)
        if group is None:
            raise AwsError(
                f"warehouse security group {facts.warehouse_group_id} not found",
                hint="check warehouse.security_group_id, or remove it to use the discovered group",
            )
        facts.warehouse_rules = [
            r
            for r in flatten(group.get("IpPermissions", []))
            if r.source == facts.security_group_id
        ]
    return facts


def _refuse_foreign(name: str, facts: AwsFacts, held: list[tuple[str, str | None]]) -> None:
    """A name is owned per region: resources of `name` in another VPC belong to another
    config (staging beside prod), never to be adopted, changed or destroyed from this one."""
    foreign = [(rid, vpc) for rid, vpc in held if facts.vpc_id and vpc and vpc != facts.vpc_id]
    if foreign:
        listed = ", ".join(f"{rid} in {vpc}" for rid, vpc in foreign)
        raise ConfigError(
            f"name {name!r} is already held in this region by another bastion: {listed} "
            f"(this config's warehouse is in {facts.vpc_id}); nothing was changed",
            hint="give this bastion another name (a name is owned per region), or run "
            "bastion from the config that made those resources",
        )


def _read_group(gateway: AwsGateway, name: str, facts: AwsFacts) -> None:
    found = gateway.describe_security_groups(t.ours(name))
    _refuse_foreign(name, facts, [(g["GroupId"], g.get("VpcId")) for g in found])
    serving = sorted(
        (g for g in found if t.tag_map(g).get(t.ROLE_TAG) == t.ENDPOINT_ROLE),
        key=lambda g: g["GroupId"],
    )
    if serving:
        facts.endpoint_group_id = serving[0]["GroupId"]
        facts.endpoint_group_egress = flatten(serving[0].get("IpPermissionsEgress", []))
    groups = [g for g in found if t.ROLE_TAG not in t.tag_map(g)]
    if not groups:
        return
    groups.sort(key=lambda g: g["GroupId"])
    group = groups[0]
    facts.security_group_id = group["GroupId"]
    facts.vpc_id = facts.vpc_id or group.get("VpcId")
    facts.ingress = flatten(group.get("IpPermissions", []))
    facts.egress = flatten(group.get("IpPermissionsEgress", []))
    facts.generation = _int(t.tag_map(group).get(t.GENERATION_TAG))
    facts.ssh_port = _int(t.tag_map(group).get(t.SSH_PORT_TAG))


def _read_endpoint(gateway: AwsGateway, name: str, facts: AwsFacts, eice_id: str) -> None:
    """`eice_id`'s endpoint, else the one tagged with this name, and its source address."""
    if eice_id:
        found = gateway.describe_instance_connect_endpoints(endpoint_ids=[eice_id])
        if not found:
            raise ConfigError(
                f"bastion.eice_id: no Instance Connect Endpoint {eice_id} in this region",
                hint="check the id (aws ec2 describe-instance-connect-endpoints), or remove "
                "eice_id to let bastion create its own",
            )
    else:
        found = [
            e
            for e in gateway.describe_instance_connect_endpoints(filters=t.ours(name))
            if e.get("State") not in ("delete-complete", "delete-in-progress")
        ]
        _refuse_foreign(
            name, facts, [(e["InstanceConnectEndpointId"], e.get("VpcId")) for e in found]
        )
    if not found:
        return
    found.sort(key=lambda e: e["InstanceConnectEndpointId"])
    facts.endpoint = InstanceConnectEndpoint.from_aws(found[0])
    facts.endpoint_owned = not eice_id
    facts.endpoint_addresses = gateway.network_interface_addresses(
        list(facts.endpoint.network_interface_ids)
    )


def _read_instances(gateway: AwsGateway, name: str, facts: AwsFacts) -> None:
    instances = gateway.describe_instances(t.ours(name))
    live_anywhere = [i for i in instances if i["State"]["Name"] in LIVE_STATES]
    _refuse_foreign(name, facts, [(i["InstanceId"], i.get("VpcId")) for i in live_anywhere])
    facts.used_generations = {
        g for i in instances if (g := _int(t.tag_map(i).get(t.GENERATION_TAG))) is not None
    }
    live = [i for i in instances if i["State"]["Name"] in LIVE_STATES]
    if not live:
        return
    # The newest host is the bastion; older live ones are leftovers of an interrupted replace.
    live.sort(key=lambda i: (str(i.get("LaunchTime", "")), i["InstanceId"]), reverse=True)
    instance, extras = live[0], live[1:]
    tags = t.tag_map(instance)
    facts.instance_id = instance["InstanceId"]
    facts.instance_state = instance["State"]["Name"]
    facts.instance_type = instance.get("InstanceType")
    facts.ami = tags.get(t.AMI_TAG) or instance.get("ImageId")
    facts.host_key_tag = tags.get(t.HOST_KEY_TAG)
    facts.private_ip = instance.get("PrivateIpAddress")
    facts.instance_subnet_id = instance.get("SubnetId")
    facts.instance_groups = sorted(g["GroupId"] for g in instance.get("SecurityGroups", []))
    facts.instance_generation = _int(tags.get(t.GENERATION_TAG))
    facts.extra_instance_ids = [i["InstanceId"] for i in extras]


def _read_addresses(gateway: AwsGateway, name: str, facts: AwsFacts) -> None:
    addresses = sorted(gateway.describe_addresses(t.ours(name)), key=lambda a: a["AllocationId"])
    if not addresses:
        return
    address = addresses[0]
    facts.allocation_id = address["AllocationId"]
    facts.public_ip = address.get("PublicIp")
    facts.association_id = address.get("AssociationId") or None
    facts.eip_instance_id = address.get("InstanceId") or None
    facts.extra_allocation_ids = [a["AllocationId"] for a in addresses[1:]]


def _read_key_pair(gateway: AwsGateway, name: str, facts: AwsFacts) -> None:
    pairs = gateway.describe_key_pairs(t.resource_name(name))
    if pairs:
        facts.key_pair = pairs[0]["KeyName"]
        facts.key_fingerprint = t.tag_map(pairs[0]).get(t.KEY_FINGERPRINT_TAG)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
