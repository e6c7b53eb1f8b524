"""The configured host, judged from outside: testinfra for its state, the tunnel user's
real sessions for what sshd allows, and ssh-audit (a third party) for its crypto."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest

from bastion.host.connection import KEEPALIVE_SECONDS, HostKeyPins, connect, open_admin
from tests.host.conftest import LabHost

pytestmark = pytest.mark.lab
# The crypto and ssh-audit checks run on the oldest OpenSSH around too (Debian 11: 8.4).
LAB_OSES = ("debian-13", "debian-12", "debian-11")
testinfra = pytest.importorskip("testinfra")


@pytest.fixture(scope="module")
def host(configured_host: LabHost) -> Any:
    lab = configured_host.lab
    return testinfra.get_host(
        f"paramiko://{lab.admin_user}@{lab.bastion_address}:{lab.ssh_port}",
        ssh_identity_file=str(lab.admin_key),
        sudo=True,
    )


@pytest.fixture(scope="module")
def tunnel(configured_host: LabHost) -> Iterator[Any]:
    """A session as the tunnel user, with the key the test holds (what dbt Cloud does)."""
    settings = configured_host.settings()
    conn = connect(
        configured_host.lab.bastion_address, settings.bastion.ssh_port, settings.first_tunnel.user,
        configured_host.folder / "tunnel-test", HostKeyPins(expected=(), learn=False),
    )  # fmt: skip
    yield conn
    conn.close()


def test_tunnel_user_and_group(host: Any) -> None:
    user = host.user("dbtcloud")
    assert user.exists and user.group == "dbtcloud"
    assert user.shell == "/usr/sbin/nologin"
    assert user.home == "/home/dbtcloud"


@pytest.mark.parametrize(
    ("path", "mode"),
    [("/home/dbtcloud/.ssh", 0o700), ("/home/dbtcloud/.ssh/authorized_keys", 0o600)],
)
def test_modes_and_owners(host: Any, path: str, mode: int) -> None:
    entry = host.file(path)
    assert entry.mode == mode
    assert (entry.user, entry.group) == ("dbtcloud", "dbtcloud")


def test_every_key_is_restricted_to_the_warehouse(host: Any, configured_host: LabHost) -> None:
    lab = configured_host.lab
    lines = [ln for ln in host.file("/home/dbtcloud/.ssh/authorized_keys").content_string.splitlines()
             if ln and not ln.startswith("#")]  # fmt: skip
    assert lines
    prefix = f'restrict,port-forwarding,permitopen="{lab.warehouse_host}:{lab.warehouse_port}" ssh-'
    assert all(line.startswith(prefix) for line in lines)


def _sshd_t(host: Any, spec: str = "") -> dict[str, str]:
    out = host.check_output(f"sshd -T {spec}")
    return {k: v for k, _, v in (line.partition(" ") for line in out.splitlines())}


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("allowtcpforwarding", "local"),
        ("permittty", "no"),
        ("permitlisten", "none"),
        ("allowagentforwarding", "no"),
        ("allowstreamlocalforwarding", "no"),
        ("x11forwarding", "no"),
        ("permittunnel", "no"),
        ("forcecommand", "/usr/sbin/nologin"),
        ("clientaliveinterval", "30"),
        ("clientalivecountmax", "10"),
        ("authorizedkeysfile", ".ssh/authorized_keys .ssh/authorized_keys.verify"),
    ],
)
def test_sshd_t_for_the_tunnel_user(host: Any, keyword: str, value: str) -> None:
    assert _sshd_t(host, "-C user=dbtcloud,host=52.45.144.63,addr=52.45.144.63")[keyword] == value


def test_sshd_t_permit_open_is_the_warehouse_alone(host: Any, configured_host: LabHost) -> None:
    lab = configured_host.lab
    out = host.check_output("sshd -T -C user=dbtcloud,host=52.45.144.63,addr=52.45.144.63")
    assert [ln for ln in out.splitlines() if ln.startswith("permitopen ")] == [
        f"permitopen {lab.warehouse_host}:{lab.warehouse_port}"
    ]


@pytest.mark.parametrize(
    ("keyword", "value"),
    [
        ("permitrootlogin", "no"),
        ("passwordauthentication", "no"),
        ("kbdinteractiveauthentication", "no"),
        ("authenticationmethods", "publickey"),
        ("allowtcpforwarding", "no"),
        ("authorizedkeyscommand", "none"),
        ("usepam", "yes"),
    ],
)
def test_sshd_t_globally(host: Any, keyword: str, value: str) -> None:
    assert _sshd_t(host)[keyword] == value


def test_allow_users_names_admin_and_tunnel_sources(host: Any, configured_host: LabHost) -> None:
    out = host.check_output("sshd -T")
    allowed = [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("allowusers ")]
    operator = configured_host.lab.operator_address
    assert (
        f"{configured_host.lab.admin_user}@{operator}" in allowed
        and f"dbtcloud@{operator}" in allowed
    )
    assert "dbtcloud@52.45.144.63" in allowed
    assert not any(a.startswith(f"{configured_host.lab.admin_user}@52.") for a in allowed)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_forward_to_the_warehouse_and_query(tunnel: Any, configured_host: LabHost) -> None:
    import psycopg

    lab = configured_host.lab
    port = _free_port()
    with tunnel.connection.forward_local(port, lab.warehouse_port, lab.warehouse_host):
        deadline = time.monotonic() + 5
        while True:  # forward_local's listener may appear after it returns
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        with psycopg.connect(host="127.0.0.1", port=port, dbname=lab.db_name, user=lab.db_user,
                             password=lab.db_password, connect_timeout=5) as db:  # fmt: skip
            assert db.execute("SELECT 1").fetchone() == (1,)


def test_forward_elsewhere_is_refused(tunnel: Any, configured_host: LabHost) -> None:
    transport = tunnel.connection.transport
    with pytest.raises(paramiko.ChannelException):
        transport.open_channel(
            "direct-tcpip", (configured_host.lab.bastion_address, 22), ("127.0.0.1", 0)
        )


def test_a_command_or_shell_gets_nologin(tunnel: Any) -> None:
    channel = tunnel.connection.transport.open_session()
    channel.exec_command("id")
    output = channel.makefile().read().decode()
    assert channel.recv_exit_status() != 0
    assert "uid=" not in output


def test_a_pty_is_refused(tunnel: Any) -> None:
    channel = tunnel.connection.transport.open_session()
    with pytest.raises(paramiko.SSHException):
        channel.get_pty()
    channel.close()


def test_a_remote_forward_is_refused(tunnel: Any) -> None:
    with pytest.raises(paramiko.SSHException):
        tunnel.connection.transport.request_port_forward("", 0)


def test_the_admin_still_logs_in_and_has_sudo(configured_host: LabHost) -> None:
    settings = configured_host.settings()
    with open_admin(settings, configured_host.lab.bastion_address) as conn:
        assert conn.sudo_script("id -u").stdout.strip() == "0"
        # the login ran over bastion's own socket, Nagle's algorithm off (bastion.net)
        sock = conn.connection.transport.sock
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        # and it sends SSH keepalives while a step waits quietly (cloud-init: up to 900 s)
        packetizer = conn.connection.transport.packetizer
        assert packetizer._Packetizer__keepalive_interval == KEEPALIVE_SECONDS > 0


def _ssh_audit(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("ssh-audit") or str(Path(sys.executable).with_name("ssh-audit"))
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120)


def test_ssh_audit_finds_no_failure_with_compatible_crypto(configured_host: LabHost) -> None:
    lab = configured_host.lab
    result = _ssh_audit("-n", "-p", str(lab.ssh_port), lab.bastion_address)
    assert "[fail]" not in result.stdout, result.stdout
    # ssh-audit's exit codes: 0 good, 2 warnings only (post-quantum notes), 3 failure, 1 no connection
    assert result.returncode in (0, 2), result.stdout
    assert "(kex) diffie-hellman-group-exchange-sha256 (3072-bit)" in result.stdout


# The newest ssh-audit (3.9) built-in policy each lab release can pass; Debian 11 has none.
HARDENED_POLICY = {
    ("debian", "13"): "Hardened Debian 13 (version 1)",
    ("debian", "12"): "Hardened Debian 12 (version 3)",
}


def test_ssh_audit_hardened_policy_passes(configured_host: LabHost, host: Any) -> None:
    """Last in this module: switches the shared host to hardened crypto."""
    release = dict(
        line.split("=", 1) for line in host.file("/etc/os-release").content_string.splitlines()
        if "=" in line
    )  # fmt: skip
    policy = HARDENED_POLICY.get((release["ID"].strip('"'), release["VERSION_ID"].strip('"')))
    configured_host.rewrite(public_keys=[(configured_host.folder / "tunnel-test.pub").read_text().strip()],
                            ssh_crypto="hardened")  # fmt: skip
    code, document, stderr = configured_host.cli("configure")
    assert code == 0, stderr
    assert "host_keys" in {c["resource"] for c in document["changes"]}
    lab = configured_host.lab
    if policy is None:  # no built-in policy: nothing ssh-audit fails is what can be checked
        result = _ssh_audit("-n", "-p", str(lab.ssh_port), lab.bastion_address)
        assert "[fail]" not in result.stdout and result.returncode in (0, 2), result.stdout
    else:
        result = _ssh_audit("-P", policy, "-p", str(lab.ssh_port), lab.bastion_address)
        assert "Passed" in result.stdout and result.returncode == 0, result.stdout
    assert configured_host.cli("configure")[1]["changed"] is False
