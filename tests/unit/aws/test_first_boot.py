"""The first-boot user data of a host on a non-22 ssh_port: sshd listens there from its first
boot, whether sshd's service binds the port or a socket (ssh.socket) hands it to sshd."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from bastion.aws.plan import first_boot_user_data

SYSTEMCTL = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
  *"is-active --quiet ssh.socket"*|*"is-enabled --quiet ssh.socket"*) [ -n "$SOCKET" ] ;;
  *) exit 0 ;;
esac
"""


def _run_first_boot(tmp_path: Path, *, socket: bool) -> tuple[list[str], Path]:
    """The runcmd script with the host's /etc/systemd and /run/systemd under tmp_path and a
    systemctl that says whether ssh.socket is in use; returns its calls and the /etc root."""
    (script,) = yaml.safe_load(first_boot_user_data(2222))["runcmd"]
    etc, run = tmp_path / "etc", tmp_path / "run"
    (run / "systemd" / "system").mkdir(parents=True)
    script = script.replace("/etc/systemd/", f"{etc}/systemd/").replace(
        "/run/systemd/", f"{run}/systemd/"
    )
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "systemctl").write_text(SYSTEMCTL)
    (stubs / "systemctl").chmod(0o755)
    calls = tmp_path / "calls"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "CALLS": str(calls), "SOCKET": "y" if socket else ""}
    subprocess.run(["sh", "-c", script], check=True, env=env)
    return calls.read_text().splitlines(), etc


def test_the_user_data_sets_the_port_in_sshd_config() -> None:
    document = yaml.safe_load(first_boot_user_data(2222))
    (written,) = document["write_files"]
    assert written["path"] == "/etc/ssh/sshd_config.d/00-bastion-port.conf"
    assert written["content"] == "Port 2222\n"
    assert first_boot_user_data(22) == ""


def test_a_plain_sshd_service_is_restarted(tmp_path: Path) -> None:
    calls, etc = _run_first_boot(tmp_path, socket=False)
    assert calls[-1] == "restart sshd.service"
    assert not (etc / "systemd").exists()


def test_a_socket_activated_sshd_gets_the_port_on_its_socket(tmp_path: Path) -> None:
    calls, etc = _run_first_boot(tmp_path, socket=True)
    dropin = etc / "systemd" / "system" / "ssh.socket.d" / "zz-dbt-bastion.conf"
    assert dropin.read_text().splitlines()[1:] == [
        "[Socket]",
        "ListenStream=",
        "ListenStream=2222",
        "BindIPv6Only=both",
    ]
    assert calls[-4:] == [
        "daemon-reload",
        "stop ssh.service",
        "restart ssh.socket",
        "start ssh.service",
    ]
