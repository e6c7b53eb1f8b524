"""`keys list|add|remove`: the tunnel user's keys in the config and on the host.

Rotation is the normal case (dbt Cloud makes a new key each time a connection is saved):
add the new key, let dbt Cloud use it, then remove the old one. The last key is never
removed by accident.
"""

from __future__ import annotations

from typing import Any

from bastion.config.edit import add_keys, matches, read_argument, remove_keys
from bastion.config.keys import PublicKey, parse_authorized_keys
from bastion.config.settings import Settings
from bastion.errors import InputError
from bastion.host.sessions import Session, SessionReport, iso
from bastion.pipeline.locate import admin, locate
from bastion.pipeline.sessions import RECENT_SECONDS, read_logins


def host_keys(
    settings: Settings, host: str | None, accept_new: bool, *, since_seconds: int | None = None
) -> tuple[list[PublicKey], SessionReport]:
    """The keys in the tunnel user's authorized_keys and the logins sshd's log holds (the
    last `since_seconds`, or all of it): one admin connection, one remote command."""
    with admin(locate(settings, host=host), accept_new=accept_new) as conn:
        log, logins = read_logins(settings, conn, since_seconds=since_seconds)
    entries = parse_authorized_keys(log.authorized_keys.get(settings.first_tunnel.user) or "")
    return [e.key for e in entries if e.key is not None], logins


def list_keys(
    settings: Settings, *, host: str | None, accept_new: bool, offline: bool
) -> list[dict[str, Any]]:
    """Each key once: fingerprint, type, bits, comment, where it is (config, host, both),
    and its last login in sshd's log (`last_login`: None when it has none, or offline)."""
    configured = {k.fingerprint: k for k in settings.first_tunnel.configured_keys()}
    on_host: dict[str, PublicKey] = {}
    last: dict[str, Session] = {}
    if not offline:
        keys, logins = host_keys(settings, host, accept_new)
        on_host, last = {k.fingerprint: k for k in keys}, logins.last_logins()
    rows = []
    for fingerprint in dict.fromkeys([*configured, *on_host]):
        key = configured.get(fingerprint) or on_host[fingerprint]
        where = "both" if fingerprint in configured and fingerprint in on_host else (
            "config" if fingerprint in configured else "host"
        )  # fmt: skip
        login = last.get(fingerprint)
        rows.append({"fingerprint": fingerprint, "type": key.key_type, "bits": key.bits,
                     "comment": key.comment, "where": where,
                     "last_login": None if login is None else {
                         "time": iso(login.start), "from": login.address,
                         "source": login.source, "user": login.user}})  # fmt: skip
    return rows


def add_to_config(settings: Settings, key_or_file: str) -> list[PublicKey]:
    """The keys of KEY_OR_FILE that the config did not hold yet, now written to it."""
    return add_keys(settings, read_argument(key_or_file))


def remove_from_config(
    settings: Settings,
    needle: str,
    *,
    host: str | None,
    accept_new: bool,
    read_the_host: bool,
    prune: bool,
    force: bool = False,
) -> tuple[PublicKey, bool]:
    """The one key FINGERPRINT_OR_COMMENT names (in the config or on the host), and whether
    it was removed from the config. Refused: no match, several, the last key, or (unless
    `force`) a key that logged in within the last 24 hours: dbt Cloud may still use it."""
    configured = settings.first_tunnel.configured_keys()
    hits = {k.fingerprint: k for k in configured if matches(k, needle)}
    host_hits: dict[str, PublicKey] = {}
    recent: dict[str, Session] = {}
    if read_the_host:
        on_host, logins = host_keys(settings, host, accept_new, since_seconds=RECENT_SECONDS)
        host_hits = {k.fingerprint: k for k in on_host if matches(k, needle)}
        recent = logins.last_logins()
    found = {**host_hits, **hits}
    if not found:
        raise InputError(f"no tunnel key matches {needle!r}", hint="see `bastion keys list`")
    if len(found) > 1:
        listed = ", ".join(k.describe() for k in found.values())
        raise InputError(f"{needle!r} matches {len(found)} keys: {listed}",
                         hint="name the key by its fingerprint")  # fmt: skip
    fingerprint, key = next(iter(found.items()))
    if hits and len(configured) == 1 and not prune:
        raise InputError(
            "that is the last tunnel key: dbt Cloud could no longer connect",
            hint="add the new key first (rotation), or pass --prune to remove it anyway",
        )
    used = recent.get(fingerprint)
    if used is not None and not force:
        raise InputError(
            f"{key.describe()} logged in {iso(used.start)} from {used.address} ({used.source}), "
            "within the last 24 hours: whatever uses it (dbt Cloud's connection) would be cut "
            "off. Nothing was changed",
            hint="check that dbt Cloud's connection uses the new key (`bastion sessions`), or "
            "pass --force to remove it anyway",
        )
    if hits:
        remove_keys(settings, {fingerprint})
    return key, bool(hits)
