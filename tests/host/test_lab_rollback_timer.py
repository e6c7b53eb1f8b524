"""The rollback timer: a rollback left pending by a timer that is gone (a reboot, a dead
process) is resolved by the next run, not waited on; the fresh admin login disarms it only
if it has not fired, and never cuts a restore short."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bastion.host import apply as apply_module
from bastion.host.paths import ROLLBACK_TOKEN, STATE_DIR
from tests.faults.conftest import run_cli
from tests.host.conftest import LabHost, make_key

pytestmark = pytest.mark.lab

SSHD_CONFIG = "/etc/ssh/sshd_config"


def _token(lab_host: LabHost, left_by: str) -> str:
    """A token as a run writes it before its reload, whose timer is no longer there."""
    boot = lab_host.sh("cat /proc/sys/kernel/random/boot_id").strip()
    uptime = float(lab_host.sh("cut -d' ' -f1 /proc/uptime"))
    armed = {
        "another boot": ("00000000-0000-4000-8000-000000000000", 1.0),
        "a dead timer": (boot, 1.0),  # armed long before this run logged in
        "a dead timer, armed after this run logged in": (boot, uptime + 3600),
    }
    boot_id, at = armed[left_by]
    return f"id left-behind\nboot {boot_id}\nuptime {at:.2f}\nat 2025-01-01T00:00:00Z\n"


def _wait_for(lab_host: LabHost, command: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while lab_host.lab.host_exec(command).returncode != 0:
        assert time.monotonic() < deadline, f"never true on the host: {command}"
        time.sleep(0.1)


@pytest.mark.parametrize(
    "left_by",
    ["another boot", "a dead timer", "a dead timer, armed after this run logged in"],
)
def test_a_rollback_left_pending_is_resolved_not_waited_on(lab_host: LabHost, left_by: str) -> None:
    code, _, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    configured = lab_host.lab.host_file(SSHD_CONFIG)
    # the host rebooted (or the timer died) between a run's reload and its admin login check
    lab_host.sh(f"printf '%s' '{_token(lab_host, left_by)}' > {ROLLBACK_TOKEN}")
    key = make_key(lab_host.folder, "dbt-cloud").with_suffix(".pub").read_text().strip()
    lab_host.rewrite(public_keys=[key])

    code, document, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    assert lab_host.lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 1
    assert key.split()[1] in lab_host.sh("cat /home/dbtcloud/.ssh/authorized_keys")
    assert lab_host.lab.host_file(SSHD_CONFIG) == configured
    log = lab_host.lab.host_exec(f"cat {STATE_DIR}/rollback.log").stdout
    if left_by.endswith("after this run logged in"):
        # this run's login does not prove the running config: the previous file came back
        # (and this run, seeing the host changed, planned and installed it again)
        assert "left-behind" in log and "rolled back" in log
    else:
        # this run logged in with the running config: it is kept, the token cleared
        assert "rolled back" not in log
        assert any("rollback" in n and "cleared" in n for n in document["notices"])
    assert lab_host.cli("configure")[1]["changed"] is False


def test_a_login_check_ending_after_the_timer_fired_reports_the_rollback(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fresh admin login completes only after the timer restored the previous file:
    disarming then must fail (exit 1), never report a success the host no longer holds."""
    original = lab_host.lab.host_file(SSHD_CONFIG)
    real_login = apply_module._fresh_login

    def late_login(settings: Any, conn: Any) -> Any:
        _wait_for(lab_host, f"! test -e {ROLLBACK_TOKEN} && grep -q 'rolled back' "
                  f"{STATE_DIR}/rollback.log")  # fmt: skip
        return real_login(settings, conn)

    monkeypatch.setattr(apply_module, "ROLLBACK_SECONDS", 1)
    monkeypatch.setattr(apply_module, "_fresh_login", late_login)

    code, document = run_cli(capsys, "configure", "-c", str(lab_host.config))

    assert code == 1, document
    message = document["error"]["message"]
    assert "rolled back" in message and "again" in (message + document["error"].get("hint", ""))
    assert lab_host.lab.host_file(SSHD_CONFIG) == original


SLOW_RESTORE = f"""#!/bin/sh
# The lab's systemctl, slow when the rollback script calls it: a restore in progress.
if tr '\\0' ' ' < /proc/$PPID/cmdline | grep -q '^sh {apply_module.ROLLBACK_SCRIPT}'; then
  touch /run/restoring; sleep 3
fi
exec /usr/bin/systemctl "$@"
"""


def test_a_disarm_never_cuts_a_restore_short(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The fresh admin login arrives while the timer is restoring: it waits for the restore
    to finish (never kills it half-way) and reports the rollback."""
    original = lab_host.lab.host_file(SSHD_CONFIG)
    result = lab_host.lab.host_exec(
        "cat > /usr/local/sbin/systemctl && chmod 755 /usr/local/sbin/systemctl",
        input=SLOW_RESTORE,
    )
    assert result.returncode == 0, result.stderr
    real_login = apply_module._fresh_login

    def login_during_the_restore(settings: Any, conn: Any) -> Any:
        _wait_for(lab_host, "test -e /run/restoring")
        return real_login(settings, conn)

    monkeypatch.setattr(apply_module, "ROLLBACK_SECONDS", 1)
    monkeypatch.setattr(apply_module, "_fresh_login", login_during_the_restore)

    code, document = run_cli(capsys, "configure", "-c", str(lab_host.config))

    assert code == 1, document
    assert "rolled back" in document["error"]["message"]
    _wait_for(lab_host, f"! test -e {ROLLBACK_TOKEN}")
    assert "rolled back" in lab_host.lab.host_file(f"{STATE_DIR}/rollback.log")
    assert lab_host.lab.host_file(SSHD_CONFIG) == original
