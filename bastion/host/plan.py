"""Facts + desired state -> the host's changes, each with the shell lines that make it.

Like a pyinfra operation, every check yields commands only when the host differs from
what is wanted; an empty plan is "no change", and the apply stage runs nothing at all.
"""

from __future__ import annotations

import base64
import json
import shlex
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from bastion.changes import Action, Change, Plan
from bastion.config.settings import Settings
from bastion.config.vendor_api import from_api
from bastion.endpoint import Endpoint
from bastion.errors import ConfigError
from bastion.host.desired import (
    ED25519_HOST_KEY,
    KEYS_HEADER,
    RSA_HOST_KEY,
    DesiredHost,
    desired_host,
    key_line,
)
from bastion.host.facts import HostFacts
from bastion.host.journald import DROPIN, RETENTION_DAYS, overridden, retention_change
from bastion.host.paths import MARKER, STATE_DIR
from bastion.host.releasever import RELEASEVER_FILE, tracking_change
from bastion.host.selinux import port_label_change
from bastion.host.sshd_units import UnitChange, command_line_change, pickup, socket_change
from bastion.host.tunnel_home import kept_line, numbered_keys, refuse_links

USER_COMMENT = "{} SSH tunnel (dbt-bastion)"  # the vendor's name first
MANAGED_BY = "dbt-bastion"
TUNNEL_USERS = f"{STATE_DIR}/tunnel_users"  # read by the facts script: former tunnel users
REMOVED_HEADER = "# Managed by dbt-bastion: this tunnel was removed from the config.\n"


@dataclass
class HostPlan:
    """The changes, the shell lines that make them, and how sshd must pick them up."""

    plan: Plan = field(default_factory=Plan)
    lines: list[str] = field(default_factory=list)  # the apply script's, one per change
    checks: list[str] = field(default_factory=list)  # run first: they write nothing in place
    desired: DesiredHost | None = None
    sshd_config: bool = False  # the rendered file replaces the live one (guarded by the timer)
    host_keys: list[str] = field(default_factory=list)  # host key files replaced (guarded too)
    restart: bool = False  # the sshd unit changed: restart rather than reload
    units: list[str] = field(default_factory=list)  # unit drop-ins written (guarded too)
    socket: str = ""  # the socket unit whose ports change (restarted with sshd's service)
    pickup: tuple[str, ...] = ()  # the commands that make sshd pick the changes up
    after: list[str] = field(default_factory=list)  # checks once sshd picked them up

    def add(self, resource: str, action: Action, detail: str, *lines: str) -> Change:
        self.lines.extend(lines)
        return self.plan.add("host", resource, action, detail)

    def check(self, *lines: str) -> None:
        """Lines the script runs before any change (the candidate's `sshd -t`, ...)."""
        self.checks.extend(lines)

    def add_unit_change(self, change: UnitChange) -> None:
        self.units.extend(change.units)
        self.socket = change.socket or self.socket
        self.restart = self.restart or change.restart
        self.after.extend(change.after)
        self.add(change.resource, change.action, change.detail, *change.lines)

    @property
    def needs_reload(self) -> bool:
        return (
            self.sshd_config or bool(self.host_keys) or self.restart or bool(self.units)
            or bool(self.socket)
        )  # fmt: skip


def put_file(path: str, content: str, mode: str, owner: str, group: str) -> str:
    """Atomic write: a temp file beside the target, modes set, then rename over it."""
    data = base64.b64encode(content.encode()).decode()
    return f"put {shlex.quote(path)} {mode} {shlex.quote(owner)} {shlex.quote(group)} {data}"


def build_plan(
    settings: Settings,
    facts: HostFacts,
    warehouse: Endpoint,
    *,
    prune: bool = False,
    drop: Collection[str] = (),
    listen_ports: tuple[int, ...] | None = None,
) -> HostPlan:
    """Compare and return every change; `drop` names fingerprints to remove even if kept;
    `listen_ports` overrides `ssh_port` while a port change is in its first phase."""
    _refuse_system_account(settings, facts)
    refuse_links(settings, facts)
    desired = desired_host(settings, facts, warehouse, listen_ports)
    host = HostPlan(desired=desired)
    _accounts(settings, facts, host)
    _authorized_keys(settings, facts, warehouse, desired, host, prune=prune, drop=drop)
    _removed_tunnels(settings, facts, host)
    _host_keys(facts, desired, host)
    _moduli(facts, desired, host)
    _release_tracking(facts, host)
    _auto_updates(facts, host)
    _instance_connect(facts, host)
    _log_retention(facts, host)
    for change in (
        command_line_change(facts),
        socket_change(facts, listen_ports or (settings.bastion.ssh_port,)),
    ):
        if change is not None:
            host.add_unit_change(change)
    _selinux_ports(facts, host, listen_ports or (settings.bastion.ssh_port,))
    _sshd_config(settings, facts, desired, host)
    if host.needs_reload:
        host.pickup, words = pickup(
            facts, restart=host.restart, units=bool(host.units), socket=host.socket
        )
        host.add("sshd_reload", "update", f"{words} to pick up the changes")
    _notices(settings, facts, host)
    return host


def _refuse_system_account(settings: Settings, facts: HostFacts) -> None:
    for tunnel in settings.tunnels.values():
        entry = facts.user(tunnel.user)
        if entry is not None and entry.uid < facts.uid_min and MANAGED_BY not in entry.gecos:
            field = f"{tunnel.where}.user" if tunnel.where == "tunnel" else tunnel.where
            raise ConfigError(
                f"{field}: {tunnel.user} is an existing system account on this host "
                f"(uid {entry.uid}); bastion will not turn it into a tunnel user",
                hint="choose another tunnel user, such as dbtcloud",
            )


def _accounts(settings: Settings, facts: HostFacts, host: HostPlan) -> None:
    for tunnel in settings.tunnels.values():
        _account(tunnel.user, USER_COMMENT.format(tunnel.label), facts, host)


def _account(name: str, comment: str, facts: HostFacts, host: HostPlan) -> None:
    user, q = facts.user(name), shlex.quote(name)
    if name not in facts.groups:
        host.add("tunnel_group", "create", f"group {name}", f"mkgroup {q}")
    if user is None:
        host.add(
            "tunnel_user", "create",
            f"user {name} (home /home/{name}, shell {facts.nologin}: no login)",
            f"mkuser {q} {shlex.quote(facts.nologin)} {shlex.quote(comment)}",
        )  # fmt: skip
    else:
        fixes, details = [], []
        if user.shell != facts.nologin:
            fixes.append(f"-s {shlex.quote(facts.nologin)}")
            details.append(f"shell {user.shell} -> {facts.nologin}")
        if name in facts.groups and user.gid != facts.groups[name]:
            fixes.append(f"-g {q}")
            details.append(f"primary group -> {name}")
        if fixes:
            host.add("tunnel_user", "update", f"user {name}: {', '.join(details)}",
                     f"moduser {q} {' '.join(fixes)}")  # fmt: skip
        if facts.expired.get(name):
            host.add("tunnel_user", "update",
                     f"user {name}: unlocked (its tunnel is back in the config)",
                     f"unexpire_user {q}")  # fmt: skip
    home = facts.home_of(name) or f"/home/{name}"
    ssh_dir, qd = f"{home}/.ssh", shlex.quote(f"{home}/.ssh")
    stat = facts.files.get(ssh_dir)
    make = f"ensure_dir {qd} 700 {q}"
    if user is not None and home not in facts.files:
        make = f"ensure_dir {shlex.quote(home)} 750 {q} && {make}"
    if stat is None:
        host.add("ssh_dir", "create", f"{ssh_dir} (mode 700, owner {name})", make)
    elif (
        stat.mode != 0o700
        or stat.owner != name
        or stat.group != name
        or "directory" not in stat.kind
    ):
        found = f"mode {stat.mode:o}, owner {stat.owner}:{stat.group}"
        host.add("ssh_dir", "update", f"{ssh_dir}: {found} -> mode 700, owner {name}:{name}", make)


def _describe(key: Any) -> str:
    return f"{key.fingerprint} ({key.comment})" if key.comment else key.fingerprint


def _kept_before(marker: dict[str, Any], user: str) -> tuple[bool, set[str]]:
    """Whether bastion managed this user's file before, and the keys it kept on adoption.
    The first tunnel user is recorded at the top (as before several tunnels), the others
    under `tunnels`."""
    if marker.get("managed_by") != MANAGED_BY:
        return False, set()
    if marker.get("tunnel_user") == user:
        return True, set(marker.get("kept", []))
    others = marker.get("tunnels")
    entry = others.get(user) if isinstance(others, dict) else None
    if isinstance(entry, dict):
        return True, set(entry.get("kept", []))
    return False, set()


def _authorized_keys(
    settings: Settings,
    facts: HostFacts,
    warehouse: Endpoint,
    desired: DesiredHost,
    host: HostPlan,
    *,
    prune: bool,
    drop: Collection[str],
) -> None:
    """Each tunnel user's file: exactly its configured keys (plus those kept on adoption),
    and one state file saying which users and kept keys bastion manages."""
    marker = facts.marker or {}
    kept_by_user: dict[str, list[str]] = {}
    changes: list[tuple[Action, str, str]] = []
    for user, tunnel in desired.tunnels.items():
        change, kept = _user_keys(
            user, tunnel.keys, facts, warehouse, host, marker, prune=prune, drop=drop
        )
        kept_by_user[user] = kept
        if change is not None:
            changes.append(change)
    first = settings.first_tunnel.user
    new_marker: dict[str, Any] = {
        "managed_by": MANAGED_BY,
        "name": settings.name,
        "tunnel_user": first,
        "kept": kept_by_user[first],
    }
    if len(desired.tunnels) > 1:
        new_marker["tunnels"] = {
            user: {"kept": kept} for user, kept in kept_by_user.items() if user != first
        }
    marker_lines: list[str] = []
    if new_marker != facts.marker:
        marker_lines = [
            put_file(MARKER, json.dumps(new_marker, indent=1) + "\n", "644", "root", "root"),
            put_file(TUNNEL_USERS, "".join(f"{u}\n" for u in desired.tunnels), "644", "root",
                     "root"),
        ]  # fmt: skip
    if not changes and marker_lines:
        home = facts.home_of(first) or f"/home/{first}"
        changes.append(
            ("update", f"{home}/.ssh/authorized_keys: record which keys were kept on adoption",
             "")
        )  # fmt: skip
    for index, (action, detail, line) in enumerate(changes):
        lines = [line] if line else []
        host.add("authorized_keys", action, detail, *lines, *(marker_lines if index == 0 else ()))


def _user_keys(
    name: str,
    keys: list[Any],
    facts: HostFacts,
    warehouse: Endpoint,
    host: HostPlan,
    marker: dict[str, Any],
    *,
    prune: bool,
    drop: Collection[str],
) -> tuple[tuple[Action, str, str] | None, list[str]]:
    """One tunnel user's authorized_keys: the change (action, detail, its line) if any, and
    the fingerprints kept on adoption."""
    home = facts.home_of(name) or f"/home/{name}"
    path = f"{home}/.ssh/authorized_keys"
    managed, previously_kept = _kept_before(marker, name)
    current = facts.keys_text(name)
    wanted = {key.fingerprint for key in keys}
    entries, invalid = numbered_keys(current or "")
    foreign = [e for e in entries if e.key is not None and e.key.fingerprint not in wanted]
    present = {e.key.fingerprint for e in entries if e.key is not None}

    keep_all = not keys and bool(entries) and not prune
    kept, removed = [], []
    for entry in foreign:
        fp = entry.key.fingerprint if entry.key else ""
        adoptable = not managed or fp in previously_kept
        if keep_all or (adoptable and not prune and fp not in drop):
            kept.append(entry)
        else:
            removed.append(entry)
    listed = ", ".join(_describe(e.key) for e in kept)
    if keep_all:
        host.plan.notices.append(
            f"host: no key is configured for {name}; the {len(entries)} key(s) on the host "
            f"stay: {listed} (pass --prune to remove the last key)"
        )
    elif kept and not managed:
        host.plan.notices.append(
            f"host: keeping {len(kept)} key(s) bastion did not put in {path}: {listed}; "
            "add them to the config or pass --prune to remove them"
        )
    if invalid:
        numbers = ", ".join(f"line {n}" for n in invalid)
        host.plan.notices.append(
            f"host: {path}: {numbers} not a public key bastion accepts (unreadable, weak or "
            "of an unknown type): dropped, never copied"
        )
    lines = [key_line(key, warehouse) for key in keys] + [kept_line(e) for e in kept]
    content = "\n".join([KEYS_HEADER, *lines]) + "\n"
    kept_fingerprints = sorted(e.key.fingerprint for e in kept if e.key is not None)
    stat = facts.files.get(path)
    wrong_mode = stat is not None and (
        stat.mode != 0o600 or stat.owner != name or stat.group != name
    )
    if content == current and not wrong_mode:
        return None, kept_fingerprints
    details = [f"+ {_describe(k)}" for k in keys if k.fingerprint not in present]
    details += [
        f"- {_describe(e.key)}" + _why_removed(e.key.comment, managed)
        for e in removed
        if e.key is not None
    ]
    details += [f"- line {n}: not a public key" for n in invalid]
    if wrong_mode and stat is not None:
        details.append(f"mode {stat.mode:o} owner {stat.owner} -> 600 {name}")
    if not details and current is None:
        details.append("no key yet (the tool shows its key once a connection is saved)")
    if not details and content != current:
        details.append("restore the restrict,port-forwarding,permitopen options and layout")
    action: Action = "create" if current is None else "update"
    line = put_file(path, content, "600", name, name)
    return (action, f"{path}: {'; '.join(details)}", line), kept_fingerprints


def _removed_tunnels(settings: Settings, facts: HostFacts, host: HostPlan) -> None:
    """A tunnel taken out of the config loses its access: its keys file is emptied and its
    account expired (PAM then refuses it); its Match block and AllowUsers entries go with
    the rendered sshd_config. Its home and files stay."""
    for name in facts.former_tunnel_users(set(settings.tunnels)):
        if name == settings.bastion.admin_user:
            continue
        entry = facts.user(name)
        if entry is None or (entry.uid < facts.uid_min and MANAGED_BY not in entry.gecos):
            continue
        q = shlex.quote(name)
        home = facts.home_of(name) or f"/home/{name}"
        path = f"{home}/.ssh/authorized_keys"
        lines, done = [], []
        current = facts.keys_text(name)
        entries, invalid = numbered_keys(current or "")
        if entries or invalid:
            lines.append(put_file(path, REMOVED_HEADER, "600", name, name))
            done.append(f"{path} emptied ({len(entries) + len(invalid)} key(s))")
        if not facts.expired.get(name):
            lines.append(f"expire_user {q}")
            done.append("account locked (expired)")
        if lines:
            host.add(
                "tunnel_user", "delete",
                f"{name}: no longer in the config: {', '.join(done)}; home {home} kept",
                *lines,
            )  # fmt: skip


def _host_keys(facts: HostFacts, desired: DesiredHost, host: HostPlan) -> None:
    """Missing ed25519, or an RSA host key of the wrong size, is generated the careful way:
    made beside the old one among the checks (the candidate is checked with it), renamed
    into place with the changes."""
    crypto = desired.crypto
    bits = crypto.rsa_host_key_bits
    wanted: list[tuple[str, str, int, str, Action, str]] = []
    if facts.host_key("ED25519") is None:
        wanted.append(("ed25519", "ed25519", 256, ED25519_HOST_KEY, "create", "ed25519 host key"))
    rsa = facts.host_key("RSA")
    if rsa is None:
        wanted.append(("rsa", "rsa", bits, RSA_HOST_KEY, "create", f"RSA host key ({bits} bits)"))
    elif rsa.bits < bits or (crypto.rsa_exact and rsa.bits != bits):
        detail = f"RSA host key {rsa.bits} -> {bits} bits ({crypto.name} crypto)"
        wanted.append(("rsa", "rsa", bits, RSA_HOST_KEY, "update", detail))
    for _, key_type, size, path, action, detail in wanted:
        host.host_keys.append(path)
        host.check(f"makekey {key_type} {size} {path}")
        host.add("host_keys", action, detail, f"installkey {path}")


def _moduli(facts: HostFacts, desired: DesiredHost, host: HostPlan) -> None:
    small, total = facts.moduli_small, facts.moduli_total
    if small and total > small and desired.crypto.uses_group_exchange:
        minimum = desired.crypto.min_modulus_bits - 1
        host.add(
            "dh_moduli", "update",
            f"/etc/ssh/moduli: remove {small} of {total} group-exchange moduli under "
            f"{desired.crypto.min_modulus_bits} bits",
            f"filter_moduli {minimum}",
        )  # fmt: skip


_APT_PERIODIC = 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n'


# apt as it will run: a later file of apt.conf.d could still turn them off
_APT_PERIODIC_ON = (
    "apt-config dump | grep -Eq '^APT::Periodic::Update-Package-Lists \"[^0\"]'"
    " && apt-config dump | grep -Eq '^APT::Periodic::Unattended-Upgrade \"[^0\"]'"
    " && ! apt-config dump | grep -q '^APT::Periodic::Enable \"0\"'"
    " || fail 'apt-config dump still shows APT::Periodic off after"
    " /etc/apt/apt.conf.d/20auto-upgrades was written: a later file in /etc/apt/apt.conf.d"
    " turns it off'"
)


def _release_tracking(facts: HostFacts, host: HostPlan) -> None:
    """Amazon Linux 2023 tracks the latest release, or its updates install nothing new
    (bastion.host.releasever); written atomically, restored if the run fails."""
    change = tracking_change(
        facts.dnf_release, put_file(RELEASEVER_FILE, "latest\n", "644", "root", "root")
    )
    if change is not None:
        host.add("dnf_releasever", change.action, change.detail, *change.lines)


def _selinux_ports(facts: HostFacts, host: HostPlan, ports: tuple[int, ...]) -> None:
    """Where SELinux enforces, sshd binds only ssh_port_t ports: the others are labelled
    before sshd picks the change up (refused here, before anything changes, if they cannot be)."""
    change = port_label_change(facts.selinux, ports, "bastion.ssh_port")
    if change is not None:
        host.add("selinux_port", "create", change.detail, *change.lines)


def _auto_updates(facts: HostFacts, host: HostPlan) -> None:
    """Installed, configured as the package manager reads it, and started by enabled timers."""
    updates = facts.auto_updates
    if updates.manager not in ("apt", "dnf") or updates.enabled:
        if updates.manager == "unknown":
            host.plan.notices.append(
                f"host: automatic updates are not managed on {facts.os_label}; turn them on by hand"
            )
        return
    lines: list[str] = []
    configure = not (updates.installed and updates.configured)
    if updates.manager == "apt":
        what = "unattended-upgrades: daily security updates"
        lines += [] if updates.installed else ["apt_install unattended-upgrades"]
        if configure:
            lines += [
                put_file("/etc/apt/apt.conf.d/20auto-upgrades", _APT_PERIODIC, "644", "root",
                         "root"),
                _APT_PERIODIC_ON,
            ]  # fmt: skip
    else:
        what = "dnf-automatic: security updates applied daily"
        lines += [] if updates.installed else ["dnf_install dnf-automatic"]
        if configure:
            lines.append(
                "keep /etc/dnf/automatic.conf && sed -i -E 's/^[[:space:]]*apply_updates[[:space:]]*=.*/apply_updates = yes/;"
                "s/^[[:space:]]*upgrade_type[[:space:]]*=.*/upgrade_type = security/'"
                " /etc/dnf/automatic.conf"
            )
    if updates.timers_off:
        what += f" ({', '.join(updates.timers_off)} enabled: systemd did not start it)"
        lines += [f"enable_timer {timer}" for timer in updates.timers_off]
    action: Action = "update" if updates.installed else "create"
    host.add("auto_updates", action, what, *lines)


def _log_retention(facts: HostFacts, host: HostPlan) -> None:
    """sshd's log (what `bastion sessions` reads) kept on disk for 30 days at least
    (bastion.host.journald); without journald the syslog files are the system's to rotate."""
    if not facts.journald.running:
        if facts.os_id:
            host.plan.notices.append(
                "host: journald does not run here, so bastion does not set how long sshd's log "
                "is kept: have logrotate keep /var/log/auth.log (or /var/log/secure) 30 days"
            )
        return
    change = retention_change(facts.journald)
    if change is not None:
        host.add("log_retention", "update", change.detail, *change.lines)
    kept_short = overridden(facts.journald)
    if kept_short is not None:
        host.plan.notices.append(
            f"host: journald keeps sshd's log less than {RETENTION_DAYS} days ({kept_short}), "
            f"read after bastion's {DROPIN}: raise or remove it there for `bastion sessions` "
            f"and `keys` to look back {RETENTION_DAYS} days"
        )


def _instance_connect(facts: HostFacts, host: HostPlan) -> None:
    """EC2 Instance Connect's package goes (its key script can add keys for any user), and
    its drop-in with it; the options that drop-in put on sshd's command line are found from
    systemd whatever put them there (the `sshd_command_line` change)."""
    if not facts.instance_connect:
        return
    manager = "apt-get remove -y -q" if facts.auto_updates.manager == "apt" else "dnf remove -y -q"
    host.restart = True
    host.add(
        "instance_connect", "delete",
        "EC2 Instance Connect (its AuthorizedKeysCommand can add keys for any user)",
        f"{manager} ec2-instance-connect >/dev/null 2>&1 || true",
        "systemctl daemon-reload >/dev/null 2>&1 || true",
    )  # fmt: skip


def _short(value: str) -> str:
    return value if len(value) <= 40 else f"{value[:37]}..."


def effective_drift(facts: HostFacts, desired: DesiredHost) -> list[str]:
    """Effective values `sshd -T` reports that differ from the wanted ones (tunnel-only once)."""
    drift = []
    for keyword, value in desired.effective.items():
        have = " ".join(facts.sshd.get(keyword, ["(unset)"]))
        if have != value:
            drift.append(f"{keyword} {_short(have)} -> {_short(value)}")
    for user, tunnel in desired.tunnels.items():
        effective = facts.tunnel_sshd(user)
        for keyword, value in tunnel.effective.items():
            if desired.effective.get(keyword) == value:
                continue
            have = " ".join(effective.get(keyword, ["(unset)"]))
            if have != value:
                label = "tunnel user" if len(desired.tunnels) == 1 else f"user {user}"
                drift.append(f"{label} {keyword} {_short(have)} -> {_short(value)}")
    return drift


def _sshd_config(
    settings: Settings, facts: HostFacts, desired: DesiredHost, host: HostPlan
) -> None:
    drift = effective_drift(facts, desired)
    if desired.sshd_config_sha256 == facts.sshd_config_sha256:
        if drift and not facts.sshd_errors:
            host.plan.notices.append(
                "host: sshd_config is as rendered but sshd -T reports other values: "
                + "; ".join(drift[:5])
            )
        return
    summary = "; ".join(drift[:4]) + (f"; and {len(drift) - 4} more" if len(drift) > 4 else "")
    if _ours(facts):
        detail = f"differs from the rendered file: {summary}" if drift else (
            "differs from the rendered file (comments, layout or a setting sshd -T hides)"
        )  # fmt: skip
    else:
        detail = f"replace with the hardened file ({len(drift)} effective settings change)"
    host.sshd_config = True
    # checked before anything is written; installed (under the timer) by the apply script
    host.check(f"candidate {base64.b64encode(desired.sshd_config.encode()).decode()}")
    host.add("sshd_config", "update", f"/etc/ssh/sshd_config {detail}")


def _ours(facts: HostFacts) -> bool:
    return facts.sshd_config_header.startswith("# Managed by dbt-bastion")


def _notices(settings: Settings, facts: HostFacts, host: HostPlan) -> None:
    if facts.cloud_init == "running":
        host.plan.notices.append("host: cloud-init is still running; configure waits for it")
    if host.sshd_config and facts.dropins and not _ours(facts):
        host.plan.notices.append(
            "host: the drop-ins in /etc/ssh/sshd_config.d are no longer read: "
            + ", ".join(facts.dropins)
        )
    if facts.client_address and not inside_cidrs(
        facts.client_address, settings.bastion.admin_cidrs
    ):
        host.plan.notices.append(
            f"host: you connect from {facts.client_address}, which is outside bastion.admin_cidrs; "
            "the rendered AllowUsers would lock you out"
        )


def inside_cidrs(address: str, cidrs: list[str]) -> bool:
    import ipaddress

    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return True
    return any(ip in ipaddress.ip_network(c, strict=False) for c in cidrs)


def _why_removed(comment: str, managed: bool) -> str:
    if from_api(comment):
        return " (replaced at the vendor, or its connection is no longer listed)"
    return " (added by hand)" if managed else ""
