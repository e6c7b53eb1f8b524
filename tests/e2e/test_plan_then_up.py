"""`plan` lists exactly what the next `up` changes: the same stages, the same values.

On one bastion (module scope): from nothing, where the host cannot be planned yet; then
after drift on every stage at once: a host file, the host-key tag gone from the instance,
and a new ssh_port, whose two phases `up` runs around its verify.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from tests.e2e.world import World, bastion, lab_world
from tests.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "same"
NEW_PORT = 2222


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with lab_world(lab, tmp_path_factory, NAME) as found:
        yield found


def instance() -> dict[str, Any]:
    reservations = boto3.client("ec2", region_name="us-east-1").describe_instances(
        Filters=[
            {"Name": "tag:bastion:name", "Values": [NAME]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    (found,) = [i for r in reservations for i in r["Instances"]]
    return dict(found)


def test_from_nothing_plan_lists_the_aws_stage_that_up_runs(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    code, planned = bastion(world, capsys, "plan")
    assert code == 0, planned["error"]
    assert any("not running yet" in n for n in planned["notices"])
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    aws_stage = made["changes"][: len(planned["changes"])]
    assert aws_stage == planned["changes"]
    assert {c["target"] for c in planned["changes"]} == {"aws"}
    assert any(c["target"] == "host" for c in made["changes"][len(planned["changes"]) :])


def test_after_drift_on_every_stage_plan_lists_exactly_what_up_changes(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = world.lab
    lab.host_exec("truncate -s 0 /home/dbtcloud/.ssh/authorized_keys")
    boto3.client("ec2", region_name="us-east-1").delete_tags(
        Resources=[instance()["InstanceId"]], Tags=[{"Key": "bastion:host-key"}]
    )
    world.write(NEW_PORT)

    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert code == 2, planned["error"]
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]

    assert made["changes"] == planned["changes"]
    kinds = [(c["target"], c["resource"], c["action"]) for c in planned["changes"]]
    assert ("host", "authorized_keys", "update") in kinds
    assert ("aws", "host_key_tag", "create") in kinds
    assert kinds.count(("host", "sshd_config", "update")) == 2, "phase one and phase two"
    assert ("aws", "security_group", "update") in kinds, "phase two records the new port"
    assert ("aws", "security_group_rule", "delete") in kinds, "phase two closes the old port"
    assert kinds.index(("aws", "host_key_tag", "create")) < kinds.index(
        ("aws", "security_group", "update")
    ), "the tag is written in the host stage, phase two comes after verify"
    assert made["verify"]["ok"]

    code, after = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert (code, after["changes"]) == (0, [])


def test_a_host_out_of_reach_leaves_the_aws_drift_listed_and_the_plan_incomplete(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """A group drift that also cuts the operator off: plan still shows what up would repair."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    (group,) = ec2.describe_security_groups(
        Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
    )["SecurityGroups"]
    admin = f"{world.lab.operator_address}/32"
    for permission in group["IpPermissions"]:
        if any(r["CidrIp"] == admin for r in permission.get("IpRanges", [])):
            revoke = {k: permission[k] for k in ("IpProtocol", "FromPort", "ToPort")}
            ec2.revoke_security_group_ingress(
                GroupId=group["GroupId"],
                IpPermissions=[{**revoke, "IpRanges": [{"CidrIp": admin}]}],
            )
    nowhere = world.lab.bastion_address.rsplit(".", 1)[0] + ".200"  # in the lab's range, no link
    text = world.config.read_text()
    world.config.write_text(text.replace(f'"{world.lab.bastion_address}"', f'"{nowhere}"'))

    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")

    assert code == 1
    assert planned["error"]["kind"] == "ssh"
    assert planned["host"]["read"] is False and nowhere in planned["host"]["reason"]
    restored = [c for c in planned["changes"] if c["resource"] == "security_group_rule"]
    assert [c["action"] for c in restored] == ["create"] and admin in restored[0]["detail"]
