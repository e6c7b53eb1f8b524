"""The whole job: config -> facts -> plan -> apply -> verify, across AWS and the host.

`plan` and `up` run the same code; `plan` leaves the apply stages out, so the two can
never disagree. Every stage returns Change values; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.changes import Plan
from bastion.config.settings import Settings
from bastion.errors import ConfigError
from bastion.progress import Progress

if TYPE_CHECKING:
    import boto3

    from bastion.aws.facts import AwsFacts
    from bastion.endpoint import Endpoint


@dataclass
class Outcome:
    """What a run found or did, in the shape of SPEC's JSON."""

    plan: Plan = field(default_factory=Plan)
    bastion: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    warehouse: Endpoint | None = None
    host_status: dict[str, Any] | None = None
    aws_facts: AwsFacts | None = None


@dataclass
class Target:
    """Where the host and the warehouse are, resolved from the config and AWS."""

    settings: Settings
    session: boto3.Session | None
    facts: AwsFacts | None
    warehouse: Endpoint
    address: str | None

    @property
    def pins(self) -> list[str]:
        """Host key fingerprints known from AWS (the tag), checked on every connection."""
        if self.facts is not None and self.facts.host_key_tag:
            return [self.facts.host_key_tag]
        return []

    def bastion_json(self, host_key_fingerprint: str | None) -> dict[str, Any]:
        facts = self.facts
        return {
            "instance_id": facts.instance_id if facts else None,
            "public_ip": facts.public_ip if facts else None,
            "address": self.address,
            "ssh_port": self.settings.bastion.ssh_port,
            "host_key_fingerprint": host_key_fingerprint or (facts.host_key_tag if facts else None),
        }


def uses_aws(settings: Settings) -> bool:
    return settings.bastion.provider == "aws"


def _needs_session(settings: Settings) -> bool:
    """Provider aws, IAM credentials, or a warehouse to discover all need AWS."""
    warehouse = settings.warehouse
    discover = not warehouse.host and warehouse.kind != "alloydb"
    return uses_aws(settings) or warehouse.auth == "iam" or discover


def session_for(settings: Settings) -> boto3.Session | None:
    if not _needs_session(settings):
        return None
    from bastion.aws.session import make_session

    return make_session(settings)


def address_of(settings: Settings, facts: AwsFacts | None, override: str | None) -> str | None:
    if override:
        return override
    if settings.bastion.address:
        return settings.bastion.address
    return facts.public_ip if facts is not None else None


def locate(settings: Settings, *, host: str | None = None) -> Target:
    """Read-only: find the warehouse and the bastion without changing anything."""
    from bastion.aws.discover import resolve_warehouse
    from bastion.aws.stage import status_aws

    session = session_for(settings)
    facts = status_aws(settings, session) if uses_aws(settings) and session else None
    warehouse = facts.warehouse if facts is not None else resolve_warehouse(settings, session)
    return Target(settings, session, facts, warehouse, address_of(settings, facts, host))


@contextmanager
def admin(
    target: Target, *, accept_new: bool = False, extra_pins: list[str] | None = None
) -> Iterator[Any]:
    from bastion.host.connection import open_admin

    if not target.address:
        raise ConfigError(
            "no address to reach the bastion at",
            hint="set bastion.address, pass --host, or run `bastion provision` first",
        )
    pins = [*target.pins, *(extra_pins or [])]
    # During an ssh_port change sshd is known to answer on the port AWS recorded: try it first.
    recorded = target.facts.ssh_port if target.facts is not None else None
    with open_admin(
        target.settings,
        target.address,
        expected_fingerprints=pins,
        accept_new=accept_new,
        ports=(recorded,) if recorded else (),
    ) as conn:
        yield conn


def plan(settings: Settings, *, host: str | None = None, prune: bool = False) -> Outcome:
    """What `up` would change, on AWS and on the host; changes nothing."""
    outcome = Outcome()
    session = session_for(settings)
    facts: AwsFacts | None = None
    if uses_aws(settings) and session is not None:
        from bastion.aws.stage import plan_aws

        # An ssh_port change is shown whole (old rules deleted too): `up` does both phases.
        aws_plan, facts = plan_aws(settings, session, probe=lambda host, port, timeout: True)
        outcome.plan.extend(aws_plan)
        outcome.aws_facts = facts
    target = _target(settings, session, facts, host)
    outcome.warehouse = target.warehouse
    if facts is not None and (not facts.instance_id or facts.instance_state != "running"):
        outcome.plan.notices.append(
            "host: the instance does not exist or is not running yet; "
            "its configuration is planned once it does (bastion up does both)"
        )
        outcome.bastion = target.bastion_json(None)
        return outcome
    from bastion.host.stage import plan_host

    with admin(target) as conn:
        host_plan, _ = plan_host(settings, conn, target.warehouse, prune=prune)
        outcome.plan.extend(host_plan)
        outcome.bastion = target.bastion_json(conn.host_key_fingerprint)
    return outcome


def _target(
    settings: Settings, session: boto3.Session | None, facts: AwsFacts | None, host: str | None
) -> Target:
    from bastion.aws.discover import resolve_warehouse

    warehouse = facts.warehouse if facts is not None else resolve_warehouse(settings, session)
    return Target(settings, session, facts, warehouse, address_of(settings, facts, host))


def provision(
    settings: Settings, progress: Progress, *, replace: bool = False, close_old_port: bool = True
) -> tuple[Plan, Target]:
    """The AWS stage of `up`; the Plan holds the changes made. `up` passes
    `close_old_port=False`: an old ssh_port closes only after verify passed on the new one."""
    from bastion.aws.stage import apply_aws

    session = session_for(settings)
    if session is None:  # provider existing: nothing to provision
        return Plan(), _target(settings, None, None, None)
    changes, facts = apply_aws(
        settings, session, progress, replace=replace, close_old_port=close_old_port
    )
    return changes, _target(settings, session, facts, None)
