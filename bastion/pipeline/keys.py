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
from bastion.pipeline.locate import locate
from bastion.pipeline.plan import read_host


def host_keys(settings: Settings, host: str | None, accept_new: bool) -> list[PublicKey]:
    """The keys in the tunnel user's authorized_keys, read in the one facts round trip."""
    facts = read_host(locate(settings, host=host), accept_new=accept_new)
    entries = parse_authorized_keys(facts.authorized_keys or "")
    return [e.key for e in entries if e.key is not None]


def list_keys(
    settings: Settings, *, host: str | None, accept_new: bool, offline: bool
) -> list[dict[str, Any]]:
    """Each key once: fingerprint, type, bits, comment, and where it is (config, host, both)."""
    configured = {k.fingerprint: k for k in settings.tunnel_keys()}
    on_host: dict[str, PublicKey] = {}
    if not offline:
        on_host = {k.fingerprint: k for k in host_keys(settings, host, accept_new)}
    rows = []
    for fingerprint in dict.fromkeys([*configured, *on_host]):
        key = configured.get(fingerprint) or on_host[fingerprint]
        where = "both" if fingerprint in configured and fingerprint in on_host else (
            "config" if fingerprint in configured else "host"
        )  # fmt: skip
        rows.append({"fingerprint": fingerprint, "type": key.key_type, "bits": key.bits,
                     "comment": key.comment, "where": where})  # fmt: skip
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
) -> tuple[PublicKey, bool]:
    """The one key FINGERPRINT_OR_COMMENT names (in the config or on the host), and whether
    it was removed from the config. Refused: no match, several, or the last key."""
    configured = settings.tunnel_keys()
    hits = {k.fingerprint: k for k in configured if matches(k, needle)}
    host_hits: dict[str, PublicKey] = {}
    if read_the_host:
        on_host = host_keys(settings, host, accept_new)
        host_hits = {k.fingerprint: k for k in on_host if matches(k, needle)}
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
    if hits:
        remove_keys(settings, {fingerprint})
    return key, bool(hits)
