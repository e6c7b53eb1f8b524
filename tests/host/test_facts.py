"""Fact parsers on output recorded on each supported OS, and the facts script itself."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bastion.errors import HostError
from bastion.host.connection import open_admin
from bastion.host.crypto import MLKEM, SNTRUP, SNTRUP_OPENSSH
from bastion.host.fact_sections import (
    FACTS,
    OfferedAlgorithms,
    PackageRelease,
    SeLinuxPorts,
    facts_script,
    parse_facts,
    parse_sshd_t,
)
from bastion.host.facts import SECTION, HostFacts, SshAlgorithms
from bastion.host.stage import read_facts
from tests.host.conftest import LabHost, reconstructed, recorded
from tests.host.releases import release_facts


@pytest.mark.parametrize(
    ("name", "os_id", "version", "openssh", "service", "sftp"),
    [
        ("debian12", "debian", "12", (9, 2), "ssh", "/usr/lib/openssh/sftp-server"),
        ("al2023", "amzn", "2023", (8, 7), "sshd", "/usr/libexec/openssh/sftp-server"),
        ("ubuntu2204", "ubuntu", "22.04", (8, 9), "ssh", "/usr/lib/openssh/sftp-server"),
        ("ubuntu2404", "ubuntu", "24.04", (9, 6), "ssh", "/usr/lib/openssh/sftp-server"),
    ],
)
def test_os_openssh_service_and_sftp_server(
    name: str, os_id: str, version: str, openssh: tuple[int, int], service: str, sftp: str
) -> None:
    text = recorded(name) if name.startswith("debian") else reconstructed(name)
    facts = parse_facts(text)
    assert (facts.os_id, facts.os_version) == (os_id, version)
    assert facts.openssh == openssh
    assert facts.service == service
    assert facts.sftp_server == sftp
    assert facts.nologin == "/usr/sbin/nologin"


def test_amazon_linux_instance_connect_dnf_and_moduli() -> None:
    facts = parse_facts(reconstructed("al2023"))
    # the RPM installs its key script in /opt/aws/bin; its drop-in is the `systemd` fact's
    assert facts.instance_connect == ["/opt/aws/bin/eic_run_authorized_keys"]
    assert facts.auto_updates.manager == "dnf"
    assert not facts.auto_updates.installed
    assert (facts.moduli_total, facts.moduli_small) == (418, 133)
    assert facts.includes == ["/etc/ssh/sshd_config.d/*.conf"]
    assert facts.dropins == ["/etc/ssh/sshd_config.d/50-redhat.conf"]
    # EIC's options are on sshd's command line, which `sshd -T` does not show
    assert facts.sshd["authorizedkeyscommand"] == ["none"]
    assert facts.sshd["permitrootlogin"] == ["without-password"]
    assert facts.sshd_unit.name == "sshd.service"
    assert [o.text for o in facts.sshd_unit.options] == [
        "-o AuthorizedKeysCommand /opt/aws/bin/eic_run_authorized_keys %u %f",
        "-o AuthorizedKeysCommandUser ec2-instance-connect",
    ]
    assert facts.sshd_unit.options[0].source.endswith("sshd.service.d/ec2-instance-connect.conf")
    assert facts.user("dbtcloud") is None
    assert facts.user("ec2-user") is not None


def test_amazon_linux_is_locked_to_its_release_and_enforces_selinux() -> None:
    facts = parse_facts(reconstructed("al2023"))
    assert facts.dnf_release.versioned and facts.dnf_release.override is None
    assert facts.dnf_release.current == "2023.6.20241121"
    assert facts.selinux.mode == "enforcing" and not facts.selinux.semanage
    assert facts.selinux.labelled(22) and not facts.selinux.labelled(2222)


@pytest.mark.parametrize(
    ("text", "override", "current"),
    [
        ("@@dnf\nfile latest\nsystem-release 2023.6.20241121\n", "latest", "latest"),
        ("@@dnf\nfile 2023.9.20251117\nsystem-release 2023.6.20241121\n", "2023.9.20251117",
         "2023.9.20251117"),
        ("@@dnf\nfile $(reboot)\nsystem-release 2023.6.20241121\n", "(unreadable)",
         "(unreadable)"),
    ],
)  # fmt: skip
def test_releasever_file_beats_the_image_release(text: str, override: str, current: str) -> None:
    facts = HostFacts()
    PackageRelease().parse(text, facts)
    assert (facts.dnf_release.override, facts.dnf_release.current) == (override, current)


def test_semanage_port_list_is_read_as_ranges() -> None:
    facts = HostFacts()
    SeLinuxPorts().parse("mode Permissive\nsemanage\nssh_port_t  tcp  2222, 8000-8010, 22\n", facts)
    assert facts.selinux.mode == "permissive" and facts.selinux.semanage
    assert [p for p in (22, 2222, 8005, 8011) if facts.selinux.labelled(p)] == [22, 2222, 8005]
    absent = HostFacts()
    SeLinuxPorts().parse("mode absent\n", absent)
    assert not absent.selinux.enabled


def test_ubuntu_2204_existing_tunnel_user_and_keys() -> None:
    facts = parse_facts(reconstructed("ubuntu2204"))
    user = facts.user("dbtcloud")
    assert user is not None and user.shell == "/bin/sh" and user.uid == 1001
    assert facts.groups == {"dbtcloud": 1001}
    stat = facts.files["/home/dbtcloud/.ssh/authorized_keys"]
    assert (stat.owner, stat.mode) == ("dbtcloud", 0o644)
    assert facts.authorized_keys is not None
    assert facts.authorized_keys.startswith("ssh-ed25519 AAAA")
    assert facts.authorized_keys.rstrip().endswith("dbt-cloud-old")
    assert facts.cloud_init == "running"
    assert facts.client_address == "198.51.100.7"
    assert facts.auto_updates.installed and facts.auto_updates.enabled
    assert len(facts.dropins) == 2
    assert not facts.socket_activated  # 22.04 predates ssh.socket by default
    assert facts.sshd_unit.name == "ssh.service" and len(facts.sshd_unit.options) == 3


def test_ubuntu_2404_socket_activation_and_ipv6_client() -> None:
    facts = parse_facts(reconstructed("ubuntu2404"))
    # Ubuntu 22.10 and later: ssh.socket enabled and listening, its ports from the generator
    assert facts.socket_activated and facts.ssh_socket.name == "ssh.socket"
    assert facts.ssh_socket.ports == (22,) and facts.ssh_socket.ports_from_sshd_config
    assert facts.sshd_unit.name == "ssh.service"
    assert "-o PermitUserEnvironment EIC_*" in [o.text for o in facts.sshd_unit.options]
    assert facts.client_address == "2001:db8:1::7"
    assert {k.key_type: k.bits for k in facts.host_keys} == {
        "ECDSA": 256,
        "ED25519": 256,
        "RSA": 3072,
    }


def test_cut_short_output_is_a_host_error() -> None:
    text = reconstructed("al2023").split("@@bastion-fact end")[0]
    with pytest.raises(HostError, match="cut short"):
        parse_facts(text)


def test_unreadable_openssh_version_is_a_host_error() -> None:
    text = reconstructed("al2023").replace("OpenSSH_8.7p1", "SomethingElse")
    with pytest.raises(HostError, match="OpenSSH version"):
        parse_facts(text)


def test_sshd_t_errors_are_kept_apart_from_settings() -> None:
    values, errors = parse_sshd_t(
        "port 22\nallowusers a@1.2.3.4\nallowusers b\n/etc/ssh/sshd_config line 3: Bad SSH2 cipher spec 'x'."
    )
    assert values == {"port": ["22"], "allowusers": ["a@1.2.3.4", "b"]}
    assert errors == ["/etc/ssh/sshd_config line 3: Bad SSH2 cipher spec 'x'."]


def test_facts_script_is_valid_posix_shell() -> None:
    """dash is /bin/sh on Debian and Ubuntu, bash on Amazon Linux: both must parse it."""
    for shell in ("dash", "bash"):
        result = subprocess.run([shell, "-n", "-c", facts_script()], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_facts_script_runs_locally_without_failing(tmp_path: object) -> None:
    """Run as a normal user here: every section still appears and the parser accepts it."""
    result = subprocess.run(
        ["sh", "-c", facts_script(), "sh", "1.2.3.4 5 6.7.8.9 22", "nobody", "root", "192.0.2.1", "0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert "@@bastion-fact end" in result.stdout
    facts = parse_facts(result.stdout)
    assert facts.os_id == platform.freedesktop_os_release()["ID"]
    assert facts.client_address == "1.2.3.4"
    assert facts.user("root") is not None
    assert shutil.which("ssh") is None or "curve25519-sha256" in facts.ssh_algorithms.kex


def test_slow_facts_give_the_same_sections_without_a_temporary_folder(tmp_path: Path) -> None:
    """Slow facts run in the background into mktemp's folder; where mktemp fails (TMPDIR
    missing) they run in their turn: the same sections, and no folder is left behind."""

    def run(tmpdir: Path) -> str:
        done = subprocess.run(
            ["sh", "-c", facts_script(), "sh", "1.2.3.4 5 6.7.8.9 22", "nobody", "root",
             "192.0.2.1", "0"],
            capture_output=True, text=True, timeout=30, env={**os.environ, "TMPDIR": str(tmpdir)},
        )  # fmt: skip
        return done.stdout

    (tmp_path / "tmp").mkdir()
    background = run(tmp_path / "tmp")
    inline = run(tmp_path / "missing")
    slow = [fact.name for fact in FACTS if fact.slow]
    assert slow, "no fact is marked slow"
    assert _section_names(background) == _section_names(inline) == [f.name for f in FACTS] + ["end"]
    for name in slow:
        assert _section(background, name) == _section(inline, name)
        assert _section(background, name).strip()  # sshd -T answered (or said why not)
    assert list((tmp_path / "tmp").iterdir()) == []


def _section_names(output: str) -> list[str]:
    return [line.removeprefix(SECTION) for line in output.splitlines() if line.startswith(SECTION)]


def _section(output: str, name: str) -> str:
    """A section's text; the shell's line number in "sh: 13: sshd: not found" (no sshd
    on a CI runner) depends on where the command ran, so it is left out."""
    text = output.split(f"{SECTION}{name}\n", 1)[1].split(SECTION, 1)[0]
    return re.sub(r"^sh: \d+: ", "sh: ", text, flags=re.MULTILINE)


def test_debian_12_recorded_on_the_lab_host() -> None:
    """Recorded from a pristine lab host (Debian 12 image, as the lab builds it) by
    recorded/capture.py."""
    facts = parse_facts(recorded("debian12"))
    assert facts.sshd["kbdinteractiveauthentication"] == ["no"]
    assert facts.dropins == ["/etc/ssh/sshd_config.d/50-cloud-init.conf"]
    assert facts.includes == ["/etc/ssh/sshd_config.d/*.conf"]
    assert facts.auto_updates.manager == "apt" and facts.auto_updates.installed
    assert {k.key_type for k in facts.host_keys} == {"ECDSA", "ED25519", "RSA"}
    assert facts.host_key("RSA").bits == 3072  # type: ignore[union-attr]
    assert facts.moduli_small > 0 and facts.cloud_init == "absent"
    # captured with Debian's cloud image user (the lab's admin is `admin`, as on Debian's AMIs)
    assert facts.user("dbtcloud") is None and facts.user("admin") is not None


@pytest.mark.parametrize(
    ("release", "version", "openssh", "post_quantum"),
    [
        ("debian13", "13", (10, 0), [SNTRUP, SNTRUP_OPENSSH, MLKEM]),
        ("debian12", "12", (9, 2), [SNTRUP, SNTRUP_OPENSSH]),  # the un-suffixed name too
        ("debian11", "11", (8, 4), []),
    ],
)
def test_each_release_says_which_algorithms_its_openssh_offers(
    release: str, version: str, openssh: tuple[int, int], post_quantum: list[str]
) -> None:
    """Recorded from each release by recorded/algorithms/capture.sh: `ssh -Q`'s lists."""
    facts = release_facts(release)
    assert (facts.os_id, facts.os_version, facts.openssh) == ("debian", version, openssh)
    offered = facts.ssh_algorithms
    assert [k for k in offered.kex if k in (MLKEM, SNTRUP, SNTRUP_OPENSSH)] == post_quantum
    assert {"curve25519-sha256", "diffie-hellman-group-exchange-sha256"} <= set(offered.kex)
    assert {"chacha20-poly1305@openssh.com", "aes256-ctr"} <= set(offered.ciphers)
    assert {"hmac-sha2-512-etm@openssh.com", "umac-128-etm@openssh.com"} <= set(offered.macs)
    assert {"ssh-ed25519", "rsa-sha2-512", "ssh-ed25519-cert-v01@openssh.com"} <= set(
        offered.key_sig
    )
    assert "ssh-ed25519" not in offered.kex  # each list stays apart from the next


def test_offered_algorithms_keep_names_only() -> None:
    """A query this ssh does not know leaves its list empty, not filled with the complaint."""
    facts = HostFacts()
    OfferedAlgorithms().parse(
        "@@kex\ncurve25519-sha256\n@@cipher\naes256-ctr\n@@mac\n@@key-sig\n"
        'Unsupported query "key-sig"\n',
        facts,
    )
    assert facts.ssh_algorithms == SshAlgorithms(("curve25519-sha256",), ("aes256-ctr",), (), ())


@pytest.mark.lab
def test_facts_name_the_os_the_lab_host_reports(lab_host: LabHost) -> None:
    """Whatever the lab host runs: its own shell reads its /etc/os-release, bastion reads
    its facts over SSH, and the two agree."""
    reported = lab_host.sh('. /etc/os-release && printf "%s\\n%s\\n" "$ID" "${VERSION_ID:-}"')
    os_id, version = reported.splitlines()
    settings = lab_host.settings()
    with open_admin(settings, lab_host.lab.bastion_address) as conn:
        facts = read_facts(settings, conn)
    assert os_id, "the lab host names no OS"
    assert (facts.os_id, facts.os_version) == (os_id, version)
