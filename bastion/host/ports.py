"""Which ports sshd listens on, and how a change of `ssh_port` moves in two phases.

Phase one adds the new port beside the old ones, so the operator and dbt Cloud keep the
way in they have while the new one is proven; phase two leaves the new port alone. The
host says which phase it is in (sshd's own `sshd -T`; with socket activation, the ports
systemd's socket listens on), so a run cut between the two resumes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bastion.config.settings import Settings
from bastion.host.desired import DesiredHost
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
    """The socket's ports where a socket starts sshd (sshd then listens on the sockets it
    is handed, whatever its Port lines say), else the `port` lines of `sshd -T` ((), when
    sshd could not report them)."""
    if facts.socket_activated and facts.ssh_socket.ports:
        return facts.ssh_socket.ports
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


def after_sshd_config(facts: HostFacts, desired: DesiredHost) -> HostFacts:
    """The facts as the host will report them once `desired`'s sshd_config is live: how a
    plan shows phase two of a port change before phase one has run."""
    effective = {key: value.split() for key, value in desired.effective.items()}
    tunnels = {
        user: {**facts.tunnel_sshd(user), **effective}
        | {key: value.split() for key, value in tunnel.effective.items()}
        for user, tunnel in desired.tunnels.items()
    }
    ports = tuple(sorted({int(p) for p in effective.get("port", [])}))
    return replace(
        facts,
        ssh_socket=replace(facts.ssh_socket, ports=ports or facts.ssh_socket.ports),
        sshd={**facts.sshd, **effective},
        sshd_tunnel_of={**facts.sshd_tunnel_of, **tunnels},
        sshd_config_sha256=desired.sshd_config_sha256,
        sshd_config_header=desired.sshd_config.partition("\n")[0],
    )
