"""A named `bastion.ami` against moto: resolved through its publisher's public parameter,
for the instance type's architecture, and kept in the `bastion:ami` tag."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

import bastion.aws.session
from bastion.aws import tags as t
from bastion.aws.stage import plan_aws
from bastion.config.settings import load

from .conftest import ConfigWriter, Recorder, World, run_cli

DEBIAN = "/aws/service/debian/release/{release}/latest/{arch}"


@pytest.mark.parametrize(
    ("ami", "instance_type", "parameter"),
    [
        ("debian-13", "t3.micro", DEBIAN.format(release=13, arch="amd64")),
        ("debian-12", "t3.micro", DEBIAN.format(release=12, arch="amd64")),
        ("debian-13", "t4g.micro", DEBIAN.format(release=13, arch="arm64")),
        ("debian-12", "m7g.large", DEBIAN.format(release=12, arch="arm64")),
    ],
)
def test_plan_launches_the_image_behind_the_named_images_parameter(
    world: World,
    write_config: ConfigWriter,
    recorder: Recorder,
    ami: str,
    instance_type: str,
    parameter: str,
) -> None:
    settings = load(write_config(ami=f'"{ami}"', instance_type=f'"{instance_type}"'))
    plan, facts = plan_aws(settings, recorder.attach(bastion.aws.session.make_session(settings)))
    (launch,) = [c for c in plan.changes if c.resource == "instance"]
    assert facts.latest_ami == world.debian_images[parameter]
    assert world.debian_images[parameter] in launch.detail


def _instance(world: World) -> dict[str, Any]:
    reservations = world.ec2.describe_instances(Filters=t.ours("analytics"))["Reservations"]
    (instance,) = [
        i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"
    ]
    return dict(instance)


def test_provision_keeps_the_resolved_image_in_the_ami_tag(
    capsys: pytest.CaptureFixture[str], world: World, write_config: ConfigWriter
) -> None:
    code, document = run_cli(capsys, "provision", "-c", str(write_config(ami='"debian-13"')))
    assert code == 0, document["error"]
    instance = _instance(world)
    image = world.debian_images[DEBIAN.format(release=13, arch="amd64")]
    assert instance["ImageId"] == image
    assert t.tag_map(instance)[t.AMI_TAG] == image


def test_a_newer_build_behind_a_named_image_is_a_notice_not_a_change(
    capsys: pytest.CaptureFixture[str],
    world: World,
    write_config: ConfigWriter,
    recorder: Recorder,
) -> None:
    config = write_config(ami='"debian-13"')
    code, document = run_cli(capsys, "provision", "-c", str(config))
    assert code == 0, document["error"]
    parameter = DEBIAN.format(release=13, arch="amd64")
    launched = world.debian_images[parameter]
    boto3.Session(region_name="us-east-1").client("ssm").put_parameter(
        Name=parameter, Value=world.newer_ami, Type="String", Overwrite=True
    )
    settings = load(config)
    plan, facts = plan_aws(settings, recorder.attach(bastion.aws.session.make_session(settings)))
    assert plan.changes == []
    assert facts.ami == launched
    assert any(world.newer_ami in n and "debian-13" in n for n in plan.notices), plan.notices
