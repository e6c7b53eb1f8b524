"""The host stage of the pipeline: plan, apply and status over an open admin connection.

`plan_host` and `apply_host` run the same facts and plan code, so `plan` and `configure`
cannot disagree; a run with nothing to change costs one remote command.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from bastion.changes import Plan
from bastion.config.keys import parse_authorized_keys
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import ConfigError
from bastion.host import apply
from bastion.host.connection import HostConnection
from bastion.host.desired import tunnel_addresses
from bastion.host.fact_sections import gather
from bastion.host.facts import HostFacts
from bastion.host.plan import build_plan, inside_cidrs
from bastion.host.ports import after_sshd_config, listen_ports, port_move
from bastion.prefetch import warm
from bastion.progress import Progress
from bastion.templates import prepare


def read_facts(
    settings: Settings, conn: HostConnection, *, wait_cloud_init: bool = False
) -> HostFacts:

    addresses = tunnel_addresses(settings)
    # jinja2 and the compiled sshd_config template load while the host runs the facts script
    warm(_prepare_templates)
    return gather(
        conn,
        " ".join(f"{user}={address}" for user, address in addresses.items()),
        settings.bastion.admin_user,
        addresses[settings.first_tunnel.user],
        wait_cloud_init=wait_cloud_init,
    )


def _prepare_templates() -> None:
    prepare("sshd_config.j2")


def plan_host(
    settings: Settings,
    conn: HostConnection,
    warehouse: Endpoint,
    *,
    prune: bool = False,
    drop: Collection[str] = (),
    close_old_port: bool = False,
) -> tuple[Plan, HostFacts]:
    """Read-only: what `configure` would change on this host. During an ssh_port change that
    is phase one (sshd keeps the old port beside the new one) unless `close_old_port`."""
    facts = read_facts(settings, conn)
    ports = listen_ports(settings, facts, close_old_port=close_old_port)
    plan = build_plan(settings, facts, warehouse, prune=prune, drop=drop, listen_ports=ports).plan
    _port_notice(settings, facts, plan)
    return plan, facts


def plan_port_phase_two(settings: Settings, facts: HostFacts, warehouse: Endpoint) -> Plan:
    """What phase two of an ssh_port change does on the host once phase one (planned from
    `facts`) is done and proven: sshd_config (and a socket that starts sshd) without the old
    port, and the reload."""
    move = port_move(settings, facts)
    if move is None:
        return Plan()
    first = build_plan(settings, facts, warehouse, listen_ports=move.both).desired
    if first is not None and not move.new_listening:
        facts = after_sshd_config(facts, first)
    second = build_plan(settings, facts, warehouse, listen_ports=(move.new,))
    wanted = ("sshd_config", "ssh_socket", "sshd_reload")
    return Plan(changes=[c for c in second.plan.changes if c.resource in wanted])


def _port_notice(settings: Settings, facts: HostFacts, plan: Plan) -> None:
    move = port_move(settings, facts)
    if move is None:
        return
    old = ", ".join(map(str, move.old))
    first = "done: sshd listens on both" if move.new_listening else "sshd listens on both"
    plan.notices.append(
        f"host: {move.describe()} in two phases: 1. {first} and the tunnel is verified on "
        f"{move.new}; 2. sshd listens on {move.new} alone. Nobody is cut off, but dbt Cloud's "
        f"connection must name port {move.new} before port {old} closes"
    )


APPLY_ATTEMPTS = 3


def apply_host(
    settings: Settings,
    conn: HostConnection,
    warehouse: Endpoint,
    progress: Progress | Any,
    *,
    prune: bool = False,
    drop: Collection[str] = (),
    rollback_seconds: int | None = None,
    close_old_port: bool = False,
) -> tuple[Plan, HostFacts]:
    """Make the host match the config; the returned Plan holds the changes made.

    During an ssh_port change sshd keeps its old ports beside the new one unless
    `close_old_port` (phase two: only once the new port was proven). When another run
    changed the host between our facts and our lock, the facts are read and planned again.
    """

    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            return _apply_once(
                settings, conn, warehouse, progress, prune=prune, drop=drop,
                rollback_seconds=rollback_seconds, close_old_port=close_old_port,
            )  # fmt: skip
        except apply.HostChanged:
            if attempt == APPLY_ATTEMPTS:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _apply_once(
    settings: Settings,
    conn: HostConnection,
    warehouse: Endpoint,
    progress: Progress | Any,
    *,
    prune: bool,
    drop: Collection[str],
    rollback_seconds: int | None,
    close_old_port: bool,
) -> tuple[Plan, HostFacts]:

    with progress.status(f"reading {conn.address}"):
        facts = read_facts(settings, conn, wait_cloud_init=True)
    ports = listen_ports(settings, facts, close_old_port=close_old_port)
    host = build_plan(settings, facts, warehouse, prune=prune, drop=drop, listen_ports=ports)
    if not host.plan.changes:
        return host.plan, facts
    # A previous run still in its admin login check (facts.pending_rollback): the script
    # waits under the lock until that run's fresh login or its timer ends it; a rollback
    # whose timer is gone (a reboot, a dead process) is resolved there at once.
    if (
        host.sshd_config
        and facts.client_address
        and not inside_cidrs(facts.client_address, list(settings.bastion.admin_cidrs))
    ):
        raise ConfigError(
            f"bastion.admin_cidrs does not include {facts.client_address}, the address this host "
            "sees you connect from; the new sshd_config would lock you out. Nothing was changed",
            hint=f"add {facts.client_address}/32 (or your network) to bastion.admin_cidrs",
        )
    seconds = rollback_seconds or apply.ROLLBACK_SECONDS
    token = apply.new_token()
    script = apply.apply_script(
        settings, facts, host, tunnel_addresses(settings)[settings.first_tunnel.user],
        rollback_seconds=seconds, token=token,
    )  # fmt: skip
    with progress.status(f"applying {len(host.plan.changes)} change(s) on {conn.address}"):
        notes = apply.run_apply(conn, script)
    host.plan.notices.extend(f"host: {note}" for note in notes)
    if host.needs_reload:
        with progress.status("checking that the admin can still log in"):
            apply.confirm_admin_login(settings, conn, token=token, rollback_seconds=seconds)
    return host.plan, facts


def effective_summary(facts: HostFacts, user: str) -> dict[str, str]:
    """A tunnel user's effective settings that matter to its tool and to an auditor."""
    keys = (
        "clientaliveinterval", "clientalivecountmax", "allowtcpforwarding", "permitopen",
        "permitlisten", "permittty", "forcecommand", "allowagentforwarding", "x11forwarding",
        "authorizedkeysfile", "passwordauthentication", "permitrootlogin",
    )  # fmt: skip
    effective = facts.tunnel_sshd(user)
    return {k: " ".join(effective.get(k, [])) for k in keys}


def status_host(settings: Settings, conn: HostConnection, warehouse: Endpoint) -> dict[str, Any]:
    """Read-only summary: OS, host key, effective sshd settings, keys, pending changes."""

    facts = read_facts(settings, conn)
    host = build_plan(settings, facts, warehouse)
    keys = [
        {
            "tunnel": tunnel.user,
            "fingerprint": e.key.fingerprint,
            "type": e.key.key_type,
            "comment": e.key.comment,
            "configured": e.key.fingerprint in {k.fingerprint for k in tunnel.configured_keys()},
            "restricted": "permitopen=" in e.options,
        }
        for tunnel in settings.tunnels.values()
        for e in parse_authorized_keys(facts.keys_text(tunnel.user) or "")
        if e.key is not None
    ]
    return {
        "address": conn.address,
        "host_key_fingerprint": conn.host_key_fingerprint,
        "os": facts.os_label,
        "openssh": ".".join(map(str, facts.openssh)),
        "service": facts.service,
        "managed": bool(facts.marker),
        "ssh_crypto": settings.bastion.ssh_crypto,
        "sshd": effective_summary(facts, settings.first_tunnel.user),
        "sshd_by_tunnel": {user: effective_summary(facts, user) for user in settings.tunnels},
        "allow_users": facts.sshd.get("allowusers", []),
        "keys": keys,
        "pending_changes": [c.to_dict() for c in host.plan.changes],
        "notices": host.plan.notices,
    }
