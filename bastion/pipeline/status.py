"""`status`: a read-only summary of what exists, on AWS and on the host.

A host that cannot be reached is reported in the summary, not raised.
"""

from __future__ import annotations

from typing import Any

from bastion.config.settings import Settings
from bastion.errors import SshError
from bastion.host.stage import status_host
from bastion.pipeline.locate import admin, locate
from bastion.pipeline.outcome import Outcome


def status(settings: Settings, outcome: Outcome, *, host: str | None = None) -> dict[str, Any]:
    """{"aws": …, "host": …}: AWS's facts (provider aws) and the host's, as far as readable."""
    target = locate(settings, host=host)
    found: dict[str, Any] = {"aws": None, "host": None}
    fingerprint = None
    if target.facts is not None:
        found["aws"] = target.facts.to_dict()
    if target.address and target.running:
        try:
            with admin(target) as conn:
                found["host"] = status_host(settings, conn, target.warehouse)
                fingerprint = conn.host_key_fingerprint
        except SshError as exc:
            found["host"] = {"reachable": False, "error": str(exc)}
    outcome.bastion = target.bastion_json(fingerprint)
    return found
