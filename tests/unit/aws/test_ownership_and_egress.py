"""A name is owned per region, and egress is exactly what is wanted from the first run.

Against moto over HTTP: a second config with the same name for a warehouse in another VPC
is refused before anything changes (plan, provision, destroy); a dual-stack VPC's default
`::/0` egress is revoked by the run that creates the group; a warehouse known only by name
and no group gets a notice saying why egress is 0.0.0.0/0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bastion.aws.session import make_session
from bastion.aws.stage import plan_aws
from bastion.config.settings import load

from .conftest import ConfigWriter, World, _client, run_cli, snapshot


def _foreign_bastion(world: World) -> str:
    """A bastion named `analytics` in another VPC (staging beside prod): its group."""
    ec2 = world.ec2
    other = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(
        GroupName="bastion-analytics", Description="staging's bastion", VpcId=other,
        TagSpecifications=[{"ResourceType": "security-group", "Tags": [
            {"Key": "Name", "Value": "bastion-analytics"},
            {"Key": "bastion:name", "Value": "analytics"},
            {"Key": "managed-by", "Value": "dbt-bastion"},
        ]}],
    )["GroupId"]  # fmt: skip
    return str(group)


@pytest.mark.parametrize("command", [("plan",), ("provision",), ("destroy", "--yes")])
def test_a_name_held_in_another_vpc_is_refused_and_nothing_changes(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    world: World,
    command: tuple[str, ...],
) -> None:
    foreign = _foreign_bastion(world)
    before = snapshot()
    code, document = run_cli(capsys, *command, "-c", str(write_config()))
    assert code == 4, document
    assert document["error"]["kind"] == "config"
    assert foreign in document["error"]["message"]
    assert snapshot() == before


def test_the_same_name_in_the_same_vpc_is_this_bastion(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    config = write_config()
    assert run_cli(capsys, "provision", "-c", str(config))[0] == 0
    assert _aws_changes(config) == []


def _aws_changes(config: Path) -> list[str]:
    """What the AWS stage would still change (there is no sshd to read here)."""
    settings = load(config)
    planned, _ = plan_aws(settings, make_session(settings))
    return [str(change) for change in planned.changes]


def _egress(group_name: str = "bastion-analytics") -> list[dict[str, Any]]:
    (group,) = _client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [group_name]}]
    )["SecurityGroups"]
    return list(group["IpPermissionsEgress"])


def test_a_dual_stack_vpc_keeps_no_default_ipv6_egress_after_the_first_run(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    world.ec2.associate_vpc_cidr_block(VpcId=world.vpc_id, AmazonProvidedIpv6CidrBlock=True)
    config = str(write_config())
    code, document = run_cli(capsys, "provision", "-c", config)
    assert code == 0, document
    revoked = [c["detail"] for c in document["changes"] if c["resource"] == "egress_rule"
               and c["action"] == "delete"]  # fmt: skip
    assert any("::/0" in d for d in revoked) and any("0.0.0.0/0" in d for d in revoked)
    assert not [p for p in _egress() if p.get("Ipv6Ranges")]
    assert not [p for p in _egress() if p["IpProtocol"] == "-1"]
    assert _aws_changes(Path(config)) == []


def test_egress_open_to_the_world_for_a_named_warehouse_is_said(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    """No warehouse group to name (a database outside AWS's discovery) and a host name."""
    config = write_config(bastion_extra=f'vpc_id = "{world.vpc_id}"')
    text = config.read_text().replace('kind = "redshift"\nredshift_cluster = "prod"',
                                      'kind = "postgres"\nhost = "prod.example.internal"')  # fmt: skip
    config.write_text(text)
    settings = load(config)
    notices = plan_aws(settings, make_session(settings))[0].notices
    said = [n for n in notices if "0.0.0.0/0" in n]
    assert said and "prod.example.internal" in said[0] and "security_group_id" in said[0]
