"""`keys list|add|remove`: a tunnel user's keys in the config and on the host.

Rotation is the normal case (dbt Cloud makes a new key each time a connection is saved):
add the new key, let dbt Cloud use it, then remove the old one. The last key is never
removed by accident.
"""

from __future__ import annotations

from typing import Any

from bastion.config.edit import add_keys, matches, read_argument, remove_keys
from bastion.config.keys import PublicKey, parse_authorized_keys
from bastion.config.settings import Settings, TunnelSettings
from bastion.config.vendor_api import CONNECTION_MARK, GROUP_MARK, from_api
from bastion.errors import InputError
from bastion.host.sessions import Session, SessionReport, iso
from bastion.pipeline.locate import admin, locate
from bastion.pipeline.sessions import RECENT_SECONDS, read_logins


def host_keys(
    settings: Settings,
    host: str | None,
    accept_new: bool,
    *,
    with_ends: bool = False,
    need_log: bool = True,
) -> tuple[dict[str, list[PublicKey]], SessionReport]:
    """Each tunnel user's keys in its authorized_keys and the logins sshd's log holds (with
    their ends: `with_ends`; none on a host without a log, unless `need_log`): one admin
    connection, one remote command."""
    with admin(locate(settings, host=host), accept_new=accept_new) as conn:
        log, logins = read_logins(settings, conn, with_ends=with_ends, need_log=need_log)
    keys = {}
    for user in settings.tunnels:
        entries = parse_authorized_keys(log.authorized_keys.get(user) or "")
        keys[user] = [e.key for e in entries if e.key is not None]
    return keys, logins


def list_keys(
    settings: Settings,
    tunnels: list[TunnelSettings],
    *,
    host: str | None,
    accept_new: bool,
    offline: bool,
) -> list[dict[str, Any]]:
    """Each key of each tunnel once: fingerprint, type, bits, comment, where it is (config,
    host, both), and its last login as that user in sshd's log (`last_login`: None when it
    has none, or offline). With several tunnel users in the config each row names its
    `user` (first); with one, the rows are as they always were."""
    on_host: dict[str, list[PublicKey]] = {}
    logins: SessionReport | None = None
    if not offline:
        on_host, logins = host_keys(settings, host, accept_new)
    rows = []
    for tunnel in tunnels:
        last = {} if logins is None else logins.last_logins(users=[tunnel.user])
        for row in _user_rows(tunnel, on_host.get(tunnel.user, []), last):
            rows.append({"user": tunnel.user, **row} if len(settings.tunnels) > 1 else row)
    return rows


def _user_rows(
    tunnel: TunnelSettings, host_keys: list[PublicKey], last: dict[str, Session]
) -> list[dict[str, Any]]:
    configured = {k.fingerprint: k for k in tunnel.configured_keys()}
    on_host = {k.fingerprint: k for k in host_keys}
    rows = []
    for fingerprint in dict.fromkeys([*configured, *on_host]):
        key = configured.get(fingerprint) or on_host[fingerprint]
        where = "both" if fingerprint in configured and fingerprint in on_host else (
            "config" if fingerprint in configured else "host"
        )  # fmt: skip
        login = last.get(fingerprint)
        rows.append({"fingerprint": fingerprint, "type": key.key_type, "bits": key.bits,
                     "comment": key.comment, "where": where, "api": api_source(key.comment),
                     "last_login": None if login is None else {
                         "time": iso(login.start), "from": login.address,
                         "source": login.source, "user": login.user}})  # fmt: skip
    return rows


def api_source(comment: str) -> str | None:
    """Where a key installed from a vendor's API came from, by the mark `up` gives it
    ("dbt Cloud connection 678", "Fivetran group decent_dragon"); None for a key given by hand."""
    for mark, label in ((CONNECTION_MARK, "dbt Cloud connection"), (GROUP_MARK, "Fivetran group")):
        if comment.startswith(mark) and len(comment) > len(mark):
            return f"{label} {comment[len(mark):]}"
    return None


def add_to_config(
    settings: Settings, tunnel: TunnelSettings, key_or_file: str
) -> list[PublicKey]:
    """The keys of KEY_OR_FILE that the tunnel did not hold yet, now written to its table
    (or its keys_file)."""
    return add_keys(settings, read_argument(key_or_file), tunnel)


def remove_from_config(
    settings: Settings,
    tunnel: TunnelSettings,
    needle: str,
    *,
    host: str | None,
    accept_new: bool,
    read_the_host: bool,
    prune: bool,
    force: bool = False,
) -> tuple[PublicKey, bool]:
    """The one key of the tunnel that FINGERPRINT_OR_COMMENT names (in its config or its
    authorized_keys on the host), and whether it was removed from the config. Refused: no
    match, several, the last key, a --prune that would reach another user's keys, or
    (unless `force`) a key that logged in as that user within the last 24 hours: the
    vendor may still use it."""
    configured = tunnel.configured_keys()
    hits = {k.fingerprint: k for k in configured if matches(k, needle)}
    host_hits: dict[str, PublicKey] = {}
    sessions: SessionReport | None = None
    if read_the_host:
        # all of the log: a session still open may have begun long before the last 24 hours
        # (with --force the log decides nothing: a host without one is no error)
        on_host, sessions = host_keys(settings, host, accept_new, with_ends=True,
                                      need_log=not force)  # fmt: skip
        host_hits = {k.fingerprint: k for k in on_host.get(tunnel.user, []) if matches(k, needle)}
        if prune:
            _prune_reaches_no_one_else(settings, tunnel, on_host)
    found = {**host_hits, **hits}
    whose = "" if len(settings.tunnels) == 1 else f" of {tunnel.user}"
    if not found:
        raise InputError(f"no tunnel key{whose} matches {needle!r}",
                         hint="see `bastion keys list`")  # fmt: skip
    if len(found) > 1:
        listed = ", ".join(k.describe() for k in found.values())
        raise InputError(f"{needle!r} matches {len(found)} keys{whose}: {listed}",
                         hint="name the key by its fingerprint")  # fmt: skip
    fingerprint, key = next(iter(found.items()))
    source = api_source(key.comment)
    if not hits and source is not None and tunnel.api is not None:
        raise InputError(
            f"{key.describe()} came from {source}: `bastion up` installs it again while the "
            "vendor holds it. Nothing was changed",
            hint=f"take the connection or group out of {tunnel.where}.api, or save the "
            f"connection in {tunnel.label} again for a new key; then run `bastion up`",
        )
    if hits and len(configured) == 1 and not prune:
        raise InputError(
            f"that is the last tunnel key{whose}: {tunnel.label} could no longer connect",
            hint="add the new key first (rotation), or pass --prune to remove it anyway",
        )
    if sessions is not None and not force:
        _not_in_use(key, tunnel, sessions)
    if hits:
        remove_keys(settings, {fingerprint}, tunnel)
    return key, bool(hits)


def _not_in_use(key: PublicKey, tunnel: TunnelSettings, report: SessionReport) -> None:
    """InputError if `key` has a session of the tunnel user still open, or one in use within
    the last 24 hours (begun or ended): whatever uses it would be cut off."""
    own = [s for s in report.sessions
           if s.key == key.fingerprint and s.user == tunnel.user and not s.verify_key]  # fmt: skip
    still = [s for s in own if s.end is None]
    recent = [s for s in own if s.end is not None
              and (report.now - s.end).total_seconds() <= RECENT_SECONDS]  # fmt: skip
    used = max(still or recent, key=lambda s: s.start, default=None)
    if used is None:
        return
    if still:
        when = f"has a session open since {iso(used.start)} from {used.address} ({used.source})"
    else:
        long_ago = (report.now - used.start).total_seconds() > RECENT_SECONDS
        when = (
            f"logged in {iso(used.start)} from {used.address} ({used.source})"
            + (f" and was in use until {iso(used.end)}" if long_ago else "")
            + ", within the last 24 hours"
        )
    raise InputError(
        f"{key.describe()} {when}: whatever uses it ({tunnel.label}'s connection) would be "
        "cut off. Nothing was changed",
        hint=f"check that {tunnel.label}'s connection uses the new key (`bastion sessions`), "
        "or pass --force to remove it anyway",
    )


def _prune_reaches_no_one_else(
    settings: Settings, tunnel: TunnelSettings, on_host: dict[str, list[PublicKey]]
) -> None:
    """--prune reaches every tunnel user's authorized_keys on the host (the host stage has no
    per-user prune): refused while another user has keys there its config does not list."""
    others = []
    for other in settings.tunnels.values():
        if other.user == tunnel.user:
            continue
        wanted = {k.fingerprint for k in other.configured_keys()}
        extra = [
            k for k in on_host.get(other.user, [])
            if k.fingerprint not in wanted and not from_api(k.comment)  # the host stage keeps those
        ]  # fmt: skip
        if extra:
            others.append(f"{other.user} ({', '.join(k.describe() for k in extra)})")
    if others:
        raise InputError(
            "--prune would also remove keys that other tunnel users have on the host and their "
            f"config does not list: {'; '.join(others)}. Nothing was changed",
            hint="add those keys to their [tunnels.<user>] tables first, or remove the key "
            "without --prune",
        )
