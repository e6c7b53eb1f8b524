"""One configured lab host: drift, `bastion keys`, the verify key file, refused input."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.endpoint import Endpoint
from bastion.host.connection import open_admin
from bastion.host.stage import plan_host
from tests.host.conftest import LabHost, make_key

pytestmark = pytest.mark.lab


def test_drift_is_planned_then_repaired(configured_host: LabHost, tmp_path: object) -> None:
    host = configured_host
    intruder = make_key(host.folder, "intruder").with_suffix(".pub").read_text().strip()
    host.sh(
        f"echo '{intruder}' >> /home/dbtcloud/.ssh/authorized_keys && "
        "sed -i 's/^ClientAliveInterval .*/ClientAliveInterval 300/' /etc/ssh/sshd_config && "
        "usermod -s /bin/bash dbtcloud"
    )
    settings = host.settings()
    warehouse = Endpoint(settings.warehouse.host, settings.warehouse.effective_port)
    with open_admin(settings, host.lab.bastion_address) as conn:
        plan, _ = plan_host(settings, conn, warehouse)
    planned = {c.resource: c.detail for c in plan.changes}
    assert (
        "intruder" in planned["authorized_keys"] and "added by hand" in planned["authorized_keys"]
    )
    assert "clientaliveinterval 300 -> 30" in planned["sshd_config"]
    assert "shell /bin/bash -> /usr/sbin/nologin" in planned["tunnel_user"]

    code, document, stderr = host.cli("configure")

    assert code == 0, stderr
    assert {c["resource"] for c in document["changes"]} >= {
        "authorized_keys",
        "sshd_config",
        "tunnel_user",
    }
    assert "intruder" not in host.sh("cat /home/dbtcloud/.ssh/authorized_keys")
    assert "clientaliveinterval 30" in host.sh("sshd -T | grep -i clientaliveinterval")
    assert host.sh("getent passwd dbtcloud").strip().endswith(":/usr/sbin/nologin")
    assert host.cli("configure")[1]["changed"] is False


@pytest.mark.parametrize(
    "bad_key",
    [
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
        "-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXktdjEAAAAA",
        'command="/bin/sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB7joienqbe/DdmZmxICPky8t9tkcrnHThj+ODN8YGCP x',
    ],
)
def test_bad_keys_exit_4_and_leave_the_host_untouched(
    configured_host: LabHost, bad_key: str
) -> None:
    before = configured_host.sh(
        "sha256sum /home/dbtcloud/.ssh/authorized_keys /etc/ssh/sshd_config"
    )
    logins = configured_host.log_counts()[0]
    code, document, _ = configured_host.cli("keys", "add", bad_key)
    assert code == 4 and document["error"]["kind"] == "input"
    assert (
        configured_host.sh("sha256sum /home/dbtcloud/.ssh/authorized_keys /etc/ssh/sshd_config")
        == before
    )
    assert configured_host.log_counts()[0] == logins, "refused before any connection"


def test_keys_rotation_add_list_remove(configured_host: LabHost) -> None:
    host = configured_host
    new = make_key(host.folder, "dbt-cloud-2026-12").with_suffix(".pub").read_text().strip()
    code, document, stderr = host.cli("keys", "add", new)
    assert code == 0, stderr
    assert [c["resource"] for c in document["changes"]] == ["authorized_keys"]
    assert "dbt-cloud-2026-12" in host.sh("cat /home/dbtcloud/.ssh/authorized_keys")

    code, listing, _ = host.cli("keys", "list")
    where = {k["comment"]: k["where"] for k in listing["keys"]}
    assert where == {"tunnel-test": "both", "dbt-cloud-2026-12": "both"}

    code, document, _ = host.cli("keys", "remove", "tunnel-test")
    assert code == 0
    assert "tunnel-test" not in host.sh("cat /home/dbtcloud/.ssh/authorized_keys")
    code, document, _ = host.cli("keys", "remove", "dbt-cloud-2026-12")
    assert code == 4 and "last tunnel key" in document["error"]["message"]


def test_verify_key_goes_to_the_second_file_only(configured_host: LabHost) -> None:
    from bastion.tunnel.verify_key import install_verify_key, remove_verify_key

    settings = configured_host.settings()
    managed = configured_host.sh("sha256sum /home/dbtcloud/.ssh/authorized_keys")
    line = 'restrict,port-forwarding,permitopen="10.0.0.1:5432" ' + (
        make_key(configured_host.folder, "verify").with_suffix(".pub").read_text().strip()
    )
    with open_admin(settings, configured_host.lab.bastion_address) as conn:
        install_verify_key(conn, settings.first_tunnel.user, line)
        stat = configured_host.sh("stat -c '%U %a' /home/dbtcloud/.ssh/authorized_keys.verify")
        assert stat.split() == ["dbtcloud", "600"]
        remove_verify_key(conn, settings.first_tunnel.user)
    assert (
        configured_host.lab.host_exec(
            "test -e /home/dbtcloud/.ssh/authorized_keys.verify"
        ).returncode
        == 1
    )
    assert configured_host.sh("sha256sum /home/dbtcloud/.ssh/authorized_keys") == managed


def test_ssh_config_agent_and_personal_known_hosts_are_ignored(
    configured_host: LabHost, tmp_path: Path
) -> None:
    """A hostile ~/.ssh (wrong port, wrong key, a bogus known_hosts entry) and a dead agent."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "config").write_text("Host *\n  Port 1\n  User nobody\n  IdentityFile /nope\n")
    bogus = make_key(tmp_path, "bogus").with_suffix(".pub").read_text().split()
    (home / ".ssh" / "known_hosts").write_text(
        f"{configured_host.lab.bastion_address} {bogus[0]} {bogus[1]}\n"
    )
    env = {"HOME": str(home), "SSH_AUTH_SOCK": str(tmp_path / "no-agent.sock")}
    code, document, stderr = configured_host.cli("keys", "list", env=env)
    assert code == 0, stderr
    assert document["keys"]
