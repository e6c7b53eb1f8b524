"""The SSH connection cut at each step of `configure`: the host never holds half a file or an
sshd_config that `sshd -t` refuses, and the next run converges.

`configure` makes its changes in one root script (bastion/host/apply.py), so its natural cut
points are: after the facts were read; inside the script before the rename of the new
sshd_config; after that rename, before the reload; after the reload, before the fresh admin
login that disarms the host's rollback timer. Each cut kills the tool's sshd session on the
host (`sshd-session: admin …`), timed by a hook at that point. Two ways to be cut:

- "connection": only the SSH connection dies; the root script, already running on the host
  (no TTY, so no SIGHUP), carries on to its end.
- "script": the script dies with it, at that very line (a host crash, an OOM kill).

The test hooks are in the tool's own seams: `stage.read_facts`, `apply.apply_script` (a line
is inserted in the script before a step; the anchor is asserted, so a changed script fails
here loudly) and `apply._fresh_login`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.host import apply as apply_module
from bastion.host import stage as stage_module
from bastion.host.connection import HostUnreachable
from bastion.host.paths import ROLLBACK_TOKEN
from tests.faults.conftest import run_cli, sshd_accepts_config
from tests.host.conftest import make_key, write_lab_config
from tests.lab import Lab
from tests.lab.lab import ADMIN_USER

pytestmark = pytest.mark.lab

ROLLBACK_SECONDS = 2  # the host's timer in the cut run; short here to keep the tests fast
TOOL_ROLLBACK_SECONDS = apply_module.ROLLBACK_SECONDS  # what every other run arms
# `^`: the script's own command line holds this text too, and must not match it
# OpenSSH 9.9 and later name a session's processes `sshd-session: USER ...`, before `sshd: USER`
KILL_SESSIONS = f"pkill -KILL -f '^sshd(-session)?: {ADMIN_USER}'"
AUTHORIZED_KEYS = "/home/dbtcloud/.ssh/authorized_keys"
KEYS_RENAME = 'chmod "$2" "$tmp" && chown "$3:$4" "$tmp" && mv -f "$tmp" "$1"'
RENAME = f"mv -f {apply_module.CANDIDATE} /etc/ssh/sshd_config"
RELOAD = "out=$(systemctl "


@pytest.fixture(scope="module")
def config(pristine_host_after: Lab, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cuts")
    key = make_key(folder, "dbt-cloud").with_suffix(".pub").read_text().strip()
    return write_lab_config(pristine_host_after, folder, public_keys=[key])


def _insert_before(anchor: str, lines: str) -> Callable[..., str]:
    real = apply_module.apply_script

    def with_cut(*args: Any, **kwargs: Any) -> str:
        script = real(*args, **kwargs)
        assert script.count(anchor) == 1, f"the apply script no longer has {anchor!r}"
        return script.replace(anchor, f"{lines}\n{anchor}")

    return with_cut


def _arm_cut(point: str, mode: str, lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:
    also_script = "\nkill -KILL $$" if mode == "script" else ""
    if point == "after_facts":
        real_facts = stage_module.read_facts

        def facts_then_cut(settings: Any, conn: Any, **kwargs: Any) -> Any:
            facts = real_facts(settings, conn, **kwargs)
            assert lab.host_exec(KILL_SESSIONS).returncode == 0
            deadline = time.monotonic() + 5
            while conn.connection.is_connected:  # until paramiko has seen the connection go
                assert time.monotonic() < deadline
                time.sleep(0.02)
            return facts

        monkeypatch.setattr(stage_module, "read_facts", facts_then_cut)
    elif point == "keys_rename":  # inside `put`: the temp file is written, not yet renamed
        cut_keys = f'case "$1" in */authorized_keys) {KILL_SESSIONS}{also_script};; esac'
        monkeypatch.setattr(apply_module, "apply_script", _insert_before(KEYS_RENAME, cut_keys))
    elif point == "before_rename":
        monkeypatch.setattr(
            apply_module, "apply_script", _insert_before(RENAME, KILL_SESSIONS + also_script)
        )
    elif point == "before_reload":
        monkeypatch.setattr(
            apply_module, "apply_script", _insert_before(RELOAD, KILL_SESSIONS + also_script)
        )
    elif point == "after_reload":
        # The reload went through; the network then goes: no fresh admin login is possible.
        def network_gone(settings: Any, conn: Any) -> Any:
            assert lab.host_exec(KILL_SESSIONS).returncode == 0
            raise HostUnreachable(f"cannot connect to {conn.address}: network gone (fault test)")

        monkeypatch.setattr(apply_module, "_fresh_login", network_gone)
    else:  # pragma: no cover
        raise AssertionError(point)


def _noting_timer(timers: list[int]) -> Callable[..., str]:
    """apply_script, noting the seconds of the rollback timer each run arms on the host."""
    real = apply_module.apply_script

    def noted(*args: Any, **kwargs: Any) -> str:
        timers.append(kwargs["rollback_seconds"])
        return real(*args, **kwargs)

    return noted


def _assert_no_half_file(lab: Lab) -> None:
    assert sshd_accepts_config(lab), lab.host_exec("sshd -t").stderr
    keys = lab.host_exec(f"test ! -e {AUTHORIZED_KEYS} || ssh-keygen -l -f {AUTHORIZED_KEYS}")
    assert keys.returncode == 0, f"authorized_keys does not parse: {keys.stderr}"


def logins(lab: Lab) -> int:
    return lab.sshd_log().count(f"Accepted publickey for {lab.admin_user} ")


def _wait_for_timer(lab: Lab) -> None:
    """A cut after the timer was armed: the host restores sshd_config by itself."""
    deadline = time.monotonic() + ROLLBACK_SECONDS + 10
    while lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 0:
        assert time.monotonic() < deadline, "the host's rollback timer never ran"
        time.sleep(0.2)


CASES = [
    ("after_facts", "connection"),
    ("keys_rename", "script"),
    ("before_rename", "connection"),
    ("before_reload", "script"),
    ("after_reload", "connection"),
]


@pytest.mark.parametrize(("point", "mode"), CASES, ids=[f"{p}-{m}" for p, m in CASES])
def test_cut_configure_leaves_whole_files_and_the_next_run_converges(
    point: str,
    mode: str,
    config: Path,
    pristine_host_after: Lab,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab = pristine_host_after
    lab.restart_host()
    (config.parent / ".bastion" / "known_hosts").unlink(missing_ok=True)  # new host keys
    original = lab.host_file("/etc/ssh/sshd_config")
    with monkeypatch.context() as cut:
        cut.setattr(apply_module, "ROLLBACK_SECONDS", ROLLBACK_SECONDS)
        _arm_cut(point, mode, lab, cut)
        code, document = run_cli(capsys, "configure", "-c", str(config))

    if point == "after_facts":
        # nothing was sent yet: Fabric opens the dropped connection again (same key, the
        # host key checked against the pins again) and the run completes
        assert code == 0, document["error"]
        assert logins(lab) == 3  # the first, the reopened one, the fresh login after the reload
        assert run_cli(capsys, "configure", "-c", str(config))[1]["changed"] is False
        _assert_no_half_file(lab)
        return
    assert code == 1, document
    assert document["error"]["kind"] in ("ssh", "host")
    _assert_no_half_file(lab)
    if point == "keys_rename":  # the cut came where it was meant to: half-way through `put`
        assert lab.host_exec(f"test ! -e {AUTHORIZED_KEYS}").returncode == 0
        assert lab.host_exec(f"ls {AUTHORIZED_KEYS}.bastion-tmp.*").returncode == 0
    _wait_for_timer(lab)
    _assert_no_half_file(lab)
    # the new sshd_config was never installed, or the host's timer put the old one back
    assert lab.host_file("/etc/ssh/sshd_config") == original
    if point != "keys_rename":  # the timer was armed before sshd_config moved
        assert "rolled back" in lab.host_file(f"{apply_module.STATE_DIR}/rollback.log")

    timers: list[int] = []
    monkeypatch.setattr(apply_module, "apply_script", _noting_timer(timers))
    code, second = run_cli(capsys, "configure", "-c", str(config))
    assert code == 0, second["error"]
    assert set(timers) == {TOOL_ROLLBACK_SECONDS}, f"the converging run armed {timers} s"
    assert second["changed"] is True
    assert "sshd_config" in {c["resource"] for c in second["changes"]}
    _assert_no_half_file(lab)
    assert "ClientAliveInterval 30" in lab.host_file("/etc/ssh/sshd_config")
    code, third = run_cli(capsys, "configure", "-c", str(config))
    assert code == 0, third["error"]
    assert third["changed"] is False and third["changes"] == []
    leftovers = lab.host_exec("ls /home/dbtcloud/.ssh/*.bastion-tmp.* /etc/ssh/*.bastion-tmp.*")
    assert leftovers.stdout == "", "a run cut mid-write left its temp file behind"


MEDDLING = {
    "sshd_config": "echo '# another run' >> /etc/ssh/sshd_config",
    "tunnel_user": "groupadd dbtcloud && useradd -m -g dbtcloud dbtcloud",
}


@pytest.mark.parametrize("meddled", list(MEDDLING))
def test_a_host_changed_between_facts_and_lock_is_planned_again(
    meddled: str,
    config: Path,
    pristine_host_after: Lab,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Another run changes the host after our facts were read: we read and plan again."""
    lab = pristine_host_after
    lab.restart_host()
    (config.parent / ".bastion" / "known_hosts").unlink(missing_ok=True)
    real_facts = stage_module.read_facts
    reads: list[str] = []

    def facts_then_meddle(settings: Any, conn: Any, **kwargs: Any) -> Any:
        facts = real_facts(settings, conn, **kwargs)
        reads.append(f"{facts.sshd_config_sha256} {sorted(facts.users)}")
        if len(reads) == 1:
            assert lab.host_exec(MEDDLING[meddled]).returncode == 0
        return facts

    monkeypatch.setattr(stage_module, "read_facts", facts_then_meddle)
    code, document = run_cli(capsys, "configure", "-c", str(config))
    assert code == 0, document["error"]
    assert len(reads) == 2 and reads[0] != reads[1]
    _assert_no_half_file(lab)
    assert run_cli(capsys, "configure", "-c", str(config))[1]["changed"] is False


def test_a_run_waits_for_the_previous_runs_admin_login_check(
    config: Path, pristine_host_after: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rollback token (a run between its reload and its fresh login) is waited for while
    its timer lives (it holds the timer lock), as that run's login or its timer ends it."""
    lab = pristine_host_after
    lab.restart_host()
    (config.parent / ".bastion" / "known_hosts").unlink(missing_ok=True)
    timer_lock = f"{apply_module.STATE_DIR}/timer.lock"
    token = (
        "printf 'id earlier\\nboot %s\\nuptime %s\\n' \"$(cat /proc/sys/kernel/random/boot_id)\" "
        f"\"$(cut -d' ' -f1 /proc/uptime)\" > {ROLLBACK_TOKEN}"
    )
    holding = lab.host_exec(
        f"mkdir -p {apply_module.STATE_DIR} && {token} && "
        f"(flock {timer_lock} sh -c 'sleep 1.5; rm -f {ROLLBACK_TOKEN}') </dev/null >/dev/null 2>&1 & "
        f"while flock -n {timer_lock} true; do sleep 0.01; done"
    )
    assert holding.returncode == 0, holding.stderr
    started = time.monotonic()
    code, document = run_cli(capsys, "configure", "-c", str(config))
    assert code == 0, document["error"]
    assert time.monotonic() - started >= 1.0, "it did not wait for the token"
    _assert_no_half_file(lab)
