"""admin_access = "eice": the planned endpoint, the IAM policy, and the tunnel against the
loopback stand-in (moto beside it): a good signature relays, a wrong one or another port
is refused the way the service refuses it, and the tool says what to fix."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bastion.aws.desired import Desired
from bastion.aws.facts import AwsFacts
from bastion.aws.iam_policy import least_privilege_policy, scope_from
from bastion.aws.instance_connect import (
    ENDPOINT_ENV,
    InstanceConnectEndpoint,
    open_tunnel,
    presigned_url,
    tunnel_base,
)
from bastion.aws.plan import ENDPOINT_RULE, plan_steps
from bastion.config.settings import load
from bastion.endpoint import Endpoint
from bastion.errors import AwsError, ConfigError
from tests.lab.instance_connect import InstanceConnectStandIn, instance_connect_stand_in

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def _desired(**changes: Any) -> Desired:
    values: dict[str, Any] = {
        "name": "analytics", "vpc_id": "vpc-0123456789abcdef0",
        "subnet_id": "subnet-0123456789abcdef0", "ssh_port": 22, "ingress": (),
        "warehouse_port": 5439, "warehouse_group_id": None, "warehouse_host": "10.0.1.5",
        "instance_type": "t3.micro", "ami": "ami-0123456789abcdef0", "ami_from_ssm": False,
        "admin_public_key": "ssh-ed25519 AAAA", "admin_key_fingerprint": "SHA256:x",
        "admin_access": "eice",
    }  # fmt: skip
    values.update(changes)
    return Desired(**values)


def test_from_nothing_the_endpoint_its_group_and_the_rule_from_it_are_planned() -> None:
    steps = plan_steps(_desired(), AwsFacts(warehouse=Endpoint("10.0.1.5", 5439)), now=1)
    kinds = [(s.change.resource, s.change.action) for s in steps]
    assert ("instance_connect_endpoint_group", "create") in kinds
    assert ("instance_connect_endpoint", "create") in kinds
    rules = [s for s in steps if s.change.resource == "security_group_rule"]
    assert [r.args["rule"].source for r in rules] == ["(new endpoint group)"]
    assert rules[0].args["rule"].from_port == 22
    create = next(s for s in steps if s.op == "create_instance_connect_endpoint")
    assert create.args["tags"]["bastion:role"] == "instance-connect"
    assert kinds.index(("instance_connect_endpoint_group", "create")) < kinds.index(
        ("security_group_rule", "create")
    ), "the group a rule names exists first"


def test_an_endpoint_in_place_plans_nothing_and_direct_removes_it() -> None:
    endpoint = InstanceConnectEndpoint("eice-0123456789abcdef0", "x.example", "create-complete",
                                       security_group_ids=("sg-0000000000000000e",))  # fmt: skip
    from bastion.aws.permissions import SecurityGroupRule

    facts = AwsFacts(
        warehouse=Endpoint("10.0.1.5", 5439),
        security_group_id="sg-0000000000000000b",
        endpoint=endpoint,
        endpoint_owned=True,
        endpoint_group_id="sg-0000000000000000e",
        endpoint_group_egress=[
            SecurityGroupRule("tcp", 22, 22, "sg-0000000000000000b", "SSH to the bastion")
        ],
        ingress=[SecurityGroupRule("tcp", 22, 22, "sg-0000000000000000e", ENDPOINT_RULE)],
        egress=[],
    )
    steps = plan_steps(_desired(), facts, now=1)
    assert not [s for s in steps if "instance_connect" in s.change.resource or "rule" in s.op]
    back = plan_steps(_desired(admin_access="direct"), facts, now=1)
    kinds = [(s.change.resource, s.change.action) for s in back]
    assert ("security_group_rule", "delete") in kinds
    assert kinds[-2:] == [
        ("instance_connect_endpoint", "delete"),
        ("instance_connect_endpoint_group", "delete"),
    ]


def test_the_policy_opens_tunnels_to_port_22_of_the_bastion_for_an_hour_at_most(
    tmp_path: Path,
) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(
        'name = "analytics"\n[warehouse]\nredshift_cluster = "prod"\n'
        'security_group_id = "sg-0123456789abcdef0"\n[bastion]\nadmin_user = "admin"\n'
        'admin_access = "eice"\nvpc_id = "vpc-0123456789abcdef0"\n'
    )
    scope = scope_from(load(config), "123456789012")
    policy = least_privilege_policy(
        scope.__class__(**{**scope.__dict__, "instance_ip": "10.0.0.9"})
    )
    (tunnel,) = [s for s in policy["Statement"] if "ec2-instance-connect:OpenTunnel" in s["Action"]]
    condition = tunnel["Condition"]
    assert condition["NumericEquals"] == {"ec2-instance-connect:remotePort": "22"}
    assert condition["NumericLessThanEquals"] == {"ec2-instance-connect:maxTunnelDuration": "3600"}
    assert condition["IpAddress"] == {"ec2-instance-connect:privateIpAddress": "10.0.0.9/32"}
    assert condition["StringEquals"]["aws:ResourceTag/bastion:name"] == "analytics"
    creates = [
        s for s in policy["Statement"] if s["Action"] == ["ec2:CreateInstanceConnectEndpoint"]
    ]
    assert any("aws:RequestTag/bastion:name" in s["Condition"]["StringEquals"] for s in creates)
    (delete,) = [
        s for s in policy["Statement"] if "ec2:DeleteInstanceConnectEndpoint" in s["Action"]
    ]
    assert delete["Condition"]["StringEquals"]["aws:ResourceTag/managed-by"] == "dbt-bastion"


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("", True),
        ("wss://tunnel.example.com", True),
        ("ws://127.0.0.1:8080", True),
        ("ws://10.0.0.1:8080", False),  # plain text off loopback: never
        ("https://tunnel.example.com", False),
    ],
)
def test_the_tunnel_base_is_tls_except_on_loopback(override: str, allowed: bool) -> None:
    endpoint = InstanceConnectEndpoint(
        "eice-0123456789abcdef0", "eice.example.com", "create-complete"
    )
    environ = {ENDPOINT_ENV: override} if override else {}
    if allowed:
        assert tunnel_base(endpoint, environ) == (override or "wss://eice.example.com")
    else:
        with pytest.raises(ConfigError):
            tunnel_base(endpoint, environ)


# --- against the stand-in ---------------------------------------------------------------------


class World:
    def __init__(
        self, stand_in: InstanceConnectStandIn, endpoint: InstanceConnectEndpoint, ip: str
    ):
        self.stand_in, self.endpoint, self.ip = stand_in, endpoint, ip


@pytest.fixture
def world(aws_env: str) -> Iterator[World]:
    """moto (the suite's, emptied for each test) with a VPC, a host, and the stand-in."""
    url = aws_env
    sshd = socket.create_server(("127.0.0.1", 0))

    def banner_then_echo() -> None:
        while True:
            try:
                client, _ = sshd.accept()
            except OSError:
                return
            with client:
                client.sendall(b"SSH-2.0-StandInForSshd\r\n")
                client.sendall(client.recv(100).upper())

    threading.Thread(target=banner_then_echo, daemon=True).start()
    ec2 = boto3.client("ec2", endpoint_url=url, region_name="us-east-1", **CREDENTIALS)
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="eice", Description="eice", VpcId=vpc)["GroupId"]
    image = ec2.describe_images()["Images"][0]["ImageId"]
    host = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]
    with instance_connect_stand_in(url, sshd.getsockname(), None, "testing", "testing") as stand_in:
        api = boto3.client(
            "ec2", endpoint_url=stand_in.api_url, region_name="us-east-1", **CREDENTIALS
        )
        made = api.create_instance_connect_endpoint(SubnetId=subnet, SecurityGroupIds=[group])
        endpoint_id = made["InstanceConnectEndpoint"]["InstanceConnectEndpointId"]
        api.describe_instance_connect_endpoints()  # creation finishes between two looks
        (found,) = api.describe_instance_connect_endpoints(
            InstanceConnectEndpointIds=[endpoint_id]
        )["InstanceConnectEndpoints"]
        yield World(stand_in, InstanceConnectEndpoint.from_aws(found), host["PrivateIpAddress"])
    sshd.close()


def _session(secret_key: str = CREDENTIALS["aws_secret_access_key"]) -> boto3.Session:
    return boto3.Session(
        region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key=secret_key
    )


def _environ(world: World) -> dict[str, str]:
    return {ENDPOINT_ENV: world.stand_in.tunnel_url}


def test_a_signed_tunnel_carries_the_stream_both_ways(world: World) -> None:
    stream = open_tunnel(_session(), world.endpoint, world.ip, environ=_environ(world))
    stream.settimeout(5)
    try:
        assert stream.recv(100) == b"SSH-2.0-StandInForSshd\r\n"
        stream.send(b"hello")
        assert stream.recv(100) == b"HELLO"
        assert stream.recv(100) == b"", "the instance closed: the tunnel ends"
    finally:
        stream.close()
    assert world.stand_in.tunnels[-1].status == 101


def test_a_wrong_signature_is_refused_and_the_error_names_the_grant(world: World) -> None:
    with pytest.raises(AwsError) as refused:
        open_tunnel(_session("not-the-secret"), world.endpoint, world.ip, environ=_environ(world))
    assert refused.value.exit_code == 1
    assert "HTTP 403" in refused.value.message
    assert "SignatureDoesNotMatch" in refused.value.message
    assert "ec2-instance-connect:OpenTunnel" in (refused.value.hint or "")
    assert "ec2-instance-connect:remotePort" in (refused.value.hint or "")
    assert world.stand_in.tunnels[-1].status == 403


def test_a_tampered_url_is_refused(world: World) -> None:
    """The stand-in recomputes the signature: changing a signed parameter breaks it."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = presigned_url(_session(), world.endpoint, world.ip, environ=_environ(world))
    with pytest.raises(InvalidStatus) as refused:
        connect(url.replace("maxTunnelDuration=3600", "maxTunnelDuration=3500"), open_timeout=5)
    assert refused.value.response.status_code == 403


def test_a_port_other_than_22_is_refused_as_the_service_does(world: World) -> None:
    with pytest.raises(AwsError) as refused:
        open_tunnel(_session(), world.endpoint, world.ip, port=2222, environ=_environ(world))
    assert "HTTP 400" in refused.value.message
    assert "remotePort" in refused.value.message
    assert "port 22" in (refused.value.hint or "")
    assert world.stand_in.tunnels[-1].params["remotePort"] == "2222"


def test_an_address_that_is_no_instance_of_the_vpc_is_refused(world: World) -> None:
    with pytest.raises(AwsError, match="no running instance at 10.0.0.250"):
        open_tunnel(_session(), world.endpoint, "10.0.0.250", environ=_environ(world))


def test_a_tunnel_longer_than_an_hour_is_refused(world: World) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    url = presigned_url(
        _session(), world.endpoint, world.ip, max_duration=3601, environ=_environ(world)
    )
    with pytest.raises(InvalidStatus) as refused:
        connect(url, open_timeout=5)
    assert refused.value.response.status_code == 400
    assert b"maxTunnelDuration" in refused.value.response.body


def test_the_presigned_url_never_appears_in_an_error(world: World) -> None:
    with pytest.raises(AwsError) as refused:
        open_tunnel(_session("not-the-secret"), world.endpoint, world.ip, environ=_environ(world))
    text = f"{refused.value.message} {refused.value.hint}"
    assert "X-Amz-Signature" not in text and "X-Amz-Credential" not in text
