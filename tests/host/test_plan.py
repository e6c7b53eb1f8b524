"""Facts + config -> changes, on recorded hosts: what a user would see in `plan`."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess

import pytest

from bastion.endpoint import Endpoint
from bastion.errors import ConfigError
from bastion.host.apply import apply_script
from bastion.host.desired import KEYS_HEADER, desired_host, key_line
from bastion.host.fact_sections import parse_facts
from bastion.host.facts import HostFacts, PasswdEntry
from bastion.host.journald import parse_journald
from bastion.host.plan import build_plan
from tests.host.conftest import MakeConfig, reconstructed, recorded
from tests.host.releases import release_facts

WAREHOUSE = Endpoint("10.0.2.10", 5432)


def resources(facts: HostFacts, settings: object, **kwargs: object) -> dict[str, str]:
    host = build_plan(settings, facts, WAREHOUSE, **kwargs)  # type: ignore[arg-type]
    return {c.resource: c.action for c in host.plan.changes}


def test_fresh_amazon_linux_gets_everything(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = parse_facts(reconstructed("al2023"))
    assert resources(facts, settings) == {
        "tunnel_group": "create",
        "tunnel_user": "create",
        "ssh_dir": "create",
        "authorized_keys": "create",
        "dh_moduli": "update",
        "dnf_releasever": "create",  # the repositories are locked to the image's release
        "auto_updates": "create",
        "instance_connect": "delete",
        "log_retention": "update",  # journald's Storage=auto: kept on disk only by chance
        "sshd_command_line": "update",  # EIC's drop-in puts -o options on sshd's command line
        "sshd_config": "update",
        "sshd_reload": "update",
    }
    host = build_plan(settings, facts, WAREHOUSE)
    assert host.restart, "removing EC2 Instance Connect changes sshd's unit: restart, not reload"
    assert host.pickup[0] == "systemctl daemon-reload"
    text = host.desired.sshd_config  # type: ignore[union-attr]
    assert "Subsystem sftp /usr/libexec/openssh/sftp-server" in text
    assert "SyslogFacility AUTHPRIV" in text
    assert "PubkeyAcceptedAlgorithms ssh-ed25519," in text
    assert "RequiredRSASize" not in text  # OpenSSH 8.7 does not know it


def test_rendered_sshd_config_core_lines(make_config: MakeConfig) -> None:
    settings = make_config(interval=45, count=7, admin_cidrs=["198.51.100.0/24"])
    facts = parse_facts(reconstructed("ubuntu2404"))
    text = desired_host(settings, facts, WAREHOUSE).sshd_config
    lines = text.splitlines()
    for wanted in (
        "PermitRootLogin no",
        "PasswordAuthentication no",
        "AuthenticationMethods publickey",
        "AuthorizedKeysCommand none",
        "ClientAliveInterval 45",
        "ClientAliveCountMax 7",
        "    PermitOpen 10.0.2.10:5432",
        "    AllowTcpForwarding local",
        "    PermitTTY no",
        "    ForceCommand /usr/sbin/nologin",
        "    AuthorizedKeysFile .ssh/authorized_keys .ssh/authorized_keys.verify",
        "RequiredRSASize 2048",
    ):
        assert wanted in lines, wanted
    allow = next(line for line in lines if line.startswith("AllowUsers ")).split()[1:]
    assert allow[0] == "ec2-user@198.51.100.0/24"
    assert "dbtcloud@52.45.144.63" in allow and "dbtcloud@198.51.100.0/24" in allow
    assert not any(a.startswith("ec2-user@52.") for a in allow), "dbt Cloud's addresses are shared"
    assert "Include" not in text.replace("are deliberately not included", "")


def test_adopting_a_host_keeps_unknown_keys_and_says_so(
    make_config: MakeConfig, tunnel_key: str
) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = parse_facts(reconstructed("ubuntu2204"))
    facts.users["ubuntu"] = facts.users.pop("ubuntu")
    host = build_plan(settings, facts, WAREHOUSE)
    change = next(c for c in host.plan.changes if c.resource == "authorized_keys")
    assert "- " not in change.detail and "mode 644" in change.detail
    assert any("keeping 1 key(s)" in n and "dbt-cloud-old" in n for n in host.plan.notices)
    tunnel_user = next(c for c in host.plan.changes if c.resource == "tunnel_user")
    assert "shell /bin/sh -> /usr/sbin/nologin" in tunnel_user.detail
    assert "instance_connect" in {c.resource for c in host.plan.changes}
    assert any("cloud-init is still running" in n for n in host.plan.notices)


def test_prune_removes_unknown_keys(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = parse_facts(reconstructed("ubuntu2204"))
    host = build_plan(settings, facts, WAREHOUSE, prune=True)
    change = next(c for c in host.plan.changes if c.resource == "authorized_keys")
    assert "- SHA256:" in change.detail and "dbt-cloud-old" in change.detail


def _converged(settings: object, facts: HostFacts) -> HostFacts:
    """The facts a host would report right after a successful configure."""
    desired = desired_host(settings, facts, WAREHOUSE)  # type: ignore[arg-type]
    lines = [key_line(k, WAREHOUSE) for k in desired.tunnels["dbtcloud"].keys]
    home = "/home/dbtcloud"
    facts = dataclasses.replace(
        facts,
        users={
            **facts.users,
            "dbtcloud": PasswdEntry("dbtcloud", 1001, 1001, "", home, "/usr/sbin/nologin"),
        },
        groups={"dbtcloud": 1001},
        authorized_keys="\n".join([KEYS_HEADER, *lines]) + "\n",
        sshd_config_sha256=desired.sshd_config_sha256,
        marker={
            "managed_by": "dbt-bastion",
            "name": "analytics",
            "tunnel_user": "dbtcloud",
            "kept": [],
        },
        instance_connect=[],
        sshd_unit=dataclasses.replace(facts.sshd_unit, options=()),  # the tool's drop-in
        journald=dataclasses.replace(facts.journald, storage="persistent"),
        moduli_small=0,
        cloud_init="done",
        files={},
        sshd={k: [v] for k, v in desired.effective.items()},
        sshd_tunnel={k: [v] for k, v in desired.tunnels["dbtcloud"].effective.items()},
    )
    from bastion.host.facts import FileStat

    facts.files[home] = FileStat("dbtcloud", "dbtcloud", 0o750, "directory")
    facts.files[f"{home}/.ssh"] = FileStat("dbtcloud", "dbtcloud", 0o700, "directory")
    facts.files[f"{home}/.ssh/authorized_keys"] = FileStat(
        "dbtcloud", "dbtcloud", 0o600, "regular file"
    )
    return facts


def test_converged_host_has_no_changes(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = _converged(settings, parse_facts(reconstructed("ubuntu2404")))
    host = build_plan(settings, facts, WAREHOUSE)
    assert host.plan.changes == []
    assert host.lines == []


def test_managed_host_hand_added_key_is_drift(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = _converged(settings, parse_facts(reconstructed("ubuntu2404")))
    intruder = reconstructed("ubuntu2204")  # holds a key line we did not configure
    old_key = parse_facts(intruder).authorized_keys
    facts.authorized_keys = (facts.authorized_keys or "") + (old_key or "")
    host = build_plan(settings, facts, WAREHOUSE)
    change = next(c for c in host.plan.changes if c.resource == "authorized_keys")
    assert change.action == "update"
    assert "(added by hand)" in change.detail and "dbt-cloud-old" in change.detail


def test_keys_kept_on_adoption_stay_kept_later(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    adopted = parse_facts(reconstructed("ubuntu2204"))
    first = build_plan(settings, adopted, WAREHOUSE)
    marker_line = next(s for s in first.lines if "state.json" in s)
    import base64

    marker = json.loads(base64.b64decode(marker_line.split()[-1]))
    assert len(marker["kept"]) == 1
    facts = _converged(settings, parse_facts(reconstructed("ubuntu2404")))
    facts.authorized_keys = (facts.authorized_keys or "") + (adopted.authorized_keys or "")
    facts.marker = marker
    assert build_plan(settings, facts, WAREHOUSE).plan.changes == []


def test_no_configured_key_never_removes_the_last_key(make_config: MakeConfig) -> None:
    settings = make_config(public_keys=[])
    facts = parse_facts(reconstructed("ubuntu2204"))
    facts.marker = {"managed_by": "dbt-bastion", "kept": []}
    host = build_plan(settings, facts, WAREHOUSE)
    change = next(c for c in host.plan.changes if c.resource == "authorized_keys")
    assert "- " not in change.detail
    assert any("--prune" in n for n in host.plan.notices)
    pruned = build_plan(settings, facts, WAREHOUSE, prune=True)
    assert (
        "- SHA256:"
        in next(c for c in pruned.plan.changes if c.resource == "authorized_keys").detail
    )


def test_edited_keepalive_is_named_in_the_change(make_config: MakeConfig, tunnel_key: str) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = _converged(settings, parse_facts(reconstructed("ubuntu2404")))
    facts.sshd_config_sha256 = "0" * 64
    facts.sshd_config_header = "# Managed by dbt-bastion (analytics)."
    facts.sshd["clientaliveinterval"] = ["60"]
    change = next(
        c
        for c in build_plan(settings, facts, WAREHOUSE).plan.changes
        if c.resource == "sshd_config"
    )
    assert (
        "differs from the rendered file" in change.detail
        and "clientaliveinterval 60 -> 30" in change.detail
    )


def test_existing_system_account_is_refused(make_config: MakeConfig) -> None:
    settings = make_config()
    facts = parse_facts(reconstructed("ubuntu2404"))
    facts.users["dbtcloud"] = PasswdEntry(
        "dbtcloud", 998, 998, "", "/var/lib/x", "/usr/sbin/nologin"
    )
    with pytest.raises(ConfigError, match="system account"):
        build_plan(settings, facts, WAREHOUSE)


def test_hardened_needs_4096_bit_rsa_host_key(make_config: MakeConfig) -> None:
    settings = make_config(ssh_crypto="hardened")
    facts = parse_facts(reconstructed("ubuntu2404"))
    host = build_plan(settings, facts, WAREHOUSE)
    change = next(c for c in host.plan.changes if c.resource == "host_keys")
    assert change.detail.startswith("RSA host key 3072 -> 4096 bits")
    assert host.desired.crypto.policy == "Hardened Ubuntu Server 24.04 LTS (version 2)"  # type: ignore[union-attr]


def test_lockout_is_announced_in_plan(make_config: MakeConfig) -> None:
    settings = make_config(admin_cidrs=["192.0.2.0/24"])
    facts = parse_facts(reconstructed("al2023"))
    notices = build_plan(settings, facts, WAREHOUSE).plan.notices
    assert any("198.51.100.7" in n and "lock you out" in n for n in notices)


@pytest.mark.parametrize("name", ["al2023", "ubuntu2204", "ubuntu2404"])
def test_apply_script_is_valid_shell(make_config: MakeConfig, tunnel_key: str, name: str) -> None:
    settings = make_config(public_keys=[tunnel_key], ssh_crypto="hardened")
    facts = parse_facts(reconstructed(name))
    host = build_plan(settings, facts, WAREHOUSE)
    script = apply_script(settings, facts, host, "52.45.144.63")
    for shell in ("dash", "bash"):
        result = subprocess.run([shell, "-n", "-c", script], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_lines_that_are_not_keys_are_named_by_number_never_shown_or_kept(
    make_config: MakeConfig, tunnel_key: str
) -> None:
    settings = make_config(public_keys=[tunnel_key])
    facts = parse_facts(reconstructed("ubuntu2204"))
    old_key = (facts.authorized_keys or "").strip()
    facts.authorized_keys = f"root:$y$j9T$secret-hash:20000:0:99999:7:::\n{old_key}\n# note\nx y\n"
    host = build_plan(settings, facts, WAREHOUSE)
    said = " ".join([*host.plan.notices, *(c.detail for c in host.plan.changes)])
    assert "secret-hash" not in said and "x y" not in said
    assert "line 1, line 4" in said and "dbt-cloud-old" in said
    written = next(line for line in host.lines if "/.ssh/authorized_keys " in line)
    import base64

    content = base64.b64decode(written.split()[-1]).decode()
    assert "secret-hash" not in content and "x y" not in content
    assert old_key in content  # the valid key is kept, as it was


@pytest.mark.parametrize(
    "link", ["", "/.ssh", "/.ssh/authorized_keys", "/.ssh/authorized_keys.verify"]
)
def test_a_symbolic_link_in_the_tunnel_home_is_refused_before_any_change(
    make_config: MakeConfig, link: str
) -> None:
    from bastion.errors import HostError
    from bastion.host.facts import FileStat

    settings = make_config()
    facts = parse_facts(reconstructed("ubuntu2204"))
    path = f"{facts.home_of('dbtcloud')}{link}"
    facts.files[path] = FileStat("dbtcloud", "dbtcloud", 0o777, "symbolic link")
    with pytest.raises(HostError) as refused:
        build_plan(settings, facts, WAREHOUSE)
    assert f"{path} is a symbolic link" in refused.value.message


def test_the_candidate_is_checked_before_anything_is_written(
    make_config: MakeConfig, tunnel_key: str
) -> None:
    """sshd -t on the candidate (and new host keys, made beside the old ones) come before
    the first change: a user, a key, the moduli, a package."""
    settings = make_config(public_keys=[tunnel_key], ssh_crypto="hardened")
    facts = parse_facts(reconstructed("al2023"))
    host = build_plan(settings, facts, WAREHOUSE)
    script = apply_script(settings, facts, host, "52.45.144.63")
    body = script[script.index("\nsettle_pending\n") :]
    first_change = min(
        body.index(f"\n{word} ")
        for word in ("mkgroup", "mkuser", "put", "filter_moduli", "dnf_install", "installkey")
    )
    assert body.index("\ncandidate ") < first_change
    assert body.index("\nmakekey rsa ") < body.index("\ncandidate ")


@pytest.mark.parametrize(("release", "filtered"), [("debian13", False), ("debian12", True)])
def test_hardened_filters_the_moduli_only_where_group_exchange_is_used(
    make_config: MakeConfig, release: str, filtered: bool
) -> None:
    """Debian 13's policy has no group exchange, so /etc/ssh/moduli is not edited there."""
    facts = parse_facts(recorded("debian12"))
    offered = release_facts(release)
    facts.os_version, facts.ssh_algorithms = offered.os_version, offered.ssh_algorithms
    changes = resources(facts, make_config(ssh_crypto="hardened"))
    assert ("dh_moduli" in changes) is filtered


def test_amazon_linux_tracks_the_latest_release_undoably(make_config: MakeConfig) -> None:
    """AL2023 locks dnf to the image's release: the plan says so and writes `latest` with
    the apply script's `put` (journalled: a failed run puts the file back as it was)."""
    facts = parse_facts(reconstructed("al2023"))
    host = build_plan(make_config(), facts, WAREHOUSE)
    change = next(c for c in host.plan.changes if c.resource == "dnf_releasever")
    assert "unset: the image's 2023.6.20241121 -> latest" in change.detail
    assert "dnf-automatic alone installs no fix" in change.detail
    written = next(line for line in host.lines if line.startswith("put /etc/dnf/vars/releasever "))
    assert base64.b64decode(written.split()[-1]) == b"latest\n"
    assert host.lines.index(written) < next(
        i for i, line in enumerate(host.lines) if line.startswith("dnf_install ")
    ), "dnf-automatic comes from the latest release"
    facts.dnf_release = dataclasses.replace(facts.dnf_release, override="latest")
    assert "dnf_releasever" not in resources(facts, make_config())


@pytest.mark.parametrize("name", ["ubuntu2204", "ubuntu2404", "debian12"])
def test_no_release_change_where_repositories_are_not_release_locked(
    make_config: MakeConfig, name: str
) -> None:
    facts = parse_facts(recorded(name) if name.startswith("debian") else reconstructed(name))
    assert "dnf_releasever" not in resources(facts, make_config())


def test_selinux_refuses_a_port_it_cannot_label_before_any_change(
    make_config: MakeConfig,
) -> None:
    """AL2023 enforces SELinux and its image has no semanage: port 2222 is refused (exit 4,
    the key named), 22 (ssh_port_t in the policy) is not."""
    facts = parse_facts(reconstructed("al2023"))
    assert "selinux_port" not in resources(facts, make_config(ssh_port=22))
    with pytest.raises(ConfigError, match="bastion.ssh_port 2222: SELinux enforces") as refused:
        build_plan(make_config(ssh_port=2222), facts, WAREHOUSE)
    assert refused.value.exit_code == 4 and "policycoreutils-python-utils" in refused.value.hint


def test_selinux_port_is_labelled_before_sshd_picks_it_up(make_config: MakeConfig) -> None:
    facts = parse_facts(reconstructed("al2023"))
    facts.selinux = dataclasses.replace(facts.selinux, semanage=True, ssh_ports=((22, 22),))
    settings = make_config(ssh_port=2222)
    host = build_plan(settings, facts, WAREHOUSE, listen_ports=(22, 2222))
    change = next(c for c in host.plan.changes if c.resource == "selinux_port")
    assert "tcp port 2222 labelled ssh_port_t" in change.detail
    assert [line for line in host.lines if line.startswith("label_ssh_port")] == [
        "label_ssh_port 2222"
    ]
    script = apply_script(settings, facts, host, "52.45.144.63")
    assert script.index("\nlabel_ssh_port 2222") < script.rindex("systemctl daemon-reload")
    facts.selinux = dataclasses.replace(facts.selinux, ssh_ports=((22, 22), (2222, 2222)))
    assert "selinux_port" not in resources(facts, settings, listen_ports=(22, 2222))


def test_ubuntu_2404_moves_its_port_on_the_generated_socket(make_config: MakeConfig) -> None:
    """Ubuntu 24.04's ssh.socket takes its ports from sshd-socket-generator: a port change
    is sshd_config's Port lines, a daemon-reload and a restart of the socket, no drop-in."""
    facts = parse_facts(reconstructed("ubuntu2404"))
    host = build_plan(make_config(ssh_port=2222), facts, WAREHOUSE, listen_ports=(22, 2222))
    change = next(c for c in host.plan.changes if c.resource == "ssh_socket")
    assert "ssh.socket listens on 22 -> 22, 2222" in change.detail
    assert "sshd-socket-generator reads the Port lines" in change.detail
    assert not any("ssh.socket.d/zz-dbt-bastion.conf" in line for line in host.lines)
    assert host.pickup == (
        "systemctl daemon-reload",
        "systemctl stop ssh.service",
        "systemctl restart ssh.socket",
        "systemctl start ssh.service",
    )
    assert "sshd_command_line" in resources(facts, make_config())  # EIC's options go too


def test_a_journald_dropin_read_after_bastions_is_a_notice_not_a_change_at_every_run(
    make_config: MakeConfig, tunnel_key: str
) -> None:
    """Its own drop-in in place, a later one keeping sshd's log 7 days: no `log_retention`
    change (it would come back at every run), a notice naming the file."""

    settings = make_config(public_keys=[tunnel_key])
    facts = parse_facts(reconstructed("al2023"))
    facts.journald = parse_journald(
        "@@journald\n# /etc/systemd/journald.conf\n[Journal]\n"
        "# /etc/systemd/journald.conf.d/zz-dbt-bastion.conf\n[Journal]\nStorage=persistent\n"
        "# /etc/systemd/journald.conf.d/zzz-local.conf\n[Journal]\nMaxRetentionSec=7day\n"
    )
    host = build_plan(settings, facts, WAREHOUSE)
    assert "log_retention" not in {c.resource for c in host.plan.changes}
    (notice,) = [n for n in host.plan.notices if "journald" in n]
    assert "MaxRetentionSec=7day in /etc/systemd/journald.conf.d/zzz-local.conf" in notice
    assert "raise or remove it there" in notice
