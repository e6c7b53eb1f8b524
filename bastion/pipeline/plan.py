"""`plan`: every change `up` would make, in the order `up` makes them, and nothing changed.

The AWS stage, dbt Cloud's SSH tunnels (keys from the vendors' APIs), the host stage, the host-key tag, then phase two of an ssh_port change
(after the tunnel verified on the new port): `up` runs the same planners stage by stage,
so the two list the same changes.
"""

from __future__ import annotations

from bastion.aws.plan import host_key_steps, to_plan
from bastion.aws.stage import AwsPlan, read_plan
from bastion.config.settings import Settings
from bastion.errors import HostError, SshError
from bastion.host.facts import HostFacts
from bastion.host.stage import plan_host, plan_port_phase_two, read_facts
from bastion.pipeline.locate import Target, admin, before_aws, uses_aws
from bastion.pipeline.outcome import Outcome
from bastion.pipeline.port_change import pending_move
from bastion.pipeline.vendor import read_for

NOT_RUNNING = (
    "host: the instance does not exist or is not running yet; "
    "its configuration is planned once it does (bastion up does both)"
)


def read_aws(target: Target, *, replace: bool = False) -> AwsPlan | None:
    """The AWS stage's plan (phase one of an ssh_port change: the old port stays open)."""
    if not uses_aws(target.settings):
        return None
    planned = read_plan(target.settings, target.session, replace=replace, old_port="keep")
    target.see(planned.facts)
    return planned


def plan(
    settings: Settings, outcome: Outcome, *, host: str | None = None, prune: bool = False
) -> None:
    """What `up` would change, on AWS and on the host; changes nothing. A host that cannot
    be read leaves the AWS changes listed and the plan incomplete (SshError, exit 1)."""
    target = before_aws(settings, host=host)
    aws = read_aws(target)
    if aws is not None:
        outcome.plan.extend(aws.plan)
    vendors = read_for(target)  # keys from the vendors' APIs, dbt Cloud tunnels to save
    if vendors is not None:
        outcome.plan.extend(vendors.plan(port_moves=False))
    outcome.bastion = target.bastion_json(None)
    if not target.running:
        if vendors is not None:
            outcome.plan.extend(vendors.plan(port_moves=True))
        outcome.plan.notices.append(NOT_RUNNING)
        outcome.host = {"read": False, "reason": "no running instance yet"}
        return
    try:
        with admin(target) as conn:
            host_plan, facts = plan_host(target.host_settings, conn, target.warehouse, prune=prune)
            fingerprint = conn.host_key_fingerprint
    except (SshError, HostError) as exc:
        outcome.host = {"read": False, "reason": exc.message}
        raise SshError(
            f"the plan is incomplete: the host was not read ({exc.message})",
            hint=exc.hint or "the AWS changes above are listed; `bastion up` repairs them",
        ) from None
    outcome.host = {"read": True}
    outcome.plan.extend(host_plan)
    outcome.plan.extend(to_plan(host_key_steps(target.facts, fingerprint) if target.facts else []))
    if vendors is not None:  # made once the tunnel is verified on the new port
        outcome.plan.extend(vendors.plan(port_moves=True))
    move = pending_move(settings, target.recorded_port, facts)
    if move is not None and move.host:
        outcome.plan.extend(plan_port_phase_two(target.host_settings, facts, target.warehouse))
    if move is not None and move.aws and aws is not None:
        outcome.plan.extend(to_plan(aws.port_phase_two()))
    outcome.bastion = target.bastion_json(fingerprint)


def read_host(target: Target, *, accept_new: bool = False) -> HostFacts:
    """The host's facts alone (one admin login, one remote command)."""
    with admin(target, accept_new=accept_new) as conn:
        return read_facts(target.settings, conn)
