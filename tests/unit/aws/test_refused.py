"""Refused input: exit 4, a message naming the key, and AWS exactly as it was."""

from __future__ import annotations

import pytest

from .conftest import ConfigWriter, Recorder, World, run_cli, snapshot

REFUSED = {
    "world-open admin_cidrs": ({"admin_cidrs": '["0.0.0.0/0"]'}, "bastion.admin_cidrs"),
    "broad public admin_cidrs": ({"admin_cidrs": '["8.0.0.0/8"]'}, "bastion.admin_cidrs"),
    "empty admin_cidrs": ({"admin_cidrs": "[]"}, "bastion.admin_cidrs"),
    "world-open ipv6 extra_cidrs": ({"extra_cidrs": '["::/0"]'}, "dbt_cloud.extra_cidrs"),
    "broad ipv6 extra_cidrs": ({"extra_cidrs": '["2a00::/32"]'}, "dbt_cloud.extra_cidrs"),
    "host bits set": ({"admin_cidrs": '["198.51.100.7/24"]'}, "bastion.admin_cidrs"),
    "ssh_port zero": ({"ssh_port": "0"}, "bastion.ssh_port"),
    "ssh_port too high": ({"ssh_port": "70000"}, "bastion.ssh_port"),
    "unknown region": ({"regions": '["mars"]'}, "dbt_cloud.regions"),
    "unknown key": ({"bastion_extra": 'color = "red"'}, "bastion.color"),
    "bad name": ({"name": '"Analytics!"'}, "name"),
    "bad instance type": ({"instance_type": '"t3 micro; rm"'}, "bastion.instance_type"),
}


CASES = [("provision", case) for case in REFUSED] + [
    ("destroy", case) for case in ("world-open admin_cidrs", "unknown key", "bad name")
]


@pytest.mark.parametrize(("command", "case"), CASES, ids=[f"{c}-{k}" for c, k in CASES])
def test_refused_config_exits_4_and_touches_nothing(
    case: str,
    command: str,
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    recorder: Recorder,
) -> None:
    lines, key = REFUSED[case]
    config = write_config(**lines)
    before = snapshot()
    recorder.clear()
    args = [command, "--yes"] if command == "destroy" else [command]
    code, document = run_cli(capsys, *args, "-c", str(config))
    assert code == 4
    assert document["error"]["kind"] == "config"
    assert key in document["error"]["message"]
    assert recorder.calls == []
    assert snapshot() == before


def test_subnet_outside_the_warehouse_vpc_is_refused_before_any_change(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    world: World,
    recorder: Recorder,
) -> None:
    other = world.ec2.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    subnet = world.ec2.create_subnet(VpcId=other, CidrBlock="10.99.1.0/24")["Subnet"]["SubnetId"]
    config = write_config(bastion_extra=f'subnet_id = "{subnet}"')
    before = snapshot()
    code, document = run_cli(capsys, "provision", "-c", str(config))
    assert code == 4
    assert "bastion.subnet_id" in document["error"]["message"]
    assert recorder.calls, "the subnet is checked against AWS"
    assert recorder.mutating() == []
    assert snapshot() == before


def test_missing_admin_key_is_refused_before_any_change(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    admin_key: object,
    recorder: Recorder,
) -> None:
    from pathlib import Path

    Path(str(admin_key)).unlink()
    before = snapshot()
    code, document = run_cli(capsys, "provision", "-c", str(write_config()))
    assert code == 4
    assert "bastion.admin_key" in document["error"]["message"]
    assert recorder.mutating() == []
    assert snapshot() == before
