"""Issue 17 on a lab host: who used the tunnel, told by `bastion sessions`, and key rotation
that cannot cut a key in use.

Two tunnel sessions with two keys (one from the operator's address, one from a second
address of the operator inside extra_cidrs, still open), a forward to another target, a
login from an address sshd does not admit: `sessions --json` lists exactly those, as the
test made them. Then `keys list`, `keys remove` (refused for the key of the open session and
for the key just used, done with --force, done for a key never used) and `doctor`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bastion.host.connection import open_admin
from bastion.host.log_read import read_sshd_log
from bastion.host.sshd_log import PART, read_field_entries
from tests.host.conftest import LabHost, make_key
from tests.host.tunnel_clients import Span, TunnelSession, key_fingerprint, now, refused_login

pytestmark = pytest.mark.lab

USER = "dbtcloud"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _pub(path: Path) -> str:
    return path.with_suffix(".pub").read_text().strip()


@pytest.fixture
def addresses(lab_host: LabHost) -> Iterator[tuple[str, str]]:
    """(a second operator address inside extra_cidrs, one outside every allowed source)."""
    with lab_host.lab.extra_operator_address(9) as extra, lab_host.lab.extra_operator_address(13) as outsider:
        yield extra, outsider


@pytest.fixture
def keys(lab_host: LabHost) -> dict[str, Path]:
    return {name: make_key(lab_host.folder, name) for name in ("dbt-cloud-old", "dbt-cloud-new", "unused")}


@pytest.fixture
def configured(lab_host: LabHost, keys: dict[str, Path], addresses: tuple[str, str]) -> LabHost:
    prefix = lab_host.lab.operator_address.rsplit(".", 1)[0]
    lab_host.rewrite(public_keys=[_pub(path) for path in keys.values()],
                     extra_cidrs=[f"{prefix}.8/30"])  # fmt: skip
    code, document, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    assert "log_retention" in {c["resource"] for c in document["changes"]}
    return lab_host


def test_sessions_keys_and_doctor_tell_who_used_the_tunnel(
    configured: LabHost, keys: dict[str, Path], addresses: tuple[str, str]
) -> None:
    host, lab = configured, configured.lab
    extra, outsider = addresses
    warehouse = (lab.warehouse_host, lab.warehouse_port)

    code, document, stderr = host.cli("doctor", "--skip-verify")
    assert code == 0, stderr
    never = _finding(document, "host.last_login")
    assert never["status"] == "warn"
    assert "dbt Cloud has not connected since the key was installed" in never["what"]

    old = TunnelSession(lab, USER, keys["dbt-cloud-old"]).open()
    new = TunnelSession(lab, USER, keys["dbt-cloud-new"], source=extra).open()
    assert old.forward(*warehouse) and new.forward(*warehouse) and old.forward(*warehouse)
    assert not old.forward(lab.bastion_address, 22)
    closing = old.close()
    old_closed = Span(closing, now())
    outside = refused_login(lab, USER, keys["dbt-cloud-old"], source=outsider)
    left = host.sh("ls /tmp")
    try:
        commands = _root_commands(host)
        code, document, stderr = host.cli("sessions", "--since", "1h")
        assert code == 0, stderr
        assert _root_commands(host) == commands + 1, "the log is read in one command"
        assert host.sh("ls /tmp") == left, "the newer half's file is removed"
        sessions = _sessions_as_made(document, lab, keys, old, new, old_closed)
        _refused_as_made(document, lab, extra, outsider, outside)
        _report_in_halves_last_logins_straight(host)

        # another program logging as sshd with a newline in its message puts the fields of
        # journald's entries out of step: the log is read again in journalctl's short format
        host.sh("logger -t sshd \"$(printf 'one line\\nand another')\"")
        commands = _root_commands(host)
        code, again, stderr = host.cli("sessions", "--since", "1h")
        assert code == 0, stderr
        assert _root_commands(host) == commands + 2, "read again in the short format"
        assert _settled(again["sessions"]) == _settled(document["sessions"])
        assert again["refused"] == document["refused"]

        code, listing, stderr = host.cli("keys", "list")
        assert code == 0, stderr
        last = {k["comment"]: k["last_login"] for k in listing["keys"]}
        assert last["unused"] is None
        assert last["dbt-cloud-old"]["from"] == lab.operator_address
        assert (last["dbt-cloud-new"]["from"], last["dbt-cloud-new"]["source"]) == (extra, "extra_cidrs")

        code, document, stderr = host.cli("doctor", "--skip-verify")
        assert code == 0, stderr
        reported = _finding(document, "host.last_login")
        assert reported["status"] == "ok"
        assert extra in reported["what"] and key_fingerprint(keys["dbt-cloud-new"]) in reported["what"]

        # the new key's session is still open: its key stays, whenever the session began
        code, document, _ = host.cli("keys", "remove", "dbt-cloud-new")
        assert code == 4, document
        message = document["error"]["message"]
        assert f"has a session open since {sessions[1]['start']} from {extra}" in message
        assert "dbt-cloud-new" in host.sh(f"cat /home/{USER}/.ssh/authorized_keys")
    finally:
        new.close()

    code, document, _ = host.cli("keys", "remove", "dbt-cloud-old")
    assert code == 4 and document["error"]["kind"] == "input"
    message = document["error"]["message"]
    login_time = sessions[0]["start"]
    assert login_time in message and lab.operator_address in message and "admin_cidrs" in message
    assert "dbt-cloud-old" in host.sh(f"cat /home/{USER}/.ssh/authorized_keys")

    code, document, stderr = host.cli("keys", "remove", "dbt-cloud-old", "--force")
    assert code == 0, stderr
    assert "dbt-cloud-old" not in host.sh(f"cat /home/{USER}/.ssh/authorized_keys")

    code, document, stderr = host.cli("keys", "remove", "unused")
    assert code == 0, stderr
    on_host = host.sh(f"cat /home/{USER}/.ssh/authorized_keys")
    assert "unused" not in on_host and "dbt-cloud-new" in on_host


def _report_in_halves_last_logins_straight(host: LabHost) -> None:
    """`sessions` reads the two halves of its time at once; the last logins `keys remove`
    trusts are read in one journalctl (its --until stops at the first later entry, so two
    halves could miss logins after a clock stepped back), and they are the report's logins."""
    users = list(host.settings().tunnels)
    with open_admin(host.settings(), host.lab.bastion_address) as conn:
        report = read_sshd_log(conn, users, since_seconds=3600)
        in_halves = list(report.lines)
        logins = read_sshd_log(conn, users, since_seconds=3600, logins_only=True)
        straight = list(logins.lines)
    assert report.fields and logins.fields
    assert PART in in_halves and PART not in straight

    def accepted(lines: list[str], boots: list[datetime]) -> list[tuple[int, int, str]]:
        return [(e.micros, e.pid, e.message) for e in read_field_entries(lines, boots)
                if e.message.startswith(f"Accepted publickey for {USER} ")]  # fmt: skip

    assert accepted(in_halves, report.boots) == accepted(straight, logins.boots) != []


def _root_commands(host: LabHost) -> int:
    """How many commands the admin user has run as root (sudo logs each)."""
    return int(host.sh("journalctl -q -t sudo -o cat | grep -c ' ; COMMAND=' || true").strip())


def _settled(sessions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sessions without an open one's duration, which grows between two readings."""
    return [{k: v for k, v in s.items() if not (k == "seconds" and s["end"] is None)} for s in sessions]


def _sessions_as_made(
    document: dict[str, Any], lab: Any, keys: dict[str, Path], old: TunnelSession,
    new: TunnelSession, old_closed: Span,
) -> list[dict[str, Any]]:  # fmt: skip
    sessions: list[dict[str, Any]] = document["sessions"]
    assert len(sessions) == 2, sessions
    first, second = sessions
    target = f"{lab.warehouse_host}:{lab.warehouse_port}"
    assert (first["user"], first["from"], first["source"], first["port"]) == (
        USER, lab.operator_address, "admin_cidrs", old.local_port)
    assert (first["key"], first["key_comment"]) == (key_fingerprint(keys["dbt-cloud-old"]), "dbt-cloud-old")
    assert first["forwards"] == [{"target": target, "count": 2}]
    assert old.login is not None and old.login.holds(at(first["start"]))
    assert old_closed.holds(at(first["end"]))
    assert first["seconds"] == pytest.approx((at(first["end"]) - at(first["start"])).total_seconds(), abs=1)
    assert (second["user"], second["from"], second["source"], second["port"]) == (
        USER, new.source, "extra_cidrs", new.local_port)
    assert (second["key"], second["key_comment"]) == (key_fingerprint(keys["dbt-cloud-new"]), "dbt-cloud-new")
    assert second["forwards"] == [{"target": target, "count": 1}]
    assert new.login is not None and new.login.holds(at(second["start"]))
    assert second["end"] is None, "the second session is still open"
    return sessions


def _refused_as_made(
    document: dict[str, Any], lab: Any, extra: str, outsider: str, outside: Span
) -> None:
    refused = {(r["reason"], r["from"]): r for r in document["refused"]}
    assert set(refused) == {
        ("forward to another target", lab.operator_address),
        ("not allowed from this address", outsider),
    }, document["refused"]
    forward = refused[("forward to another target", lab.operator_address)]
    assert (forward["count"], forward["source"], forward["details"]) == (
        1, "admin_cidrs", [f"{lab.bastion_address}:22"])
    address = refused[("not allowed from this address", outsider)]
    assert (address["count"], address["source"], address["user"]) == (1, "unknown", USER)
    assert outside.holds(at(address["last"]))


def _finding(document: dict[str, Any], link: str) -> dict[str, Any]:
    found = [f for f in document["doctor"]["findings"] if f["link"] == link]
    assert len(found) == 1, document["doctor"]["findings"]
    return found[0]
