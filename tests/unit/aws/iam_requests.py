"""Each AWS call bastion makes, as the IAM requests AWS authorizes for it.

Built from the call's parameters just before boto3 sends it (botocore's
`before-parameter-build`), so the tags of the resources it names are read from moto as they
are at that moment; a new resource takes its tags from the request's TagSpecifications, and
tagging on create is a second request (ec2:CreateTags with ec2:CreateAction), as on AWS. The
resources per action are those the Service Authorization Reference lists, counted in when AWS
may check them (the host's network interface when an address moves). A parameter that would
bring in other resources or permissions (launch templates, instance profiles, KMS) raises
Unmodeled rather than be ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .iam_evaluator import SAR, Request, Resource, Unmodeled

# AWS documents these as needing no permission (sts:GetCallerIdentity "No permissions are
# required to perform this operation", STS API reference): nothing to authorize.
NEEDS_NO_PERMISSION = frozenset({"sts:GetCallerIdentity"})
NEW = "(new)"  # the id of a resource the call creates: no pattern but `*` matches it
_PREFIXES = {
    "sg-": "security-group", "i-": "instance", "eipalloc-": "elastic-ip", "vol-": "volume",
    "subnet-": "subnet", "vpc-": "vpc", "eni-": "network-interface",
}  # fmt: skip
_GROUP_CHANGES = (
    "AuthorizeSecurityGroupIngress", "AuthorizeSecurityGroupEgress", "RevokeSecurityGroupIngress",
    "RevokeSecurityGroupEgress", "UpdateSecurityGroupRuleDescriptionsIngress",
    "UpdateSecurityGroupRuleDescriptionsEgress", "DeleteSecurityGroup",
)  # fmt: skip
Params = dict[str, Any]
Builder = Callable[[str, Params], list[Request]]  # (action, parameters) -> requests


@dataclass
class RequestModel:
    """Turns calls into Requests; `observe` is a Recorder observer and keeps what it saw."""

    region: str
    account: str
    ec2: Any  # a client of its own (not recorded), to read tags as they are
    requests: list[Request] = field(default_factory=list)

    def observe(self, action: str, params: Params) -> None:
        self.requests.extend(self.requests_for(action, params))

    def requests_for(self, action: str, params: Params) -> list[Request]:
        if action in NEEDS_NO_PERMISSION:
            return []
        if SAR.get(action) == {"": frozenset()}:  # no resource type: "*"
            return [Request(action, (Resource("", "*"),))]
        build = self._builders().get(action)
        if build is None:
            raise Unmodeled(f"no request model for {action}: add one from the SAR")
        return build(action, params)

    def _builders(self) -> dict[str, Builder]:
        ec2: dict[str, Builder] = {
            "CreateSecurityGroup": self._create_security_group,
            "ImportKeyPair": self._import_key_pair,
            "AllocateAddress": self._allocate_address,
            "RunInstances": self._run_instances,
            "CreateTags": self._create_tags,
            "DeleteKeyPair": self._delete_key_pair,
            "ModifyInstanceAttribute": self._modify_instance_attribute,
            "StartInstances": self._instances,
            "TerminateInstances": self._instances,
            "GetConsoleOutput": self._instances,
            "AssociateAddress": self._associate_address,
            "DisassociateAddress": self._disassociate_address,
            "ReleaseAddress": self._release_address,
            **dict.fromkeys(_GROUP_CHANGES, self._group_change),
        }
        return {
            **{f"ec2:{name}": build for name, build in ec2.items()},
            "ssm:GetParameter": self._parameter,
            "redshift:DescribeClusters": self._cluster,
            "redshift:GetClusterCredentials": self._cluster_credentials,
        }

    # --- ARNs and tags ----------------------------------------------------------------

    def arn(self, kind: str, ident: str) -> str:
        return f"arn:aws:ec2:{self.region}:{self.account}:{kind}/{ident}"

    def vpc_arn(self, vpc_id: str) -> str:
        return self.arn("vpc", vpc_id)

    def _existing(self, kind: str, ident: str, vpc: str | None = None) -> Resource:
        context: dict[str, Any] = held(self.tags_of(kind, ident))
        if vpc:
            context["ec2:Vpc"] = self.vpc_arn(vpc)
        return Resource(kind, self.arn(kind, ident), context)

    def tags_of(self, kind: str, ident: str) -> dict[str, str]:
        """The tags the resource holds now, read from moto."""
        if kind == "key-pair":
            found = self.ec2.describe_key_pairs(Filters=[{"Name": "key-name", "Values": [ident]}])
            items = found["KeyPairs"]
        else:
            found = self.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [ident]}])
            return {t["Key"]: t["Value"] for t in found["Tags"]}
        return {t["Key"]: t["Value"] for i in items for t in i.get("Tags", [])}

    def group_vpc(self, group: str) -> str:
        found = self.ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
        return str(found[0]["VpcId"])

    # --- per action -------------------------------------------------------------------

    def _create_security_group(self, action: str, p: Params) -> list[Request]:
        _refuse(p, "GroupName" not in p or "VpcId" not in p, "a group outside a named VPC")
        tags = spec_tags(p, "security-group")
        group = Resource("security-group", self.arn("security-group", NEW), asked(tags))
        vpc = self._existing("vpc", p["VpcId"])
        return [Request(action, (group, vpc)), *self._tag_on_create(action, [group], tags)]

    def _import_key_pair(self, action: str, p: Params) -> list[Request]:
        tags = spec_tags(p, "key-pair")
        pair = Resource("key-pair", self.arn("key-pair", p["KeyName"]), asked(tags))
        return [Request(action, (pair,)), *self._tag_on_create(action, [pair], tags)]

    def _allocate_address(self, action: str, p: Params) -> list[Request]:
        _refuse(p, any(k in p for k in ("PublicIpv4Pool", "Address", "IpamPoolId")), "a pool")
        tags = spec_tags(p, "elastic-ip")
        address = Resource("elastic-ip", self.arn("elastic-ip", NEW), asked(tags))
        return [Request(action, (address,)), *self._tag_on_create(action, [address], tags)]

    def _run_instances(self, action: str, p: Params) -> list[Request]:
        others = ("LaunchTemplate", "IamInstanceProfile", "NetworkInterfaces", "SecurityGroups",
                  "PlacementGroup", "CapacityReservationSpecification")  # fmt: skip
        _refuse(p, any(k in p for k in others), "resources beyond the modeled ones")
        _refuse(p, any("KmsKeyId" in m.get("Ebs", {}) for m in p.get("BlockDeviceMappings", [])),
                "a KMS key")  # fmt: skip
        subnet = self.ec2.describe_subnets(SubnetIds=[p["SubnetId"]])["Subnets"][0]
        vpc = str(subnet["VpcId"])
        instance_tags, volume_tags = spec_tags(p, "instance"), spec_tags(p, "volume")
        instance = Resource("instance", self.arn("instance", NEW), asked(instance_tags))
        volume = Resource("volume", self.arn("volume", NEW), asked(volume_tags))
        interface = Resource(
            "network-interface", self.arn("network-interface", NEW), {"ec2:Vpc": self.vpc_arn(vpc)}
        )
        image = Resource("image", f"arn:aws:ec2:{self.region}::image/{p['ImageId']}",
                         held(self.tags_of("image", p["ImageId"])))  # fmt: skip
        resources = [
            instance, volume, interface, image, self._existing("subnet", p["SubnetId"], vpc),
            *(self._existing("security-group", g, self.group_vpc(g)) for g in p["SecurityGroupIds"]),
        ]  # fmt: skip
        if p.get("KeyName"):
            resources.append(self._existing("key-pair", p["KeyName"]))
        return [
            Request(action, tuple(resources)),
            *self._tag_on_create(action, [instance], instance_tags),
            *self._tag_on_create(action, [volume], volume_tags),
        ]

    def _tag_on_create(
        self, action: str, made: list[Resource], tags: dict[str, str]
    ) -> list[Request]:
        """Tags given to a create call: AWS also authorizes ec2:CreateTags on what it makes."""
        if not tags:
            return []
        create_action = action.split(":")[1]
        return [
            Request("ec2:CreateTags", tuple(
                Resource(r.kind, r.arn, {**asked(tags), "ec2:CreateAction": create_action})
                for r in made
            ))
        ]  # fmt: skip

    def _create_tags(self, action: str, p: Params) -> list[Request]:
        tags = {t["Key"]: t.get("Value", "") for t in p["Tags"]}
        resources = []
        for ident in p["Resources"]:
            kind = next((k for prefix, k in _PREFIXES.items() if ident.startswith(prefix)), None)
            if kind is None:
                raise Unmodeled(f"CreateTags on {ident}: which resource type?")
            vpc = self.group_vpc(ident) if kind == "security-group" else None
            found = self._existing(kind, ident, vpc)
            resources.append(Resource(kind, found.arn, {**found.context, **asked(tags)}))
        return [Request(action, tuple(resources))]

    def _group_change(self, action: str, p: Params) -> list[Request]:
        _refuse(p, "GroupId" not in p or "TagSpecifications" in p, "a group by name, or rule tags")
        group = p["GroupId"]
        return [Request(action, (self._existing("security-group", group, self.group_vpc(group)),))]

    def _delete_key_pair(self, action: str, p: Params) -> list[Request]:
        _refuse(p, "KeyName" not in p, "a key pair by id")
        return [Request(action, (self._existing("key-pair", p["KeyName"]),))]

    def _modify_instance_attribute(self, action: str, p: Params) -> list[Request]:
        groups = [
            self._existing("security-group", g, self.group_vpc(g)) for g in p.get("Groups", [])
        ]
        instance = self._existing("instance", p["InstanceId"])
        return [Request(action, (instance, *groups))]

    def _instances(self, action: str, p: Params) -> list[Request]:
        ids = p.get("InstanceIds") or [p["InstanceId"]]
        return [Request(action, tuple(self._existing("instance", i) for i in ids))]

    def _interface(self, eni: str) -> Resource:
        found = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])
        return self._existing("network-interface", eni, found["NetworkInterfaces"][0]["VpcId"])

    def _associate_address(self, action: str, p: Params) -> list[Request]:
        _refuse(p, "AllocationId" not in p, "an address by public IP")
        resources = [self._existing("elastic-ip", p["AllocationId"])]
        eni = p.get("NetworkInterfaceId")
        if p.get("InstanceId"):
            resources.append(self._existing("instance", p["InstanceId"]))
            reservations = self.ec2.describe_instances(InstanceIds=[p["InstanceId"]])
            (instance,) = [i for r in reservations["Reservations"] for i in r["Instances"]]
            eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
        if eni:
            resources.append(self._interface(eni))
        return [Request(action, tuple(resources))]

    def _disassociate_address(self, action: str, p: Params) -> list[Request]:
        filters = [{"Name": "association-id", "Values": [p["AssociationId"]]}]
        (address,) = self.ec2.describe_addresses(Filters=filters)["Addresses"]
        resources = [self._existing("elastic-ip", address["AllocationId"])]
        if address.get("NetworkInterfaceId"):
            resources.append(self._interface(address["NetworkInterfaceId"]))
        return [Request(action, tuple(resources))]

    def _release_address(self, action: str, p: Params) -> list[Request]:
        return [Request(action, (self._existing("elastic-ip", p["AllocationId"]),))]

    def _parameter(self, action: str, p: Params) -> list[Request]:
        _refuse(p, bool(p.get("WithDecryption")), "decryption (kms:Decrypt)")
        path = p["Name"].lstrip("/")
        account = "" if path.startswith("aws/service/") else self.account  # AWS's public ones
        arn = f"arn:aws:ssm:{self.region}:{account}:parameter/{path}"
        return [Request(action, (Resource("parameter", arn),))]

    def _cluster(self, action: str, p: Params) -> list[Request]:
        if not p.get("ClusterIdentifier"):
            return [Request(action, (Resource("", "*"),))]
        arn = f"arn:aws:redshift:{self.region}:{self.account}:cluster:{p['ClusterIdentifier']}"
        return [Request(action, (Resource("cluster", arn),))]

    def _cluster_credentials(self, action: str, p: Params) -> list[Request]:
        _refuse(p, bool(p.get("AutoCreate")) or bool(p.get("DbGroups")),
                "AutoCreate (redshift:CreateClusterUser) or DbGroups (redshift:JoinGroup)")  # fmt: skip
        base = f"arn:aws:redshift:{self.region}:{self.account}"
        cluster = p["ClusterIdentifier"]
        resources = [Resource("dbuser", f"{base}:dbuser:{cluster}/{p['DbUser']}")]
        if p.get("DbName"):
            resources.append(Resource("dbname", f"{base}:dbname:{cluster}/{p['DbName']}"))
        return [Request(action, tuple(resources))]


def spec_tags(params: Params, resource_type: str) -> dict[str, str]:
    """The tags a create call asks for one resource type (TagSpecifications)."""
    return {
        t["Key"]: t.get("Value", "")
        for spec in params.get("TagSpecifications", [])
        if spec["ResourceType"] == resource_type
        for t in spec.get("Tags", [])
    }


def asked(tags: dict[str, str]) -> dict[str, Any]:
    """The context of tags in the request: aws:RequestTag/<key> and aws:TagKeys."""
    context: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags.items()}
    if tags:
        context["aws:TagKeys"] = list(tags)
    return context


def held(tags: dict[str, str]) -> dict[str, Any]:
    """The context of tags a resource holds: aws:ResourceTag/<key> and ec2:ResourceTag/<key>."""
    return {f"{p}:ResourceTag/{k}": v for k, v in tags.items() for p in ("aws", "ec2")}


def _refuse(params: Params, unmodeled: bool, what: str) -> None:
    if unmodeled:
        raise Unmodeled(f"a call with {what} is not modeled: {sorted(params)}")
