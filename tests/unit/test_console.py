"""The console: status lines without rich on a pipe, styled lines plain there, JSON on stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from bastion.changes import Change
from bastion.cli.status import _show_logins
from bastion.console import Console


@pytest.fixture(autouse=True)
def _no_forced_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


def test_on_a_pipe_status_and_styled_lines_are_plain(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(json_mode=True)
    with console.status("reading [2001:db8::1]:22"):
        pass
    console.changes([], applied=True)
    console.changes([Change("host", "sshd_config", "update", "replace [x]")], applied=True)
    console.emit({"ok": True})
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "… reading [2001:db8::1]:22",
        "no changes",
        "1 change (changed):",
        "  update host/sshd_config: replace [x]",
    ]
    assert json.loads(captured.out) == {"ok": True}


def test_quiet_prints_no_status(capsys: pytest.CaptureFixture[str]) -> None:
    with Console(quiet=True).status("reading AWS"):
        pass
    assert capsys.readouterr().err == ""


def test_rich_is_not_loaded_before_the_first_styled_line() -> None:
    program = textwrap.dedent(
        """
        import sys
        from bastion.console import Console
        console = Console(json_mode=True)
        with console.status("reading AWS"):
            loaded_in_status = "rich.console" in sys.modules
        console.heading("done")
        print(loaded_in_status, "rich.console" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == ["… reading AWS", "done"]
    # the status line needed no rich; the styled line had it (loaded, or loading, meanwhile)
    assert done.stdout.split()[1] == "True"


def test_rich_loads_when_told_the_wait_has_begun() -> None:
    """`status(prefetch=False)` leaves rich alone (the main thread still has a login to do);
    `prefetch()` loads rich and its tables in the background, once."""
    program = textwrap.dedent(
        """
        import sys
        import bastion.console
        started = []
        warm = bastion.console.warm
        bastion.console.warm = lambda *steps: started.append(steps) or warm(*steps)
        console = bastion.console.Console(json_mode=True)
        with console.status("reading sshd's log", prefetch=False):
            before = list(started)
            console.prefetch("rich.table")
            console.prefetch("rich.table")
        for thread in __import__("threading").enumerate():
            if thread.name == "bastion-prefetch":
                thread.join(30)
        print(before, started, "rich.table" in sys.modules)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] [('rich.console', 'rich.table')] True"


def test_a_verify_hop_shows_its_brackets_once(capsys: pytest.CaptureFixture[str]) -> None:
    """Data is escaped in one place (the console): `[prod]` is shown, never `\\[prod]`."""
    from bastion.cli.common import Reporter
    from bastion.tunnel.result import Hop

    Reporter(Console(json_mode=True)).hop(Hop("forward", False, 12.0, "refused to [prod]:5439"))
    line = capsys.readouterr().err.strip()
    assert "refused to [prod]:5439 [12 ms]" in line
    assert "\\[" not in line


def test_a_doctor_finding_shows_its_brackets_once(capsys: pytest.CaptureFixture[str]) -> None:
    from bastion.cli.doctor import finding_row
    from bastion.doctor.findings import Finding

    finding = Finding("fail", "host", "PermitOpen names [prod]:5439", "set [warehouse] host")
    Console(json_mode=True).findings([finding_row(finding)])
    shown = capsys.readouterr().err
    assert "PermitOpen names [prod]:5439" in shown and "set [warehouse] host" in shown
    assert "\\[" not in shown


def test_json_is_what_the_standard_library_reads_back() -> None:
    """orjson writes `--json`; what it has no type for goes through str(), as before, and
    the document reads back as the standard library's encoder would have written it."""
    import dataclasses
    from datetime import UTC, datetime
    from pathlib import Path

    from bastion.console import to_json

    @dataclasses.dataclass
    class Hop:
        name: str

    document = {
        "ok": True, "at": datetime(2026, 11, 30, 8, 38, 55, tzinfo=UTC), "config": Path("/etc/b.toml"),
        "hop": Hop("ssh"), "ports": (22, 5439), "text": "café \u2028 \"q\" \\ \x07", "none": None,
        "ratio": 0.1, "nested": [{"a": []}],
    }  # fmt: skip
    assert json.loads(to_json(document)) == json.loads(json.dumps(document, default=str))


@pytest.mark.parametrize(
    "document",
    [{"big": 2**70}, {"path": "/home/\udcff"}, {1: "key not text"}],
    ids=["integer past 64 bits", "surrogate escape", "key not text"],
)
def test_json_orjson_declines_goes_through_the_standard_library(document: dict) -> None:
    from bastion.console import to_json

    written = to_json(document)
    assert written == json.dumps(document, default=str, separators=(",", ":")).encode()
    assert b" " not in written.replace(b"key not text", b"")  # compact, as orjson writes


def test_emit_writes_utf8_json_on_stdout(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    print("a line before", flush=False)
    Console(json_mode=True).emit({"comment": "clé de dbt Cloud"})
    out = capsysbinary.readouterr().out
    assert out.startswith(b"a line before\n")  # what was written before comes first
    document = out.removeprefix(b"a line before\n")
    assert document.endswith(b"\n") and document.count(b"\n") == 1
    assert "clé".encode() in document  # UTF-8, not an escape
    assert json.loads(document.decode("utf-8")) == {"comment": "clé de dbt Cloud"}


def test_emit_on_a_text_only_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    stream = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    Console(json_mode=True).emit({"comment": "clé"})
    assert stream.getvalue() == '{"comment":"clé"}\n'


def test_status_shows_a_tunnel_user_named_error_as_a_user(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`last_logins` holds each user's last login, or `error` (text) where the log was not
    read: a user named error is still a user."""
    login = {"time": "2026-11-30T08:37:08Z", "from": "52.45.144.63", "source": "dbt Cloud us",
             "key": "SHA256:abc", "key_comment": "dbt"}  # fmt: skip
    _show_logins(Console(json_mode=True), {"error": login, "dbtcloud": None}, {})
    _show_logins(Console(json_mode=True), {"error": "sudo: a password is required"}, {})
    lines = capsys.readouterr().err.splitlines()
    assert (
        "    error: 2026-11-30T08:37:08Z from 52.45.144.63 (dbt Cloud us) with SHA256:abc (dbt)"
        in lines
    )
    assert any(line.startswith("    dbtcloud: never") for line in lines)
    assert "    sshd's log was not read: sudo: a password is required" in lines
