"""The least-privilege IAM policy for one bastion: `bastion iam-policy`, docs/iam-policy.json.

Every mutating EC2 call is scoped by resource type and by the tags bastion sets: a new
group, key pair, host, volume or address must be created carrying `bastion:name=<name>` and
`managed-by=dbt-bastion` (aws:RequestTag), an existing one must already carry them
(aws:ResourceTag), and CreateTags works only while creating (ec2:CreateAction) or on what is
already ours. Resource types and condition keys are those AWS's Service Authorization
Reference lists for each action; the reads it lists without a resource type stay on "*".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from bastion.aws import session as aws_session
from bastion.aws import tags as t
from bastion.aws.discover import discover_warehouse
from bastion.aws.gateway import AwsGateway
from bastion.config.settings import Settings
from bastion.errors import AwsError, ConfigError, InputError

# Reads AWS authorizes on "*" only: no resource type in the Service Authorization Reference.
EC2_READS = (
    "ec2:DescribeAddresses", "ec2:DescribeImages", "ec2:DescribeInstances",
    "ec2:DescribeKeyPairs", "ec2:DescribeNetworkAcls", "ec2:DescribeRouteTables",
    "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
)  # fmt: skip
LOAD_BALANCER_READS = tuple(  # doctor: an idle timeout in front of the bastion
    f"elasticloadbalancing:Describe{what}"
    for what in ("LoadBalancers", "LoadBalancerAttributes", "Listeners", "ListenerAttributes",
                 "TargetGroups", "TargetHealth")
)  # fmt: skip
CREATE_ACTIONS = ("CreateSecurityGroup", "ImportKeyPair", "RunInstances", "AllocateAddress")
ENDPOINT_READS = ("ec2:DescribeInstanceConnectEndpoints", "ec2:DescribeNetworkInterfaces")
MANAGED_BY_TAG = "managed-by"
# The tags bastion writes on what it creates, and the only ones it changes afterwards.
CREATE_TAG_KEYS = (
    "Name", t.NAME_TAG, MANAGED_BY_TAG, t.GENERATION_TAG, t.SSH_PORT_TAG, t.AMI_TAG,
    t.KEY_FINGERPRINT_TAG, t.ROLE_TAG,
)  # fmt: skip
RETAG_KEYS = (t.GENERATION_TAG, t.SSH_PORT_TAG, t.HOST_KEY_TAG)
INGRESS_ACTIONS = (
    "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress",
)  # fmt: skip
RULE_ACTIONS = (*INGRESS_ACTIONS, *(a.replace("Ingress", "Egress") for a in INGRESS_ACTIONS))
_ACCOUNT = re.compile(r"\d{12}")


@dataclass(frozen=True)
class PolicyScope:
    """What a policy is filled in with; None where nothing names it (then any is allowed)."""

    account: str
    region: str
    name: str
    builds_host: bool  # provider aws: the EC2 group, key, host and address
    discovers: bool = False  # the warehouse's endpoint, VPC or group is read from AWS
    redshift_cluster: str = ""
    workgroup: str = ""
    workgroup_arn: str | None = None  # holds the workgroup's id: known only from AWS
    rds_instance: str = ""
    rds_cluster: str = ""
    iam_auth: bool = False
    database: str = ""
    user: str = ""
    ami: str = ""  # an AMI id or ssm:/path (a named image is its parameter)
    vpc_id: str | None = None
    subnet_id: str | None = None
    warehouse_group_id: str | None = None
    endpoint: bool = False  # admin_access = "eice"
    eice_id: str = ""  # an endpoint that is not the tool's own
    instance_ip: str | None = None  # the host's private address: the one OpenTunnel reaches
    vpc_cidr: str | None = None  # where it is when there is no host yet

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        return "aws-us-gov" if self.region.startswith("us-gov-") else "aws"

    def arn(self, service: str, resource: str, *, owned: bool = True) -> str:
        """An ARN in this region; `owned=False` for AWS's public ones (images, /aws/service)."""
        account = self.account if owned else ""
        return f"arn:{self.partition}:{service}:{self.region}:{account}:{resource}"


@dataclass
class IamPolicy:
    """A policy document, and what it had to leave open (said on stderr and in --json)."""

    document: dict[str, Any]
    notices: list[str] = field(default_factory=list)


def iam_policy(settings: Settings, *, account: str | None = None) -> IamPolicy:
    """The policy for this config. Given `account`, from bastion.toml alone (no AWS call);
    else the caller's account, and the warehouse's VPC, group and workgroup read from AWS."""
    if account is None:
        scope = _discovered_scope(settings, AwsGateway(aws_session.make_session(settings)))
    else:
        if not _ACCOUNT.fullmatch(account):
            raise InputError(f"--account must be a 12-digit AWS account id (got {account!r})")
        scope = scope_from(settings, account)
        if scope.builds_host and scope.discovers and not scope.warehouse_group_id:
            raise ConfigError(
                "warehouse.security_group_id is needed for a policy built without AWS "
                "(--account): it limits the rule on the warehouse's group to that group",
                hint="set warehouse.security_group_id, or leave out --account to read it "
                "from AWS with credentials that can describe the warehouse",
            )
    return IamPolicy(least_privilege_policy(scope), _open_ends(scope))


def scope_from(settings: Settings, account: str) -> PolicyScope:
    """The scope bastion.toml alone gives (no discovery)."""
    warehouse, bastion = settings.warehouse, settings.bastion
    builds_host = bastion.provider == "aws"
    return PolicyScope(
        account=account,
        region=settings.aws.region,
        name=settings.name,
        builds_host=builds_host,
        discovers=warehouse.discoverable
        and (builds_host or warehouse.configured_endpoint() is None),
        redshift_cluster=warehouse.redshift_cluster,
        workgroup=warehouse.workgroup,
        rds_instance=warehouse.rds_instance,
        rds_cluster=warehouse.rds_cluster,
        iam_auth=warehouse.auth == "iam",
        database=warehouse.database,
        user=warehouse.user,
        ami=bastion.ami_reference,
        vpc_id=bastion.vpc_id or None,
        subnet_id=bastion.subnet_id or None,
        warehouse_group_id=warehouse.security_group_id or None,
        endpoint=builds_host and bastion.admin_access == "eice",
        eice_id=bastion.eice_id,
    )


def _discovered_scope(settings: Settings, gateway: AwsGateway) -> PolicyScope:
    try:
        account = gateway.account_id()
    except AwsError as exc:
        raise AwsError(
            f"cannot tell which account the policy is for: {exc.message}",
            hint="pass --account 123456789012 to build it from bastion.toml alone, without AWS",
        ) from None
    scope = scope_from(settings, account)
    if scope.builds_host and scope.discovers and not (scope.vpc_id and scope.warehouse_group_id):
        found = discover_warehouse(settings, gateway)  # config values win, as in `plan`
        scope = replace(scope, vpc_id=found.vpc_id, warehouse_group_id=found.security_group_id)
    if scope.endpoint:
        scope = _tunnel_target(scope, settings, gateway)
    if scope.discovers and scope.workgroup:
        workgroup = gateway.serverless_workgroup(scope.workgroup)
        scope = replace(scope, workgroup_arn=workgroup.get("workgroupArn") or None)
    return scope


def least_privilege_policy(scope: PolicyScope) -> dict[str, Any]:
    """The policy document for `scope`: a pure function of its values."""
    statements = _reads(scope)
    if scope.builds_host:
        statements += _create(scope) + _change(scope) + _tagging(scope)
        if scope.warehouse_group_id:
            rule = scope.arn("ec2", f"security-group/{scope.warehouse_group_id}")
            statements.append(_allow("TheOneRuleOnTheWarehouseGroup", INGRESS_ACTIONS, [rule]))
        if scope.endpoint:
            statements += _instance_connect(scope)
    statements += _credentials(scope)
    return {"Version": "2012-10-17", "Statement": statements}


def _reads(scope: PolicyScope) -> list[dict[str, Any]]:
    anywhere: list[str] = []
    if scope.builds_host:
        anywhere += [*EC2_READS, *LOAD_BALANCER_READS]
    if scope.endpoint:
        anywhere += ENDPOINT_READS
    elif scope.discovers and scope.workgroup:
        anywhere.append("ec2:DescribeSubnets")  # the workgroup's VPC, from its subnets
    if scope.discovers and scope.redshift_cluster:
        anywhere.append("redshift:DescribeClusterSubnetGroups")
    statements = [_allow("ReadsWithoutResourceLevelPermissions", anywhere, ["*"])]
    warehouse: dict[str, str] = {}  # action -> the one resource it reads
    if scope.discovers and scope.redshift_cluster:
        cluster = f"cluster:{scope.redshift_cluster}"
        warehouse["redshift:DescribeClusters"] = scope.arn("redshift", cluster)
    if scope.discovers and scope.workgroup:
        warehouse["redshift-serverless:GetWorkgroup"] = _workgroup(scope)
    if scope.discovers and scope.rds_instance:
        warehouse["rds:DescribeDBInstances"] = scope.arn("rds", f"db:{scope.rds_instance}")
    if scope.discovers and scope.rds_cluster:
        warehouse["rds:DescribeDBClusters"] = scope.arn("rds", f"cluster:{scope.rds_cluster}")
        warehouse["rds:DescribeDBSubnetGroups"] = scope.arn("rds", "subgrp:*")  # the cluster's
    if warehouse:
        resources = list(dict.fromkeys(warehouse.values()))
        statements.append(_allow("ReadTheWarehouse", list(warehouse), resources))
    if scope.builds_host and scope.ami.startswith("ssm:"):
        path = scope.ami.removeprefix("ssm:").lstrip("/")
        public = path.startswith("aws/service/")  # AWS's own: no account in the ARN
        parameter = scope.arn(
            "ssm", "parameter/aws/service/*" if public else f"parameter/{path}", owned=not public
        )
        statements.append(_allow("ReadTheAmiParameter", ["ssm:GetParameter"], [parameter]))
    return [s for s in statements if s["Action"]]


def _create(scope: PolicyScope) -> list[dict[str, Any]]:
    """One statement per create action: RequestTag is checked on the resource being made,
    and a shared statement could let RunInstances use any group when the tags are right."""
    tagged = {
        "StringEquals": {
            f"aws:RequestTag/{t.NAME_TAG}": scope.name,
            f"aws:RequestTag/{MANAGED_BY_TAG}": t.MANAGED_BY,
        },
        "ForAllValues:StringEquals": {"aws:TagKeys": list(CREATE_TAG_KEYS)},
    }
    image = scope.ami if scope.ami.startswith("ami-") else "*"
    subnet = scope.arn("ec2", f"subnet/{scope.subnet_id or '*'}")
    return [
        _allow("CreateTheGroupTagged", ["ec2:CreateSecurityGroup"],
               [scope.arn("ec2", "security-group/*")], tagged),
        _allow("CreateTheGroupInTheWarehouseVpc", ["ec2:CreateSecurityGroup"],
               [scope.arn("ec2", f"vpc/{scope.vpc_id or '*'}")]),
        _allow("ImportTheAdminKeyTagged", ["ec2:ImportKeyPair"], [_key_pair(scope)], tagged),
        _allow("AllocateTheAddressTagged", ["ec2:AllocateAddress"],
               [scope.arn("ec2", "elastic-ip/*")], tagged),
        _allow("LaunchTheHostTagged", ["ec2:RunInstances"],
               [scope.arn("ec2", "instance/*"), scope.arn("ec2", "volume/*")], tagged),
        _allow("LaunchIntoTheWarehouseVpc", ["ec2:RunInstances"],
               [subnet, scope.arn("ec2", "network-interface/*")], _in_vpc(scope)),
        _allow("LaunchFromTheImage", ["ec2:RunInstances"],
               [scope.arn("ec2", f"image/{image}", owned=False)]),
    ]  # fmt: skip


def _change(scope: PolicyScope) -> list[dict[str, Any]]:
    """Changes to what exists: only resources that already carry the name's tags."""
    ours = _ours(scope)
    return [
        _allow("TheBastionGroup",
               [*RULE_ACTIONS, "ec2:DeleteSecurityGroup", "ec2:RunInstances",
                "ec2:ModifyInstanceAttribute"],
               [scope.arn("ec2", "security-group/*")], ours),
        _allow("TheBastionHost",
               ["ec2:StartInstances", "ec2:TerminateInstances", "ec2:ModifyInstanceAttribute",
                "ec2:AssociateAddress", "ec2:GetConsoleOutput"],
               [scope.arn("ec2", "instance/*")], ours),
        _allow("TheAdminKeyPair", ["ec2:DeleteKeyPair", "ec2:RunInstances"],
               [_key_pair(scope)], ours),
        _allow("TheElasticIp",
               ["ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:ReleaseAddress"],
               [scope.arn("ec2", "elastic-ip/*")], ours),
        # the host's network interface, which AWS may check when the address moves
        _allow("TheHostsNetworkInterface", ["ec2:AssociateAddress", "ec2:DisassociateAddress"],
               [scope.arn("ec2", "network-interface/*")], _in_vpc(scope)),
    ]  # fmt: skip


def _tagging(scope: PolicyScope) -> list[dict[str, Any]]:
    """CreateTags while one of the four creates runs, or later on our group and host,
    for the tags bastion updates alone (never bastion:name or managed-by)."""
    created = [
        scope.arn("ec2", f"{kind}/*")
        for kind in ("security-group", "instance", "volume", "elastic-ip")
    ]
    retag = {**_ours(scope), "ForAllValues:StringEquals": {"aws:TagKeys": list(RETAG_KEYS)}}
    return [
        _allow("TagOnlyWhileCreating", ["ec2:CreateTags"], [*created, _key_pair(scope)],
               {"StringEquals": {"ec2:CreateAction": list(CREATE_ACTIONS)}}),
        _allow("RetagTheBastionGroupAndHost", ["ec2:CreateTags"],
               [scope.arn("ec2", "security-group/*"), scope.arn("ec2", "instance/*")], retag),
    ]  # fmt: skip


def _instance_connect(scope: PolicyScope) -> list[dict[str, Any]]:
    """admin_access = "eice": tunnels to port 22 of the bastion's own address, for at most an
    hour; the tool's endpoint created, deleted and tagged only with the name's tags."""
    endpoint_arn = scope.arn("ec2", f"instance-connect-endpoint/{scope.eice_id or '*'}")
    tunnel: dict[str, Any] = {
        "NumericEquals": {"ec2-instance-connect:remotePort": "22"},
        "NumericLessThanEquals": {"ec2-instance-connect:maxTunnelDuration": "3600"},
    }
    where = f"{scope.instance_ip}/32" if scope.instance_ip else scope.vpc_cidr
    if where:
        tunnel["IpAddress"] = {"ec2-instance-connect:privateIpAddress": where}
    if not scope.eice_id:
        tunnel["StringEquals"] = _ours(scope)["StringEquals"]
    statements = [_allow("OpenTunnelToTheBastionsSshPort", ["ec2-instance-connect:OpenTunnel"],
                         [endpoint_arn], tunnel)]  # fmt: skip
    if scope.eice_id:
        return statements
    tagged = {
        "StringEquals": {
            f"aws:RequestTag/{t.NAME_TAG}": scope.name,
            f"aws:RequestTag/{MANAGED_BY_TAG}": t.MANAGED_BY,
        },
        "ForAllValues:StringEquals": {"aws:TagKeys": list(CREATE_TAG_KEYS)},
    }
    subnet = scope.arn("ec2", f"subnet/{scope.subnet_id or '*'}")
    return [
        *statements,
        _allow("CreateTheEndpointTagged", ["ec2:CreateInstanceConnectEndpoint"],
               [scope.arn("ec2", "instance-connect-endpoint/*")], tagged),
        _allow("CreateTheEndpointWithItsGroup", ["ec2:CreateInstanceConnectEndpoint"],
               [scope.arn("ec2", "security-group/*")], _ours(scope)),
        _allow("CreateTheEndpointInTheWarehouseVpc",
               ["ec2:CreateInstanceConnectEndpoint", "ec2:CreateNetworkInterface"],
               [subnet, scope.arn("ec2", "network-interface/*")], _in_vpc(scope)),
        _allow("TheEndpointsServiceLinkedRole", ["iam:CreateServiceLinkedRole"],
               [f"arn:{scope.partition}:iam::{scope.account}:role/aws-service-role/*"],
               {"StringEquals": {"iam:AWSServiceName": "ec2-instance-connect.amazonaws.com"}}),
        _allow("TheEndpoint", ["ec2:DeleteInstanceConnectEndpoint"],
               [scope.arn("ec2", "instance-connect-endpoint/*")], _ours(scope)),
        _allow("TagTheEndpointWhileCreating", ["ec2:CreateTags"],
               [scope.arn("ec2", "instance-connect-endpoint/*")],
               {"StringEquals": {"ec2:CreateAction": ["CreateInstanceConnectEndpoint"]}}),
    ]  # fmt: skip


def _tunnel_target(scope: PolicyScope, settings: Settings, gateway: AwsGateway) -> PolicyScope:
    """The host's private address (OpenTunnel's privateIpAddress), else its VPC's range."""
    vpc_id = scope.vpc_id
    for instance in gateway.describe_instances(t.ours(settings.name)):
        live = instance.get("State", {}).get("Name") in (
            "pending",
            "running",
            "stopping",
            "stopped",
        )
        if live and instance.get("PrivateIpAddress"):
            return replace(scope, instance_ip=str(instance["PrivateIpAddress"]))
    if vpc_id:
        found = gateway.call("ec2", "describe_vpcs", what=f"VPC {vpc_id}", VpcIds=[vpc_id])
        vpcs = found.get("Vpcs", [])
        if vpcs and vpcs[0].get("CidrBlock"):
            return replace(scope, vpc_cidr=str(vpcs[0]["CidrBlock"]))
    return scope


def _credentials(scope: PolicyScope) -> list[dict[str, Any]]:
    """warehouse.auth = iam: temporary logins as warehouse.user to warehouse.database only."""
    if not scope.iam_auth:
        return []
    if scope.workgroup:  # Serverless maps the caller's own identity to the database user
        action, resources = "redshift-serverless:GetCredentials", [_workgroup(scope)]
    elif scope.redshift_cluster:
        cluster = scope.redshift_cluster
        action = "redshift:GetClusterCredentials"
        resources = [
            scope.arn("redshift", f"dbuser:{cluster}/{scope.user}"),
            scope.arn("redshift", f"dbname:{cluster}/{scope.database}"),
        ]
    else:
        return []
    return [_allow("TemporaryDatabaseCredentials", [action], resources)]


def _open_ends(scope: PolicyScope) -> list[str]:
    notes = []
    if scope.builds_host and not scope.vpc_id:
        notes.append(
            f"no VPC known (bastion.vpc_id): the policy lets the bastion's group and host go "
            f"in any VPC of {scope.region}"
        )
    if scope.builds_host and not scope.warehouse_group_id:
        notes.append(
            "no warehouse security group known: the policy allows no rule on it "
            "(set warehouse.security_group_id for the warehouse to admit the bastion)"
        )
    if scope.endpoint and not scope.instance_ip:
        notes.append(
            "no bastion host yet: OpenTunnel's privateIpAddress is limited to "
            + (f"the VPC's range {scope.vpc_cidr}" if scope.vpc_cidr else "no address (any)")
            + "; run `bastion iam-policy` again after `bastion up` to name the host's address"
        )
    if scope.workgroup and (scope.discovers or scope.iam_auth) and not scope.workgroup_arn:
        notes.append(
            f"the ARN of workgroup {scope.workgroup!r} holds its id, which only AWS knows: "
            f"the policy names every Serverless workgroup of {scope.region}"
        )
    return notes


def _allow(
    sid: str,
    actions: list[str] | tuple[str, ...],
    resources: list[str],
    condition: dict[str, Any] | None = None,
) -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": resources,
    }  # fmt: skip
    if condition:
        statement["Condition"] = condition
    return statement


def _ours(scope: PolicyScope) -> dict[str, Any]:
    return {
        "StringEquals": {
            f"aws:ResourceTag/{t.NAME_TAG}": scope.name,
            f"aws:ResourceTag/{MANAGED_BY_TAG}": t.MANAGED_BY,
        }
    }


def _in_vpc(scope: PolicyScope) -> dict[str, Any] | None:
    vpc = scope.arn("ec2", f"vpc/{scope.vpc_id}") if scope.vpc_id else None
    return {"ArnEquals": {"ec2:Vpc": vpc}} if vpc else None  # ec2:Vpc is of type ARN


def _key_pair(scope: PolicyScope) -> str:
    return scope.arn("ec2", f"key-pair/{t.resource_name(scope.name)}")


def _workgroup(scope: PolicyScope) -> str:
    return scope.workgroup_arn or scope.arn("redshift-serverless", "workgroup/*")
