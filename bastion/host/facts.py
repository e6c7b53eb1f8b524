"""What the host is, read in one round trip: one shell script, one section per fact.

Each fact is a small named class, a shell snippet and a parser (pyinfra's idea), so a
no-change run costs exactly one remote command, and the parsers are tested on output
recorded on Amazon Linux 2023, Ubuntu 22.04/24.04 and Debian 12.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.errors import HostError

if TYPE_CHECKING:
    from bastion.host.connection import HostConnection

STATE_DIR = "/var/lib/dbt-bastion"
MARKER = f"{STATE_DIR}/state.json"
ROLLBACK_TOKEN = f"{STATE_DIR}/rollback.pending"
SECTION = "@@bastion-fact "
VERIFY_KEYS_NAME = "authorized_keys.verify"


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    gecos: str
    home: str
    shell: str


@dataclass(frozen=True)
class FileStat:
    owner: str
    group: str
    mode: int
    kind: str  # "regular file", "directory", ...


@dataclass(frozen=True)
class HostKeyFact:
    path: str
    key_type: str  # ED25519, RSA, ECDSA
    bits: int
    fingerprint: str


@dataclass(frozen=True)
class AutoUpdates:
    manager: str  # apt | dnf | unknown
    installed: bool
    enabled: bool


@dataclass
class HostFacts:
    """Everything the plan needs to know about the host."""

    os_id: str = ""
    os_version: str = ""
    os_name: str = ""
    openssh: tuple[int, int] = (0, 0)
    service: str = "ssh"
    socket_activated: bool = False
    sftp_server: str = ""
    nologin: str = "/usr/sbin/nologin"
    client_address: str = ""
    users: dict[str, PasswdEntry] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    uid_min: int = 1000
    files: dict[str, FileStat] = field(default_factory=dict)
    authorized_keys: str | None = None
    authorized_keys_sha256: str = ""
    sshd_config_sha256: str = ""
    sshd_config_header: str = ""
    includes: list[str] = field(default_factory=list)
    dropins: list[str] = field(default_factory=list)
    sshd: dict[str, list[str]] = field(default_factory=dict)
    sshd_tunnel: dict[str, list[str]] = field(default_factory=dict)
    sshd_errors: list[str] = field(default_factory=list)
    host_keys: list[HostKeyFact] = field(default_factory=list)
    moduli_total: int = 0
    moduli_small: int = 0
    auto_updates: AutoUpdates = AutoUpdates("unknown", False, False)
    instance_connect: list[str] = field(default_factory=list)
    cloud_init: str = "absent"  # absent | running | done
    marker: dict[str, Any] | None = None
    pending_rollback: str = ""

    @property
    def os_label(self) -> str:
        return self.os_name or f"{self.os_id} {self.os_version}".strip()

    def user(self, name: str) -> PasswdEntry | None:
        return self.users.get(name)

    def home_of(self, name: str) -> str | None:
        entry = self.users.get(name)
        return entry.home if entry else None

    def host_key(self, key_type: str) -> HostKeyFact | None:
        return next((k for k in self.host_keys if k.key_type == key_type), None)


_PREAMBLE = """\
set +e
SSHC=$1 TUNNEL=$2 ADMIN=$3 ADDR=$4 WAIT=$5
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
if [ "$WAIT" = 1 ] && [ -x /usr/bin/cloud-init ] && [ ! -e /var/lib/cloud/instance/boot-finished ]
then timeout 900 cloud-init status --wait >/dev/null 2>&1
fi
PASSWD=$(getent passwd "$TUNNEL" "$ADMIN")
HOME_DIR=$(printf '%s\n' "$PASSWD" | while IFS=: read -r n _ _ _ _ h _; do [ "$n" = "$TUNNEL" ] && echo "$h"; done)
"""


def facts_script() -> str:
    """The one script that gathers every fact; values arrive as positional parameters.

    Slow facts write to files in a private temporary folder (mktemp -d: root's, mode 700)
    from the start; without one they run in their turn like the others.
    """
    from bastion.host.fact_sections import FACTS

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
    from bastion.host.fact_sections import FACTS

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


def match_address(cidrs: list[str]) -> str:
    """An address of the tunnel's allowed sources, for `sshd -T -C addr=…`."""
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        return str(network.network_address)
    return "192.0.2.1"


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
