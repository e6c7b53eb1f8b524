"""`destroy`: removes only what this name created, in an order real AWS accepts; twice is a no-op."""

from __future__ import annotations

from typing import Any, ClassVar

import boto3
import pytest

from bastion.aws import tags as t

from .conftest import REGION, ConfigWriter, Recorder, World, run_cli, snapshot


def _tagged_with_name(name: str = "analytics") -> list[str]:
    """Every live resource carrying bastion:name=<name>, asked of each resource type.

    (moto keeps tags of deleted resources in describe_tags, so each type is listed.)
    """
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    filters: Any = [{"Name": "tag:bastion:name", "Values": [name]}]
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    found = [
        f"instance:{i['InstanceId']}"
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    found += [
        f"sg:{g['GroupId']}"
        for g in ec2.describe_security_groups(Filters=filters)["SecurityGroups"]
    ]
    found += [
        f"eip:{a['AllocationId']}" for a in ec2.describe_addresses(Filters=filters)["Addresses"]
    ]
    found += [f"key:{k['KeyName']}" for k in ec2.describe_key_pairs(Filters=filters)["KeyPairs"]]
    found += [f"volume:{v['VolumeId']}" for v in ec2.describe_volumes(Filters=filters)["Volumes"]]
    return sorted(found)


@pytest.fixture
def provisioned(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, recorder: Recorder
) -> str:
    config = str(write_config())
    code, document = run_cli(capsys, "provision", "-c", config)
    assert code == 0, document["error"]
    assert _tagged_with_name(), "provision should have tagged resources"
    return config


def test_destroy_leaves_nothing_tagged_and_keeps_other_warehouse_rules(
    capsys: pytest.CaptureFixture[str], provisioned: str, world: World, recorder: Recorder
) -> None:
    code, document = run_cli(capsys, "destroy", "--yes", "-c", provisioned)
    assert code == 0, document["error"]
    assert document["changed"] is True
    deleted = [c["resource"] for c in document["changes"] if c["action"] == "delete"]
    assert deleted == [
        "warehouse_rule", "instance", "elastic_ip", "security_group", "key_pair",
    ]  # fmt: skip
    assert _tagged_with_name() == []
    assert world.ec2.describe_addresses()["Addresses"] == []
    group = world.ec2.describe_security_groups(GroupIds=[world.warehouse_group])["SecurityGroups"][
        0
    ]
    assert [
        (p["FromPort"], r["CidrIp"]) for p in group["IpPermissions"] for r in p["IpRanges"]
    ] == [(5439, "10.20.0.0/16")]
    assert all(not p["UserIdGroupPairs"] for p in group["IpPermissions"])
    calls = recorder.calls
    order = [calls.index(op) for op in (
        "ec2:RevokeSecurityGroupIngress", "ec2:TerminateInstances", "ec2:ReleaseAddress",
        "ec2:DeleteSecurityGroup", "ec2:DeleteKeyPair",
    )]  # fmt: skip
    assert order == sorted(order)


def test_second_destroy_is_a_no_op(
    capsys: pytest.CaptureFixture[str], provisioned: str, recorder: Recorder
) -> None:
    assert run_cli(capsys, "destroy", "--yes", "-c", provisioned)[0] == 0
    recorder.clear()
    code, document = run_cli(capsys, "destroy", "--yes", "-c", provisioned)
    assert (code, document["changed"], document["changes"]) == (0, False, [])
    assert recorder.mutating() == []


def test_destroy_then_provision_starts_a_new_generation(
    capsys: pytest.CaptureFixture[str], provisioned: str, world: World
) -> None:
    def generation() -> str:
        reservations = world.ec2.describe_instances(Filters=t.ours("analytics"))["Reservations"]
        live = [i for r in reservations for i in r["Instances"] if i["State"]["Name"] == "running"]
        return t.tag_map(live[0])[t.GENERATION_TAG]

    first = generation()
    assert run_cli(capsys, "destroy", "--yes", "-c", provisioned)[0] == 0
    assert run_cli(capsys, "provision", "-c", provisioned)[0] == 0
    assert generation() != first


def test_destroy_without_yes_and_without_a_terminal_refuses(
    capsys: pytest.CaptureFixture[str], provisioned: str, recorder: Recorder
) -> None:
    before = snapshot()
    recorder.clear()
    code, document = run_cli(capsys, "destroy", "-c", provisioned)
    assert code == 4
    assert document["error"]["kind"] == "input"
    assert "--yes" in document["error"]["message"]
    assert recorder.calls == []
    assert snapshot() == before


def test_destroy_of_a_key_pair_we_did_not_make_leaves_it(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World, recorder: Recorder
) -> None:
    world.ec2.create_key_pair(KeyName="bastion-analytics")
    code, document = run_cli(capsys, "destroy", "--yes", "-c", str(write_config()))
    assert (code, document["changes"]) == (0, [])
    assert world.ec2.describe_key_pairs(KeyNames=["bastion-analytics"])["KeyPairs"]


@pytest.mark.parametrize(("answer", "code"), [("n\n", 4), ("y\n", 0)])
def test_destroy_in_a_terminal_asks_first(
    answer: str,
    code: int,
    capsys: pytest.CaptureFixture[str],
    provisioned: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from bastion.console import Console

    monkeypatch.setattr(Console, "interactive", property(lambda self: True))
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    before = snapshot()
    exit_code, _ = run_cli(capsys, "destroy", "-c", provisioned)
    assert exit_code == code
    if code == 4:
        assert snapshot() == before
    else:
        assert _tagged_with_name() == []


class _EndpointAccount:
    """What AWS answers destroy for a bastion with admin_access = "eice": its group admits
    the endpoint's group, whose egress names the bastion's (plain moto lacks the endpoint)."""

    bastion_group, endpoint_group = "sg-0000000000000000b", "sg-0000000000000000e"
    tags: ClassVar[list[dict[str, str]]] = [
        {"Key": t.NAME_TAG, "Value": "analytics"}, {"Key": "managed-by", "Value": t.MANAGED_BY},
    ]  # fmt: skip

    def describe_security_groups(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        pair = {"UserIdGroupPairs": [{"GroupId": self.endpoint_group}]}
        bastion = {"GroupId": self.bastion_group, "VpcId": "vpc-1", "Tags": self.tags,
                   "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, **pair}]}  # fmt: skip
        endpoint = {"GroupId": self.endpoint_group, "VpcId": "vpc-1", "IpPermissions": [],
                    "Tags": [*self.tags, {"Key": t.ROLE_TAG, "Value": t.ENDPOINT_ROLE}]}  # fmt: skip
        if filters[0]["Name"] == "ip-permission.group-id":
            return [bastion] if filters[0]["Values"] == [self.endpoint_group] else []
        return [endpoint, bastion]

    def describe_instances(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"InstanceId": "i-1", "VpcId": "vpc-1", "State": {"Name": "running"}}]

    def describe_instance_connect_endpoints(self, filters: list[Any]) -> list[dict[str, Any]]:
        return [
            {"InstanceConnectEndpointId": "eice-1", "VpcId": "vpc-1", "State": "create-complete"}
        ]

    def describe_addresses(self, filters: list[Any]) -> list[dict[str, Any]]:
        return []

    def describe_key_pairs(self, name: str) -> list[dict[str, Any]]:
        return []


def test_destroy_removes_the_endpoint_then_the_rule_naming_its_group_then_both_groups() -> None:
    """Real AWS refuses a group an endpoint's interface uses, or another group's rule names."""
    from bastion.aws.destroy import plan_destroy

    steps = plan_destroy(_EndpointAccount(), "analytics", "vpc-1")  # type: ignore[arg-type]
    assert [(s.change.resource, s.op) for s in steps] == [
        ("security_group", "set_generation"),
        ("instance", "terminate_instance"),
        ("instance_connect_endpoint", "delete_instance_connect_endpoint"),
        ("security_group_rule", "revoke_ingress"),
        ("instance_connect_endpoint_group", "delete_security_group"),
        ("security_group", "delete_security_group"),
    ]
    assert steps[0].args["group"] == _EndpointAccount.bastion_group
    assert steps[3].args["group"] == _EndpointAccount.bastion_group
    assert steps[4].args["group"] == _EndpointAccount.endpoint_group
