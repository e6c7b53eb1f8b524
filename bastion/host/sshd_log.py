"""sshd's log lines as events: who connected, with which key, what they asked for, and when
they left.

The messages are OpenSSH's own at `LogLevel VERBOSE` (8.4 to 10.0, as recorded from real
hosts in tests/host/recorded/sessions), plus the two debug lines the rendered sshd_config
turns on by `LogVerbose` (the forwards a session opens, and a refused PTY), which VERBOSE
alone does not log. Lines come from journald, as three fields of each entry joined by tabs
(`field_rows`, `read_field_entries`) or as `journalctl -o short-iso-precise --utc` prints them (where the
fields cannot be read so), or from a syslog file in RFC 3339 or traditional
(`Nov 30 08:38:55`) form (`read_entries`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import permutations
from operator import methodcaller
from typing import NamedTuple

from bastion.host.paths import VERIFY_KEYS_NAME

# sshd_config's LogVerbose (OpenSSH >= 8.5): the debug lines of these two functions are
# logged at any LogLevel: each forward a session asks for, and a refused PTY.
LOG_VERBOSE = "*:server_request_direct_tcpip():*,*:session_pty_req():*"

# 2026-11-30T08:38:55.268374+0000 bastion sshd-session[489]: message (journald, rsyslog; journald
# leaves the host name out of an entry that has none)
_ISO_LINE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?:\S+ )?"
    r"(?:sshd|sshd-session|sshd-auth)\[(\d+)\]: (.*)",  # _PROGRAMS
    re.ASCII,  # journalctl's stamps and pids: ASCII digits (and a tenth faster)
)
# Nov 30 08:38:55 bastion sshd[489]: message (syslog's traditional form: local time, no year)
_SYSLOG_LINE = re.compile(
    r"([A-Z][a-z]{2}) +(\d{1,2}) (\d\d:\d\d:\d\d) \S+ ([\w.@-]+)\[(\d+)\]: (.*)"
)
_MONTHS = {
    m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
                                 "Oct", "Nov", "Dec"), start=1)
}  # fmt: skip
_ZERO = timedelta(0)
_UTC_ZONES = ("Z", "+0000", "+00:00", "-0000", "-00:00")
_PROGRAMS = frozenset({"sshd", "sshd-session", "sshd-auth"})
_ISO_PREFIX = re.compile(r"\d{4}-\d\d-\d\dT")
# journalctl's line between two boots: "-- Boot 4d8f... --" (systemd >= 250), "-- Reboot --"
_BOOT_MARKER = re.compile(r"-- (?:Boot [0-9a-f]+|Reboot) --")


class Entry(NamedTuple):
    """One line of sshd's log. `micros` is its time, microseconds since the epoch (UTC: a
    month is ~100,000 lines, and comparing integers costs a fraction of making and comparing
    datetimes). `boot` numbers its boot (the boot markers seen before it, or the boots begun
    before its time): pids restart at each boot, so (boot, pid) names one process. (A tuple:
    cheap to make.)"""

    micros: int
    boot: int
    pid: int
    message: str

    @property
    def time(self) -> datetime:
        return from_micros(self.micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def micros(moment: datetime) -> int:
    """An aware datetime as microseconds since the epoch."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """Microseconds since the epoch as a UTC datetime."""
    return _EPOCH + timedelta(0, 0, value)  # (days, seconds, microseconds)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset (`+0000`, `+00:00` or `Z`), as UTC."""
    moment = datetime.fromisoformat(text)
    return moment if moment.utcoffset() == _ZERO else moment.astimezone(UTC)


def read_entries(
    lines: Iterable[str], *, now: datetime, utc_offset: timedelta = timedelta(0)
) -> Iterator[Entry]:
    """sshd's lines in order; other programs' lines and journalctl's notes are skipped.

    A traditional syslog line has no year and no zone: it is the host's local time
    (`utc_offset`), in the year that puts it at or before `now`.
    """
    boot = 0
    iso_line, from_iso, utc, make = _ISO_LINE.fullmatch, datetime.fromisoformat, _UTC_ZONES, Entry._make
    for line in lines:
        if line[:3] == "-- ":
            boot += bool(_BOOT_MARKER.fullmatch(line.strip()))
            continue
        match = iso_line(line)
        if match is not None:  # (a tenth of a second a month: no call made here that can be left out)
            stamp, pid, message = match.groups()
            # journalctl --utc: no conversion to make
            when = from_iso(stamp) if stamp.endswith(utc) else parse_time(stamp)
            yield make((micros(when), boot, int(pid), message))
            continue
        if _ISO_PREFIX.match(line):  # another program's line
            continue
        match = _SYSLOG_LINE.fullmatch(line)
        if match is not None and match[4] in _PROGRAMS and match[1] in _MONTHS:
            stamped = _syslog_time(now + utc_offset, _MONTHS[match[1]], int(match[2]), match[3])
            if stamped is not None:
                yield Entry(micros((stamped - utc_offset).replace(tzinfo=UTC)), boot, int(match[5]), match[6])


def _syslog_time(local: datetime, month: int, day: int, clock: str) -> datetime | None:
    """A traditional syslog time (no year) as the latest such time at most a day after
    `local` (the host's clock: December read in January is last year's, 29 February of a
    common year the last leap year's); None for a date no year has (31 April)."""
    hour, minute, second = (int(part) for part in clock.split(":"))
    latest = local.replace(tzinfo=None) + timedelta(days=1)
    for year in range(local.year, local.year - 8, -1):
        try:
            when = datetime(year, month, day, hour, minute, second)
        except ValueError:  # 29 February of a common year, 31 April, 25:00
            continue
        if when <= latest:
            return when
    return None


# `journalctl -o cat --output-fields=` + FIELDS prints each field's value on a line of its own,
# in an order journalctl picks for the run (the same for every entry of one run); `paste - - -`
# on the host joins each entry's three lines with tabs. The stamp is microseconds since the
# epoch (16 digits), the pid a few digits, the message anything else (sshd escapes tabs and
# newlines in what it logs, so an entry is three lines).
FIELDS = "_SOURCE_REALTIME_TIMESTAMP,_PID,MESSAGE"
# the line between two parts of the log, each read by a journalctl of its own (and so with an
# order of its own)
PART = "@@bastion-log part"
_STAMP_DIGITS = 13  # a stamp since 2001 has 16 digits; a pid at most 7
# an Entry's values as a plain tuple (micros, boot, pid, message): what `_connections` reads, a
# month's ~100,000 of them (a tuple is made in C; an Entry through a Python call)
Row = tuple[int, int, int, str]
_Cut = Callable[[str], list[str]]  # a joined line -> its three fields, in the line's order


def _middle_cut(line: str) -> list[str]:
    first, tab, rest = line.partition("\t")
    return [first, *rest.rsplit("\t", 1)] if tab else [first]


# A joined line's three fields, by where the message is: the message (which may hold a tab
# that is not sshd's) is what is left once both numbers are cut off. A first or last message
# is cut by one str method, called from C.
_CUTS: tuple[_Cut, _Cut, _Cut] = (
    methodcaller("rsplit", "\t", 2), _middle_cut, methodcaller("split", "\t", 2),
)  # fmt: skip
# (stamp, pid, message): the places the fields can come in, one for each order
_ORDERS = tuple((stamp_at, pid_at, 3 - stamp_at - pid_at) for stamp_at, pid_at in permutations(range(3), 2))


def _fits(stamp: str, pid: str) -> bool:
    return (stamp.isascii() and stamp.isdigit() and len(stamp) >= _STAMP_DIGITS
            and pid.isascii() and pid.isdigit() and len(pid) < _STAMP_DIGITS)  # fmt: skip


def _order_of(line: str) -> tuple[int, int, int] | None:
    """The places (stamp, pid, message) that read `line` as a stamp, a pid and a message, or
    None if no order does."""
    for order in _ORDERS:
        fields = _CUTS[order[2]](line)
        if len(fields) < 3:  # fewer than three fields
            return None
        if _fits(fields[order[0]], fields[order[1]]):
            return order
    return None


class FieldsMisaligned(Exception):
    """A line of the joined fields that is not an entry's three fields in the order of the
    first line: an entry of other lines than three (another program logging as sshd with a
    newline in its message) put the joining out of step, so the lines after it cannot be
    trusted. The log is read again in journalctl's short format (`read_entries`)."""


def field_rows(lines: Iterable[str], boots: Iterable[datetime] = ()) -> Iterator[Row]:
    """sshd's entries from journald's fields joined by tabs (see FIELDS), in order, as rows.
    `boots` are when each boot's first entry was written (`journalctl --list-boots`): an
    entry's boot is the number of boots begun at or before its time, as pids restart at each
    boot.

    The order of the fields is read from the first line of each part (see PART); every other
    line must have it (FieldsMisaligned otherwise)."""
    starts = sorted(micros(start) for start in boots)
    order: tuple[int, int, int] | None = None
    cut, stamp_at, pid_at, message_at = _CUTS[2], 0, 1, 2
    for line in lines:
        if line == PART:
            order = None
            continue
        if order is None:
            order = _order_of(line)
            if order is None:
                raise FieldsMisaligned(line[:200])
            stamp_at, pid_at, message_at = order
            cut = _CUTS[message_at]
        try:
            fields = cut(line)
            stamp, pid = fields[stamp_at], fields[pid_at]
            # `_fits`, inline (a call a line is a tenth of this loop): ASCII digits alone, as
            # int() would also take "1_7", " 17", "+17" and other scripts' digits
            if not (len(stamp) >= _STAMP_DIGITS > len(pid) and stamp.isdigit() and pid.isdigit()
                    and stamp.isascii() and pid.isascii()):  # fmt: skip
                raise ValueError
            when, process = int(stamp), int(pid)
        except (ValueError, IndexError):  # not digits where the order has them, too few fields
            raise FieldsMisaligned(line[:200]) from None
        yield when, bisect_right(starts, when), process, fields[message_at]


def read_field_entries(lines: Iterable[str], boots: Iterable[datetime] = ()) -> Iterator[Entry]:
    """`field_rows` as Entry tuples."""
    return map(Entry._make, field_rows(lines, boots))


# --- what a message says --------------------------------------------------------------------
# (A month of the log makes ~100,000 of these: slotted classes, which cost half what frozen
# ones do to make.)


@dataclass(slots=True)
class Connected:
    """`Connection from A port P on L port LP`: a new connection, in a process of its own."""

    address: str
    port: int


@dataclass(slots=True)
class KeyFound:
    """`Accepted key ED25519 SHA256:… found at FILE:LINE`: which file allowed the key."""

    key: str
    path: str


@dataclass(slots=True)
class LoggedIn:
    """`Accepted publickey for U from A port P ssh2: ED25519 SHA256:…`."""

    user: str
    address: str
    port: int
    key_type: str
    key: str


@dataclass(slots=True)
class KeyRefused:
    """`Failed publickey for U from A port P ssh2: TYPE SHA256:…`: the key is not allowed
    (a client may try several keys before one is; only a connection that never logs in
    counts as refused)."""

    user: str
    address: str
    key: str


@dataclass(slots=True)
class UserRefused:
    """`User U from A not allowed because not listed in AllowUsers` (or DenyUsers, groups)."""

    user: str
    address: str
    why: str


@dataclass(slots=True)
class ChildStarted:
    """`User child is on pid N`: the process that serves the session once logged in."""

    pid: int


@dataclass(slots=True)
class ForwardAsked:
    """The `LogVerbose` debug line of server_request_direct_tcpip: a forward asked for
    (granted unless a ForwardRefused for the same target follows)."""

    target: str


@dataclass(slots=True)
class ForwardRefused:
    """`Received request from A port P to connect to host H port N, but the request was
    denied.` (PermitOpen), or `refused local port forward: … target H port N`."""

    target: str


@dataclass(slots=True)
class ShellAsked:
    """`Starting session: forced-command (config) '/usr/sbin/nologin' for U from A port P`:
    a shell or command, answered by nologin (or the PTY debug line: `pty` is True)."""

    what: str
    pty: bool = False


@dataclass(slots=True)
class Ended:
    """The session's end: `Disconnected from user U A port P`, `Timeout, client not
    responding from …`, `Connection closed by A port P`, or PAM's `session closed`."""

    why: str


@dataclass(slots=True)
class Transferred:
    """`Transferred: sent N, received M bytes`, the server's count at the end."""

    sent: int
    received: int


Event = (
    Connected | KeyFound | LoggedIn | KeyRefused | UserRefused | ChildStarted | ForwardAsked
    | ForwardRefused | ShellAsked | Ended | Transferred
)  # fmt: skip

_ADDRESS = r"([0-9A-Fa-f.:]+)"
_USER = r"([a-z_][a-z0-9_.-]*\$?)"
_FINGERPRINT = r"(SHA256:[A-Za-z0-9+/]{43})"


def _target(host: str, port: str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


_END_WORDS = {
    "Disconnected": "disconnected",
    "Timeout, client not responding": "keepalive timeout",
    "Connection closed": "connection closed",
    "Connection reset": "connection reset",
    "Read error": "connection lost",
    "session closed": "closed",
}

_Groups = tuple[str, ...]


def _ended(groups: _Groups) -> Ended:
    return Ended(_END_WORDS.get(groups[0], groups[0]))


# (its pattern, matched from the start of the message; what it says, made of the groups)
_PATTERNS: tuple[tuple[str, Callable[[_Groups], Event]], ...] = (
    (rf"Connection from {_ADDRESS} port (\d+) on ", lambda g: Connected(g[0], int(g[1]))),
    (rf"Accepted key \S+ {_FINGERPRINT} found at (.+?):\d+$", lambda g: KeyFound(g[0], g[1])),
    (rf"Accepted publickey for {_USER} from {_ADDRESS} port (\d+) ssh2: (\S+) {_FINGERPRINT}",
     lambda g: LoggedIn(g[0], g[1], int(g[2]), g[3], g[4])),
    (rf"Failed publickey for {_USER} from {_ADDRESS} port \d+ ssh2: \S+ {_FINGERPRINT}",
     lambda g: KeyRefused(g[0], g[1], g[2])),
    (r"User child is on pid (\d+)$", lambda g: ChildStarted(int(g[0]))),
    (rf"User {_USER} from {_ADDRESS} not allowed because (.+)$",
     lambda g: UserRefused(g[0], g[1], g[2])),
    (r"debug1: .*?server_request_direct_tcpip(?:\(\)[^:]*:[^:]*)?: originator \S+ port \d+,"
     r" target (\S+) port (\d+)$", lambda g: ForwardAsked(_target(g[0], g[1]))),
    (r"debug1: .*Allocating a pty not permitted", lambda g: ShellAsked("pty", pty=True)),
    (r"Received request (?:from \S+ port \d+ )?to connect to host (\S+) port (\d+),"
     r" but the request was denied\.$", lambda g: ForwardRefused(_target(g[0], g[1]))),
    (r"refused local port forward: originator \S+ port \d+, target (\S+) port (\d+)$",
     lambda g: ForwardRefused(_target(g[0], g[1]))),
    (r"Starting session: (.+?) for \S+ from \S+ port \d+ id \d+$", lambda g: ShellAsked(g[0])),
    (r"(Disconnected) from user \S+ \S+ port \d+$", _ended),
    (r"(Timeout, client not responding) from ", _ended),
    (r"(Connection (?:closed|reset)) by \S+ port \d+$", _ended),
    (r"(Read error) from remote host \S+ port \d+: ", _ended),
    (r"pam_unix\(sshd:session\): (session closed) for user ", _ended),
    (r"Transferred: sent (\d+), received (\d+) bytes$", lambda g: Transferred(int(g[0]), int(g[1]))),
)  # fmt: skip
# A message's first word picks the few patterns worth trying (most lines try one).
_BY_FIRST_WORD: dict[str, tuple[tuple[Callable[[str], re.Match[str] | None],
                                      Callable[[_Groups], Event]], ...]] = {}  # fmt: skip
for _pattern, _make in _PATTERNS:
    _word = _pattern.split(" ", 1)[0].replace("\\", "").lstrip("(").rstrip(")")
    _BY_FIRST_WORD[_word] = (*_BY_FIRST_WORD.get(_word, ()), (re.compile(_pattern).match, _make))


def event_of(message: str) -> Event | None:
    """What one of sshd's messages says, or None for the many that do not matter here."""
    for match_of, make in _BY_FIRST_WORD.get(message.partition(" ")[0], ()):
        match = match_of(message)
        if match is not None:
            return make(match.groups())
    return None


# `Accepted key ... found at FILE:LINE` (twice a login) matters only where FILE is bastion's
# verify keys: a session of `verify` or `doctor`, not of a tool's key
VERIFY_KEY_FOUND = f"Accepted key .* found at .*/{VERIFY_KEYS_NAME.replace('.', '[.]')}:"
# The messages above, as one extended regular expression for grep on the host: the lines
# that matter leave the host, the rest (PAM's environment, key probes) stay there.
HOST_FILTER = "|".join(
    (
        "Connection from ", "Accepted publickey ", VERIFY_KEY_FOUND, "Failed publickey ",
        " not allowed because ",
        "User child is on pid ", "server_request_direct_tcpip", "request was denied",
        "refused local port forward", "Starting session: ", "pty not permitted",
        "Disconnected from user ", "Timeout, client not responding", "Connection (closed|reset) by ",
        "Read error from remote host ",
        "session closed for user ", "Transferred: ", "^-- ",
    )
)  # fmt: skip
