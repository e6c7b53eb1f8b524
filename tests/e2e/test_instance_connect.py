"""admin_access = "eice" on the lab: the admin path is IAM through an Instance Connect
Endpoint, not an address, so CI runners with new addresses on every run change nothing.

The endpoint is the loopback stand-in (tests/lab/instance_connect.py) in front of the lab's
moto: it serves the endpoint's EC2 calls and the `openTunnel` websocket, and relays an
accepted tunnel to the lab host's port 22 from an extra address of the operator's side, the
endpoint's own (sshd sees it, as with PreserveClientIp = false on AWS). The config names no
operator address (`admin_cidrs = []`) and no `bastion.address`: the tool reaches the host at
its private address, through the endpoint.

A "runner" is where the tool's websocket comes from: each run's client socket is bound to
another address of the lab's range (neither in any rule), and starts without the first
run's known_hosts, as a fresh CI machine does. The stand-in records the address each tunnel
came from, so the two runs are shown to come from two places.
"""

from __future__ import annotations

import re
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import paramiko
import pytest

from bastion.aws.instance_connect import InstanceConnectEndpoint, open_tunnel
from bastion.errors import AwsError
from bastion.vendors.dbt_cloud import source_cidrs
from tests.e2e.world import World, bastion, lab_world
from tests.lab import Lab, bastion_toml
from tests.lab.instance_connect import InstanceConnectStandIn, lab_instance_connect

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "eice"
ENDPOINT_HOST = 20  # 10.231.<slot>.20: the endpoint's address, what sshd sees
RUNNER_HOSTS = (30, 31)  # the two runners' addresses: in no rule, seen by the stand-in only


@dataclass
class EiceWorld:
    world: World
    stand_in: InstanceConnectStandIn
    endpoint_address: str
    runners: tuple[str, str]

    @property
    def lab(self) -> Lab:
        return self.world.lab


@pytest.fixture(scope="module")
def eice(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EiceWorld]:
    with (
        lab_world(lab, tmp_path_factory, NAME) as world,
        lab_instance_connect(lab, ENDPOINT_HOST) as stand_in,
        lab.extra_operator_address(RUNNER_HOSTS[0]) as first,
        lab.extra_operator_address(RUNNER_HOSTS[1]) as second,
    ):
        world.config.write_text(
            bastion_toml(
                lab,
                NAME,
                admin_cidrs=[],
                address="",
                extra_bastion='admin_access = "eice"',
                extra=f'[tunnel]\npublic_keys = ["{world.tunnel_key.public_line}"]\n',
            )
        )
        patch = pytest.MonkeyPatch()
        for key, value in stand_in.env().items():
            patch.setenv(key, value)
        try:
            yield EiceWorld(world, stand_in, stand_in.source_address or "", (first, second))
        finally:
            patch.undo()


@contextmanager
def runner(eice: EiceWorld, address: str) -> Iterator[None]:
    """The tool runs "from" `address`: its websocket client's socket is bound there (the
    keyword is socket.create_connection's, which websockets passes on), with no local state
    left from another runner."""
    import websockets.sync.client as client

    shutil.rmtree(eice.world.folder / ".bastion", ignore_errors=True)
    original = client.connect

    def connect(*args: Any, **kwargs: Any) -> Any:
        return original(*args, source_address=(address, 0), **kwargs)

    patch = pytest.MonkeyPatch()
    patch.setattr(client, "connect", connect)
    before = len(eice.stand_in.tunnels)
    try:
        yield
    finally:
        patch.undo()
    clients = {tunnel.client for tunnel in eice.stand_in.tunnels[before:]}
    assert clients == {address}, "every tunnel of this run came from this runner"


def bastion_group() -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    groups = ec2.describe_security_groups(Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}])[
        "SecurityGroups"
    ]
    (found,) = [g for g in groups if not any(t["Key"] == "bastion:role" for t in g["Tags"])]
    return dict(found)


def rule_sources(group: dict[str, Any]) -> set[str]:
    sources = set()
    for permission in group["IpPermissions"]:
        sources |= {r["CidrIp"] for r in permission.get("IpRanges", [])}
        sources |= {r["CidrIpv6"] for r in permission.get("Ipv6Ranges", [])}
        sources |= {p["GroupId"] for p in permission.get("UserIdGroupPairs", [])}
    return sources


def the_endpoint(eice: EiceWorld) -> InstanceConnectEndpoint:
    (endpoint,) = [e for e in eice.stand_in.endpoints.values() if e.state == "create-complete"]
    return InstanceConnectEndpoint(
        endpoint.endpoint_id, endpoint.dns_name, endpoint.state,
        security_group_ids=tuple(endpoint.groups),
    )  # fmt: skip


def test_up_from_nothing_creates_the_endpoint_and_configures_and_verifies_through_it(
    eice: EiceWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    with runner(eice, eice.runners[0]):
        code, made = bastion(eice.world, capsys, "up")
    assert code == 0, made["error"]
    kinds = [(c["target"], c["resource"], c["action"]) for c in made["changes"]]
    assert ("aws", "instance_connect_endpoint", "create") in kinds
    assert ("host", "sshd_config", "create") in kinds or ("host", "sshd_config", "update") in kinds
    assert made["verify"]["ok"], made["verify"]
    assert {t.status for t in eice.stand_in.tunnels} == {101}
    assert len(eice.stand_in.tunnels) >= 2, "the admin and verify each went through the endpoint"
    assert f"from {eice.endpoint_address} " in eice.lab.sshd_log()


def test_the_group_names_dbt_clouds_addresses_and_the_endpoints_group_only(
    eice: EiceWorld,
) -> None:
    (endpoint,) = eice.stand_in.endpoints.values()
    assert endpoint.preserve_client_ip is False
    sources = rule_sources(bastion_group())
    assert sources == set(source_cidrs(["us"], [])) | set(endpoint.groups)
    operator = {eice.lab.operator_address, eice.endpoint_address, *eice.runners}
    assert not {s for s in sources if s.split("/")[0] in operator}


def test_a_second_runner_changes_nothing_and_plan_exits_0(
    eice: EiceWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    with runner(eice, eice.runners[1]):
        code, again = bastion(eice.world, capsys, "up")
        assert code == 0, again["error"]
        assert again["changed"] is False, again["changes"]
        assert again["verify"]["ok"]
        code, planned = bastion(eice.world, capsys, "plan", "--detailed-exitcode")
        assert (code, planned["changes"]) == (0, [])
    accepted = re.findall(r"Accepted publickey for \S+ from (\S+) ", eice.lab.sshd_log())
    assert accepted and set(accepted) == {eice.endpoint_address}, "sshd saw the endpoint only"


def test_doctor_reads_the_host_and_verifies_through_the_endpoint(
    eice: EiceWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    before = len(eice.stand_in.tunnels)
    with runner(eice, eice.runners[0]):
        code, found = bastion(eice.world, capsys, "doctor")
    assert code == 0, found["error"]
    assert found["verify"]["ok"]
    links = {f["link"] for f in found["doctor"]["findings"] if f["status"] == "ok"}
    assert {"host.forwarding", "tunnel.ssh", "tunnel.database"} <= links
    assert len(eice.stand_in.tunnels) - before >= 2, "the admin and verify went through it"


def _admin_login(eice: EiceWorld, source: str) -> None:
    with paramiko.SSHClient() as client:
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        sock = socket.create_connection(
            (eice.lab.bastion_address, 22), timeout=10, source_address=(source, 0)
        )
        client.connect(
            eice.lab.bastion_address,
            username=eice.lab.admin_user,
            key_filename=str(eice.lab.admin_key),
            sock=sock,
            allow_agent=False,
            look_for_keys=False,
            timeout=10,
        )


@pytest.mark.parametrize("where", ["operator", "runner"])
def test_a_direct_admin_login_from_outside_the_endpoint_is_refused_by_sshd(
    eice: EiceWorld, where: str
) -> None:
    """The lab's network carries the connection (no security group in the lab): sshd's
    AllowUsers alone refuses it."""
    source = eice.lab.operator_address if where == "operator" else eice.runners[0]
    with pytest.raises(paramiko.AuthenticationException):
        _admin_login(eice, source)
    log = eice.lab.sshd_log()
    assert (
        f"User {eice.lab.admin_user} from {source} not allowed because not listed in AllowUsers"
        in log
    )


def test_a_wrong_signature_is_refused_and_the_error_names_the_grant(
    eice: EiceWorld, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    code, refused = bastion(eice.world, capsys, "plan")
    assert code == 1
    message = refused["error"]["message"]
    assert "HTTP 403" in message and "SignatureDoesNotMatch" in message
    fix = message.split("fix:", 1)[1]
    assert "ec2-instance-connect:OpenTunnel" in fix and "credentials" in fix
    assert "X-Amz-Signature" not in message
    assert eice.stand_in.tunnels[-1].status == 403


def test_a_port_other_than_22_is_refused_and_the_error_says_22(eice: EiceWorld) -> None:
    """The tool never asks for another port (`ssh_port` must be 22 with eice): its own
    opener is asked directly, against the endpoint `up` made."""
    session = boto3.Session(region_name="us-east-1")
    (reservation,) = boto3.client("ec2", region_name="us-east-1").describe_instances(
        Filters=[
            {"Name": "tag:bastion:name", "Values": [NAME]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    private_ip = reservation["Instances"][0]["PrivateIpAddress"]
    with pytest.raises(AwsError) as refused:
        open_tunnel(session, the_endpoint(eice), private_ip, port=2222)
    assert refused.value.exit_code == 1
    assert "HTTP 400" in refused.value.message and "remotePort" in refused.value.message
    assert "port 22" in (refused.value.hint or "")
    assert eice.stand_in.tunnels[-1].status == 400


def test_destroy_removes_the_endpoint_it_created(
    eice: EiceWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """In an order real AWS accepts: the host, then the endpoint (waited for), then the rule
    that names the endpoint's group, the endpoint's group, the bastion's group."""
    code, gone = bastion(eice.world, capsys, "destroy", "--yes")
    assert code == 0, gone["error"]
    deleted = [c["resource"] for c in gone["changes"] if c["action"] == "delete"]
    assert deleted == [
        "warehouse_rule", "instance", "instance_connect_endpoint", "elastic_ip",
        "security_group_rule", "instance_connect_endpoint_group", "security_group", "key_pair",
    ]  # fmt: skip
    assert {e.state for e in eice.stand_in.endpoints.values()} == {"delete-complete"}
    ec2 = boto3.client("ec2", region_name="us-east-1")
    tagged: Any = [{"Name": "tag:bastion:name", "Values": [NAME]}]
    assert ec2.describe_security_groups(Filters=tagged)["SecurityGroups"] == []
    code, again = bastion(eice.world, capsys, "destroy", "--yes")
    assert (code, again["changed"]) == (0, False)
