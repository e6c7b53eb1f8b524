"""`bastion configure`: the host part alone, on any host reachable over SSH."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.console import Console
from bastion.errors import ConfigError

if TYPE_CHECKING:
    from bastion.changes import Plan
    from bastion.config.settings import Settings
    from bastion.host.ports import PortMove

HostOption = Annotated[
    str | None,
    typer.Option("--host", help="Reach the host here (overrides bastion.address and AWS).",
                 show_default=False),
]  # fmt: skip
AcceptNewOption = Annotated[
    bool,
    typer.Option("--accept-new-host-key", help="Trust a changed host key (the host was replaced)."),
]
PruneOption = Annotated[
    bool,
    typer.Option("--prune", help="Remove tunnel keys on the host that the config does not list."),
]


@dataclass(frozen=True)
class HostTarget:
    """Where to connect, which host keys to expect, and the warehouse the tunnel opens to."""

    address: str
    warehouse: Any  # bastion.aws.discover.Endpoint
    pins: tuple[str, ...] = ()
    recorded_port: int | None = None  # AWS's bastion:ssh-port: sshd answers there mid-change


def locate_host(settings: Settings, host: str | None) -> HostTarget:
    """Resolve address and warehouse; AWS is asked only when the config cannot answer."""
    from bastion.config import rules

    if host:
        try:
            host = rules.hostname(host)
        except ValueError as exc:
            raise ConfigError(f"--host {exc}") from None
    warehouse = settings.warehouse
    if settings.bastion.provider == "existing" and warehouse.host:
        address = host or settings.bastion.address
        if not address:
            raise ConfigError(
                "no address to reach the bastion at",
                hint="set bastion.address or pass --host",
            )
        from bastion.endpoint import Endpoint

        return HostTarget(address, Endpoint(warehouse.host, warehouse.effective_port))
    from bastion.pipeline import locate as pipeline

    target = pipeline.locate(settings, host=host)
    if not target.address:
        raise ConfigError(
            "no address to reach the bastion at",
            hint="set bastion.address, pass --host, or run `bastion provision` first",
        )
    recorded = target.facts.ssh_port if target.facts is not None else None
    return HostTarget(target.address, target.warehouse, tuple(target.pins), recorded)


def next_steps(console: Console, settings: Settings, address: str) -> None:
    if not settings.tunnel_keys():
        console.say(
            "no tunnel key yet: in dbt Cloud, save the connection with SSH tunnel "
            f"(host {address}, port {settings.bastion.ssh_port}, user {settings.tunnel.user}), "
            "copy the public key it shows, then run `bastion keys add 'ssh-ed25519 AAAA…'`"
        )


def _close_old_port(
    settings: Settings, console: Console, target: HostTarget, move: PortMove, fingerprint: str
) -> Plan:
    """Phase two on the host: phase one's fresh admin login on the new port proved it."""
    from bastion.pipeline.locate import Target
    from bastion.pipeline.port_change import PendingMove, close_old_port

    console.heading(f"{move.describe()}: the admin logged in on {move.new}, closing the old port")
    located = Target(settings, None, None, target.warehouse, target.address)
    pending = PendingMove(move.old, move.new, host=True, aws=False)
    return close_old_port(settings, located, pending, console, host_key=fingerprint)


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    prune: PruneOption = False,
) -> None:
    """Configure the bastion host over SSH: tunnel user, its keys, a hardened sshd.

    Reads the host in one round trip and changes only what differs; sshd is reloaded only
    when its config changed, behind a timer that restores the old file unless a fresh admin
    login succeeds. Keys on a host bastion never managed are kept unless --prune.
    A new ssh_port is reached in two steps: sshd listens on both ports, a fresh admin
    login on the new one proves it, then the old port closes.

    Example:  bastion configure --host 203.0.113.10
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.host.connection import open_admin
        from bastion.host.ports import port_move
        from bastion.host.stage import apply_host
        from bastion.pipeline.port_change import pin_new_port

        settings = load_settings(config)
        target = locate_host(settings, host)
        with open_admin(
            settings,
            target.address,
            expected_fingerprints=target.pins,
            accept_new=accept_new_host_key,
            ports=(target.recorded_port,) if target.recorded_port else (),
        ) as conn:
            plan, facts = apply_host(settings, conn, target.warehouse, console, prune=prune)
            fingerprint = conn.host_key_fingerprint
            move = port_move(settings, facts)
            if move is not None:
                pin_new_port(settings, conn, move.new)
        if move is not None:
            plan.extend(_close_old_port(settings, console, target, move, fingerprint))
        document["changes"] = [change.to_dict() for change in plan.changes]
        document["notices"] = plan.notices
        document["bastion"] = {
            "instance_id": None,
            "public_ip": None,
            "address": target.address,
            "ssh_port": settings.bastion.ssh_port,
            "host_key_fingerprint": fingerprint,
        }
        document["host"] = {"os": facts.os_label, "openssh": ".".join(map(str, facts.openssh))}
        console.changes(plan.changes, applied=True)
        for notice in plan.notices:
            console.warn(notice)
        next_steps(console, settings, target.address)

    run("configure", json_mode, body)
