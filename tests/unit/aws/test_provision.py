"""`provision` against moto over HTTP: creates everything, re-runs change nothing, drift is repaired."""

from __future__ import annotations

from typing import Any

import pytest

import bastion.aws.session
from bastion.aws import tags as t
from bastion.aws.stage import apply_aws, plan_aws, status_aws
from bastion.config.settings import load
from bastion.progress import NullProgress
from bastion.vendors.dbt_cloud import cidrs_for

from .conftest import ConfigWriter, Recorder, World, run_cli

DBT_US = {cidr for cidr, _ in cidrs_for(["us"])}


def _group(world: World, group_id: str) -> dict[str, Any]:
    return dict(world.ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0])


def _ours(world: World, kind: str) -> list[dict[str, Any]]:
    filters = t.ours("analytics")
    if kind == "instances":
        reservations = world.ec2.describe_instances(Filters=filters)["Reservations"]
        return [
            i for r in reservations for i in r["Instances"] if i["State"]["Name"] != "terminated"
        ]
    if kind == "groups":
        return list(world.ec2.describe_security_groups(Filters=filters)["SecurityGroups"])
    if kind == "addresses":
        return list(world.ec2.describe_addresses(Filters=filters)["Addresses"])
    return list(world.ec2.describe_key_pairs(Filters=filters)["KeyPairs"])


@pytest.fixture
def provisioned(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, recorder: Recorder
) -> dict[str, Any]:
    code, document = run_cli(capsys, "provision", "-c", str(write_config()))
    assert code == 0, document["error"]
    return document


def test_provision_reports_every_resource_it_creates(provisioned: dict[str, Any]) -> None:
    resources = {c["resource"] for c in provisioned["changes"] if c["action"] == "create"}
    assert provisioned["changed"] is True
    assert resources == {
        "security_group", "security_group_rule", "egress_rule", "warehouse_rule",
        "key_pair", "instance", "elastic_ip", "elastic_ip_association",
    }  # fmt: skip
    assert provisioned["bastion"]["address"] == "127.0.0.1"
    assert provisioned["bastion"]["public_ip"] == _ours_ip()


def _ours_ip() -> str:
    import boto3

    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    filters: Any = t.ours("analytics")
    return str(ec2.describe_addresses(Filters=filters)["Addresses"][0]["PublicIp"])


def test_bastion_group_admits_ssh_only_from_named_sources(
    provisioned: dict[str, Any], world: World, ssh_listener: int
) -> None:
    group = _ours(world, "groups")[0]
    ingress = {
        (p["FromPort"], r["CidrIp"], r.get("Description"))
        for p in group["IpPermissions"]
        for r in p["IpRanges"]
    }
    expected = {(ssh_listener, cidr, "dbtcloud: dbt Cloud us") for cidr in DBT_US}
    expected |= {(ssh_listener, "192.0.2.0/28", "dbtcloud: extra_cidrs")}
    expected |= {(ssh_listener, "198.51.100.7/32", "admin_cidrs")}
    assert ingress == expected
    assert all(not p["UserIdGroupPairs"] for p in group["IpPermissions"])


def test_bastion_group_egress_is_warehouse_and_package_updates(
    provisioned: dict[str, Any], world: World
) -> None:
    group = _ours(world, "groups")[0]
    egress = set()
    for p in group["IpPermissionsEgress"]:
        egress |= {(p["IpProtocol"], p.get("FromPort"), r["CidrIp"]) for r in p["IpRanges"]}
        egress |= {
            (p["IpProtocol"], p.get("FromPort"), g["GroupId"]) for g in p["UserIdGroupPairs"]
        }
    assert egress == {
        ("tcp", 5439, world.warehouse_group),
        ("tcp", 80, "0.0.0.0/0"),
        ("tcp", 443, "0.0.0.0/0"),
    }


def test_warehouse_group_gets_one_rule_and_keeps_its_others(
    provisioned: dict[str, Any], world: World
) -> None:
    bastion_group = _ours(world, "groups")[0]["GroupId"]
    permissions = _group(world, world.warehouse_group)["IpPermissions"]
    sources = {
        (p["FromPort"], src)
        for p in permissions
        for src in [r["CidrIp"] for r in p["IpRanges"]]
        + [g["GroupId"] for g in p["UserIdGroupPairs"]]
    }
    assert sources == {(5439, "10.20.0.0/16"), (5439, bastion_group)}


def test_instance_is_hardened_tagged_and_in_the_first_public_subnet(
    provisioned: dict[str, Any], world: World
) -> None:
    (instance,) = _ours(world, "instances")
    tags = t.tag_map(instance)
    assert instance["SubnetId"] == world.expected_subnet
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert instance["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert "IamInstanceProfile" not in instance
    assert instance["KeyName"] == "bastion-analytics"
    assert tags["Name"] == "bastion-analytics"
    assert tags["bastion:name"] == "analytics"
    assert tags["managed-by"] == "dbt-bastion"
    assert tags[t.AMI_TAG] == world.ami
    assert int(tags[t.GENERATION_TAG]) > 0
    volume_id = instance["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    volume = world.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["Encrypted"] is True
    assert volume["VolumeType"] == "gp3"


def test_elastic_ip_and_key_pair_are_tagged(provisioned: dict[str, Any], world: World) -> None:
    (address,) = _ours(world, "addresses")
    (instance,) = _ours(world, "instances")
    assert address["InstanceId"] == instance["InstanceId"]
    (pair,) = _ours(world, "keys")
    assert pair["KeyName"] == "bastion-analytics"


def test_second_provision_changes_nothing_and_makes_no_mutating_call(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    provisioned: dict[str, Any],
    recorder: Recorder,
) -> None:
    recorder.clear()
    code, document = run_cli(capsys, "provision", "-c", str(write_config()))
    assert (code, document["changed"], document["changes"]) == (0, False, [])
    assert recorder.calls, "the re-run should still read AWS"
    assert recorder.mutating() == []


def _add_rule_by_hand(world: World, group: str) -> None:
    world.ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": "203.0.113.9/32"}]}],
    )  # fmt: skip


def _remove_dbt_address(world: World, group: str) -> None:
    port = _group(world, group)["IpPermissions"][0]["FromPort"]
    world.ec2.revoke_security_group_ingress(
        GroupId=group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": port, "ToPort": port,
                        "IpRanges": [{"CidrIp": sorted(DBT_US)[0]}]}],
    )  # fmt: skip


def _delete_warehouse_rule(world: World, group: str) -> None:
    world.ec2.revoke_security_group_ingress(
        GroupId=world.warehouse_group,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 5439, "ToPort": 5439,
                        "UserIdGroupPairs": [{"GroupId": group, "Description": "bastion-analytics (dbt-bastion)"}]}],
    )  # fmt: skip


def _disassociate_eip(world: World, group: str) -> None:
    (address,) = _ours(world, "addresses")
    world.ec2.disassociate_address(AssociationId=address["AssociationId"])


def _stop_instance(world: World, group: str) -> None:
    (instance,) = _ours(world, "instances")
    world.ec2.stop_instances(InstanceIds=[instance["InstanceId"]])


def _swap_instance_group(world: World, group: str) -> None:
    (instance,) = _ours(world, "instances")
    world.ec2.modify_instance_attribute(
        InstanceId=instance["InstanceId"], Groups=[world.warehouse_group]
    )


DRIFT = {
    "rule added by hand": (_add_rule_by_hand, ("security_group_rule", "delete")),
    "dbt address removed": (_remove_dbt_address, ("security_group_rule", "create")),
    "warehouse rule deleted": (_delete_warehouse_rule, ("warehouse_rule", "create")),
    "eip disassociated": (_disassociate_eip, ("elastic_ip_association", "create")),
    "instance stopped": (_stop_instance, ("instance", "update")),
    "instance group swapped": (_swap_instance_group, ("instance", "update")),
}


@pytest.mark.parametrize("drift", list(DRIFT), ids=list(DRIFT))
def test_drift_is_planned_then_repaired(
    drift: str,
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    provisioned: dict[str, Any],
    world: World,
    recorder: Recorder,
) -> None:
    make_drift, expected = DRIFT[drift]
    make_drift(world, _ours(world, "groups")[0]["GroupId"])
    config = load(write_config())
    session = recorder.attach(bastion.aws.session.make_session(config))

    recorder.clear()
    plan, _ = plan_aws(config, session)
    assert [(c.resource, c.action) for c in plan.changes] == [expected]
    assert recorder.mutating() == []

    code, document = run_cli(capsys, "provision", "-c", str(write_config()))
    assert code == 0
    assert [(c["resource"], c["action"]) for c in document["changes"]] == [expected]
    assert plan_aws(config, session)[0].changes == []


def test_changed_instance_type_is_planned_and_replaced_only_with_replace(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    provisioned: dict[str, Any],
    world: World,
    recorder: Recorder,
) -> None:
    (before,) = _ours(world, "instances")
    address = _ours(world, "addresses")[0]["PublicIp"]
    config = write_config(instance_type='"t3.small"')

    settings = load(config)
    session = recorder.attach(bastion.aws.session.make_session(settings))
    plan, _ = plan_aws(settings, session)
    assert [(c.resource, c.action) for c in plan.changes] == [("instance", "update")]
    assert "--replace" in plan.changes[0].detail

    recorder.clear()
    code, document = run_cli(capsys, "provision", "-c", str(config))
    assert (code, document["changes"]) == (0, [])
    assert any("--replace" in n for n in document["notices"])
    assert recorder.mutating() == []

    code, document = run_cli(capsys, "provision", "--replace", "-c", str(config))
    assert code == 0, document["error"]
    (after,) = _ours(world, "instances")
    assert after["InstanceId"] != before["InstanceId"]
    assert after["InstanceType"] == "t3.small"
    assert _ours(world, "addresses")[0]["PublicIp"] == address
    assert _ours(world, "addresses")[0]["InstanceId"] == after["InstanceId"]
    assert t.tag_map(after)[t.GENERATION_TAG] != t.tag_map(before)[t.GENERATION_TAG]
    assert plan_aws(settings, session)[0].changes == []


def test_newer_ami_behind_ssm_is_a_notice_not_a_change(
    provisioned: dict[str, Any], world: World, write_config: ConfigWriter, recorder: Recorder
) -> None:
    import boto3

    newer = world.newer_ami
    boto3.Session(region_name="us-east-1").client("ssm").put_parameter(
        Name=world.ami_parameter, Value=newer, Type="String", Overwrite=True
    )
    settings = load(write_config())
    plan, facts = plan_aws(
        settings, recorder.attach(bastion.aws.session.make_session(settings))
    )
    assert plan.changes == []
    assert any(newer in notice for notice in plan.notices)
    assert facts.ami == world.ami


def test_status_reads_what_exists(
    provisioned: dict[str, Any], world: World, write_config: ConfigWriter
) -> None:
    from bastion.aws.session import make_session

    settings = load(write_config())
    facts = status_aws(settings, make_session(settings))
    (instance,) = _ours(world, "instances")
    assert facts.instance_id == instance["InstanceId"]
    assert facts.instance_state == "running"
    assert facts.public_ip == provisioned["bastion"]["public_ip"]
    assert facts.warehouse_group_id == world.warehouse_group
    assert facts.warehouse.port == 5439


def test_waits_for_the_ssh_port_on_the_configured_address(settings: Any, session: Any) -> None:
    probed: list[tuple[str, int]] = []

    def probe(host: str, port: int, timeout: float) -> bool:
        probed.append((host, port))
        return len(probed) >= 2

    progress = NullProgress()
    apply_aws(settings, session, progress, probe=probe)
    assert probed == [("127.0.0.1", settings.bastion.ssh_port)] * 2
    assert any("waiting for SSH" in m for m in progress.messages)


def test_record_host_key_pins_the_fingerprint_in_a_tag(
    provisioned: dict[str, Any], settings: Any, session: Any
) -> None:
    from bastion.aws.stage import console_host_keys, record_host_key

    facts = status_aws(settings, session)
    assert facts.host_key_tag is None
    record_host_key(session, facts, "SHA256:" + "h" * 43)
    assert status_aws(settings, session).host_key_tag == "SHA256:" + "h" * 43
    assert console_host_keys(session, facts.instance_id or "") == []  # moto prints none


def test_existing_provider_touches_no_ec2_resource(
    write_config: ConfigWriter, recorder: Recorder
) -> None:

    config = write_config(bastion_extra='provider = "existing"')
    settings = load(config)
    plan, facts = apply_aws(settings, recorder.attach(bastion.aws.session.make_session(settings)), NullProgress())
    assert plan.changes == [] and facts.instance_id is None
    assert facts.warehouse.port == 5439
    assert recorder.mutating() == []


def test_an_ssh_port_change_keeps_the_old_port_open_until_the_new_one_answers(
    capsys: pytest.CaptureFixture[str],
    write_config: ConfigWriter,
    provisioned: dict[str, Any],
    world: World,
    ssh_listener: int,
    recorder: Recorder,
) -> None:
    import socket

    spare = socket.socket()
    spare.bind(("127.0.0.1", 0))
    new_port = spare.getsockname()[1]  # bound, not listening: nothing answers yet
    config = str(write_config(ssh_port=str(new_port)))

    def ports() -> set[int]:
        group = _ours(world, "groups")[0]
        return {p["FromPort"] for p in group["IpPermissions"]}

    code, document = run_cli(capsys, "provision", "-c", config)
    assert code == 0
    assert {c["action"] for c in document["changes"]} == {"create"}
    assert any("two phases" in n for n in document["notices"])
    assert ports() == {ssh_listener, new_port}

    recorder.clear()
    code, document = run_cli(capsys, "provision", "-c", config)
    assert (code, document["changes"], recorder.mutating()) == (0, [], [])

    spare.listen(8)
    try:
        code, document = run_cli(capsys, "provision", "-c", config)
    finally:
        spare.close()
    assert code == 0
    deleted = [c for c in document["changes"] if c["action"] == "delete"]
    assert len(deleted) == len(DBT_US) + 2
    assert all(f"tcp/{ssh_listener} " in c["detail"] for c in deleted)
    assert ports() == {new_port}
    group = _ours(world, "groups")[0]
    assert t.tag_map(group)[t.SSH_PORT_TAG] == str(new_port)


def test_a_concurrent_allocation_leaves_one_elastic_ip(world: World) -> None:
    import boto3

    from bastion.aws.apply import Runner, keep_one_address
    from bastion.aws.gateway import AwsGateway
    from bastion.aws.plan import new_step

    gateway = AwsGateway(boto3.Session(region_name="us-east-1"))
    step = new_step(
        "elastic_ip", "create", "x", "allocate_address", tags=t.common_tags("analytics")
    )
    other = Runner(gateway, NullProgress())  # a concurrent run: it allocated first
    other_id = gateway.allocate_address(t.common_tags("analytics"))["AllocationId"]
    runner = Runner(gateway, NullProgress())
    runner.run([step])
    keep_one_address(other, "analytics", other_id)  # the other run's own check, after ours
    (kept,) = _ours(world, "addresses")
    assert runner.ids["elastic_ip"] == other.ids["elastic_ip"] == kept["AllocationId"]
    assert kept["AllocationId"] <= other_id


def test_a_new_host_listens_on_ssh_port_from_its_first_boot(
    provisioned: dict[str, Any], world: World, ssh_listener: int
) -> None:
    import base64

    (instance,) = _ours(world, "instances")
    attribute = world.ec2.describe_instance_attribute(
        InstanceId=instance["InstanceId"], Attribute="userData"
    )
    user_data = base64.b64decode(attribute["UserData"]["Value"]).decode()
    assert user_data.startswith("#cloud-config")
    assert f"Port {ssh_listener}\n" in user_data


def test_port_22_needs_no_first_boot_user_data() -> None:
    from bastion.aws.plan import first_boot_user_data

    assert first_boot_user_data(22) == ""
    assert "Port 2222" in first_boot_user_data(2222)
