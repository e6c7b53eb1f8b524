"""`sessions`, and the last logins `keys`, `doctor` and `status` show: sshd's log on the
host, read in one admin connection and one remote command (a second where journald's fields
fall out of step), made into sessions.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

from bastion.config.settings import Settings
from bastion.errors import InputError
from bastion.host.connection import HostConnection
from bastion.host.log_read import SshdLog, read_sshd_log, require_log
from bastion.host.sessions import (
    Session,
    SessionReport,
    Sources,
    build_report,
    iso,
    key_comments,
)
from bastion.host.sshd_log import FieldsMisaligned
from bastion.pipeline.locate import admin, locate

MAX_SINCE_SECONDS = 3650 * 86400  # beyond, the date is before journald's epoch arithmetic holds
RECENT_SECONDS = 24 * 3600  # `keys remove` needs --force for a key used this recently
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_since(text: str) -> int:
    """`--since`: a number and a unit (s, m, h, d, w): 90m, 24h, 30d, at most 3650d. Returns
    seconds."""
    match = re.fullmatch(r"([1-9][0-9]{0,5})([smhdw])", text.strip())
    if match is None or text != text.strip():
        raise InputError(
            f"--since must be a number and a unit (s, m, h, d or w), such as 24h or 30d (got {text!r})",
            hint="bastion sessions --since 7d",
        )
    seconds = int(match[1]) * _UNITS[match[2]]
    if seconds > MAX_SINCE_SECONDS:
        raise InputError(
            f"--since goes back at most 3650d, ten years (got {text!r})",
            hint="bastion sessions --since 3650d",
        )
    return seconds


def tunnel_users(settings: Settings, tunnel: str | None) -> list[str]:
    """The tunnel users to report on: all of them, or the one `--tunnel` names."""
    users = list(settings.tunnels)
    if tunnel is None:
        return users
    if tunnel not in users:
        raise InputError(
            f"--tunnel names no tunnel user of this config (got {tunnel!r})",
            hint=f"use one of: {', '.join(users)}",
        )
    return [tunnel]


def read_sessions(
    settings: Settings,
    *,
    since_seconds: int,
    tunnel: str | None = None,
    host: str | None = None,
    accept_new: bool = False,
    waiting: Callable[[], object] | None = None,
) -> SessionReport:
    """The tunnel's sessions and refused attempts of the last `since_seconds`; `waiting` is
    called when each command that reads the log is sent (a second one where journald's
    fields fall out of step: it must bear being called twice)."""
    users = tunnel_users(settings, tunnel)
    with admin(locate(settings, host=host), accept_new=accept_new) as conn:
        # the lines are read as they arrive
        log, report = _read(settings, conn, users, since_seconds, waiting=waiting)
        require_log(log, conn.address)
        return report


def read_logins(
    settings: Settings,
    conn: HostConnection,
    *,
    with_ends: bool = False,
    need_log: bool = True,
) -> tuple[SshdLog, SessionReport]:
    """The tunnel users' logins, all the log holds, and their authorized_keys, over an open
    admin connection (one remote command, see `_read`). `with_ends`: whole sessions, so that
    those still open are known (the log's every line that matters, not the logins alone). A
    host that keeps no sshd log is a HostError, unless not `need_log` (no logins then)."""
    users = tunnel_users(settings, None)
    log, report = _read(settings, conn, users, None, logins_only=not with_ends)
    if need_log:
        require_log(log, conn.address)
    return log, report


def _read(
    settings: Settings,
    conn: HostConnection,
    users: list[str],
    since_seconds: int | None,
    *,
    logins_only: bool = False,
    waiting: Callable[[], object] | None = None,
) -> tuple[SshdLog, SessionReport]:
    """The log (journald's fields where it can) and its report; read again in journalctl's
    short format if the fields fall out of step (sshd_log.FieldsMisaligned: a second command,
    on a host where something else logs as sshd with a newline)."""
    try:
        return _read_as(settings, conn, users, since_seconds, logins_only=logins_only,
                        waiting=waiting)  # fmt: skip
    except FieldsMisaligned:
        pass  # once out of here, the first answer's readers are let go and its channel closes
    return _read_as(settings, conn, users, since_seconds, logins_only=logins_only, short=True,
                    waiting=waiting)  # fmt: skip


def _read_as(
    settings: Settings,
    conn: HostConnection,
    users: list[str],
    since_seconds: int | None,
    *,
    logins_only: bool,
    short: bool = False,
    waiting: Callable[[], object] | None = None,
) -> tuple[SshdLog, SessionReport]:
    log = read_sshd_log(conn, users, since_seconds=since_seconds, logins_only=logins_only,
                        short=short, waiting=waiting)  # fmt: skip
    since = None if since_seconds is None else log.now - timedelta(seconds=since_seconds)
    report = build_report(log, users, Sources.of(settings), key_comments(log, settings), since=since)
    return log, report


def describe_login(session: Session) -> str:
    """`2026-11-30T08:37:08Z from 10.0.0.1 (dbt Cloud us) with SHA256:… (comment)`."""
    key = f"{session.key} ({session.key_comment})" if session.key_comment else session.key
    return f"{iso(session.start)} from {session.address} ({session.source}) with {key}"


def last_login_per_user(report: SessionReport, users: list[str]) -> dict[str, Session | None]:
    """Each tunnel user's last login with a key of its own (verify's keys left out)."""
    latest: dict[str, Session | None] = dict.fromkeys(users)
    for session in report.last_logins(users=users).values():
        current = latest.get(session.user)
        if current is None or session.start > current.start:
            latest[session.user] = session
    return latest
