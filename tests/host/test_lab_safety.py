"""Never a lock-out: a config sshd refuses is never installed, and a reload that breaks
admin login is rolled back, by the tool or, if its connection died, by the host's timer."""

from __future__ import annotations

import time

import pytest

from bastion.endpoint import Endpoint
from bastion.errors import HostError
from bastion.host import apply as apply_module
from bastion.host import desired as desired_module
from bastion.host.apply import apply_script, run_apply
from bastion.host.connection import HostUnreachable, open_admin
from bastion.host.plan import build_plan
from bastion.host.stage import apply_host, read_facts
from bastion.progress import NullProgress
from tests.host.conftest import LabHost

pytestmark = pytest.mark.lab


def _sabotage(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    """Append `extra` to the rendered sshd_config (the template is ours; sshd stays real)."""
    render = desired_module.render_sshd_config

    def broken(*args: object, **kwargs: object) -> str:
        return render(*args, **kwargs) + extra  # type: ignore[arg-type]

    monkeypatch.setattr(desired_module, "render_sshd_config", broken)


def _warehouse(host: LabHost) -> Endpoint:
    settings = host.settings()
    return Endpoint(settings.warehouse.host, settings.warehouse.effective_port)


def test_config_sshd_refuses_is_never_installed(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = lab_host.sh("sha256sum /etc/ssh/sshd_config")
    reloads = lab_host.log_counts()[1]
    _sabotage(monkeypatch, "NoSuchKeyword yes\n")
    settings = lab_host.settings()
    with (
        open_admin(settings, lab_host.lab.bastion_address) as conn,
        pytest.raises(HostError) as caught,
    ):
        apply_host(settings, conn, _warehouse(lab_host), NullProgress())
    assert (
        "sshd -t refused" in caught.value.message
        and "nothing was installed" in caught.value.message
    )
    assert lab_host.sh("sha256sum /etc/ssh/sshd_config") == before
    assert lab_host.log_counts()[1] == reloads, "sshd was not reloaded"
    assert lab_host.lab.host_exec("test -e /etc/ssh/sshd_config.bastion-new").returncode == 1


def test_admin_lockout_is_rolled_back_at_once(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DenyUsers` passes sshd -t but shuts the admin out: the fresh login fails."""
    before = lab_host.sh("sha256sum /etc/ssh/sshd_config")
    _sabotage(monkeypatch, "\nMatch all\n    DenyUsers admin\n")
    settings = lab_host.settings()
    with (
        open_admin(settings, lab_host.lab.bastion_address) as conn,
        pytest.raises(HostError) as caught,
    ):
        apply_host(settings, conn, _warehouse(lab_host), NullProgress())
    assert "fresh admin login failed" in caught.value.message
    assert "restored" in caught.value.message
    assert lab_host.sh("sha256sum /etc/ssh/sshd_config") == before
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        assert conn.sudo_script("id -u").stdout.strip() == "0"


def test_timer_restores_by_itself_when_the_tool_vanishes(
    lab_host: LabHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Apply, then drop the connection without the fresh login: the host undoes it alone."""
    before = lab_host.sh("sha256sum /etc/ssh/sshd_config")
    _sabotage(monkeypatch, "\nMatch all\n    DenyUsers admin\n")
    settings = lab_host.settings()
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        facts = read_facts(settings, conn)
        host = build_plan(settings, facts, _warehouse(lab_host))
        run_apply(conn, apply_script(settings, facts, host, "52.45.144.63", rollback_seconds=2))
    assert lab_host.sh("sha256sum /etc/ssh/sshd_config") != before  # installed, admin locked out
    deadline = time.monotonic() + 15
    while lab_host.sh("sha256sum /etc/ssh/sshd_config") != before:
        assert time.monotonic() < deadline, "the timer did not restore sshd_config"
        time.sleep(0.2)
    log = f"{apply_module.STATE_DIR}/rollback.log"
    while "rolled back" not in lab_host.lab.host_exec(f"cat {log}").stdout:  # after the reload
        assert time.monotonic() < deadline, "the timer did not log its rollback"
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while True:  # sshd re-executes after the timer's reload: its port is closed for a moment
        try:
            with open_admin(settings, lab_host.lab.bastion_address) as conn:
                assert conn.sudo_script("id -u").stdout.strip() == "0"
            break
        except HostUnreachable:
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_lockout_by_admin_cidrs_is_refused_before_any_change(lab_host: LabHost) -> None:
    lab_host.rewrite(admin_cidrs=["192.0.2.0/24"])
    before = lab_host.sh("sha256sum /etc/ssh/sshd_config")
    code, document, _ = lab_host.cli("configure", "--host", lab_host.lab.bastion_address)
    assert code == 4
    assert lab_host.lab.operator_address in document["error"]["message"]
    assert lab_host.sh("sha256sum /etc/ssh/sshd_config") == before
