"""A change of `ssh_port` on the lab: two phases across AWS and the host, nobody cut off.

The tests run in order on one bastion: `up` on 22, the config moves to 2222, `plan` shows
both sides, `up` moves (while a tunnel on 22 stays open), then a move to 2200 whose verify
fails leaves both ports open, and the next `up` finishes it.
"""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Iterator
from typing import Any

import boto3
import paramiko
import pytest

from tests.e2e.world import World, bastion, lab_world
from tests.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "portmove"
NEW = 2222
BLOCKED = 2200


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with lab_world(lab, tmp_path_factory, NAME) as found:
        yield found


def group() -> dict[str, Any]:
    found = boto3.client("ec2", region_name="us-east-1").describe_security_groups(
        Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
    )["SecurityGroups"]
    assert len(found) == 1
    return dict(found[0])


def rule_ports() -> set[int]:
    return {p["FromPort"] for p in group()["IpPermissions"]}


def ssh_port_tag() -> str:
    return next(t["Value"] for t in group()["Tags"] if t["Key"] == "bastion:ssh-port")


def sshd_ports(lab: Lab) -> set[int]:
    """What sshd is configured with (sshd -T) and what listens (ss), which must agree."""
    configured = {
        int(line.split()[1])
        for line in lab.host_exec("sshd -T").stdout.splitlines()
        if line.startswith("port ")
    }
    table = lab.host_exec("ss -ltn").stdout
    listening = {int(m) for m in re.findall(r"LISTEN\s+\d+\s+\d+\s+\S*:(\d+)\s", table)}
    assert configured == listening, table
    return configured


def admin_login(lab: Lab, port: int) -> str:
    """An admin login on `port`, host key checked against the lab's: the user, or the error."""
    from bastion.errors import SshError
    from bastion.host.connection import connect

    try:
        conn = connect(
            lab.bastion_address, port, lab.admin_user, lab.admin_key, lab.host_key_fingerprints
        )
    except SshError as exc:
        return f"failed: {exc.message}"
    try:
        return str(conn.run("id -un").stdout.strip())
    finally:
        conn.close()


def postgres_answers(channel: paramiko.Channel) -> bool:
    """PostgreSQL's SSLRequest: the server answers one byte, S or N."""
    channel.sendall(struct.pack("!II", 8, 80877103))
    channel.settimeout(5)
    return channel.recv(1) in (b"S", b"N")


def open_tunnel(world: World, port: int) -> paramiko.Transport:
    sock = socket.create_connection((world.lab.bastion_address, port), timeout=5)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=5)
    transport.auth_publickey("dbtcloud", world.tunnel_key.private)
    return transport


def forward(world: World, transport: paramiko.Transport) -> paramiko.Channel:
    lab = world.lab
    return transport.open_channel(
        "direct-tcpip", (lab.warehouse_host, lab.warehouse_port), ("127.0.0.1", 0), timeout=5
    )


def test_up_on_port_22(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert sshd_ports(world.lab) == {22}
    assert rule_ports() == {22}


def test_plan_shows_the_port_change_on_both_sides(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.write(NEW)
    code, doc = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert code == 2, doc["error"]
    actions = {(c["target"], c["resource"], c["action"]) for c in doc["changes"]}
    assert ("aws", "security_group_rule", "create") in actions
    assert ("aws", "security_group_rule", "delete") in actions
    assert ("host", "sshd_config", "update") in actions
    created = [c["detail"] for c in doc["changes"] if c["action"] == "create"]
    deleted = [c["detail"] for c in doc["changes"] if c["action"] == "delete"]
    assert all(f"tcp/{NEW} " in d for d in created) and all("tcp/22 " in d for d in deleted)
    assert any("two phases" in n and "host:" in n for n in doc["notices"])
    assert sshd_ports(world.lab) == {22} and rule_ports() == {22}, "plan changed something"


def test_up_moves_the_port_while_a_tunnel_on_the_old_one_keeps_working(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    transport = open_tunnel(world, 22)
    try:
        held = forward(world, transport)  # opened before the move, used after it
        code, doc = bastion(world, capsys, "up")
        assert code == 0, doc["error"]
        assert transport.is_active()
        assert postgres_answers(held)
        assert postgres_answers(forward(world, transport))
    finally:
        transport.close()
    tcp = next(h for h in doc["verify"]["hops"] if h["name"] == "tcp")
    assert f":{NEW}" in tcp["detail"] and all(h["ok"] for h in doc["verify"]["hops"])
    assert doc["bastion"]["ssh_port"] == NEW
    sshd_updates = [c for c in doc["changes"] if c["resource"] == "sshd_config"]
    assert len(sshd_updates) == 2, "phase one (both ports) and phase two (the new one alone)"
    assert sshd_ports(world.lab) == {NEW}
    assert rule_ports() == {NEW} and ssh_port_tag() == str(NEW)
    assert admin_login(world.lab, NEW) == world.lab.admin_user
    assert admin_login(world.lab, 22).startswith("failed")
    assert bastion(world, capsys, "plan", "--detailed-exitcode")[0] == 0


def test_a_move_whose_verify_fails_leaves_both_ports_open_and_the_next_up_finishes_it(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bastion.host import desired as desired_module

    render = desired_module.render_sshd_config

    def no_forward_for_the_operator(*args: Any) -> str:
        """A real sshd rule that breaks verify's forward hop and nothing else: the tunnel user
        may not forward from the operator's address (sshd -T -C checks a dbt Cloud one; a
        `Match LocalPort` cannot be used, as sshd -T -C without lport refuses it)."""
        text = render(*args)
        block = f"Match User dbtcloud Address {world.lab.operator_address}\n    PermitOpen none\n\n"
        return text.replace("Match User dbtcloud", block + "Match User dbtcloud", 1)

    monkeypatch.setattr(desired_module, "render_sshd_config", no_forward_for_the_operator)
    world.write(BLOCKED)
    code, doc = bastion(world, capsys, "up")
    assert code == 3, doc["error"]
    failed = [h["name"] for h in doc["verify"]["hops"] if not h["ok"]]
    assert failed == ["forward"]
    assert sshd_ports(world.lab) == {NEW, BLOCKED}
    assert rule_ports() == {NEW, BLOCKED} and ssh_port_tag() == str(NEW)
    assert any("stay open" in n for n in doc["notices"])
    assert admin_login(world.lab, NEW) == world.lab.admin_user

    monkeypatch.undo()
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert sshd_ports(world.lab) == {BLOCKED}
    assert rule_ports() == {BLOCKED} and ssh_port_tag() == str(BLOCKED)


def test_configure_alone_on_an_existing_host_moves_the_port_in_two_phases(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """No AWS to say where sshd listens: the port known_hosts pins for the address is found."""
    lab = world.lab
    moved = 2022
    world.config.write_text(
        f"""
name = "{NAME}"
[warehouse]
kind = "postgres"
host = "{lab.warehouse_host}"
port = {lab.warehouse_port}
database = "{lab.db_name}"
user = "{lab.db_user}"
[bastion]
provider = "existing"
admin_key = "{lab.admin_key}"
admin_cidrs = ["{lab.operator_address}/32"]
address = "{lab.bastion_address}"
ssh_port = {moved}
[tunnel]
public_keys = ["{world.tunnel_key.public_line}"]
"""
    )
    code, doc = bastion(world, capsys, "configure")
    assert code == 0, doc["error"]
    details = [c["detail"] for c in doc["changes"] if c["resource"] == "sshd_config"]
    assert len(details) == 2, details
    assert f"port {BLOCKED} -> {min(BLOCKED, moved)} {max(BLOCKED, moved)}" in details[0]
    assert f"-> {moved}" in details[1]
    assert sshd_ports(lab) == {moved}
    assert admin_login(lab, moved) == lab.admin_user
    code, doc = bastion(world, capsys, "verify")
    assert code == 0, doc["error"]
