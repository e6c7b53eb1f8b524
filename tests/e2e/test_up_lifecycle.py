"""`bastion up` from nothing to a verified tunnel, then idempotence, drift and destroy.

Real parts only: moto over HTTP for AWS, the lab's OpenSSH host, PostgreSQL reachable only
through it. The tests run in order and share one bastion (module scope), as an operator's
day would: create, re-run, drift, repair, destroy.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.cli import run_json
from tests.lab import Lab, bastion_toml, lab_env

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "e2e"
MUTATING = (
    "Create", "Authorize", "Revoke", "Run", "Allocate", "Associate", "Disassociate",
    "Delete", "Modify", "Import", "Terminate", "Release", "Replace",
)  # fmt: skip
# verify writes (and removes) only its own second keys file, so ~/.ssh itself may move.
WATCHED = ("/etc/ssh/sshd_config", "/etc/ssh/moduli", "/home/dbtcloud/.ssh/authorized_keys")


@dataclass
class CallLog:
    """Every AWS operation the tool calls, from botocore's own event hook."""

    operations: list[str] = field(default_factory=list)

    def mutating(self) -> list[str]:
        return [op for op in self.operations if op.startswith(MUTATING)]


@dataclass
class World:
    lab: Lab
    config: Path
    calls: CallLog
    env: dict[str, str]


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    lab.restart_host()
    folder = tmp_path_factory.mktemp("e2e")
    config = folder / "bastion.toml"
    config.write_text(bastion_toml(lab, NAME))
    env = lab_env(lab)
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    calls = CallLog()
    import bastion.aws.session

    real = bastion.aws.session.make_session

    def recording(settings: Any) -> boto3.Session:
        session = real(settings)
        session.events.register(
            "before-call.*.*", lambda model, **_: calls.operations.append(model.name)
        )
        return session

    patch.setattr(bastion.aws.session, "make_session", recording)
    try:
        yield World(lab, config, calls, env)
    finally:
        patch.undo()
        lab.restart_host()


def bastion(
    world: World, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    return run_json(world.config, capsys, *args)


def host_state(lab: Lab) -> str:
    """mtimes of the managed files and sshd's reload count: what a no-op must not move."""
    stat = lab.host_exec(f"stat -c '%n %Y %y' {' '.join(WATCHED)}").stdout
    reloads = lab.sshd_log().count("Received SIGHUP")
    return f"{stat}reloads={reloads}"


def ec2() -> Any:
    return boto3.client("ec2", region_name="us-east-1")


def resources_tagged(name: str) -> list[str]:
    client = ec2()
    by_tag = [{"Name": "tag:bastion:name", "Values": [name]}]
    found = [
        i["InstanceId"]
        for r in client.describe_instances(Filters=by_tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    found += [
        g["GroupId"] for g in client.describe_security_groups(Filters=by_tag)["SecurityGroups"]
    ]
    found += [a["AllocationId"] for a in client.describe_addresses(Filters=by_tag)["Addresses"]]
    found += [k["KeyName"] for k in client.describe_key_pairs(Filters=by_tag)["KeyPairs"]]
    return found


def test_up_from_nothing_proves_the_tunnel(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert doc["changed"] is True
    resources = {(c["target"], c["resource"]) for c in doc["changes"]}
    assert {("aws", "security_group"), ("aws", "instance"), ("aws", "elastic_ip")} <= resources
    assert {("host", "tunnel_user"), ("host", "sshd_config")} <= resources
    assert [hop["name"] for hop in doc["verify"]["hops"]] == ["tcp", "ssh", "forward", "database"]
    assert all(hop["ok"] for hop in doc["verify"]["hops"])
    assert doc["bastion"]["address"] == world.lab.bastion_address
    assert doc["bastion"]["host_key_fingerprint"] in world.lab.host_key_fingerprints


def test_second_up_changes_nothing_anywhere(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    before = host_state(world.lab)
    world.calls.operations.clear()
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert doc["changed"] is False
    assert doc["changes"] == []
    assert doc["verify"]["ok"] is True
    assert world.calls.operations, "the AWS calls were not observed"
    assert world.calls.mutating() == []
    assert host_state(world.lab) == before


def test_drift_on_aws_is_planned_then_repaired(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    client = ec2()
    group = client.describe_security_groups(
        Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
    )["SecurityGroups"][0]
    rule = next(p for p in group["IpPermissions"] if p.get("IpRanges"))
    dbt_range = next(r for r in rule["IpRanges"] if "dbt Cloud" in r.get("Description", ""))
    client.revoke_security_group_ingress(
        GroupId=group["GroupId"],
        IpPermissions=[{**{k: rule[k] for k in ("IpProtocol", "FromPort", "ToPort")},
                        "IpRanges": [{"CidrIp": dbt_range["CidrIp"]}]}],
    )  # fmt: skip
    code, doc = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert code == 2
    assert [c["resource"] for c in doc["changes"]] == ["security_group_rule"]
    assert dbt_range["CidrIp"] in doc["changes"][0]["detail"]
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert [(c["resource"], c["action"]) for c in doc["changes"]] == [
        ("security_group_rule", "create")
    ]
    assert bastion(world, capsys, "plan", "--detailed-exitcode")[0] == 0


def test_drift_on_the_host_is_planned_then_repaired(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    world.lab.host_exec(
        "sed -i 's/^ClientAliveCountMax .*/ClientAliveCountMax 3/' /etc/ssh/sshd_config"
    )
    code, doc = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert code == 2
    assert {(c["target"], c["resource"]) for c in doc["changes"]} >= {("host", "sshd_config")}
    code, doc = bastion(world, capsys, "up")
    assert code == 0, doc["error"]
    assert "ClientAliveCountMax 10" in world.lab.host_file("/etc/ssh/sshd_config")
    assert bastion(world, capsys, "plan", "--detailed-exitcode")[0] == 0


def test_destroy_removes_everything_it_made(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert resources_tagged(NAME)
    code, doc = bastion(world, capsys, "destroy", "--yes")
    assert code == 0, doc["error"]
    deleted = {c["resource"] for c in doc["changes"] if c["action"] == "delete"}
    assert {"warehouse_rule", "instance", "elastic_ip", "security_group", "key_pair"} <= deleted
    assert resources_tagged(NAME) == []
    code, doc = bastion(world, capsys, "destroy", "--yes")
    assert code == 0
    assert doc["changed"] is False
