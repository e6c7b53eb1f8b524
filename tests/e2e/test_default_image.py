"""`up` from nothing with the defaults a new user gets: no `bastion.ami`, no `admin_user`.

The default image is Debian 13, read from Debian's public SSM parameter (the lab's moto
publishes it as AWS does), and the admin is Debian's `admin`: the lab host is that very
release, booted with its own systemd, so the whole job runs as it would on the real image.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from bastion.tunnel.verify_key import EphemeralKey
from tests.e2e.cli import run_json
from tests.lab import Lab, lab_env

pytestmark = pytest.mark.e2e
LAB_OSES = ("debian-13",)  # the default image's release
DEBIAN_13 = "/aws/service/debian/release/13/latest/amd64"


@pytest.fixture
def config(lab: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    lab.restart_host()
    key = EphemeralKey.generate("defaults")
    path = tmp_path / "bastion.toml"
    path.write_text(
        f"""\
name = "defaults"
[warehouse]
redshift_cluster = "prod"
host = "{lab.warehouse_host}"
port = {lab.warehouse_port}
database = "{lab.db_name}"
user = "{lab.db_user}"
[bastion]
admin_key = "{lab.admin_key}"
admin_cidrs = ["{lab.operator_address}/32"]
address = "{lab.bastion_address}"
[tunnel]
public_keys = ["{key.public_line}"]
"""
    )
    for name, value in lab_env(lab).items():
        monkeypatch.setenv(name, value)
    try:
        yield path
    finally:
        lab.restart_host()


def test_up_with_the_defaults_launches_debian_13_and_logs_in_as_admin(
    lab: Lab, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lab.aws is not None
    logins = lab.sshd_log().count(f"Accepted publickey for {lab.admin_user} ")
    code, document = run_json(config, capsys, "up")
    try:
        assert code == 0, document["error"]
        ec2 = boto3.client("ec2", region_name="us-east-1")
        by_name = [{"Name": "tag:bastion:name", "Values": ["defaults"]}]
        (reservation,) = ec2.describe_instances(Filters=by_name)["Reservations"]
        (instance,) = reservation["Instances"]
        assert instance["ImageId"] == lab.aws.images[DEBIAN_13]
        assert "from ami-" in next(
            c["detail"] for c in document["changes"] if c["resource"] == "instance"
        )
        assert lab.admin_user == "admin"
        assert lab.sshd_log().count("Accepted publickey for admin ") > logins
        assert all(hop["ok"] for hop in document["verify"]["hops"])
    finally:
        assert run_json(config, capsys, "destroy", "--yes")[0] == 0
