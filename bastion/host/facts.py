"""What the host is: the values the plan compares with what is wanted.

They are read in one round trip by the facts script of bastion.host.fact_sections (each
fact a small named class, a shell snippet and a parser: pyinfra's idea), so a no-change
run costs exactly one remote command.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from bastion.host.journald import Journald
from bastion.host.releasever import DnfRelease
from bastion.host.selinux import SeLinux
from bastion.host.systemd import SshdUnit, SshSocket

SECTION = "@@bastion-fact "


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
    """Judged from what will run: apt's settings as `apt-config dump` shows them, dnf's
    apply_updates, and (where systemd is PID 1) the timers `systemctl is-enabled` reports."""

    manager: str  # apt | dnf | unknown
    installed: bool
    configured: bool  # apt: package lists and upgrades on; dnf: updates applied
    timers_off: tuple[str, ...] = ()  # timers that start them, not enabled

    @property
    def enabled(self) -> bool:
        return self.installed and self.configured and not self.timers_off


@dataclass(frozen=True)
class SshAlgorithms:
    """What the host's OpenSSH implements (`ssh -Q`), in its own order: the only names
    sshd_config may use, since `sshd -t` refuses any other."""

    kex: tuple[str, ...] = ()
    ciphers: tuple[str, ...] = ()
    macs: tuple[str, ...] = ()
    key_sig: tuple[str, ...] = ()  # host key and signature algorithms (`ssh -Q key-sig`)


@dataclass
class HostFacts:
    """Everything the plan needs to know about the host."""

    os_id: str = ""
    os_version: str = ""
    os_name: str = ""
    openssh: tuple[int, int] = (0, 0)
    ssh_algorithms: SshAlgorithms = SshAlgorithms()
    service: str = "ssh"
    socket_activated: bool = False  # ssh.socket listens for sshd (systemctl is-active/is-enabled)
    systemd: bool = False  # systemd is PID 1
    ssh_socket: SshSocket = field(default_factory=SshSocket)
    sshd_unit: SshdUnit = field(default_factory=SshdUnit)  # what runs sshd, and its options
    sftp_server: str = ""
    nologin: str = "/usr/sbin/nologin"
    client_address: str = ""
    users: dict[str, PasswdEntry] = field(default_factory=dict)
    groups: dict[str, int] = field(default_factory=dict)
    uid_min: int = 1000
    files: dict[str, FileStat] = field(default_factory=dict)
    authorized_keys: str | None = None  # a recording's, made before several tunnel users
    authorized_keys_sha256: str = ""
    authorized_keys_of: dict[str, str | None] = field(default_factory=dict)  # per tunnel user
    expired: dict[str, bool] = field(default_factory=dict)  # account expired (locked by bastion)
    sshd_config_sha256: str = ""
    sshd_config_header: str = ""
    includes: list[str] = field(default_factory=list)
    dropins: list[str] = field(default_factory=list)
    sshd: dict[str, list[str]] = field(default_factory=dict)
    sshd_tunnel: dict[str, list[str]] = field(default_factory=dict)  # a recording's (see above)
    sshd_tunnel_of: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    sshd_errors: list[str] = field(default_factory=list)
    host_keys: list[HostKeyFact] = field(default_factory=list)
    moduli_total: int = 0
    moduli_small: int = 0
    auto_updates: AutoUpdates = AutoUpdates("unknown", False, False)
    instance_connect: list[str] = field(default_factory=list)
    journald: Journald = field(default_factory=Journald)  # what keeps sshd's log, how long
    dnf_release: DnfRelease = field(default_factory=DnfRelease)  # dnf's $releasever: the image's, or latest
    selinux: SeLinux = field(default_factory=SeLinux)  # its mode, and the ports sshd may bind
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

    def keys_text(self, user: str) -> str | None:
        """The tunnel user's authorized_keys as read (None: no such file)."""
        if user in self.authorized_keys_of:
            return self.authorized_keys_of[user]
        return self.authorized_keys

    def tunnel_sshd(self, user: str) -> dict[str, list[str]]:
        """`sshd -T -C user=…` for the tunnel user, from one of its sources."""
        return self.sshd_tunnel_of.get(user, self.sshd_tunnel)

    def former_tunnel_users(self, current: set[str]) -> list[str]:
        """Tunnel users bastion managed that the config no longer names."""
        return [u for u in self.authorized_keys_of if u not in current and u in self.users]

    def host_key(self, key_type: str) -> HostKeyFact | None:
        return next((k for k in self.host_keys if k.key_type == key_type), None)


def match_address(cidrs: list[str]) -> str:
    """An address of the tunnel's allowed sources, for `sshd -T -C addr=…`."""
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        return str(network.network_address)
    return "192.0.2.1"
