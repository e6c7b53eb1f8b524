"""`up` = `plan` + apply + verify, stage by stage; and `configure`, the host stage alone.

Each stage is planned by the same code `plan` runs, then applied: AWS (phase one of an
ssh_port change keeps the old port open), the host, the host-key tag, verify, and only
then phase two of a port change. A stage that fails stops the run; what the stages before
it changed is already in the Outcome.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass

from bastion.aws.plan import host_key_steps
from bastion.aws.stage import console_host_keys, run_plan, run_steps
from bastion.config.settings import Settings
from bastion.errors import VerifyError
from bastion.host.connection import HostConnection
from bastion.host.stage import apply_host
from bastion.pipeline.locate import Target, admin, before_aws, locate, uses_aws
from bastion.pipeline.outcome import Observer, Outcome
from bastion.pipeline.plan import read_aws
from bastion.pipeline.port_change import PendingMove, close_old_port, pending_move, pin_new_port
from bastion.pipeline.verify import verify_tunnel


@dataclass
class Configured:
    """What the host stage leaves for the next: the host key seen, a port move under way,
    and the admin connection when it stays open for verify."""

    fingerprint: str
    move: PendingMove | None
    conn: HostConnection | None


def up(
    settings: Settings,
    observer: Observer,
    outcome: Outcome,
    *,
    skip_verify: bool = False,
    accept_new: bool = False,
    prune: bool = False,
    replace: bool = False,
) -> Target:
    """Provision, configure, verify; then close the old port of an ssh_port change."""
    stages = 2 if skip_verify else 3
    target = before_aws(settings)
    if uses_aws(settings):
        observer.stage(f"1/{stages} provision: AWS resources of bastion-{settings.name}")
        with observer.status("reading AWS"):
            planned = read_aws(target, replace=replace)
        assert planned is not None
        made, facts = run_plan(settings, target.session, planned, observer)
        target.see(facts)
        outcome.record(made, observer)
    else:
        observer.stage(f"1/{stages} provision: skipped (provider = existing)")
    observer.stage(f"2/{stages} configure: the host at {target.address}")
    with contextlib.ExitStack() as keep:
        # The admin connection stays open and is lent to verify (its key goes in and out
        # over it), unless an ssh_port change is under way: verify's admin side then logs
        # in afresh on the new port, which is what proves it.
        done = configure_stage(
            target, observer, outcome, accept_new=accept_new, prune=prune, keep=keep
        )
        record_host_key(target, done.fingerprint, observer, outcome)
        outcome.bastion = target.bastion_json(done.fingerprint)
        move = done.move
        if skip_verify:
            keep.close()
            if move is not None:
                outcome.notice(
                    f"{move.describe()}: both ports stay open; the old one closes after a run "
                    "that verifies the tunnel on the new one", observer,
                )  # fmt: skip
            return target
        observer.stage(f"3/{stages} verify")
        try:
            verify_tunnel(target, observer, outcome, admin=done.conn)
        except VerifyError:
            if move is not None:
                outcome.notice(
                    f"{move.describe()}: the tunnel failed on {move.new}, so port(s) "
                    f"{move.ports} stay open on both sides; the next `bastion up` resumes",
                    observer,
                )
            raise
    outcome.bastion = target.bastion_json(done.fingerprint)
    if move is not None:
        observer.stage(f"{move.describe()}: verified on {move.new}, closing {move.ports}")
        close_old_port(target, move, observer, outcome, host_key=done.fingerprint)
    return target


def configure_stage(
    target: Target,
    observer: Observer,
    outcome: Outcome,
    *,
    accept_new: bool = False,
    prune: bool = False,
    drop: Collection[str] = (),
    keep: contextlib.ExitStack | None = None,
) -> Configured:
    """The host stage (phase one of an ssh_port change: sshd listens on both ports).

    With `keep`, the admin connection is handed to it open for verify, unless a port change
    is pending (verify must then log in on the new port); otherwise it is closed here.
    """
    settings = target.settings
    facts = target.facts
    extra: list[str] = []
    if facts is not None and facts.instance_id and not facts.host_key_tag:
        extra = console_host_keys(target.session, facts.instance_id)
    with contextlib.ExitStack() as opened:
        conn = opened.enter_context(admin(target, accept_new=accept_new, extra_pins=extra))
        host_plan, host_facts = apply_host(
            settings, conn, target.warehouse, observer, prune=prune, drop=drop
        )
        outcome.record(host_plan, observer)
        outcome.host = {
            "os": host_facts.os_label,
            "openssh": ".".join(map(str, host_facts.openssh)),
        }
        move = pending_move(settings, target.recorded_port, host_facts)
        if move is not None:
            pin_new_port(settings, conn, move.new)  # and conn closes on leaving this block
        lent = conn if move is None and keep is not None else None
        if lent is not None and keep is not None:
            keep.push(opened.pop_all())
    return Configured(conn.host_key_fingerprint, move, lent)


def record_host_key(target: Target, fingerprint: str, observer: Observer, outcome: Outcome) -> None:
    """Pin the host key the admin login saw in the instance's tag (a planned change)."""
    if target.facts is None:
        return
    steps = host_key_steps(target.facts, fingerprint)
    if steps:
        outcome.record(run_steps(target.session, steps, observer), observer)
        target.facts.host_key_tag = fingerprint


def configure(
    settings: Settings,
    observer: Observer,
    outcome: Outcome,
    *,
    host: str | None = None,
    accept_new: bool = False,
    prune: bool = False,
    drop: Collection[str] = (),
) -> Target:
    """The host part alone. A new ssh_port is reached in two steps: sshd listens on both
    ports, the fresh admin login on the new one (which disarms the rollback timer) proves
    it, then the old port closes on the host (AWS's side waits for `up`)."""
    target = locate(settings, host=host)
    done = configure_stage(target, observer, outcome, accept_new=accept_new, prune=prune, drop=drop)
    outcome.bastion = target.bastion_json(done.fingerprint)
    outcome.bastion.update(instance_id=None, public_ip=None)
    move = done.move
    if move is not None and move.host:
        observer.stage(
            f"{move.describe()}: the admin logged in on {move.new}, closing the old port"
        )
        host_only = PendingMove(move.old, move.new, host=True, aws=False)
        close_old_port(target, host_only, observer, outcome, host_key=done.fingerprint)
    return target
