"""`bastion iam-policy` as an operator meets it, and the policy for each kind of config.

With --account nothing is asked of AWS; without, the account comes from STS (moto here) and
a missing credential says how to do without. The policy holds only what the config uses:
no EC2 changes for an existing host, no database credentials without auth = iam.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.aws.iam_policy import least_privilege_policy, scope_from
from bastion.cli.app import main
from bastion.config.settings import load

from .conftest import ConfigWriter, Recorder, World, run_cli

ACCOUNT = "111122223333"
GROUP = "sg-0123456789abcdef0"


def _policy(tmp_path: Path, warehouse: str, bastion: str = "", region: str = "us-east-1") -> Any:
    config = tmp_path / "bastion.toml"
    config.write_text(
        f'name = "analytics"\n[aws]\nregion = "{region}"\n[warehouse]\n{warehouse}\n'
        f'[bastion]\nadmin_cidrs = ["198.51.100.7/32"]\n{bastion}\n'
    )
    return least_privilege_policy(scope_from(load(config), ACCOUNT))


def _actions(policy: dict[str, Any]) -> set[str]:
    return {a for s in policy["Statement"] for a in s["Action"]}


def _resources(policy: dict[str, Any], action: str) -> list[str]:
    return [r for s in policy["Statement"] if action in s["Action"] for r in s["Resource"]]


def test_a_malformed_account_is_refused(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter
) -> None:
    code, document = run_cli(capsys, "iam-policy", "-c", str(write_config()), "--account", "12345")
    assert (code, document["error"]["kind"]) == (4, "input")
    assert "--account" in document["error"]["message"]


def test_with_account_aws_is_not_asked_and_the_warehouse_group_must_be_named(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, recorder: Recorder
) -> None:
    recorder.clear()
    code, document = run_cli(capsys, "iam-policy", "-c", str(write_config()), "--account", ACCOUNT)
    assert (code, document["error"]["kind"]) == (4, "config")
    assert "warehouse.security_group_id" in document["error"]["message"]
    named = write_config(warehouse_extra=f'security_group_id = "{GROUP}"')
    code, document = run_cli(capsys, "iam-policy", "-c", str(named), "--account", ACCOUNT)
    assert code == 0, document["error"]
    assert recorder.calls == []
    assert f"arn:aws:ec2:us-east-1:{ACCOUNT}:security-group/{GROUP}" in _resources(
        document["policy"], "ec2:AuthorizeSecurityGroupIngress"
    )
    assert any("no VPC known" in n for n in document["notices"])


def test_without_credentials_the_error_says_to_pass_the_account(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    code, document = run_cli(capsys, "iam-policy", "-c", str(config))
    assert (code, document["error"]["kind"]) == (1, "aws")
    assert "--account" in document["error"]["message"]


def test_the_policy_alone_goes_to_stdout_and_what_is_left_open_to_stderr(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    config = write_config(warehouse_extra=f'security_group_id = "{world.warehouse_group}"')
    with pytest.raises(SystemExit) as exit_info:
        main(["iam-policy", "-c", str(config), "--account", ACCOUNT])
    printed = capsys.readouterr()
    assert exit_info.value.code in (0, None), printed.err
    assert json.loads(printed.out)["Version"] == "2012-10-17"
    assert "no VPC known" in printed.err and "no VPC known" not in printed.out


def test_the_json_envelope_holds_the_policy_discovered_from_aws(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World
) -> None:
    code, document = run_cli(capsys, "iam-policy", "-c", str(write_config()))
    assert (code, document["command"], document["ok"]) == (0, "iam-policy", True)
    assert document["notices"] == []
    assert f"arn:aws:ec2:us-east-1:123456789012:vpc/{world.vpc_id}" in _resources(
        document["policy"], "ec2:CreateSecurityGroup"
    )


def test_an_existing_host_with_password_login_gets_reads_only(tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'redshift_cluster = "prod"', 'provider = "existing"')
    assert _actions(policy) == {"redshift:DescribeClusters", "redshift:DescribeClusterSubnetGroups"}


def test_an_existing_host_with_a_configured_endpoint_needs_no_permission(tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'kind = "postgres"\nhost = "db.internal"', 'provider = "existing"')
    assert policy["Statement"] == []


@pytest.mark.parametrize(
    ("warehouse", "action", "resources"),
    [
        ('redshift_cluster = "prod"\nauth = "iam"\nuser = "etl"\ndatabase = "dw"',
         "redshift:GetClusterCredentials",
         [f"arn:aws:redshift:us-east-1:{ACCOUNT}:dbuser:prod/etl",
          f"arn:aws:redshift:us-east-1:{ACCOUNT}:dbname:prod/dw"]),
        ('kind = "redshift-serverless"\nworkgroup = "wg"\nauth = "iam"',
         "redshift-serverless:GetCredentials",
         [f"arn:aws:redshift-serverless:us-east-1:{ACCOUNT}:workgroup/*"]),
        ('redshift_cluster = "prod"', "redshift:GetClusterCredentials", []),
    ],
    ids=["redshift iam", "serverless iam (offline: any workgroup)", "password: none"],
)  # fmt: skip
def test_database_credentials_only_for_iam_auth_and_only_that_login(
    tmp_path: Path, warehouse: str, action: str, resources: list[str]
) -> None:
    policy = _policy(tmp_path, warehouse, 'provider = "existing"')
    assert _resources(policy, action) == resources


@pytest.mark.parametrize(
    ("ami", "parameter", "image"),
    [
        ("debian-13", ["arn:aws:ssm:us-east-1::parameter/aws/service/*"],
         "arn:aws:ec2:us-east-1::image/*"),
        ("ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64",
         ["arn:aws:ssm:us-east-1::parameter/aws/service/*"], "arn:aws:ec2:us-east-1::image/*"),
        ("ssm:/golden/bastion-ami", [f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/golden/bastion-ami"],
         "arn:aws:ec2:us-east-1::image/*"),
        ("ami-0123456789abcdef0", [], "arn:aws:ec2:us-east-1::image/ami-0123456789abcdef0"),
    ],
    ids=["a named image", "AWS's public parameter", "your own parameter", "an AMI id"],
)  # fmt: skip
def test_the_ami_is_read_from_its_parameter_only(
    tmp_path: Path, ami: str, parameter: list[str], image: str
) -> None:
    policy = _policy(
        tmp_path, f'security_group_id = "{GROUP}"', f'ami = "{ami}"\nadmin_user = "ops"'
    )
    assert _resources(policy, "ssm:GetParameter") == parameter
    assert image in _resources(policy, "ec2:RunInstances")


@pytest.mark.parametrize(
    ("region", "partition"), [("us-gov-west-1", "aws-us-gov"), ("cn-north-1", "aws-cn")]
)
def test_arns_carry_the_regions_partition(tmp_path: Path, region: str, partition: str) -> None:
    policy = _policy(tmp_path, f'security_group_id = "{GROUP}"', region=region)
    resources = {r for s in policy["Statement"] for r in s["Resource"] if r != "*"}
    assert resources and all(r.startswith(f"arn:{partition}:") for r in resources)
