"""`status`: a read-only summary of what exists, on AWS and on the host.

A host that cannot be reached is reported in the summary, not raised.
"""

from __future__ import annotations

from typing import Any

from bastion.config.settings import Settings
from bastion.errors import BastionError, SshError
from bastion.host.connection import HostConnection
from bastion.host.sessions import iso
from bastion.host.stage import status_host
from bastion.pipeline.locate import admin, locate
from bastion.pipeline.outcome import Outcome
from bastion.pipeline.sessions import last_login_per_user, read_logins
from bastion.pipeline.vendor import read_for, uses_vendor_api


def status(settings: Settings, outcome: Outcome, *, host: str | None = None) -> dict[str, Any]:
    """{"aws": …, "host": …}: AWS's facts (provider aws) and the host's, as far as readable."""
    target = locate(settings, host=host)
    found: dict[str, Any] = {"aws": None, "host": None}
    fingerprint = None
    if target.facts is not None:
        found["aws"] = target.facts.to_dict()
    if uses_vendor_api(settings):
        try:  # keys from the vendors' APIs are part of what the host should hold
            read_for(target)
        except BastionError as exc:
            found["vendors"] = {"read": False, "error": exc.message}
    if target.address and target.running:
        try:
            with admin(target) as conn:
                found["host"] = status_host(target.host_settings, conn, target.warehouse)
                if "vendors" in found:
                    _unknown_api_keys(settings, found["host"])
                found["host"]["last_logins"] = last_logins(settings, conn)
                fingerprint = conn.host_key_fingerprint
        except SshError as exc:
            found["host"] = {"reachable": False, "error": str(exc)}
    outcome.bastion = target.bastion_json(fingerprint)
    return found


def last_logins(settings: Settings, conn: HostConnection) -> dict[str, Any]:
    """Each tunnel user's last login (None: none in sshd's log), or why the log was not read."""
    try:
        _, report = read_logins(settings, conn)
    except BastionError as exc:
        return {"error": exc.message}
    return {
        user: None if s is None else {
            "time": iso(s.start), "from": s.address, "source": s.source, "key": s.key,
            "key_comment": s.key_comment,
        }
        for user, s in last_login_per_user(report, list(settings.tunnels)).items()
    }  # fmt: skip


def _unknown_api_keys(settings: Settings, host: dict[str, Any]) -> None:
    """The vendors' APIs were not read: what the api tunnels' authorized_keys should hold is
    not known, so no change to them is listed as pending."""
    users = [user for user, tunnel in settings.tunnels.items() if tunnel.api is not None]
    host["pending_changes"] = [
        change for change in host["pending_changes"]
        if not (change["resource"] == "authorized_keys"
                and any(f"/{user}/.ssh/" in change["detail"] for user in users))
    ]  # fmt: skip
    host["notices"].append(
        f"the keys of {', '.join(users)} come from the vendors' APIs, which were not read: "
        "their authorized_keys is not compared"
    )
