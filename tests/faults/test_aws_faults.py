"""AWS answering with throttling and 5xx errors: `bastion provision` is retried by botocore's
retry mode and ends with exactly one instance, one Elastic IP, one group and one key pair.

moto runs behind tests/faults/aws_proxy.py, which answers the first requests of chosen
actions with faults. "refused" faults never reach moto; "lost" ones do (the resource is
made) and only the answer is lost, the hard case for calls without a ClientToken.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.faults.aws_proxy import FaultPlan, fault_proxy
from tests.faults.conftest import run_cli
from tests.lab import AwsAccount, MotoServer
from tests.lab import aws_env as make_aws_env

REGION = "us-east-1"


@pytest.fixture(scope="module")
def sshd_port() -> Iterator[int]:
    """A loopback port that accepts connections: where provision waits for "sshd" to answer."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield int(listener.getsockname()[1])


def write_config(folder: Path, name: str, port: int) -> Path:
    key = folder / "admin"
    if not key.exists():
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "admin", "-f", str(key)],
            check=True,
        )
    config = folder / "bastion.toml"
    config.write_text(
        f"""
name = "{name}"
[warehouse]
kind = "redshift"
redshift_cluster = "prod"
database = "analytics"
user = "dbt"
[bastion]
admin_key = "{key}"
admin_cidrs = ["198.51.100.7/32"]
address = "127.0.0.1"
ssh_port = {port}
""",
        encoding="utf-8",
    )
    return config


def owned(endpoint: str, name: str) -> dict[str, list[str]]:
    """The resources tagged with this name, straight from moto (not through the proxy)."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ec2: Any = session.client("ec2", endpoint_url=endpoint)
    by_tag = [{"Name": "tag:bastion:name", "Values": [name]}]
    instances = [
        i["InstanceId"]
        for r in ec2.describe_instances(Filters=by_tag)["Reservations"]
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]
    groups = ec2.describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"bastion-{name}"]}]
    )
    return {
        "instance": instances,
        "elastic_ip": [
            a["AllocationId"] for a in ec2.describe_addresses(Filters=by_tag)["Addresses"]
        ],
        "security_group": [g["GroupId"] for g in groups["SecurityGroups"]],
        "key_pair": [k["KeyName"] for k in ec2.describe_key_pairs(Filters=by_tag)["KeyPairs"]],
    }


REFUSED = {  # one retry costs botocore's backoff (about 0.5 s on average): a few suffice
    "GetParameter": ["throttle"],
    "DescribeClusters": ["unavailable"],
    "CreateSecurityGroup": ["throttle"],
    "AuthorizeSecurityGroupIngress": ["unavailable"],
    "ImportKeyPair": ["throttle"],
    "RunInstances": ["throttle", "unavailable"],
    "AllocateAddress": ["throttle"],
    "AssociateAddress": ["unavailable"],
}
LOST = {
    "CreateSecurityGroup": ["lost"],
    "AuthorizeSecurityGroupIngress": ["lost"],
    "ImportKeyPair": ["lost"],
    "AllocateAddress": ["lost"],
    "AssociateAddress": ["lost"],
}


@pytest.mark.parametrize(("name", "faults"), [("throttled", REFUSED), ("lost", LOST)])
def test_provision_is_retried_without_duplicates(
    name: str,
    faults: dict[str, list[str]],
    moto_server: MotoServer,
    sshd_port: int,
    aws_account: AwsAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = write_config(tmp_path, name, sshd_port)
    plan = FaultPlan()
    for action, kinds in faults.items():
        plan.add(action, *kinds)
    with fault_proxy(moto_server.endpoint, plan) as proxy:
        for key, value in make_aws_env(proxy).items():
            monkeypatch.setenv(key, value)
        code, document = run_cli(capsys, "provision", "-c", str(config))
        assert code == 0, document["error"]
        assert plan.unserved() == {}, "the tool never made these calls"
        made = owned(moto_server.endpoint, name)
        assert {kind: len(ids) for kind, ids in made.items()} == {
            "instance": 1, "elastic_ip": 1, "security_group": 1, "key_pair": 1,
        }  # fmt: skip

        code, again = run_cli(capsys, "provision", "-c", str(config))
        assert code == 0, again["error"]
        assert again["changes"] == [], "a re-run after the faults finds nothing to repair"
        assert owned(moto_server.endpoint, name) == made

        code, gone = run_cli(capsys, "destroy", "--yes", "-c", str(config))
        assert code == 0, gone["error"]
    assert all(ids == [] for ids in owned(moto_server.endpoint, name).values())


def test_a_group_a_concurrent_run_made_first_is_adopted_with_its_generation(
    moto_server: MotoServer,
    sshd_port: int,
    aws_account: AwsAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another run creates the group between our facts and our CreateSecurityGroup: we adopt
    it and launch with its generation, so both runs send the same ClientToken (one host)."""
    from bastion.aws import tags as t

    name, theirs = "raced", 1_234_567_890
    config = write_config(tmp_path, name, sshd_port)
    ec2: Any = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    ).client("ec2", endpoint_url=moto_server.endpoint)

    def other_run_first() -> None:
        tags = {**t.common_tags(name), t.GENERATION_TAG: str(theirs)}
        ec2.create_security_group(
            GroupName=f"bastion-{name}", Description="the other run's", VpcId=aws_account.vpc_id,
            TagSpecifications=[{"ResourceType": "security-group",
                                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
        )  # fmt: skip

    plan = FaultPlan()
    plan.before["CreateSecurityGroup"] = other_run_first
    with fault_proxy(moto_server.endpoint, plan) as proxy:
        for key, value in make_aws_env(proxy).items():
            monkeypatch.setenv(key, value)
        code, document = run_cli(capsys, "provision", "-c", str(config))
        assert code == 0, document["error"]
        made = owned(moto_server.endpoint, name)
        assert len(made["security_group"]) == 1 and len(made["instance"]) == 1
        instance = ec2.describe_instances(InstanceIds=made["instance"])["Reservations"][0][
            "Instances"
        ][0]
        assert instance["ClientToken"] == t.client_token(name, theirs)
        assert {"Key": t.GENERATION_TAG, "Value": str(theirs)} in instance["Tags"]
        assert run_cli(capsys, "destroy", "--yes", "-c", str(config))[0] == 0
