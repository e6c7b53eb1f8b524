"""The lab's AWS account (moto_server, seeded by seed_account) without the network lab:
Debian's public parameters resolve, so the default `bastion.ami` launches Debian 13."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bastion.aws import tags as t
from tests.faults.conftest import run_cli
from tests.lab import AwsAccount, MotoServer
from tests.lab.aws import DEBIAN_PARAMETERS, REGION, aws_env


def _client(endpoint: str, service: str) -> Any:
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    return session.client(service, endpoint_url=endpoint)  # type: ignore[call-overload]


@pytest.mark.parametrize("parameter", list(DEBIAN_PARAMETERS))
def test_each_debian_parameter_names_an_image_of_its_own(
    parameter: str, moto_endpoint: str, aws_account: AwsAccount
) -> None:
    value = _client(moto_endpoint, "ssm").get_parameter(Name=parameter)["Parameter"]["Value"]
    assert value == aws_account.images[parameter]
    (image,) = _client(moto_endpoint, "ec2").describe_images(ImageIds=[value])["Images"]
    assert image["Name"].startswith(DEBIAN_PARAMETERS[parameter])
    assert len(set(aws_account.images.values())) == len(DEBIAN_PARAMETERS)


def test_moto_refuses_other_reserved_names_as_aws_does(moto_endpoint: str) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="AccessDenied"):
        _client(moto_endpoint, "ssm").put_parameter(
            Name="/aws/reference/secretsmanager/x", Value="v", Type="String"
        )


@pytest.fixture
def sshd_port() -> Iterator[int]:
    """A loopback port that accepts connections: where provision waits for "sshd" to answer."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield int(listener.getsockname()[1])


def test_provision_from_nothing_with_the_default_image_launches_debian_13(
    moto_server: MotoServer,
    aws_account: AwsAccount,
    sshd_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = tmp_path / "admin"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    config = tmp_path / "bastion.toml"
    config.write_text(
        f"""name = "default-image"
[warehouse]
redshift_cluster = "{aws_account.cluster_id}"
[bastion]
admin_key = "{key}"
admin_cidrs = ["198.51.100.7/32"]
address = "127.0.0.1"
ssh_port = {sshd_port}
"""
    )
    for name, value in aws_env(moto_server.endpoint).items():
        monkeypatch.setenv(name, value)
    code, document = run_cli(capsys, "provision", "-c", str(config))
    try:
        assert code == 0, document["error"]
        ec2 = _client(moto_server.endpoint, "ec2")
        filters = [{"Name": "tag:bastion:name", "Values": ["default-image"]}]
        (reservation,) = ec2.describe_instances(Filters=filters)["Reservations"]
        (instance,) = reservation["Instances"]
        assert instance["ImageId"] == aws_account.ami_id
        assert t.tag_map(instance)[t.AMI_TAG] == aws_account.ami_id
    finally:
        run_cli(capsys, "destroy", "--yes", "-c", str(config))
