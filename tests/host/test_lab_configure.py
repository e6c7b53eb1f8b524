"""`bastion configure` against a real host (the lab): idempotence, drift, pins, bad input."""

from __future__ import annotations

import pytest

from bastion.endpoint import Endpoint
from bastion.host.connection import open_admin
from bastion.host.stage import plan_host
from tests.host.conftest import LabHost, make_key

pytestmark = pytest.mark.lab

WATCHED = (
    "/etc/ssh/sshd_config /home/dbtcloud/.ssh /home/dbtcloud/.ssh/authorized_keys /etc/ssh/moduli"
)


def mtimes(host: LabHost) -> str:
    return host.sh(f"stat -c '%n %Y.%y' {WATCHED} /var/lib/dbt-bastion/state.json")


def test_second_configure_changes_nothing_with_one_connection(lab_host: LabHost) -> None:
    code, first, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    assert first["changed"] is True
    assert {c["resource"] for c in first["changes"]} >= {
        "tunnel_group", "tunnel_user", "ssh_dir", "authorized_keys", "sshd_config", "sshd_reload",
    }  # fmt: skip
    before_times, (logins, reloads) = mtimes(lab_host), lab_host.log_counts()

    code, second, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    assert second["changed"] is False and second["changes"] == []
    after_logins, after_reloads = lab_host.log_counts()
    assert after_logins - logins == 1, "a no-change run opens exactly one SSH connection"
    assert after_reloads == reloads, "sshd was not reloaded"
    assert mtimes(lab_host) == before_times, "nothing was written"


def test_no_change_run_uses_one_remote_command(lab_host: LabHost) -> None:
    code, _, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    settings = lab_host.settings()
    warehouse = Endpoint(settings.warehouse.host, settings.warehouse.effective_port)
    from bastion.host.stage import apply_host
    from bastion.progress import NullProgress

    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        plan, _ = apply_host(settings, conn, warehouse, NullProgress())
        assert plan.changes == []
        assert conn.commands_run == 1


def test_adopted_keys_are_kept_unless_prune(lab_host: LabHost) -> None:
    foreign = make_key(lab_host.folder, "hand-made").with_suffix(".pub").read_text().strip()
    lab_host.sh(
        "groupadd dbtcloud && useradd -m -g dbtcloud dbtcloud && install -d -m 700 -o dbtcloud "
        f"-g dbtcloud /home/dbtcloud/.ssh && echo '{foreign}' > /home/dbtcloud/.ssh/authorized_keys"
    )
    code, document, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    assert any("hand-made" in n and "--prune" in n for n in document["notices"])
    assert "hand-made" in lab_host.sh("cat /home/dbtcloud/.ssh/authorized_keys")
    assert lab_host.cli("configure")[1]["changed"] is False, "a kept key is not drift later"

    code, document, _ = lab_host.cli("configure", "--prune")
    assert code == 0
    assert "hand-made" not in lab_host.sh("cat /home/dbtcloud/.ssh/authorized_keys")


def test_changed_host_key_is_refused_unless_accepted(lab_host: LabHost) -> None:
    assert lab_host.cli("configure")[0] == 0
    pinned = (lab_host.folder / ".bastion" / "known_hosts").read_text()
    lab_host.lab.restart_host()  # same address, new host keys: a replaced (or spoofed) host

    code, document, _ = lab_host.cli("configure")

    assert code == 1
    message = document["error"]["message"]
    assert document["error"]["kind"] == "ssh"
    assert message.count("SHA256:") == 2 and "--accept-new-host-key" in message
    assert (lab_host.folder / ".bastion" / "known_hosts").read_text() == pinned
    code, document, _ = lab_host.cli("configure", "--accept-new-host-key")
    assert code == 0 and document["changed"] is True
    assert (lab_host.folder / ".bastion" / "known_hosts").read_text() != pinned


FAKE_CLOUD_INIT = """#!/bin/sh
# stand-in: "running" until `cloud-init status --wait` is asked, which finishes it
if [ "$1 $2" = "status --wait" ]; then
  sleep 1; touch /var/lib/cloud/instance/boot-finished; echo waited > /tmp/cloud-init-waited
fi
"""


def test_first_contact_waits_for_cloud_init(lab_host: LabHost) -> None:
    lab_host.lab.host_exec(
        "mkdir -p /var/lib/cloud/instance && cat > /usr/bin/cloud-init && chmod 755 /usr/bin/cloud-init",
        input=FAKE_CLOUD_INIT,
    )
    settings = lab_host.settings()
    warehouse = Endpoint(settings.warehouse.host, settings.warehouse.effective_port)
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        plan, facts = plan_host(settings, conn, warehouse)
    assert facts.cloud_init == "running"
    assert any("cloud-init is still running" in n for n in plan.notices)
    assert lab_host.lab.host_exec("test -e /tmp/cloud-init-waited").returncode == 1, (
        "plan never waits"
    )
    code, _, stderr = lab_host.cli("configure")
    assert code == 0, stderr
    assert lab_host.sh("cat /tmp/cloud-init-waited").strip() == "waited"


def test_status_reports_effective_settings_keys_and_host_key(lab_host: LabHost) -> None:
    from bastion.host.stage import status_host

    key = make_key(lab_host.folder, "dbt-status").with_suffix(".pub").read_text().strip()
    lab_host.rewrite(public_keys=[key])
    assert lab_host.cli("configure")[0] == 0
    settings = lab_host.settings()
    warehouse = Endpoint(settings.warehouse.host, settings.warehouse.effective_port)
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        status = status_host(settings, conn, warehouse)
    assert status["host_key_fingerprint"] in lab_host.lab.host_key_fingerprints
    assert status["sshd"]["clientaliveinterval"] == "30"
    assert (
        status["sshd"]["permitopen"]
        == f"{lab_host.lab.warehouse_host}:{lab_host.lab.warehouse_port}"
    )
    assert [(k["comment"], k["configured"], k["restricted"]) for k in status["keys"]] == [
        ("dbt-status", True, True)
    ]
    assert status["pending_changes"] == [] and status["managed"] is True
