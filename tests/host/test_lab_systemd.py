"""The lab host's own systemd: sshd started by ssh.socket moves its port in two phases, a
unit drop-in that puts a key source on sshd's command line is found and taken off, the
rollback timer outlives the admin's session, and automatic updates are started by timers."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from bastion.endpoint import Endpoint
from bastion.errors import SshError
from bastion.host.apply import apply_script, run_apply
from bastion.host.connection import HostKeyPins, HostUnreachable, connect, open_admin
from bastion.host.paths import ROLLBACK_TOKEN, STATE_DIR
from bastion.host.plan import build_plan
from bastion.host.stage import read_facts
from bastion.host.systemd import DROPIN
from tests.host.conftest import LabHost, make_key

pytestmark = pytest.mark.lab

SSHD_CONFIG = "/etc/ssh/sshd_config"


def _resources(document: dict[str, Any]) -> dict[str, str]:
    return {c["resource"]: c["detail"] for c in document["changes"]}


def _socket_moves(document: dict[str, Any]) -> list[str]:
    """The ssh_socket changes, in order, each without the drop-in's path."""
    return [
        c["detail"].split(" (")[0] for c in document["changes"] if c["resource"] == "ssh_socket"
    ]


PHASES = [
    "ssh.socket listens on 22 -> 22, 2222",  # phase one
    "ssh.socket listens on 22, 2222 -> 2222",  # phase two, once 2222 was proven
]


def _socket_ports(host: LabHost) -> set[int]:
    listen = host.sh("systemctl show -p Listen --value ssh.socket")
    return {int(port) for port in re.findall(r":(\d+) \(Stream\)", listen)}


def _listening(host: LabHost) -> set[int]:
    table = host.sh("ss -ltnH")
    return {int(port) for port in re.findall(r"\S*:(\d+)\s+\S+\s*$", table, re.MULTILINE)}


def _wait_for(host: LabHost, command: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while host.lab.host_exec(command).returncode != 0:
        assert time.monotonic() < deadline, f"never true on the host: {command}"
        time.sleep(0.2)


def test_a_socket_activated_sshd_moves_its_port_in_two_phases(lab_host: LabHost) -> None:
    """Debian switched to ssh.socket (as Ubuntu 22.10+ runs by default): the socket, not
    sshd_config, holds the port, so the move is the socket's: both ports, then the new."""
    lab_host.sh("systemctl disable --now ssh.service && systemctl enable --now ssh.socket")
    code, first, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    assert "ssh_socket" not in _resources(first)  # on ssh_port already
    assert lab_host.sh("systemctl is-active ssh.socket").strip() == "active"

    lab_host.rewrite(ssh_port=2222)
    code, plan, stderr = lab_host.cli("plan")
    assert code == 0, stderr
    assert _socket_moves(plan) == PHASES

    code, moved, stderr = lab_host.cli("configure")

    assert code == 0, stderr + lab_host.lab.host_exec("journalctl --no-pager -n 80").stdout
    assert _socket_moves(moved) == PHASES
    assert _socket_ports(lab_host) == {2222}
    assert 22 not in _listening(lab_host) and 2222 in _listening(lab_host)
    dropin = lab_host.lab.host_file(f"/etc/systemd/system/ssh.socket.d/{DROPIN}")
    assert "ListenStream=\nListenStream=2222\n" in dropin
    code, _, stderr = lab_host.cli("verify")
    assert code == 0, stderr
    assert lab_host.cli("configure")[1]["changed"] is False


EIC_KEYS = """#!/bin/sh
# An AuthorizedKeysCommand as EC2 Instance Connect installs one: a key for any user it names.
[ "$1" = dbtcloud ] && cat /usr/local/lib/eic-key.pub
exit 0
"""
EIC_DROPIN = """[Service]
ExecStart=
ExecStart=/usr/sbin/sshd -D -o "AuthorizedKeysCommand /usr/local/bin/eic-keys %%u" -o "AuthorizedKeysCommandUser nobody" $SSHD_OPTS
"""
EIC_PATH = "/etc/systemd/system/ssh.service.d/ec2-instance-connect.conf"


def _logs_in(host: LabHost, user: str, key: Any) -> bool:
    """Whether sshd accepts `key` for `user` (authentication only; the host key pinned)."""
    pins = HostKeyPins(expected=tuple(host.lab.host_key_fingerprints), learn=False)
    try:
        connect(host.lab.bastion_address, 22, user, key, pins).close()
    except HostUnreachable:
        raise
    except SshError as refused:
        assert "refused the key" in refused.message, refused.message
        return False
    return True


def test_a_key_source_on_sshd_command_line_is_found_and_taken_off(lab_host: LabHost) -> None:
    """A unit drop-in (not at EC2 Instance Connect's own paths) adds an AuthorizedKeysCommand
    on sshd's command line, which beats sshd_config's `AuthorizedKeysCommand none`."""
    key = make_key(lab_host.folder, "eic-served")
    lab_host.lab.host_exec(
        "cat > /usr/local/bin/eic-keys && chmod 755 /usr/local/bin/eic-keys", input=EIC_KEYS
    )
    lab_host.lab.host_exec(
        "cat > /usr/local/lib/eic-key.pub", input=key.with_suffix(".pub").read_text()
    )
    lab_host.lab.host_exec(
        f"mkdir -p {EIC_PATH.rsplit('/', 1)[0]} && cat > {EIC_PATH}", input=EIC_DROPIN
    )
    lab_host.sh("useradd -m dbtcloud && systemctl daemon-reload && systemctl restart ssh.service")
    assert _logs_in(lab_host, "dbtcloud", key), "the drop-in's key source does not work"

    code, plan, stderr = lab_host.cli("plan")
    assert code == 0, stderr
    detail = _resources(plan)["sshd_command_line"]
    assert f"-o AuthorizedKeysCommand /usr/local/bin/eic-keys %u ({EIC_PATH})" in detail

    code, _, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    shown = lab_host.sh("systemctl show -p ExecStart --value ssh.service")
    assert "argv[]=/usr/sbin/sshd -D ;" in shown and " -o " not in shown
    assert not _logs_in(lab_host, "dbtcloud", key)
    assert lab_host.cli("configure")[1]["changed"] is False
    # the admin's drop-in stays where it was, overridden by the tool's, sorting after it
    assert lab_host.lab.host_exec(f"test -e {EIC_PATH}").returncode == 0


def test_the_rollback_timer_outlives_the_admin_session(lab_host: LabHost) -> None:
    """logind kills a session's processes when it ends (KillUserProcesses=yes): the timer
    is a unit of systemd's own, so a run whose connection ends after the reload, before the
    fresh admin login, still gets the previous sshd_config back, by the host alone."""
    lab_host.sh(
        "mkdir -p /etc/systemd/logind.conf.d && printf '[Login]\\nKillUserProcesses=yes\\n' "
        "> /etc/systemd/logind.conf.d/kill.conf && systemctl restart systemd-logind"
    )
    original = lab_host.lab.host_file(SSHD_CONFIG)
    admin = lab_host.lab.admin_user
    settings = lab_host.settings()
    warehouse = Endpoint(settings.warehouse.host, settings.warehouse.effective_port)
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        facts = read_facts(settings, conn)
        host = build_plan(settings, facts, warehouse)
        script = apply_script(settings, facts, host, "52.45.144.63", rollback_seconds=30)
        run_apply(conn, script)
        assert lab_host.lab.host_file(SSHD_CONFIG) != original
    # the connection is closed: its session ends, and logind kills what was left in it
    _wait_for(lab_host, f"! loginctl list-sessions --no-legend | grep -qw {admin}")
    timers = "systemctl list-units --no-legend --plain --state=active 'dbt-bastion-rollback-*'"
    assert "dbt-bastion-rollback-" in lab_host.sh(timers), "the timer ended with the session"
    assert lab_host.lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 0

    _wait_for(lab_host, f"! test -e {ROLLBACK_TOKEN}", seconds=60)

    assert "rolled back" in lab_host.lab.host_file(f"{STATE_DIR}/rollback.log")
    assert lab_host.lab.host_file(SSHD_CONFIG) == original
    assert "restored" in lab_host.sh("journalctl -q --no-pager -o cat -u 'dbt-bastion-rollback-*'")


def test_automatic_updates_need_their_timers_enabled(lab_host: LabHost) -> None:
    lab_host.sh("systemctl disable --now apt-daily-upgrade.timer")
    code, plan, stderr = lab_host.cli("plan")
    assert code == 0, stderr
    assert "apt-daily-upgrade.timer enabled" in _resources(plan)["auto_updates"]

    code, _, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    assert lab_host.sh("systemctl is-enabled apt-daily-upgrade.timer").strip() == "enabled"
    assert lab_host.sh("systemctl is-active apt-daily-upgrade.timer").strip() == "active"
    assert "auto_updates" not in _resources(lab_host.cli("plan")[1])
