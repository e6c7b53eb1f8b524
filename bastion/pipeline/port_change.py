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
from typing import TYPE_CHECKING

from bastion.changes import Plan
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.host.connection import HostConnection
    from bastion.host.facts import HostFacts
    from bastion.pipeline.locate import Target
    from bastion.progress import Progress


@dataclass(frozen=True)
class PendingMove:
    """What still holds an old port open after phase one, on each side."""

    old: tuple[int, ...]
    new: int
    host: bool  # sshd still listens on an old port
    aws: bool  # the group's tag still names the old port (its rules stay)

    def describe(self) -> str:
        return f"ssh_port {', '.join(map(str, self.old))} -> {self.new}"


def pending_move(
    settings: Settings, target: Target | None, host_facts: HostFacts
) -> PendingMove | None:
    """The move left after phase one; `host_facts` are those read before phase one's apply
    (it only adds the new port, so the old ones it saw are still open)."""
    from bastion.host.ports import port_move

    new = settings.bastion.ssh_port
    on_host = port_move(settings, host_facts)
    recorded = target.facts.ssh_port if target is not None and target.facts else None
    on_aws = recorded is not None and recorded != new
    if on_host is None and not on_aws:
        return None
    old = {*(on_host.old if on_host else ()), *((recorded,) if on_aws and recorded else ())}
    return PendingMove(tuple(sorted(old)), new, on_host is not None, on_aws)


def pin_new_port(settings: Settings, conn: HostConnection, new: int) -> None:
    """Pin, for `[address]:new`, the host key `conn` was checked against: it is the same
    sshd, and `verify` trusts only what known_hosts pins."""
    from bastion.host.connection import KnownHosts, host_pattern

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
    settings: Settings,
    target: Target,
    move: PendingMove,
    progress: Progress,
    *,
    host_key: str,
) -> Plan:
    """Phase two, once the new port was proven: the host first (a fresh admin login on the
    new port disarms its rollback timer), then AWS records the new port and revokes the old
    port's rules. The returned Plan holds the changes made."""
    made = Plan()
    if move.host:
        from bastion.host.connection import open_admin
        from bastion.host.stage import apply_host

        if not target.address:
            raise ConfigError("no address to reach the bastion at")
        with open_admin(
            settings,
            target.address,
            expected_fingerprints=[*target.pins, host_key],
            ports=(move.new,),
        ) as conn:
            host_plan, _ = apply_host(
                settings, conn, target.warehouse, progress, close_old_port=True
            )
        made.extend(host_plan)
    if move.aws and target.session is not None and target.facts is not None:
        from bastion.aws.stage import apply_aws, confirm_ssh_port

        confirm_ssh_port(target.session, target.facts, move.new)
        detail = f"{target.facts.security_group_id}: bastion:ssh-port = {move.new} (verified)"
        made.add("aws", "security_group", "update", detail)
        aws_plan, target.facts = apply_aws(settings, target.session, progress)
        made.extend(aws_plan)
    return made
