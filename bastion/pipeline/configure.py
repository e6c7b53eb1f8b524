"""`configure`: the host stage, alone or as part of `up`.

The host is read in one round trip and only what differs changes (phase one of an
ssh_port change: sshd listens on both ports). Alone, a new ssh_port is then reached on the
host: the fresh admin login on the new port proves it and the old port closes there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from dataclasses import dataclass

from bastion.config.settings import Settings
from bastion.host.connection import HostConnection
from bastion.host.stage import apply_host
from bastion.pipeline.locate import Target, admin, locate
from bastion.pipeline.outcome import Observer, Outcome
from bastion.pipeline.port_change import PendingMove, close_old_port, pending_move, pin_new_port
from bastion.pipeline.vendor import read_for


@dataclass
class Configured:
    """What the host stage leaves for the next: the host key seen, a port move under way,
    and the admin connection when it stays open for verify."""

    fingerprint: str
    move: PendingMove | None
    conn: HostConnection | None


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
        extra = target.console_host_keys(facts.instance_id)
    with contextlib.ExitStack() as opened:
        conn = opened.enter_context(admin(target, accept_new=accept_new, extra_pins=extra))
        host_plan, host_facts = apply_host(
            target.host_settings, conn, target.warehouse, observer, prune=prune, drop=drop
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
    vendors = read_for(target, observer)  # keys from the vendors' APIs; nothing written there
    if vendors is not None and vendors.writes:
        outcome.notice(
            "dbt Cloud's SSH tunnel settings differ for "
            + ", ".join(f"connection {w.connection_id}" for w in vendors.writes)
            + ": `bastion up` saves them (configure writes nothing to dbt Cloud)",
            observer,
        )
    done = configure_stage(target, observer, outcome, accept_new=accept_new, prune=prune, drop=drop)
    outcome.bastion = target.bastion_json(done.fingerprint)
    outcome.bastion.update(instance_id=None, public_ip=None)
    move = done.move
    waiting = vendors.port_moves() if vendors is not None else []
    if move is not None and move.host and waiting:
        # dbt Cloud still uses the old port: it stays open until `up` moves dbt Cloud
        outcome.notice(
            f"{move.describe()}: port(s) {move.ports} stay open: dbt Cloud's SSH tunnel of "
            + ", ".join(f"connection {w.connection_id}" for w in waiting)
            + " still uses them until `bastion up` verifies the new port and moves it",
            observer,
        )
    elif move is not None and move.host:
        observer.stage(
            f"{move.describe()}: the admin logged in on {move.new}, closing the old port"
        )
        host_only = PendingMove(move.old, move.new, host=True, aws=False)
        close_old_port(target, host_only, observer, outcome, host_key=done.fingerprint)
    return target
