"""Which ports sshd listens on, and how a change of `ssh_port` moves in two phases.

Phase one adds the new port beside the old ones, so the operator and dbt Cloud keep the
way in they have while the new one is proven; phase two leaves the new port alone. The
host's own `sshd -T` says which phase it is in, so a run cut between the two resumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.host.connection import KnownHosts
    from bastion.host.facts import HostFacts


@dataclass(frozen=True)
class PortMove:
    """sshd listens on `old` (and maybe already on `new`); the config wants `new` alone."""

    old: tuple[int, ...]
    new: int
    new_listening: bool  # phase one is done: sshd answers on `new` too

    @property
    def both(self) -> tuple[int, ...]:
        """Phase one's listening ports: the old ones kept, the new one added."""
        return tuple(sorted({*self.old, self.new}))

    def describe(self) -> str:
        old = ", ".join(map(str, self.old))
        return f"ssh_port {old} -> {self.new}"


def listening_ports(facts: HostFacts) -> tuple[int, ...]:
    """The `port` lines of `sshd -T` ((), when sshd could not report them)."""
    found = {int(p) for p in facts.sshd.get("port", []) if p.isdigit()}
    return tuple(sorted(found))


def port_move(settings: Settings, facts: HostFacts) -> PortMove | None:
    """The move under way on this host, or None when sshd listens on `ssh_port` alone."""
    new = settings.bastion.ssh_port
    have = listening_ports(facts)
    if not have or have == (new,):
        return None
    return PortMove(tuple(p for p in have if p != new), new, new in have)


def listen_ports(settings: Settings, facts: HostFacts, *, close_old_port: bool) -> tuple[int, ...]:
    """The `Port` lines to render: both sides of a move until the caller may close the old."""
    move = port_move(settings, facts)
    if move is None or close_old_port:
        return (settings.bastion.ssh_port,)
    return move.both


def candidate_ports(
    settings: Settings, address: str, known_hosts: KnownHosts, recorded: int | None = None
) -> list[int]:
    """Where sshd may listen now, most likely first: the port AWS recorded, `ssh_port`, then
    every port known_hosts pins for this address (a move this tool began, seen from a laptop
    that has no AWS tag to read)."""
    ports = [p for p in (recorded, settings.bastion.ssh_port) if p]
    for entry in known_hosts.entries():
        if entry.pattern == address:
            ports.append(22)
        elif entry.pattern.startswith(f"[{address}]:"):
            tail = entry.pattern.rsplit(":", 1)[1]
            if tail.isdigit():
                ports.append(int(tail))
    return list(dict.fromkeys(ports))
