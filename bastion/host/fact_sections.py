"""Reading the host in one round trip: one class per fact (a shell snippet for the facts
script and a parser for its output), the script they make, and its parse into HostFacts.

Each parser can be read, and tested on recorded output, next to the command whose output
it reads; bastion.host.facts holds the values they fill.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import ClassVar

from bastion.config.keys import InvalidKeyError, parse_public_key
from bastion.errors import HostError
from bastion.host.connection import HostConnection
from bastion.host.facts import (
    SECTION,
    AutoUpdates,
    FileStat,
    HostFacts,
    HostKeyFact,
    PasswdEntry,
    SshAlgorithms,
)
from bastion.host.journald import FACT_COMMAND as JOURNALD_FACT_COMMAND
from bastion.host.journald import parse_journald
from bastion.host.paths import MARKER, ROLLBACK_TOKEN, STATE_DIR, VERIFY_KEYS_NAME
from bastion.host.releasever import FACT_COMMAND as RELEASEVER_FACT_COMMAND
from bastion.host.releasever import parse_releasever
from bastion.host.selinux import FACT_COMMAND as SELINUX_FACT_COMMAND
from bastion.host.selinux import parse_selinux
from bastion.host.systemd import FACT_COMMAND as SYSTEMD_FACT_COMMAND
from bastion.host.systemd import ON as TIMER_ON
from bastion.host.systemd import parse_systemd


class Fact:
    """A named shell snippet whose output is parsed into HostFacts.

    A `slow` fact starts in the background when the script starts and is collected in its
    turn, so the host runs it beside the quick ones (`sshd -T` takes ~10 ms a run).
    """

    name: ClassVar[str]
    command: ClassVar[str]
    slow: ClassVar[bool] = False

    def parse(self, text: str, facts: HostFacts) -> None:
        raise NotImplementedError


class OperatingSystem(Fact):
    name = "os"
    command = "cat /etc/os-release"

    def parse(self, text: str, facts: HostFacts) -> None:
        values = dict(_key_values(text))
        facts.os_id = values.get("ID", "")
        facts.os_version = values.get("VERSION_ID", "")
        facts.os_name = values.get("PRETTY_NAME", "")


class OpenSshVersion(Fact):
    name = "openssh"
    command = "ssh -V 2>&1"

    def parse(self, text: str, facts: HostFacts) -> None:
        match = re.search(r"OpenSSH_(\d+)\.(\d+)", text)
        if match is None:
            raise HostError(f"cannot tell the OpenSSH version from: {text.strip()[:200]!r}")
        facts.openssh = (int(match[1]), int(match[2]))


class OfferedAlgorithms(Fact):
    """What this OpenSSH build implements, asked of the build rather than inferred from its
    version (Debian 12's 9.2 offers the un-suffixed sntrup761 name; Amazon Linux 2023's 8.7
    gained sntrup761 and ML-KEM in later builds).

    `ssh -Q` answers from the same code that checks sshd_config's algorithm names, and the
    ssh client and sshd come from one build on every supported OS (the Debian and Ubuntu
    packages depend on each other's exact version, as Amazon Linux's do on `openssh`'s).
    `sshd -T -f /dev/null` is not asked: it prints only sshd's default selection, a subset
    (OpenSSH 10 leaves the finite-field groups out), and fails where sshd has no host keys
    or privilege separation folder yet; what sshd currently uses is the `sshd_t` fact.
    """

    name = "ssh_algorithms"
    slow = True  # four runs of ssh (~35 ms): beside the quick facts
    command = 'for q in kex cipher mac key-sig; do echo "@@$q"; ssh -Q "$q"; done'

    def parse(self, text: str, facts: HostFacts) -> None:
        lists: dict[str, list[str]] = {}
        current: list[str] | None = None
        for line in text.splitlines():
            word = line.strip()
            if word.startswith("@@"):
                current = lists.setdefault(word[2:], [])
            elif current is not None and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9@._+-]*", word):
                current.append(word)
        facts.ssh_algorithms = SshAlgorithms(
            kex=tuple(lists.get("kex", ())),
            ciphers=tuple(lists.get("cipher", ())),
            macs=tuple(lists.get("mac", ())),
            key_sig=tuple(lists.get("key-sig", ())),
        )


class ClientAddress(Fact):
    name = "client"
    command = 'echo "$SSHC"'

    def parse(self, text: str, facts: HostFacts) -> None:
        fields = text.split()
        facts.client_address = fields[0] if fields else ""


class SshService(Fact):
    """`ssh` on Debian and Ubuntu, `sshd` on Amazon Linux (whether a socket starts it is
    the `systemd` fact's to say)."""

    name = "service"
    command = (
        "for u in ssh.service sshd.service; do for d in /etc/systemd/system /lib/systemd/system"
        ' /usr/lib/systemd/system; do [ -e "$d/$u" ] && echo "unit $u"; done; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        lines = text.split()
        if "sshd.service" in lines and "ssh.service" not in lines:
            facts.service = "sshd"
        elif "ssh.service" in lines:
            facts.service = "ssh"
        else:
            facts.service = "sshd" if facts.os_id in {"amzn", "rhel", "fedora", "rocky"} else "ssh"


class SystemdUnits(Fact):
    """What systemd will run: whether a socket starts sshd (`systemctl is-enabled` and
    `is-active`, its Listen= ports) and the options on sshd's command line, from
    `systemctl show` and `systemctl cat` of the unit that runs it (bastion.host.systemd)."""

    name = "systemd"
    slow = True
    command = SYSTEMD_FACT_COMMAND

    def parse(self, text: str, facts: HostFacts) -> None:
        units = parse_systemd(text)
        facts.systemd = units.running
        facts.ssh_socket, facts.sshd_unit = units.socket, units.sshd
        facts.socket_activated = units.running and units.socket.in_use


class Programs(Fact):
    name = "programs"
    command = (
        "for p in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server"
        ' /usr/lib/ssh/sftp-server /usr/sbin/nologin /sbin/nologin; do [ -x "$p" ] && echo "$p"; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        paths = text.split()
        facts.sftp_server = next((p for p in paths if p.endswith("/sftp-server")), "")
        facts.nologin = next((p for p in paths if p.endswith("/nologin")), "/usr/sbin/nologin")


class Accounts(Fact):
    name = "accounts"
    command = (
        'echo "$PASSWD"; echo @@group; [ -n "$USERS" ] && getent group $USERS; echo @@login.defs;'
        " grep -E '^UID_MIN' /etc/login.defs; echo @@expires;"
        ' for u in $USERS; do getent shadow "$u" | cut -d: -f1,8; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        kind = "passwd"
        for line in text.splitlines():
            if line.startswith("@@"):
                kind = line[2:]
                continue
            parts = line.split(":")
            if kind == "passwd" and len(parts) == 7:
                name, _, uid, gid, gecos, home, shell = parts
                facts.users[name] = PasswdEntry(name, int(uid), int(gid), gecos, home, shell)
            elif kind == "group" and len(parts) >= 3:
                facts.groups[parts[0]] = int(parts[2])
            elif kind == "login.defs" and line.startswith("UID_MIN"):
                facts.uid_min = int(line.split()[1])
            elif kind == "expires" and len(parts) == 2 and parts[1].strip().isdigit():
                facts.expired[parts[0]] = int(parts[1]) <= 1


class TunnelFiles(Fact):
    """`stat` reports a symbolic link as one; nothing is looked at through a linked folder."""

    name = "files"
    command = (
        "for HOME_DIR in $HOMES; do"
        ' [ -n "$HOME_DIR" ] && { stat -c "%U|%G|%a|%F|%n" "$HOME_DIR" "$HOME_DIR/.ssh";'
        ' [ ! -L "$HOME_DIR" ] && [ ! -L "$HOME_DIR/.ssh" ] && stat -c "%U|%G|%a|%F|%n"'
        f' "$HOME_DIR/.ssh/authorized_keys" "$HOME_DIR/.ssh/{VERIFY_KEYS_NAME}"; }}; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        for line in text.splitlines():
            parts = line.split("|", 4)
            if len(parts) == 5:
                owner, group, mode, kind, path = parts
                facts.files[path] = FileStat(owner, group, int(mode, 8), kind)


class AuthorizedKeysContent(Fact):
    """Read as root, so never through a link (the account may have pointed it anywhere);
    each tunnel user's (configured or former) after a `@@user NAME` line."""

    name = "authorized_keys"
    command = (
        "for P in $PAIRS; do HOME_DIR=${P#*:}; echo \"@@user ${P%%:*}\";"
        ' [ -n "$HOME_DIR" ] && [ ! -L "$HOME_DIR" ] && [ ! -L "$HOME_DIR/.ssh" ] && '
        '[ ! -L "$HOME_DIR/.ssh/authorized_keys" ] && [ -f "$HOME_DIR/.ssh/authorized_keys" ] && '
        '{ echo present; base64 -w0 < "$HOME_DIR/.ssh/authorized_keys"; echo; }; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        for user, lines in by_user(text).items():
            content = self._content(lines)
            if user:
                facts.authorized_keys_of[user] = content
            else:  # recorded before a host had several tunnel users: the only one's
                facts.authorized_keys = content
                if content is not None:
                    facts.authorized_keys_sha256 = hashlib.sha256(content.encode()).hexdigest()

    @staticmethod
    def _content(lines: list[str]) -> str | None:
        if not lines or lines[0] != "present":
            return None
        try:
            raw = base64.b64decode("".join(lines[1:]), validate=True)
        except binascii.Error:
            raise HostError("a tunnel user's authorized_keys could not be read back") from None
        return raw.decode("utf-8", "replace")


def by_user(text: str) -> dict[str, list[str]]:
    """A fact's lines by the `@@user NAME` line before them ("" for lines before any)."""
    sections: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("@@user "):
            current = line[len("@@user ") :].strip()
            sections[current] = []
        else:
            sections.setdefault(current, []).append(line)
    return sections


class SshdConfigFile(Fact):
    """The whole file comes back (a few kB): its hash, header and Include lines are read here."""

    name = "sshd_config"
    command = (
        "base64 -w0 /etc/ssh/sshd_config; echo; for f in /etc/ssh/sshd_config.d/*.conf;"
        ' do [ -e "$f" ] && echo "$f"; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        lines = text.splitlines()
        try:
            raw = base64.b64decode(lines[0] if lines else "", validate=True)
        except binascii.Error:
            raise HostError("/etc/ssh/sshd_config could not be read back") from None
        facts.sshd_config_sha256 = hashlib.sha256(raw).hexdigest() if raw else ""
        content = raw.decode("utf-8", "replace")
        facts.sshd_config_header = content.split("\n", 1)[0]
        for line in content.splitlines():
            words = line.split()
            if len(words) > 1 and words[0].lower() == "include":
                facts.includes.extend(words[1:])
        facts.dropins = [line for line in lines[1:] if line.startswith("/")]


def parse_sshd_t(text: str) -> tuple[dict[str, list[str]], list[str]]:
    """`sshd -T` output -> {keyword: [values]}; lines that are not settings are errors."""
    values: dict[str, list[str]] = {}
    errors: list[str] = []
    for line in text.splitlines():
        keyword, _, value = line.strip().partition(" ")
        if re.fullmatch(r"[a-z0-9]+", keyword) and value:
            values.setdefault(keyword, []).append(value)
        elif line.strip():
            errors.append(line.strip())
    return values, errors


class EffectiveSettings(Fact):
    name = "sshd_t"
    slow = True
    command = '"$SSHD" -T 2>&1'

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.sshd, errors = parse_sshd_t(text)
        facts.sshd_errors.extend(errors)


class EffectiveTunnelSettings(Fact):
    name = "sshd_t_tunnel"
    slow = True
    command = (
        'for P in $TUNNEL; do U=${P%%=*} A=${P#*=}; echo "@@user $U";'
        ' "$SSHD" -T -C "user=$U,host=$A,addr=$A" 2>&1; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        for user, lines in by_user(text).items():
            values, errors = parse_sshd_t("\n".join(lines))
            if user:
                facts.sshd_tunnel_of[user] = values
            elif values or errors:  # recorded before a host had several tunnel users
                facts.sshd_tunnel = values
            facts.sshd_errors.extend(errors)


class HostKeys(Fact):
    name = "host_keys"
    command = 'for f in /etc/ssh/ssh_host_*_key.pub; do [ -f "$f" ] && echo "$f $(cat "$f")"; done'

    def parse(self, text: str, facts: HostFacts) -> None:
        labels = {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}
        for line in text.splitlines():
            path, _, key_text = line.partition(" ")
            fields = key_text.split()
            try:
                key = parse_public_key(" ".join(fields[:2]))
            except (InvalidKeyError, IndexError):
                continue
            label = labels.get(key.key_type, "ECDSA" if "ecdsa" in key.key_type else key.key_type)
            facts.host_keys.append(
                HostKeyFact(path.removesuffix(".pub"), label, key.bits, key.fingerprint)
            )


class Moduli(Fact):
    """DH group-exchange moduli: the 5th field is the size minus one (3071 for 3072 bits)."""

    name = "moduli"
    command = (
        "awk '$1 ~ /^[0-9]+$/ && NF == 7 {n++; if ($5 < 3071) s++} END {print n+0, s+0}'"
        " /etc/ssh/moduli 2>/dev/null"
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        numbers = text.split()
        if len(numbers) == 2:
            facts.moduli_total, facts.moduli_small = int(numbers[0]), int(numbers[1])


class AutomaticUpdates(Fact):
    """Judged from what will run, not from a file's presence: apt's APT::Periodic settings
    as `apt-config dump` shows them (every file of apt.conf.d, the last one winning), and,
    where systemd is PID 1, the timers that start the updates (`systemctl is-enabled`):
    apt-daily.timer refreshes the package lists, apt-daily-upgrade.timer runs
    unattended-upgrade; dnf-automatic.timer (or dnf-automatic-install.timer) on dnf hosts.
    Without systemd, cron's apt-compat runs them and no timer is asked about."""

    name = "auto_updates"
    slow = True  # apt-config and systemctl (~40 ms): beside the quick facts
    command = (
        "[ -d /run/systemd/system ] && echo 'pid1 systemd';"
        " if [ -d /var/lib/dpkg ]; then echo manager apt;"
        " [ -f /var/lib/dpkg/info/unattended-upgrades.list ] && echo 'status install ok installed';"
        " apt-config dump 2>/dev/null | grep '^APT::Periodic::' | sed 's/^/apt /';"
        " for t in apt-daily.timer apt-daily-upgrade.timer; do"
        ' echo "timer $t $(systemctl is-enabled "$t" 2>/dev/null)"; done;'
        " elif command -v rpm >/dev/null; then echo manager dnf;"
        " rpm -q dnf-automatic >/dev/null 2>&1 && echo 'status install ok installed';"
        " grep -E '^[[:space:]]*apply_updates' /etc/dnf/automatic.conf 2>/dev/null | sed 's/^/dnf /';"
        " for t in dnf-automatic.timer dnf-automatic-install.timer; do"
        ' echo "timer $t $(systemctl is-enabled "$t" 2>/dev/null)"; done; fi'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        values = [line.split(" ", 1) for line in text.splitlines() if " " in line]
        manager = next((v for k, v in values if k == "manager"), "unknown")
        installed = any(k == "status" and v.strip() == "install ok installed" for k, v in values)
        systemd = ["pid1", "systemd"] in values
        timers = {
            words[0]: " ".join(words[1:])
            for k, v in values
            if k == "timer" and (words := v.split())
        }
        wanted: tuple[str, ...] = ()
        if manager == "apt":
            periodic: dict[str, str] = {}
            for key, value in values:
                match = re.match(r'\s*(APT::Periodic::[\w-]+)\s+"([^"]*)"', value)
                if key == "apt" and match:
                    periodic[match[1]] = match[2]
            configured = periodic.get("APT::Periodic::Enable", "1") != "0" and all(
                periodic.get(f"APT::Periodic::{name}", "0") not in ("", "0")
                for name in ("Update-Package-Lists", "Unattended-Upgrade")
            )
            wanted = ("apt-daily.timer", "apt-daily-upgrade.timer")
        elif manager == "dnf":
            apply = [v for k, v in values if k == "dnf"]
            on = bool(apply) and apply[-1].split("=")[-1].strip().lower() in {"yes", "true", "1"}
            forced = timers.get("dnf-automatic-install.timer", "") in TIMER_ON
            configured = on or forced
            wanted = () if forced else ("dnf-automatic.timer",)
        else:
            configured = False
        off = tuple(t for t in wanted if timers.get(t, "") not in TIMER_ON) if systemd else ()
        facts.auto_updates = AutoUpdates(manager, installed, configured, off)


class InstanceConnect(Fact):
    """The ec2-instance-connect package (its key script); the options its drop-in puts on
    sshd's command line are the `systemd` fact's."""

    name = "instance_connect"
    command = (
        "for f in /usr/share/ec2-instance-connect /opt/aws/bin/eic_run_authorized_keys;"
        ' do [ -e "$f" ] && echo "$f"; done'
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.instance_connect = text.split()


class JournaldSettings(Fact):
    """journald's settings as it reads them (`systemd-analyze cat-config`: journald.conf
    and its drop-ins in order) and its folder on disk: how long sshd's log is kept."""

    name = "journald"
    command = JOURNALD_FACT_COMMAND

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.journald = parse_journald(text)



class PackageRelease(Fact):
    """dnf's `$releasever`: /etc/dnf/vars/releasever where it is set, else the installed
    system-release package's version, to which Amazon Linux 2023 locks its repositories
    (bastion.host.releasever)."""

    name = "releasever"
    command = RELEASEVER_FACT_COMMAND

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.dnf_release = parse_releasever(text)


class SeLinuxPorts(Fact):
    """SELinux's mode (`getenforce`) and the ports labelled ssh_port_t (`semanage port -l`,
    a Python program that takes a second or two: run beside the others)."""

    name = "selinux"
    slow = True
    command = SELINUX_FACT_COMMAND

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.selinux = parse_selinux(text)


class CloudInit(Fact):
    name = "cloud_init"
    command = (
        "if [ -x /usr/bin/cloud-init ]; then if [ -e /var/lib/cloud/instance/boot-finished ];"
        " then echo done; else echo running; fi; else echo absent; fi"
    )

    def parse(self, text: str, facts: HostFacts) -> None:
        facts.cloud_init = text.strip() or "absent"


class ManagementMarker(Fact):
    name = "marker"
    command = f"cat {MARKER} 2>/dev/null; echo; echo @@pending; cat {ROLLBACK_TOKEN} 2>/dev/null"

    def parse(self, text: str, facts: HostFacts) -> None:
        marker, _, pending = text.partition("@@pending")
        try:
            loaded = json.loads(marker) if marker.strip() else None
        except json.JSONDecodeError:
            loaded = {"corrupt": True}
        facts.marker = loaded if isinstance(loaded, dict) else None
        facts.pending_rollback = pending.strip()


FACTS: tuple[Fact, ...] = (
    OperatingSystem(), OpenSshVersion(), OfferedAlgorithms(), ClientAddress(), SshService(),
    SystemdUnits(), Programs(), Accounts(),
    TunnelFiles(), AuthorizedKeysContent(), SshdConfigFile(), EffectiveSettings(),
    EffectiveTunnelSettings(), HostKeys(), Moduli(), AutomaticUpdates(), InstanceConnect(),
    JournaldSettings(), PackageRelease(), SeLinuxPorts(), CloudInit(), ManagementMarker(),
)  # fmt: skip


def _key_values(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            pairs.append((key.strip(), value.strip().strip('"')))
    return pairs


_PREAMBLE = """\
set +e
SSHC=$1 TUNNEL=$2 ADMIN=$3 ADDR=$4 WAIT=$5 STATE=@STATE_DIR@
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
if [ "$WAIT" = 1 ] && [ -x /usr/bin/cloud-init ] && [ ! -e /var/lib/cloud/instance/boot-finished ]
then timeout 900 cloud-init status --wait >/dev/null 2>&1
fi
# TUNNEL: "user=address ..." (validated names and addresses, nothing a glob or a space
# could widen): each tunnel user, with an
# address of its sources for `sshd -T -C`. Former tunnel users are read too: accounts
# bastion made (its mark in the comment field) and those it recorded as tunnel users.
USERS=$( { for P in $TUNNEL; do echo "${P%%=*}"; done;
  awk -F: '$5 ~ /dbt-bastion/ {print $1}' /etc/passwd; cat "$STATE/tunnel_users" 2>/dev/null; } |
  grep -E '^[a-z_][a-z0-9_-]{0,31}$' | grep -vxF -- "$ADMIN" | awk '!seen[$0]++')
USERS=$(echo $USERS)
PASSWD=$(getent passwd $USERS "$ADMIN")
PAIRS=$(printf '%s\n' "$PASSWD" | while IFS=: read -r n _ _ _ _ h _; do [ "$n" != "$ADMIN" ] && case "$h" in *[!A-Za-z0-9/._-]*|'') ;; *) echo "$n:$h";; esac; done)
HOMES=$(for P in $PAIRS; do echo "${P#*:}"; done)
""".replace("@STATE_DIR@", STATE_DIR)


def facts_script() -> str:
    """The one script that gathers every fact; values arrive as positional parameters.

    Slow facts write to files in a private temporary folder (mktemp -d: root's, mode 700)
    from the start; without one they run in their turn like the others.
    """
    parts = [_PREAMBLE, 'OUT=$(mktemp -d 2>/dev/null) || OUT=""\n']
    for fact in FACTS:
        if fact.slow:
            parts.append(
                f'[ -n "$OUT" ] && {{ {fact.command} ; }} >"$OUT/{fact.name}" 2>/dev/null &\n'
            )
    for fact in FACTS:
        command = fact.command
        if fact.slow:
            command = f'if [ -n "$OUT" ]; then wait; cat "$OUT/{fact.name}"; else {command}; fi'
        parts.append(f"echo '{SECTION}{fact.name}'\n{{ {command} ; }} 2>/dev/null\n")
    parts.append(f'[ -n "$OUT" ] && rm -rf "$OUT"\necho \'{SECTION}end\'\n')
    return "".join(parts)


def parse_facts(output: str) -> HostFacts:
    """Split the script's output into sections and hand each to its parser."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line[len(SECTION) :].strip(), [])
        elif current is not None:
            current.append(line)
    if "end" not in sections:
        raise HostError("the host's answer to the facts script was cut short")
    facts = HostFacts()
    for fact in FACTS:
        fact.parse("\n".join(sections.get(fact.name, [])), facts)
    return facts


def gather(
    conn: HostConnection, tunnel_user: str, admin_user: str, addr: str, *, wait_cloud_init: bool
) -> HostFacts:
    """Run the facts script as root (one command) and parse it."""
    result = conn.sudo_script(
        facts_script(), '"$SSH_CONNECTION"', tunnel_user, admin_user, addr,
        "1" if wait_cloud_init else "0", timeout=960,
    )  # fmt: skip
    if result.exited != 0 or SECTION not in result.stdout:
        detail = (result.stderr or result.stdout).strip()[:300]
        if "password" in detail or "sudo" in detail:
            raise HostError(
                f"{conn.user} cannot run sudo without a password on {conn.address}: {detail}",
                hint="give the admin user passwordless sudo (as EC2 images do)",
            )
        raise HostError(f"reading the host's facts failed: {detail}")
    return parse_facts(result.stdout)
