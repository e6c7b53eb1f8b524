"""Moto over HTTP for the AWS tests: a loopback server, a seeded warehouse VPC, a recorder.

Every boto3 call in these tests goes to 127.0.0.1 (AWS_ENDPOINT_URL), never to AWS. The
recorder sees each operation through botocore's `before-call` event, so tests can assert
that a re-run made no mutating call; its observers see each call's parameters as boto3 is
about to send them, so the IAM policy test can check every call against the policy.
"""

from __future__ import annotations

import copy
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import bastion.aws.session
from bastion.config.settings import Settings, load
from tests.lab.aws import publish_debian_images
from tests.lab.moto_public import accept_public_parameters

REGION = "us-east-1"
MOTO_AMIS = ("ami-03cf127a", "ami-12c6146b")  # two of the images moto ships with
MUTATING_PREFIXES = (
    "Create", "Authorize", "Revoke", "Run", "Allocate", "Associate", "Disassociate",
    "Delete", "Modify", "Import", "Terminate", "Release", "Start", "Stop", "Update",
)  # fmt: skip


Observer = Callable[[str, dict[str, Any]], None]


@dataclass
class Recorder:
    """Operation names ("ec2:RunInstances") of every call made through attached sessions;
    each observer gets (operation, parameters) of every call before it is sent."""

    calls: list[str] = field(default_factory=list)
    observers: list[Observer] = field(default_factory=list)

    def attach(self, session: boto3.Session) -> boto3.Session:
        session.events.register("before-parameter-build.*.*", self._observe)
        session.events.register("before-call.*.*", self._record)
        return session

    def _observe(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        operation = f"{model.service_model.signing_name}:{model.name}"
        for observer in self.observers:
            observer(operation, copy.deepcopy(params))

    def _record(self, model: Any, **_: Any) -> None:
        self.calls.append(f"{model.service_model.signing_name}:{model.name}")

    def mutating(self) -> list[str]:
        return [c for c in self.calls if c.split(":")[1].startswith(MUTATING_PREFIXES)]

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    accept_public_parameters()  # Debian's /aws/service/ parameters, as in the lab's moto
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def aws_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at moto only, with dummy credentials, and start from an empty moto."""
    for key, value in {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "BASTION_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback moto only
    return moto_url


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Record the calls of every session the code under test makes (CLI included)."""
    recorder = Recorder()
    real = bastion.aws.session.make_session

    def recording(settings: Settings) -> boto3.Session:
        return recorder.attach(real(settings))

    monkeypatch.setattr(bastion.aws.session, "make_session", recording)
    return recorder


@dataclass
class World:
    """The seeded account: a warehouse VPC with public and private subnets and Redshift `prod`."""

    ec2: Any
    vpc_id: str
    public_subnets: list[str]  # zone b first, then zone a: the tool must pick zone a's
    private_subnet: str
    warehouse_group: str
    ami: str
    newer_ami: str
    ami_parameter: str = "/bastion-test/ami"
    debian_images: dict[str, str] = field(default_factory=dict)  # public parameter -> image

    @property
    def expected_subnet(self) -> str:
        return self.public_subnets[1]


def _client(service: str) -> Any:
    return boto3.Session(region_name=REGION).client(service)  # type: ignore[call-overload]


@pytest.fixture
def world(aws_env: str) -> World:
    ec2 = _client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    public_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=public_rt, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    private_rt = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    subnets = []
    for cidr, zone in (("10.20.1.0/24", "us-east-1b"), ("10.20.2.0/24", "us-east-1a")):
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)
        subnets.append(subnet["Subnet"]["SubnetId"])
        ec2.associate_route_table(RouteTableId=public_rt, SubnetId=subnets[-1])
    private = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.9.0/24", AvailabilityZone="us-east-1a")
    private_id = private["Subnet"]["SubnetId"]
    ec2.associate_route_table(RouteTableId=private_rt, SubnetId=private_id)
    group = ec2.create_security_group(GroupName="warehouse", Description="redshift", VpcId=vpc)
    group_id = group["GroupId"]
    ec2.authorize_security_group_ingress(
        GroupId=group_id,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": 5439,
                "ToPort": 5439,
                "IpRanges": [{"CidrIp": "10.20.0.0/16", "Description": "analysts"}],
            }
        ],
    )
    redshift = _client("redshift")
    redshift.create_cluster_subnet_group(
        ClusterSubnetGroupName="prod-subnets", Description="prod", SubnetIds=[private_id]
    )
    redshift.create_cluster(
        ClusterIdentifier="prod",
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Password1",
        ClusterSubnetGroupName="prod-subnets",
        VpcSecurityGroupIds=[group_id],
    )
    ami, newer = (i["ImageId"] for i in ec2.describe_images(ImageIds=list(MOTO_AMIS))["Images"])
    debian = publish_debian_images(ec2, _client("ssm"))
    world = World(ec2, vpc, subnets, private_id, group_id, ami, newer, debian_images=debian)
    _client("ssm").put_parameter(Name=world.ami_parameter, Value=ami, Type="String")
    return world


@pytest.fixture
def ssh_listener() -> Iterator[int]:
    """A local port that accepts TCP connections: the bastion's "SSH port" in these tests."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


@pytest.fixture
def admin_key(tmp_path: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path = tmp_path / "admin"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    return path


ConfigWriter = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path, world: World, admin_key: Path, ssh_listener: int) -> ConfigWriter:
    """Write bastion.toml for the seeded world; keyword arguments replace whole lines."""

    def write(**lines: str) -> Path:
        values = {
            "name": '"analytics"',
            "warehouse_extra": "",
            "ami": f'"ssm:{world.ami_parameter}"',
            "admin_user": '"admin"',
            "instance_type": '"t3.micro"',
            "ssh_port": str(ssh_listener),
            "admin_cidrs": '["198.51.100.7/32"]',
            "extra_cidrs": '["192.0.2.0/28"]',
            "regions": '["us"]',
            "bastion_extra": "",
        }
        values.update(lines)
        text = f"""\
name = {values["name"]}

[aws]
region = "{REGION}"

[warehouse]
kind = "redshift"
redshift_cluster = "prod"
{values["warehouse_extra"]}

[bastion]
admin_key = "{admin_key.name}"
ami = {values["ami"]}
admin_user = {values["admin_user"]}
instance_type = {values["instance_type"]}
ssh_port = {values["ssh_port"]}
admin_cidrs = {values["admin_cidrs"]}
address = "127.0.0.1"
{values["bastion_extra"]}

[dbt_cloud]
regions = {values["regions"]}
extra_cidrs = {values["extra_cidrs"]}
"""
        path = tmp_path / "bastion.toml"
        path.write_text(text)
        return path

    return write


@pytest.fixture
def settings(write_config: ConfigWriter) -> Settings:
    return load(write_config())


@pytest.fixture
def session(settings: Settings, recorder: Recorder) -> boto3.Session:
    return recorder.attach(bastion.aws.session.make_session(settings))


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run `bastion ARGS --json` in-process: (exit code, the JSON document)."""
    import json

    from bastion.cli.app import main

    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--json"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    return int(exit_info.value.code or 0), json.loads(lines[0])


def snapshot(name: str = "analytics") -> dict[str, Any]:
    """Everything a refused run could have touched, for before/after comparisons."""
    ec2 = _client("ec2")
    strip = {"ResponseMetadata"}

    def clean(response: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in response.items() if k not in strip}

    return {
        "groups": clean(ec2.describe_security_groups()),
        "instances": clean(ec2.describe_instances()),
        "addresses": clean(ec2.describe_addresses()),
        "keys": clean(ec2.describe_key_pairs()),
    }
