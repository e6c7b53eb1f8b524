"""A run that fails leaves the host as it was: the candidate sshd_config is checked before
anything is written, a step that fails stops the script and undoes what it had written, and
the rollback timer never puts a truncated file in place."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bastion.endpoint import Endpoint
from bastion.errors import HostError
from bastion.host import apply as apply_module
from bastion.host import desired as desired_module
from bastion.host.apply import apply_script, run_apply
from bastion.host.connection import open_admin
from bastion.host.paths import ROLLBACK_TOKEN
from bastion.host.plan import build_plan
from bastion.host.stage import apply_host, read_facts
from bastion.progress import NullProgress
from tests.host.conftest import LabHost, make_key
from tests.host.snapshot import differences, host_snapshot

pytestmark = pytest.mark.lab

RENAME = f"mv -f {apply_module.CANDIDATE} /etc/ssh/sshd_config"


def _warehouse(host: LabHost) -> Endpoint:
    settings = host.settings()
    return Endpoint(settings.warehouse.host, settings.warehouse.effective_port)


def _with_a_key(host: LabHost) -> None:
    key = make_key(host.folder, "dbt-cloud").with_suffix(".pub").read_text().strip()
    host.rewrite(public_keys=[key])


def _append_to_sshd_config(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    render = desired_module.render_sshd_config

    def changed(*args: object, **kwargs: object) -> str:
        return render(*args, **kwargs) + extra  # type: ignore[arg-type]

    monkeypatch.setattr(desired_module, "render_sshd_config", changed)


def _configure(host: LabHost) -> HostError:
    settings = host.settings()
    with (
        open_admin(settings, host.lab.bastion_address) as conn,
        pytest.raises(HostError) as caught,
    ):
        apply_host(settings, conn, _warehouse(host), NullProgress())
    return caught.value


def test_a_candidate_sshd_refuses_leaves_the_host_byte_identical(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Users, keys, state.json and the moduli filter all wait for `sshd -t` on the candidate."""
    _with_a_key(lab_host)
    before = host_snapshot(lab_host.lab)
    _append_to_sshd_config(monkeypatch, "NoSuchKeyword yes\n")

    error = _configure(lab_host)

    assert "sshd -t refused" in error.message and "nothing was installed" in error.message
    after = host_snapshot(lab_host.lab)
    assert after == before, differences(before, after)


def test_a_step_failing_mid_script_restores_what_the_run_had_written(
    lab_host: LabHost,
) -> None:
    """A read-only /etc/apt/apt.conf.d: the automatic-updates step fails after the user, the
    keys, state.json and the moduli were written; the script stops there and undoes them."""
    _with_a_key(lab_host)
    lab_host.sh(
        "mv /etc/apt/apt.conf.d/20auto-upgrades /root/ && mount --bind /etc/apt/apt.conf.d "
        "/etc/apt/apt.conf.d && mount -o remount,ro,bind /etc/apt/apt.conf.d"
    )
    before = host_snapshot(lab_host.lab)

    error = _configure(lab_host)

    assert "/etc/apt/apt.conf.d/20auto-upgrades" in error.message
    assert "restored" in error.message
    after = host_snapshot(lab_host.lab)
    assert after == before, differences(before, after)
    assert lab_host.lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 1


def test_a_failure_after_the_timer_was_armed_undoes_everything(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last step before the reload fails: the timer is disarmed, every file restored."""
    _with_a_key(lab_host)
    before = host_snapshot(lab_host.lab)
    real = apply_module.apply_script

    def failing_rename(*args: Any, **kwargs: Any) -> str:
        script = real(*args, **kwargs)
        assert script.count(RENAME) == 1, "the apply script no longer installs sshd_config so"
        return script.replace(RENAME, f"false && {RENAME}")

    monkeypatch.setattr(apply_module, "apply_script", failing_rename)

    error = _configure(lab_host)

    assert "cannot install sshd_config" in error.message and "restored" in error.message
    after = host_snapshot(lab_host.lab)
    assert after == before, differences(before, after)
    assert lab_host.lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 1


FILL = "dd if=/dev/zero of=/etc/ssh/fill bs=4k 2>/dev/null; sync; true"


def test_the_timer_never_installs_a_truncated_sshd_config_on_a_full_disk(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/etc/ssh fills up between the reload and the timer: restoring the (larger) previous
    file in place would leave a truncated sshd_config; the timer must leave a whole one."""
    # /etc/ssh on a small file system of its own, holding a previous file over one page long
    lab_host.sh(
        "cp -a /etc/ssh /root/ssh && mount -t tmpfs -o size=4m etc-ssh /etc/ssh && "
        "cp -a /root/ssh/. /etc/ssh/ && for i in $(seq 120); do "
        "echo '# padding to make the previous sshd_config span more than one page' "
        ">> /etc/ssh/sshd_config; done"
    )
    original = lab_host.lab.host_file("/etc/ssh/sshd_config")
    assert len(original) > 8192
    settings = lab_host.settings()
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        facts = read_facts(settings, conn)
        host = build_plan(settings, facts, _warehouse(lab_host))
        run_apply(conn, apply_script(settings, facts, host, "52.45.144.63", rollback_seconds=3))
    installed = lab_host.lab.host_file("/etc/ssh/sshd_config")
    assert installed != original
    lab_host.sh(FILL)  # the disk is full before the timer fires (no admin login disarms it)

    deadline = time.monotonic() + 20
    while lab_host.lab.host_exec(f"test -e {ROLLBACK_TOKEN}").returncode == 0:
        assert time.monotonic() < deadline, "the rollback timer never ran"
        time.sleep(0.2)

    now = lab_host.lab.host_file("/etc/ssh/sshd_config")
    assert now in (original, installed), f"a truncated sshd_config ({len(now)} bytes) is in place"
    assert lab_host.lab.host_exec("sshd -t").returncode == 0
    log = lab_host.lab.host_file(f"{apply_module.STATE_DIR}/rollback.log")
    assert "rolled back" in log or "failed" in log
