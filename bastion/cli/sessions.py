"""`bastion sessions`: who used the tunnel, from where, with which key, and what sshd refused."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    HostOption,
    JsonOption,
    TunnelOption,
    load_settings,
    run,
)
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.host.sessions import Session, SessionReport

SinceOption = Annotated[
    str,
    typer.Option("--since", metavar="DURATION",
                 help="How far back: a number and s, m, h, d or w (90m, 24h, 30d; at most 3650d)."),
]  # fmt: skip


def command(
    since: SinceOption = "24h",
    tunnel: TunnelOption = None,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
) -> None:
    """Who used the tunnel: its sessions and the attempts sshd refused, from sshd's log on the host.

    Each session: the tunnel user, the client's address and whose it is (a dbt Cloud region, extra_cidrs, admin_cidrs or unknown), the key's fingerprint and comment, start, end (or open), duration and the forwards it opened by target. Refused attempts are grouped by user, address and reason: key not allowed, not allowed from this address, forward to another target, shell or PTY. The log is read in one SSH connection and one command (journald, else /var/log/auth.log or /var/log/secure; a second command when another program logged as sshd across several lines); bastion keeps it for at least 30 days. Read-only.

    Example:  bastion sessions --since 7d --json | jq '.sessions[] | select(.end == null)'
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.sessions import parse_since, read_sessions

        seconds = parse_since(since)
        settings = load_settings(config)
        # where stderr is not a terminal, rich (and its tables) load once the command is
        # sent, while the host reads its journal, not beside the login's imports and handshake
        with console.status("reading sshd's log on the host", prefetch=False):
            report = read_sessions(settings, since_seconds=seconds, tunnel=tunnel, host=host,
                                   accept_new=accept_new_host_key,
                                   waiting=partial(console.prefetch, "rich.table"))  # fmt: skip
        document.update(report.to_dict())
        show(console, report, since)

    run("sessions", json_mode, body)


SHOWN = 30  # sessions in the terminal's table; `--json` has them all


def show(console: Console, report: SessionReport, since: str) -> None:
    """Tables on stderr, in UTC: the sessions by key and source, the last sessions (and every
    open one), the refused attempts; the end's date only when it is another day."""
    sessions = report.sessions
    users = {s.user for s in sessions} | {r.user for r in report.refused}
    by_user = len(users) > 1
    if len(sessions) > SHOWN:
        _by_key(console, report, since, by_user)
    shown = [s for i, s in enumerate(sessions) if s.end is None or i >= len(sessions) - SHOWN]
    title = f"tunnel sessions, last {since}, UTC ({len(sessions)})"
    if len(shown) < len(sessions):
        title = f"the last {len(shown)} of {len(sessions)} tunnel sessions (--json for all), UTC"
    console.table(
        title,
        ("user",) * by_user + ("start", "end", "lasted", "from", "key", "forwards"),
        [
            (s.user,) * by_user + (
                _when(s.start), "open" if s.end is None else _when(s.end, s.start),
                _duration(s.seconds), f"{s.address} {s.source}", s.key_comment or s.key,
                ", ".join(f"{t} x{n}" for t, n in s.forwards.items()) or "-",
            )
            for s in shown
        ],
    )  # fmt: skip
    if report.refused:
        console.table(
            f"refused, last {since}, UTC",
            ("last", "user", "from", "reason", "count", "details"),
            [(_when(r.last), r.user, f"{r.address} {r.source}", r.reason, r.count,
              ", ".join(r.details)) for r in report.refused],
        )  # fmt: skip
    else:
        console.say(f"nothing refused in the last {since}")
    if not report.forwards_logged:
        console.warn(
            "this sshd does not log the forwards a session opens (it needs LogVerbose, "
            "OpenSSH 8.5 or later, set by `bastion configure`): forwards show as -"
        )
    began = f", which goes back to {_when(report.begins)}" if report.begins else ""
    console.say(f"read from {report.source} at {_when(report.now)} UTC{began}")


def _by_key(console: Console, report: SessionReport, since: str, by_user: bool) -> None:
    """Which keys were used, from where, how often: the rotation question at a glance."""
    groups: dict[tuple[str, str, str], list[Session]] = {}
    for s in report.sessions:
        groups.setdefault((s.user, s.key_comment or s.key, s.source), []).append(s)
    console.table(
        f"sessions by key and source, last {since}, UTC",
        ("user",) * by_user + ("key", "source", "sessions", "open", "first", "last", "forwards"),
        [
            (user,) * by_user + (
                key, source, len(group), sum(s.end is None for s in group),
                _when(group[0].start), _when(group[-1].start),
                sum(sum(s.forwards.values()) for s in group),
            )
            for (user, key, source), group in groups.items()
        ],
    )  # fmt: skip


def _when(moment: datetime, same_day_as: datetime | None = None) -> str:
    if same_day_as is not None and moment.date() == same_day_as.date():
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
