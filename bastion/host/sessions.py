"""sshd's log -> the tunnel's sessions and the attempts sshd refused.

Sessions interleave in the log: each connection is its own sshd process, and once logged
in a child process of its own serves it (`User child is on pid N`), so lines are told apart
by (boot, pid) and joined through that line. What the table and `--json` show is built
here; where each address comes from (dbt Cloud's lists, extra_cidrs, admin_cidrs) too.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bastion.config.keys import parse_authorized_keys
from bastion.config.settings import Settings
from bastion.host.log_read import SshdLog
from bastion.host.paths import VERIFY_KEYS_NAME
from bastion.host.sshd_log import (
    ChildStarted,
    Connected,
    Ended,
    Entry,
    Event,
    ForwardAsked,
    ForwardRefused,
    KeyFound,
    KeyRefused,
    LoggedIn,
    Row,
    ShellAsked,
    Transferred,
    UserRefused,
    event_of,
    field_rows,
    from_micros,
    micros,
    read_entries,
)

VERIFY_KEY_COMMENT = "bastion verify (temporary key)"
KEY_NOT_ALLOWED = "key not allowed"
ADDRESS_NOT_ALLOWED = "not allowed from this address"
FORWARD_REFUSED = "forward to another target"
SHELL_REFUSED = "shell or PTY"
REBOOTED = "host rebooted"  # how a session ended that was open when its host rebooted


def iso(moment: datetime | None) -> str | None:
    """ISO 8601 UTC to the second, as `--json` shows every time: `YYYY-MM-DDTHH:MM:SSZ`
    (twice for each session: %-formatting takes two thirds of isoformat's time, and a third
    of strftime's)."""
    if moment is None:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (  # noqa: UP031 - see above
        moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second)


@dataclass(frozen=True)
class Sources:
    """Whose an address is: a dbt Cloud region's list, extra_cidrs, admin_cidrs, or unknown."""

    networks: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]
    # each address once: a month of dbt Cloud's runs comes from a handful of addresses
    _named: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, settings: Settings) -> Sources:
        named = [source for tunnel in settings.tunnels.values() for source in tunnel.sources()]
        named += [(cidr, "admin_cidrs") for cidr in settings.bastion.admin_cidrs]
        return cls(tuple((ipaddress.ip_network(c, strict=False), name) for c, name in named))

    def name(self, address: str) -> str:
        named = self._named.get(address)
        if named is None:
            named = self._named[address] = self._lookup(address)
        return named

    def _lookup(self, address: str) -> str:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return "unknown"
        return next((name for network, name in self.networks if ip in network), "unknown")


@dataclass
class _Connection:
    """What one sshd process (and its child, once logged in) logged."""

    address: str
    port: int
    user: str = ""  # once logged in
    key: str = ""
    key_type: str = ""
    key_file: str = ""
    start: int | None = None  # microseconds since the epoch, as Entry.micros
    end: int | None = None
    ended: str = ""
    found_at: dict[str, str] = field(default_factory=dict)  # fingerprint -> file
    failed: list[tuple[int, str, str]] = field(default_factory=list)  # time, user, key
    refused_user: tuple[int, str, str] | None = None  # time, user, why
    # forwards asked, by target (a defaultdict: a month's 28,000 counts, a Counter's in Python)
    asked: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    denied: list[tuple[int, str]] = field(default_factory=list)
    shell: list[tuple[int, str]] = field(default_factory=list)
    sent: int | None = None
    received: int | None = None


_OPENING = (KeyFound, LoggedIn, KeyRefused, UserRefused)


# How far a child's first lines may come before its parent's `User child is on pid N`: two
# processes log on their own, and on a busy host the child's first forward can reach the
# journal first.
_CHILD_AHEAD = 30_000_000  # microseconds


def _connections(
    entries: Iterable[Entry | Row],
    since: datetime | None = None,
    boot_starts: Sequence[int] = (),
) -> list[_Connection]:
    """Every connection the lines show (those since `since`), in the order they began.
    `boot_starts`: when each boot of the host began (micros, sorted; journald's boots), which
    ends the sessions a reboot cut short."""
    found: list[_Connection] = []
    processes: dict[tuple[int, int], _Connection] = {}
    unclaimed: dict[tuple[int, int], list[tuple[int, Event]]] = {}  # of no known process
    first = None if since is None else micros(since)
    for when, boot, pid, message in entries:
        if first is not None and when < first:
            continue
        event = event_of(message)
        if event is None:
            continue
        if type(event) is Connected:  # a new process: a pid seen before was reused
            processes[(boot, pid)] = _Connection(event.address, event.port)
            found.append(processes[(boot, pid)])
            continue
        conn = processes.get((boot, pid))
        if conn is not None and conn.end is not None and when - conn.end > _CHILD_AHEAD:
            conn = None  # the pid of a session long over, now another process's
        if (conn is None or conn.start is not None) and isinstance(event, _OPENING):
            # its "Connection from" line is older than the part of the log read, or was
            # left on the host (`logins_only`): a line before the login opens it
            conn = _Connection(getattr(event, "address", ""), getattr(event, "port", 0))
            processes[(boot, pid)] = conn
            found.append(conn)
        if conn is None:
            unclaimed.setdefault((boot, pid), []).append((when, event))
            continue
        _record(conn, when, boot, event, processes)
        if type(event) is ChildStarted and (boot, event.pid) in unclaimed:
            for early, said in unclaimed.pop((boot, event.pid)):
                if when - early <= _CHILD_AHEAD:  # not an older process of the same pid
                    _record(conn, early, boot, said, processes)
    _end_at_reboots(found, boot_starts)
    return found


def _end_at_reboots(found: list[_Connection], boot_starts: Sequence[int]) -> None:
    """A session still open when its host rebooted ended then (sshd logged no end): at the
    first boot begun after its login. Without journald's boots (syslog files) it stays open."""
    for conn in found:
        if conn.start is None or conn.end is not None:
            continue
        after = bisect_right(boot_starts, conn.start)
        if after < len(boot_starts):
            conn.end, conn.ended = boot_starts[after], REBOOTED


def _record(
    conn: _Connection,
    when: int,
    boot: int,
    event: Any,
    processes: dict[tuple[int, int], _Connection],
) -> None:
    kind = type(event)  # the most frequent first: three forwards and two key lines a session
    if kind is ForwardAsked:
        conn.asked[event.target] += 1
    elif kind is KeyFound:
        conn.found_at[event.key] = event.path
    elif kind is ChildStarted:
        processes[(boot, event.pid)] = conn
    elif kind is LoggedIn:
        conn.user, conn.key, conn.key_type = event.user, event.key, event.key_type
        conn.start, conn.address, conn.port = when, event.address, event.port
        conn.key_file = conn.found_at.get(event.key, "")
    elif kind is Ended:
        if conn.start is not None and conn.end is None:
            conn.end, conn.ended = when, event.why
    elif kind is KeyRefused:
        conn.failed.append((when, event.user, event.key))
    elif kind is UserRefused:
        conn.refused_user = (when, event.user, event.why)
    elif kind is ForwardRefused:
        conn.denied.append((when, event.target))
    elif kind is ShellAsked:
        conn.shell.append((when, event.what))
    elif kind is Transferred:
        conn.sent, conn.received = event.sent, event.received


@dataclass(frozen=True)
class Session:
    """One login of a tunnel user, and what it did."""

    user: str
    address: str
    port: int
    source: str
    key: str
    key_type: str
    key_comment: str
    start: datetime
    end: datetime | None
    ended: str  # disconnected | keepalive timeout | connection closed | host rebooted | ... ("" while open)
    seconds: float
    forwards: dict[str, int]
    verify_key: bool  # bastion's own short-lived key (verify, doctor), not a tool's key
    sent: int | None = None
    received: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user, "from": self.address, "source": self.source, "key": self.key,
            "key_comment": self.key_comment, "start": iso(self.start), "end": iso(self.end),
            "seconds": round(self.seconds, 1),
            "forwards": [{"target": t, "count": n} for t, n in self.forwards.items()],
            "port": self.port, "key_type": self.key_type, "ended": self.ended or None,
            "bytes": None if self.sent is None else {"sent": self.sent, "received": self.received},
        }  # fmt: skip


@dataclass(frozen=True)
class Refused:
    """Refused attempts of one user from one address for one reason."""

    user: str
    address: str
    source: str
    reason: str
    count: int
    last: datetime
    details: tuple[str, ...]  # the keys offered, the targets asked for, what sshd said

    def to_dict(self) -> dict[str, Any]:
        return {
            "user": self.user, "from": self.address, "source": self.source, "reason": self.reason,
            "count": self.count, "last": iso(self.last), "details": list(self.details),
        }  # fmt: skip


@dataclass
class SessionReport:
    """What `sessions` shows: the sessions, the refused attempts, and what the log covers."""

    sessions: list[Session]
    refused: list[Refused]
    now: datetime
    source: str
    forwards_logged: bool
    begins: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": [s.to_dict() for s in self.sessions],
            "refused": [r.to_dict() for r in self.refused],
            "log": {"source": self.source, "read_at": iso(self.now), "begins": iso(self.begins),
                    "forwards_logged": self.forwards_logged},
        }  # fmt: skip

    def last_logins(self, *, users: Iterable[str] | None = None) -> dict[str, Session]:
        """The last login of each key (verify's own keys left out), by fingerprint."""
        wanted = None if users is None else set(users)
        last: dict[str, Session] = {}
        for session in self.sessions:
            if session.verify_key or (wanted is not None and session.user not in wanted):
                continue
            if session.key not in last or session.start >= last[session.key].start:
                last[session.key] = session
        return last


def key_comments(log: SshdLog, settings: Settings | None = None) -> dict[str, str]:
    """Fingerprint -> comment, from the host's authorized_keys, else the config's keys."""
    comments: dict[str, str] = {}
    if settings is not None:
        for tunnel in settings.tunnels.values():
            comments.update({k.fingerprint: k.comment for k in tunnel.configured_keys()})
    for text in log.authorized_keys.values():
        for entry in parse_authorized_keys(text or ""):
            if entry.key is not None and entry.key.comment:
                comments[entry.key.fingerprint] = entry.key.comment
    return comments


def build_report(
    log: SshdLog,
    users: Iterable[str],
    sources: Sources,
    comments: dict[str, str],
    *,
    since: datetime | None = None,
) -> SessionReport:
    """The tunnel users' sessions that began since `since` (all the log holds: None), and
    the attempts sshd refused them, grouped by user, address and reason."""
    tunnel_users = set(users)
    entries = (
        field_rows(log.lines, log.boots) if log.fields
        else read_entries(log.lines, now=log.now, utc_offset=log.utc_offset)
    )  # fmt: skip
    sessions: list[Session] = []
    refusals: list[tuple[str, str, str, int, str]] = []
    boot_starts = sorted(micros(start) for start in log.boots)
    for conn in _connections(entries, since, boot_starts):
        if conn.start is not None and conn.user in tunnel_users:
            sessions.append(_session(conn, log, sources, comments))
            refusals += [(conn.user, conn.address, FORWARD_REFUSED, t, target)
                         for t, target in conn.denied]  # fmt: skip
            if conn.shell:
                what = ", ".join(dict.fromkeys(w for _, w in conn.shell))
                refusals.append((conn.user, conn.address, SHELL_REFUSED, conn.shell[-1][0], what))
        elif conn.start is None and conn.failed:
            when, user, _ = conn.failed[-1]
            offered = ", ".join(dict.fromkeys(key for _, _, key in conn.failed))
            if user in tunnel_users:
                refusals.append((user, conn.address, KEY_NOT_ALLOWED, when, offered))
        if conn.refused_user is not None and conn.refused_user[1] in tunnel_users:
            when, user, why = conn.refused_user
            refusals.append((user, conn.address, ADDRESS_NOT_ALLOWED, when, why))
    return SessionReport(
        sessions=sessions,
        refused=_grouped(refusals, sources),
        now=log.now,
        source=log.source,
        forwards_logged=log.forwards_logged,
        begins=log.begins,
    )


def _session(
    conn: _Connection, log: SshdLog, sources: Sources, comments: dict[str, str]
) -> Session:
    assert conn.start is not None
    verify = conn.key_file.endswith(f"/{VERIFY_KEYS_NAME}")
    forwards = dict(conn.asked)
    if conn.denied:
        denied = Counter(target for _, target in conn.denied)
        forwards = {t: n - denied[t] for t, n in conn.asked.items() if n - denied[t] > 0}
    comment = VERIFY_KEY_COMMENT if verify else comments.get(conn.key, "")
    start, end = from_micros(conn.start), None if conn.end is None else from_micros(conn.end)
    return Session(
        user=conn.user, address=conn.address, port=conn.port, source=sources.name(conn.address),
        key=conn.key, key_type=conn.key_type, key_comment=comment, start=start,
        end=end, ended=conn.ended,
        seconds=max(0.0, ((end or log.now) - start).total_seconds()),
        forwards=forwards, verify_key=verify, sent=conn.sent, received=conn.received,
    )  # fmt: skip


def _grouped(
    refusals: list[tuple[str, str, str, int, str]], sources: Sources
) -> list[Refused]:
    groups: dict[tuple[str, str, str], list[tuple[int, str]]] = {}
    for user, address, reason, when, detail in refusals:
        groups.setdefault((user, address, reason), []).append((when, detail))
    refused = []
    for (user, address, reason), items in groups.items():
        refused.append(Refused(
            user=user, address=address, source=sources.name(address), reason=reason,
            count=len(items), last=from_micros(max(t for t, _ in items)),
            details=tuple(dict.fromkeys(d for _, ds in items for d in ds.split(", ") if d)),
        ))  # fmt: skip
    return sorted(refused, key=lambda r: r.last)
