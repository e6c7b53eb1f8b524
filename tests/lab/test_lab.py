"""The lab itself: each test is one fact the rest of the suite relies on."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import boto3
import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.lab import Lab, start_lab
from tests.lab.network import VPC_RANGE, Topology
from tests.lab.state import CACHE_ROOT

pytestmark = pytest.mark.lab


def admin_client(lab: Lab, known_hosts: list[str] | None = None) -> paramiko.SSHClient:
    """The admin's SSH session: host keys pinned, no agent, no key but the lab's."""
    client = paramiko.SSHClient()
    for line in lab.known_hosts_lines if known_hosts is None else known_hosts:
        entry = paramiko.hostkeys.HostKeyEntry.from_line(line)
        assert entry is not None and entry.key is not None
        for hostname in entry.hostnames:
            client.get_host_keys().add(hostname, entry.key.get_name(), entry.key)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        lab.bastion_address,
        port=lab.ssh_port,
        username=lab.admin_user,
        key_filename=str(lab.admin_key),
        allow_agent=False,
        look_for_keys=False,
        timeout=5,
    )
    return client


def run_as_admin(lab: Lab, command: str) -> int:
    with admin_client(lab) as client:
        _, stdout, _ = client.exec_command(command, timeout=10)
        return stdout.channel.recv_exit_status()


def psql_from_bastion(lab: Lab) -> subprocess.CompletedProcess[str]:
    """Log in to the warehouse as the lab's db user from the bastion's network (the host
    itself has no psql, as a cloud image has none): this machine's psql in its namespace."""
    netns = Topology(lab.state.name, lab.state.slot).bastion_ns
    return subprocess.run(
        ["ip", "netns", "exec", netns, "psql", "-h", lab.warehouse_host, "-p",
         str(lab.warehouse_port), "-U", lab.db_user, "-d", lab.db_name, "-tAc", "select 1"],
        env={**os.environ, "PGPASSWORD": lab.db_password, "PGCONNECT_TIMEOUT": "3"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


# --- one lab: host, warehouse, AWS ---------------------------------------------------------


def test_admin_logs_in_with_pinned_host_key_and_sudo(lab: Lab) -> None:
    assert run_as_admin(lab, "sudo -n true") == 0


def test_admin_can_upload_over_sftp(lab: Lab) -> None:
    with (
        admin_client(lab) as client,
        client.open_sftp() as sftp,
        sftp.open("uploaded.txt", "w") as remote,
    ):
        remote.write("from the operator\n")
    assert lab.host_exec(f"cat /home/{lab.admin_user}/uploaded.txt").stdout == "from the operator\n"


def test_a_wrong_host_key_is_rejected(lab: Lab) -> None:
    impostor = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    with pytest.raises(paramiko.BadHostKeyException):
        admin_client(lab, known_hosts=[f"{lab.bastion_address} {impostor}"])


def test_root_login_is_refused(lab: Lab) -> None:
    assert "permitrootlogin no" in lab.host_exec("sshd -T").stdout


def test_operator_cannot_reach_the_warehouse_directly(lab: Lab) -> None:
    """Refused by the route at once (EHOSTUNREACH), not left to time out (no errno)."""
    with pytest.raises(OSError) as refused:
        socket.create_connection((lab.warehouse_host, lab.warehouse_port), timeout=3)
    assert refused.value.errno == errno.EHOSTUNREACH


def test_bastion_does_not_forward(lab: Lab) -> None:
    assert lab.host_exec("cat /proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"


def test_db_user_logs_in_from_the_bastion(lab: Lab) -> None:
    assert psql_from_bastion(lab).stdout.strip() == "1"


def test_database_superuser_sees_the_lab_database(lab: Lab) -> None:
    with lab.database_superuser() as conn:
        owner = conn.execute(
            "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", (lab.db_name,)
        ).fetchone()
    assert owner == (lab.db_user,)


def test_host_exec_is_root_on_the_host(lab: Lab) -> None:
    assert lab.host_exec("id -u; hostname").stdout.split() == ["0", "bastion"]


def test_the_host_boots_its_own_release_under_its_own_systemd(lab: Lab) -> None:
    release = lab.host_exec(". /etc/os-release; echo $ID-$VERSION_ID; cat /proc/1/comm").stdout
    assert release.split() == [lab.os, "systemd"]
    state = lab.host_exec("systemctl is-system-running; systemctl --failed --plain --no-legend")
    assert state.stdout.split() == ["running"], state.stdout


def test_the_host_has_a_private_dev_and_no_getty(lab: Lab) -> None:
    """The machine's terminals are not the host's: no getty may start on them."""
    units = lab.host_exec("systemctl list-units --plain --no-legend '*getty*.service'").stdout
    assert units.strip() == ""
    assert lab.host_exec("test -e /dev/tty1 || test -e /dev/console").returncode != 0


def test_systemctl_reload_ssh_sends_sighup_to_sshd(lab: Lab) -> None:
    before = lab.sshd_log().count("Received SIGHUP")
    assert lab.host_exec("systemctl reload ssh").returncode == 0
    deadline = time.monotonic() + 30
    while lab.sshd_log().count("Received SIGHUP") == before:
        assert time.monotonic() < deadline, "sshd logged no SIGHUP"
        time.sleep(0.05)


def test_cloud_init_is_not_there(lab: Lab) -> None:
    assert lab.host_exec("command -v cloud-init").returncode != 0


@pytest.fixture
def lab_aws_env(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment as `bastion` would get it: boto3 finds moto by itself."""
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    for name, value in lab.aws_env().items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("lab_aws_env")
def test_moto_answers_with_the_seeded_vpc(lab: Lab) -> None:
    assert lab.aws is not None
    vpcs = boto3.client("ec2").describe_vpcs(VpcIds=[lab.aws.vpc_id])["Vpcs"]
    assert [vpc["CidrBlock"] for vpc in vpcs] == [VPC_RANGE]


@pytest.mark.usefixtures("lab_aws_env")
def test_moto_answers_with_the_redshift_cluster(lab: Lab) -> None:
    assert lab.aws is not None
    cluster = boto3.client("redshift").describe_clusters(ClusterIdentifier="prod")["Clusters"][0]
    assert cluster["Endpoint"]["Port"] == 5439
    assert [g["VpcSecurityGroupId"] for g in cluster["VpcSecurityGroups"]] == [
        lab.aws.warehouse_security_group_id
    ]


@pytest.mark.usefixtures("lab_aws_env")
def test_moto_resolves_the_al2023_parameter_to_a_known_image(lab: Lab) -> None:
    name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
    image = boto3.client("ssm").get_parameter(Name=name)["Parameter"]["Value"]
    assert boto3.client("ec2").describe_images(ImageIds=[image])["Images"]


# --- a second lab beside the session's ------------------------------------------------------


def cache_entries() -> dict[str, tuple[int, int]]:
    """Every item in the machine's lab cache, by name, with its inode and mtime: a rebuild
    (a new directory renamed into place) changes both."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in CACHE_ROOT.iterdir()}


@dataclass
class Started:
    lab: Lab
    cache_before: dict[str, tuple[int, int]]
    cache_after: dict[str, tuple[int, int]]


@pytest.fixture(scope="module")
def second(lab: Lab) -> Iterator[Started]:
    """A second lab beside the session's, whose start warmed the cache."""
    before = cache_entries()
    started = Started(start_lab(with_aws=False, os_name=lab.os), before, cache_entries())
    yield started
    started.lab.stop()


@pytest.fixture(scope="module")
def second_lab(second: Started) -> Lab:
    return second.lab


def test_two_labs_run_side_by_side(lab: Lab, second_lab: Lab) -> None:
    assert [run_as_admin(lab, "true"), run_as_admin(second_lab, "true")] == [0, 0]


def test_a_warm_lab_is_built_from_the_cache_without_rebuilding_it(second: Started) -> None:
    assert second.cache_before, "the session's lab left no cache"
    assert second.cache_after == second.cache_before


@dataclass
class Restart:
    old_fingerprints: list[str]
    marker_left: int


@pytest.fixture(scope="module")
def restart(second_lab: Lab) -> Restart:
    old = list(second_lab.host_key_fingerprints)
    second_lab.host_exec("touch /etc/marker-before-restart")
    second_lab.restart_host()
    return Restart(old, second_lab.host_exec("test -e /etc/marker-before-restart").returncode)


def test_restart_host_makes_new_host_keys(second_lab: Lab, restart: Restart) -> None:
    assert set(second_lab.host_key_fingerprints).isdisjoint(restart.old_fingerprints)


def test_restart_host_forgets_what_was_changed(restart: Restart) -> None:
    assert restart.marker_left != 0


def test_admin_key_still_works_after_restart(second_lab: Lab, restart: Restart) -> None:
    assert run_as_admin(second_lab, "sudo -n true") == 0


def test_stopped_database_refuses_logins(second_lab: Lab) -> None:
    second_lab.stop_database()
    try:
        assert psql_from_bastion(second_lab).returncode != 0
    finally:
        second_lab.start_database()
