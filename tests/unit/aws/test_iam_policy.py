"""The policy `bastion iam-policy` prints allows what bastion does, and nothing it does not own.

Against moto over HTTP, with the policy generated for the run's own config:
- every call of a whole lifecycle, each recorded with its parameters and with the tags its
  resources held at that moment, is allowed resource by resource (iam_evaluator.py);
- the same calls aimed at resources without this bastion's tags, or at another database user,
  are denied, each beside a control aimed at bastion's own resources that is allowed;
- every operation the package names is granted by the policy of a config that calls it;
- docs/iam-policy.json is exactly what the command prints for docs/iam-policy.example.toml.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import bastion.aws.session
from bastion.aws import tags as t
from bastion.aws.gateway import AwsGateway
from bastion.aws.iam_policy import least_privilege_policy, scope_from
from bastion.aws.stage import console_host_keys, plan_aws, record_host_key, status_aws
from bastion.cli.app import main
from bastion.config.settings import load
from bastion.tunnel.database import iam_credentials

from .conftest import REGION, ConfigWriter, Recorder, World, _client, run_cli
from .iam_evaluator import Request, denied
from .iam_requests import NEEDS_NO_PERMISSION, RequestModel

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
PLACEHOLDER_ACCOUNT = "123456789012"
# What a lifecycle must reach for "every call is allowed" to mean something.
REACHED = {
    "ec2:CreateSecurityGroup", "ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress",
    "ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress", "ec2:ImportKeyPair",
    "ec2:DeleteKeyPair", "ec2:RunInstances", "ec2:CreateTags", "ec2:AllocateAddress",
    "ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:ModifyInstanceAttribute",
    "ec2:StartInstances",
    "ec2:GetConsoleOutput", "ec2:TerminateInstances", "ec2:ReleaseAddress",
    "ec2:DeleteSecurityGroup", "ssm:GetParameter", "redshift:DescribeClusters",
    "redshift:GetClusterCredentials",
}  # fmt: skip


def generated_policy(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, document = run_cli(capsys, "iam-policy", *args)
    assert code == 0, document["error"]
    return dict(document["policy"])


def refusals(policy: dict[str, Any], requests: list[Request]) -> dict[str, list[str]]:
    """Each refused request (as text) and the ARNs of it that no statement grants."""
    return {str(request): arns for request in requests if (arns := denied(policy, request))}


def _account() -> str:
    return str(_client("sts").get_caller_identity()["Account"])


@dataclass
class Lifecycle:
    policy: dict[str, Any]
    requests: list[Request]
    warehouse_group: str


def _new_admin_key(path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )


def _stop_the_instance_and_swap_its_group(world: World) -> None:
    """Drift made by hand (this client is not recorded): the next provision starts the
    instance and puts its own group back."""
    filters: Any = [{"Name": "tag:bastion:name", "Values": ["analytics"]},
                    {"Name": "instance-state-name", "Values": ["running"]}]  # fmt: skip
    (reservation,) = world.ec2.describe_instances(Filters=filters)["Reservations"]
    (instance,) = reservation["Instances"]
    world.ec2.modify_instance_attribute(
        InstanceId=instance["InstanceId"], Groups=[world.warehouse_group]
    )
    world.ec2.stop_instances(InstanceIds=[instance["InstanceId"]])


@pytest.fixture
def lifecycle(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    world: World,
    recorder: Recorder,
    admin_key: Path,
) -> Lifecycle:
    """The policy an admin generates for the config, then every call of provision, plan,
    status, a host-key record, a console read, IAM database credentials, a drift repair, a
    rotated admin key, a replacement and destroy, as the requests AWS would authorize."""
    config = write_config(warehouse_extra='auth = "iam"')
    policy = generated_policy(capsys, "-c", str(config))  # the admin's run, not the CI's
    model = RequestModel(REGION, _account(), _client("ec2"))
    recorder.observers.append(model.observe)
    settings = load(config)
    session = recorder.attach(bastion.aws.session.make_session(settings))

    def cli(*args: str) -> None:
        code, document = run_cli(capsys, *args, "-c", str(config))
        assert code == 0, document["error"]

    cli("provision")
    plan_aws(settings, session)
    facts = status_aws(settings, session)
    record_host_key(session, facts, "SHA256:" + "h" * 43)
    console_host_keys(session, facts.instance_id or "")
    iam_credentials(settings, AwsGateway(session))
    _stop_the_instance_and_swap_its_group(world)
    cli("provision")
    _new_admin_key(admin_key)
    cli("provision", "--replace")
    cli("destroy", "--yes")
    return Lifecycle(policy, model.requests, world.warehouse_group)


def test_every_call_of_a_lifecycle_is_allowed_by_the_generated_policy(
    lifecycle: Lifecycle,
) -> None:
    made = {request.action for request in lifecycle.requests}
    assert made >= REACHED, f"the run stopped short of {sorted(REACHED - made)}"
    on_warehouse = {
        r.action
        for r in lifecycle.requests
        if any(x.arn.endswith(lifecycle.warehouse_group) for x in r.resources)
    }
    assert on_warehouse >= {"ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"}
    tagging = [r for r in lifecycle.requests if r.action == "ec2:CreateTags"]
    assert any("ec2:CreateAction" in x.context for r in tagging for x in r.resources)
    assert any("ec2:CreateAction" not in x.context for r in tagging for x in r.resources)
    assert refusals(lifecycle.policy, lifecycle.requests) == {}


def test_the_generated_policy_equals_the_one_built_from_the_config_alone(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    """Discovery (no --account) and a config naming the VPC and group (--account) agree."""
    discovered = generated_policy(capsys, "-c", str(write_config(warehouse_extra='auth = "iam"')))
    named = write_config(
        warehouse_extra=f'auth = "iam"\nsecurity_group_id = "{world.warehouse_group}"',
        bastion_extra=f'vpc_id = "{world.vpc_id}"',
    )
    assert generated_policy(capsys, "-c", str(named), "--account", _account()) == discovered
    resources = {r for s in discovered["Statement"] for r in s["Resource"]}
    assert f"arn:aws:ec2:{REGION}:{_account()}:security-group/{world.warehouse_group}" in resources


# --- what the policy must refuse ------------------------------------------------------


@dataclass
class Estate:
    """bastion's resources (tagged as bastion tags them) beside other people's: another
    bastion's group and host, a production Elastic IP and key pair, a second VPC."""

    ours: dict[str, str]
    theirs: dict[str, str]
    warehouse_group: str
    subnet: str
    other_subnet: str
    other_vpc: str
    vpc: str
    ami: str


def _tag_spec(kind: str, tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def _bastion_like(world: World, name: str, tags: dict[str, str], subnet: str) -> dict[str, str]:
    """A group, key pair, host and associated Elastic IP carrying `tags` (none: untagged)."""
    ec2 = world.ec2
    group = ec2.create_security_group(
        GroupName=f"bastion-{name}", Description=name, VpcId=world.vpc_id,
        **({"TagSpecifications": _tag_spec("security-group", tags)} if tags else {}),
    )["GroupId"]  # fmt: skip
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    key_name = f"bastion-{name}" if tags else f"{name}-deploy"
    ec2.import_key_pair(
        KeyName=key_name,
        PublicKeyMaterial=public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ),
        **({"TagSpecifications": _tag_spec("key-pair", tags)} if tags else {}),
    )
    instance = ec2.run_instances(
        ImageId=world.ami, InstanceType="t3.micro", MinCount=1, MaxCount=1, SubnetId=subnet,
        SecurityGroupIds=[group], KeyName=key_name,
        **({"TagSpecifications": _tag_spec("instance", tags)} if tags else {}),
    )["Instances"][0]["InstanceId"]  # fmt: skip
    address = ec2.allocate_address(
        Domain="vpc", **({"TagSpecifications": _tag_spec("elastic-ip", tags)} if tags else {})
    )["AllocationId"]
    association = ec2.associate_address(AllocationId=address, InstanceId=instance)
    return {
        "group": group, "key": key_name, "instance": instance, "address": address,
        "association": association["AssociationId"],
    }  # fmt: skip


@pytest.fixture
def estate(world: World) -> Estate:
    ec2 = world.ec2
    other_vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    other_subnet = ec2.create_subnet(VpcId=other_vpc, CidrBlock="10.40.1.0/24")["Subnet"]
    ours = _bastion_like(world, "analytics", t.common_tags("analytics"), world.expected_subnet)
    theirs = _bastion_like(world, "staging", t.common_tags("staging"), world.expected_subnet)
    production = _bastion_like(world, "production", {}, world.expected_subnet)
    theirs |= {"bare_group": production["group"], "bare_key": production["key"],
               "bare_address": production["address"], "bare_instance": production["instance"]}  # fmt: skip
    return Estate(
        ours, theirs, world.warehouse_group, world.expected_subnet,
        other_subnet["SubnetId"], other_vpc, world.vpc_id, world.ami,
    )  # fmt: skip


@pytest.fixture
def policy(capsys: pytest.CaptureFixture[str], write_config: ConfigWriter) -> dict[str, Any]:
    return generated_policy(capsys, "-c", str(write_config(warehouse_extra='auth = "iam"')))


Params = dict[str, Any]
_SSH_FROM_ANYWHERE = [
    {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]


def _launch(e: Estate, tags: dict[str, str] | None = None, **changes: Any) -> Params:
    """RunInstances as bastion sends it (apply.run_instance), with `changes` applied."""
    if tags is None:
        tags = {**t.common_tags("analytics"), t.GENERATION_TAG: "7", t.AMI_TAG: e.ami}
    params: Params = {
        "ImageId": e.ami, "InstanceType": "t3.micro", "KeyName": "bastion-analytics",
        "SubnetId": e.subnet, "SecurityGroupIds": [e.ours["group"]], "MinCount": 1, "MaxCount": 1,
        "ClientToken": t.client_token("analytics", 7),
        "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1},
        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"VolumeType": "gp3",
                                 "VolumeSize": 8, "Encrypted": True}}],
        "TagSpecifications": _tag_spec("instance", tags) + _tag_spec("volume", tags),
    }  # fmt: skip
    return {**params, **changes}


def _new_group(vpc: str, tags: dict[str, str]) -> Params:
    spec = {"TagSpecifications": _tag_spec("security-group", tags)} if tags else {}
    return {"GroupName": "bastion-analytics", "Description": "x", "VpcId": vpc, **spec}


def _credentials(cluster: str = "prod", user: str = "dbt", database: str = "analytics") -> Params:
    return {"ClusterIdentifier": cluster, "DbUser": user, "DbName": database,
            "DurationSeconds": 900, "AutoCreate": False}  # fmt: skip


def _tags(**tags: str) -> list[dict[str, str]]:
    return [{"Key": k.replace("_", ":", 1), "Value": v} for k, v in tags.items()]


@dataclass(frozen=True)
class Case:
    """An action bastion takes on its own resources (allowed), aimed elsewhere (denied, and
    denied on `culprit`, the resource that is not bastion's to touch)."""

    name: str
    action: str
    ours: Callable[[Estate], Params]
    theirs: Callable[[Estate], Params]
    culprit: Callable[[Estate], str]


CASES = [
    Case("revoke a rule on another bastion's group", "ec2:RevokeSecurityGroupIngress",
         lambda e: {"GroupId": e.ours["group"], "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: {"GroupId": e.theirs["group"], "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: e.theirs["group"]),
    Case("open an untagged group to the world", "ec2:AuthorizeSecurityGroupIngress",
         lambda e: {"GroupId": e.ours["group"], "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: {"GroupId": e.theirs["bare_group"], "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: e.theirs["bare_group"]),
    Case("change egress on the warehouse group", "ec2:AuthorizeSecurityGroupEgress",
         lambda e: {"GroupId": e.ours["group"], "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: {"GroupId": e.warehouse_group, "IpPermissions": _SSH_FROM_ANYWHERE},
         lambda e: e.warehouse_group),
    Case("delete another bastion's group", "ec2:DeleteSecurityGroup",
         lambda e: {"GroupId": e.ours["group"]}, lambda e: {"GroupId": e.theirs["group"]},
         lambda e: e.theirs["group"]),
    Case("associate a production Elastic IP with the bastion", "ec2:AssociateAddress",
         lambda e: {"AllocationId": e.ours["address"], "InstanceId": e.ours["instance"]},
         lambda e: {"AllocationId": e.theirs["bare_address"], "InstanceId": e.ours["instance"]},
         lambda e: e.theirs["bare_address"]),
    Case("move the bastion's Elastic IP to another host", "ec2:AssociateAddress",
         lambda e: {"AllocationId": e.ours["address"], "InstanceId": e.ours["instance"]},
         lambda e: {"AllocationId": e.ours["address"], "InstanceId": e.theirs["instance"]},
         lambda e: e.theirs["instance"]),
    Case("disassociate a production Elastic IP", "ec2:DisassociateAddress",
         lambda e: {"AssociationId": e.ours["association"]},
         lambda e: {"AssociationId": e.theirs["association"]}, lambda e: e.theirs["address"]),
    Case("release a production Elastic IP", "ec2:ReleaseAddress",
         lambda e: {"AllocationId": e.ours["address"]},
         lambda e: {"AllocationId": e.theirs["bare_address"]}, lambda e: e.theirs["bare_address"]),
    Case("terminate another bastion's host", "ec2:TerminateInstances",
         lambda e: {"InstanceIds": [e.ours["instance"]]},
         lambda e: {"InstanceIds": [e.theirs["instance"]]}, lambda e: e.theirs["instance"]),
    Case("start an untagged host", "ec2:StartInstances",
         lambda e: {"InstanceIds": [e.ours["instance"]]},
         lambda e: {"InstanceIds": [e.theirs["bare_instance"]]}, lambda e: e.theirs["bare_instance"]),
    Case("read another host's console", "ec2:GetConsoleOutput",
         lambda e: {"InstanceId": e.ours["instance"]}, lambda e: {"InstanceId": e.theirs["instance"]},
         lambda e: e.theirs["instance"]),
    Case("put the bastion in another group", "ec2:ModifyInstanceAttribute",
         lambda e: {"InstanceId": e.ours["instance"], "Groups": [e.ours["group"]]},
         lambda e: {"InstanceId": e.ours["instance"], "Groups": [e.warehouse_group]},
         lambda e: e.warehouse_group),
    Case("launch without the tags", "ec2:RunInstances",
         _launch, lambda e: {k: v for k, v in _launch(e).items() if k != "TagSpecifications"},
         lambda e: "instance/(new)"),
    Case("launch tagged as another bastion", "ec2:RunInstances", _launch,
         lambda e: _launch(e, t.common_tags("staging")), lambda e: "instance/(new)"),
    Case("launch with a tag key bastion does not set", "ec2:RunInstances", _launch,
         lambda e: _launch(e, {**t.common_tags("analytics"), "team": "payments"}),
         lambda e: "instance/(new)"),
    Case("launch into another bastion's group", "ec2:RunInstances", _launch,
         lambda e: _launch(e, SecurityGroupIds=[e.theirs["group"]]), lambda e: e.theirs["group"]),
    Case("launch with a production key pair", "ec2:RunInstances", _launch,
         lambda e: _launch(e, KeyName=e.theirs["bare_key"]), lambda e: e.theirs["bare_key"]),
    Case("launch in another VPC", "ec2:RunInstances", _launch,
         lambda e: _launch(e, SubnetId=e.other_subnet), lambda e: e.other_subnet),
    Case("tag an untagged group as this bastion's", "ec2:CreateTags",
         lambda e: {"Resources": [e.ours["group"]], "Tags": _tags(bastion_generation="8")},
         lambda e: {"Resources": [e.theirs["bare_group"]], "Tags": _tags(bastion_name="analytics")},
         lambda e: e.theirs["bare_group"]),
    Case("rename the bastion's group", "ec2:CreateTags",
         lambda e: {"Resources": [e.ours["group"]], "Tags": _tags(bastion_generation="8")},
         lambda e: {"Resources": [e.ours["group"]], "Tags": _tags(bastion_name="staging")},
         lambda e: e.ours["group"]),
    Case("create a group in another VPC", "ec2:CreateSecurityGroup",
         lambda e: _new_group(e.vpc, t.common_tags("analytics")),
         lambda e: _new_group(e.other_vpc, t.common_tags("analytics")), lambda e: e.other_vpc),
    Case("create a group tagged as another bastion", "ec2:CreateSecurityGroup",
         lambda e: _new_group(e.vpc, t.common_tags("analytics")),
         lambda e: _new_group(e.vpc, t.common_tags("staging")), lambda e: "security-group/(new)"),
    Case("create an untagged group", "ec2:CreateSecurityGroup",
         lambda e: _new_group(e.vpc, t.common_tags("analytics")), lambda e: _new_group(e.vpc, {}),
         lambda e: "security-group/(new)"),
    Case("delete a production key pair", "ec2:DeleteKeyPair",
         lambda e: {"KeyName": e.ours["key"]}, lambda e: {"KeyName": e.theirs["bare_key"]},
         lambda e: e.theirs["bare_key"]),
    Case("import a key pair under another name", "ec2:ImportKeyPair",
         lambda e: {"KeyName": "bastion-analytics", "PublicKeyMaterial": b"k",
                    "TagSpecifications": _tag_spec("key-pair", t.common_tags("analytics"))},
         lambda e: {"KeyName": "deploy", "PublicKeyMaterial": b"k",
                    "TagSpecifications": _tag_spec("key-pair", t.common_tags("analytics"))},
         lambda e: "key-pair/deploy"),
    Case("allocate an untagged Elastic IP", "ec2:AllocateAddress",
         lambda e: {"Domain": "vpc", "TagSpecifications": _tag_spec("elastic-ip", t.common_tags("analytics"))},
         lambda e: {"Domain": "vpc"}, lambda e: "elastic-ip/(new)"),
    Case("credentials as another database user", "redshift:GetClusterCredentials",
         lambda e: _credentials(), lambda e: _credentials(user="admin"), lambda e: "dbuser:prod/admin"),
    Case("credentials for another database", "redshift:GetClusterCredentials",
         lambda e: _credentials(), lambda e: _credentials(database="dev"), lambda e: "dbname:prod/dev"),
    Case("credentials on another cluster", "redshift:GetClusterCredentials",
         lambda e: _credentials(), lambda e: _credentials(cluster="finance"),
         lambda e: "dbuser:finance/dbt"),
    Case("read a SecureString parameter", "ssm:GetParameter",
         lambda e: {"Name": "/bastion-test/ami"}, lambda e: {"Name": "/prod/db/password"},
         lambda e: "parameter/prod/db/password"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_the_policy_denies_what_is_not_this_bastions(
    case: Case, estate: Estate, policy: dict[str, Any]
) -> None:
    model = RequestModel(REGION, _account(), _client("ec2"))
    assert refusals(policy, model.requests_for(case.action, case.ours(estate))) == {}
    refused = refusals(policy, model.requests_for(case.action, case.theirs(estate)))
    assert refused, f"{case.name}: allowed"
    culprit = case.culprit(estate)
    assert any(culprit in arn for arns in refused.values() for arn in arns), refused


# --- every operation the code names ----------------------------------------------------

_CONFIGS = {
    "redshift": 'redshift_cluster = "prod"\nauth = "iam"\nsecurity_group_id = "sg-0123456789abcdef0"',
    "serverless": 'kind = "redshift-serverless"\nworkgroup = "wg"\nauth = "iam"\n'
    'security_group_id = "sg-0123456789abcdef0"',
    "rds instance": 'kind = "postgres"\nrds_instance = "db-1"\nsecurity_group_id = "sg-0123456789abcdef0"',
    "aurora": 'kind = "postgres"\nrds_cluster = "aurora-1"\nsecurity_group_id = "sg-0123456789abcdef0"',
}


def _policy_for(tmp_path: Path, warehouse: str, bastion: str = "") -> dict[str, Any]:
    config = tmp_path / "bastion.toml"
    config.write_text(
        f'name = "analytics"\n[warehouse]\n{warehouse}\n'
        '[bastion]\nami = "ssm:/aws/service/x"\nadmin_user = "admin"\n'
        f'admin_cidrs = ["198.51.100.7/32"]\n{bastion}\n'
    )
    return least_privilege_policy(scope_from(load(config), PLACEHOLDER_ACCOUNT))


def _iam_action(session: boto3.Session, service: str, method: str) -> str:
    """boto3 (service, method) -> IAM action; IAM's prefix is the signing name (elbv2 ->
    elasticloadbalancing)."""
    client = session.client(service)  # type: ignore[call-overload]
    prefix = client.meta.service_model.signing_name
    return f"{prefix}:{client.meta.method_to_api_mapping[method]}"


def _constant_calls(tree: ast.AST) -> list[tuple[str, str]]:
    """(service, method) of `gateway.call/paginate("svc", "method")` and
    `session.client("svc").method(...)` anywhere in a module."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        constants = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
        if node.func.attr in {"call", "paginate"} and len(constants) == 2:
            found.append((str(constants[0]), str(constants[1])))
        inner = node.func.value
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "client"
            and inner.args
            and isinstance(inner.args[0], ast.Constant)
        ):
            found.append((str(inner.args[0].value), node.func.attr))
    return found


def test_every_operation_the_code_can_call_is_granted(tmp_path: Path) -> None:
    """Static check over the whole package: gateway calls and direct client calls, against
    the policies of configs that between them reach every warehouse kind."""
    session = boto3.Session(region_name="us-east-1")
    needed = set()
    for path in sorted((ROOT / "bastion").rglob("*.py")):
        for service, method in _constant_calls(ast.parse(path.read_text())):
            needed.add(_iam_action(session, service, method))
    assert len(needed) > 25
    assert {"ec2:RunInstances", "ec2:DescribeInstances", "sts:GetCallerIdentity"} <= needed
    granted = {
        action
        for warehouse in _CONFIGS.values()
        for statement in _policy_for(tmp_path, warehouse)["Statement"]
        for action in statement["Action"]
    }
    eice = _policy_for(tmp_path, _CONFIGS["redshift"], 'admin_access = "eice"')
    granted |= {action for statement in eice["Statement"] for action in statement["Action"]}
    assert needed - NEEDS_NO_PERMISSION - granted == set()


# --- the documented policy ----------------------------------------------------------------


def test_docs_policy_is_what_the_command_prints_for_the_documented_example(
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = DOCS / "iam-policy.example.toml"
    with pytest.raises(SystemExit) as exit_info:
        main(["iam-policy", "-c", str(example), "--account", PLACEHOLDER_ACCOUNT])
    printed = capsys.readouterr()
    assert exit_info.value.code in (0, None), printed.err
    assert printed.out == (DOCS / "iam-policy.json").read_text(), (
        "regenerate it with `invoke iam-policy`"
    )
