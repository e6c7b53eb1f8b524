"""A change of `ssh_port` across AWS and the host, in two phases, so nobody is cut off.

Phase one is an ordinary run: the group admits the old and the new port, sshd listens on
both. Phase two starts only once the new port was proven (by `verify` in `up`, by a fresh
admin login in `configure`): AWS records the new port and revokes the old port's rules,
and sshd keeps the new port alone. Both sides carry their phase themselves (the group's
`bastion:ssh-port` tag, sshd's own `Port` lines), so a run stopped between the phases is
resumed by the next one.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.config.settings import Settings
from bastion.host.connection import HostConnection, KnownHosts, host_pattern, open_admin
from bastion.host.facts import HostFacts
from bastion.host.ports import port_move
from bastion.host.stage import apply_host
from bastion.pipeline.locate import Target
from bastion.pipeline.outcome import Observer, Outcome


@dataclass(frozen=True)
class PendingMove:
    """What still holds an old port open after phase one, on each side."""

    old: tuple[int, ...]
    new: int
    host: bool  # sshd still listens on an old port
    aws: bool  # the group's tag still names the old port (its rules stay)

    def describe(self) -> str:
        return f"ssh_port {', '.join(map(str, self.old))} -> {self.new}"

    @property
    def ports(self) -> str:
        return ", ".join(map(str, self.old))


def pending_move(
    settings: Settings, recorded: int | None, host_facts: HostFacts
) -> PendingMove | None:
    """The move left after phase one; `host_facts` are those read before phase one's apply
    (it only adds the new port, so the old ones it saw are still open), `recorded` the port
    AWS holds in the group's tag (None without AWS)."""
    new = settings.bastion.ssh_port
    on_host = port_move(settings, host_facts)
    on_aws = recorded is not None and recorded != new
    if on_host is None and not on_aws:
        return None
    old = {*(on_host.old if on_host else ()), *((recorded,) if on_aws and recorded else ())}
    return PendingMove(tuple(sorted(old)), new, on_host is not None, on_aws)


def pin_new_port(settings: Settings, conn: HostConnection, new: int) -> None:
    """Pin, for `[address]:new`, the host key `conn` was checked against: it is the same
    sshd, and `verify` trusts only what known_hosts pins."""
    known = KnownHosts(settings.bastion.known_hosts)
    target_pattern = host_pattern(conn.address, new)
    if conn.host_key_fingerprint in known.fingerprints(target_pattern):
        return
    source = host_pattern(conn.address, conn.port)
    for entry in known.entries():
        if entry.pattern == source and entry.fingerprint == conn.host_key_fingerprint:
            known.pin(target_pattern, entry.key_type, entry.key_data)
            return


def close_old_port(
    target: Target, move: PendingMove, observer: Observer, outcome: Outcome, *, host_key: str
) -> None:
    """Phase two, once the new port was proven: the host first (a fresh admin login on the
    new port disarms its rollback timer), then AWS records the new port and revokes the old
    port's rules. What it changes is what `plan` showed as phase two."""
    settings = target.settings
    if move.host:
        with open_admin(
            settings,
            target.require_address(),
            expected_fingerprints=[*target.pins, host_key],
            ports=(move.new,),
        ) as conn:
            # the settings the host stage used in phase one: keys from the vendors' APIs,
            # the endpoint's addresses (else they would be someone else's keys to adopt)
            host_plan, _ = apply_host(
                target.host_settings, conn, target.warehouse, observer, close_old_port=True
            )
        outcome.record(host_plan, observer)
    if move.aws and target.facts is not None:
        from bastion.aws.stage import read_plan, run_plan  # AWS's half: see pipeline.locate

        with observer.status("reading AWS"):
            planned = read_plan(settings, target.session, old_port="close")
        made, facts = run_plan(settings, target.session, planned, observer)
        target.see(facts)
        outcome.record(made, observer)
