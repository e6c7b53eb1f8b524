"""The host stage of the pipeline: plan, apply and status over an open admin connection.

`plan_host` and `apply_host` run the same facts and plan code, so `plan` and `configure`
cannot disagree; a run with nothing to change costs one remote command.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from bastion.changes import Plan
from bastion.errors import ConfigError, HostError
from bastion.host.facts import STATE_DIR, VERIFY_KEYS_NAME, HostFacts, gather, match_address

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.endpoint import Endpoint
    from bastion.host.connection import HostConnection
    from bastion.progress import Progress


def read_facts(
    settings: Settings, conn: HostConnection, *, wait_cloud_init: bool = False
) -> HostFacts:
    from bastion.host.desired import tunnel_sources
    from bastion.prefetch import warm

    addr = match_address(tunnel_sources(settings))
    # what planning needs loads while the host runs the facts script
    warm("bastion.host.plan", "bastion.host.apply", _prepare_templates)
    return gather(
        conn,
        settings.tunnel.user,
        settings.bastion.admin_user,
        addr,
        wait_cloud_init=wait_cloud_init,
    )


def _prepare_templates() -> None:
    from bastion.templates import prepare

    prepare("sshd_config.j2")


def plan_host(
    settings: Settings,
    conn: HostConnection,
    warehouse: Endpoint,
    *,
    prune: bool = False,
    drop: Collection[str] = (),
    close_old_port: bool = True,
) -> tuple[Plan, HostFacts]:
    """Read-only: what `configure` would change on this host (by default the end state of
    an ssh_port change, which a run reaches in two phases; a notice says so)."""
    from bastion.host.plan import build_plan
    from bastion.host.ports import listen_ports

    facts = read_facts(settings, conn)
    ports = listen_ports(settings, facts, close_old_port=close_old_port)
    plan = build_plan(settings, facts, warehouse, prune=prune, drop=drop, listen_ports=ports).plan
    _port_notice(settings, facts, plan)
    return plan, facts


def _port_notice(settings: Settings, facts: HostFacts, plan: Plan) -> None:
    from bastion.host.ports import port_move

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
    from bastion.host.apply import HostChanged

    for attempt in range(1, APPLY_ATTEMPTS + 1):
        try:
            return _apply_once(
                settings, conn, warehouse, progress, prune=prune, drop=drop,
                rollback_seconds=rollback_seconds, close_old_port=close_old_port,
            )  # fmt: skip
        except HostChanged:
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
    from bastion.host import apply
    from bastion.host.desired import tunnel_sources
    from bastion.host.plan import build_plan, inside_cidrs
    from bastion.host.ports import listen_ports

    with progress.status(f"reading {conn.address}"):
        facts = read_facts(settings, conn, wait_cloud_init=True)
    ports = listen_ports(settings, facts, close_old_port=close_old_port)
    host = build_plan(settings, facts, warehouse, prune=prune, drop=drop, listen_ports=ports)
    if not host.plan.changes:
        return host.plan, facts
    # A previous run still in its admin login check (facts.pending_rollback): the script
    # waits under the lock until that run's fresh login or its timer ends it.
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
    script = apply.apply_script(
        settings, facts, host, match_address(tunnel_sources(settings)), rollback_seconds=seconds
    )
    with progress.status(f"applying {len(host.plan.changes)} change(s) on {conn.address}"):
        apply.run_apply(conn, script)
    if host.needs_reload:
        with progress.status("checking that the admin can still log in"):
            apply.confirm_admin_login(settings, conn, rollback_seconds=seconds)
    return host.plan, facts


def effective_summary(facts: HostFacts) -> dict[str, str]:
    """The tunnel user's effective settings that matter to dbt Cloud and to an auditor."""
    keys = (
        "clientaliveinterval", "clientalivecountmax", "allowtcpforwarding", "permitopen",
        "permitlisten", "permittty", "forcecommand", "allowagentforwarding", "x11forwarding",
        "authorizedkeysfile", "passwordauthentication", "permitrootlogin",
    )  # fmt: skip
    return {k: " ".join(facts.sshd_tunnel.get(k, [])) for k in keys}


def status_host(settings: Settings, conn: HostConnection, warehouse: Endpoint) -> dict[str, Any]:
    """Read-only summary: OS, host key, effective sshd settings, keys, pending changes."""
    from bastion.config.keys import parse_authorized_keys
    from bastion.host.plan import build_plan

    facts = read_facts(settings, conn)
    host = build_plan(settings, facts, warehouse)
    configured = {k.fingerprint for k in settings.tunnel_keys()}
    keys = [
        {
            "fingerprint": e.key.fingerprint,
            "type": e.key.key_type,
            "comment": e.key.comment,
            "configured": e.key.fingerprint in configured,
            "restricted": "permitopen=" in e.options,
        }
        for e in parse_authorized_keys(facts.authorized_keys or "")
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
        "sshd": effective_summary(facts),
        "allow_users": facts.sshd.get("allowusers", []),
        "keys": keys,
        "pending_changes": [c.to_dict() for c in host.plan.changes],
        "notices": host.plan.notices,
    }


# Verifies may run at once (two CI jobs): each adds its own line and removes only its own.
_VERIFY_FILE = (
    f"mkdir -p {STATE_DIR} && exec 8>{STATE_DIR}/verify.lock && flock -w 30 8 || exit 1\n"
    f'f="$home/.ssh/{VERIFY_KEYS_NAME}"; tmp="$f.tmp.$$"\n'
    'keep() { chmod 600 "$tmp" && chown "$1:$1" "$tmp" && mv -f "$tmp" "$f"; }\n'
)


def install_verify_key(conn: HostConnection, settings: Settings, line: str) -> None:
    """Add a line to the second keys file `verify` uses (never the managed authorized_keys).

    `line` is one full authorized_keys line (options + key) built by the caller; it must be
    a single line. The file is rewritten atomically, mode 600, owned by the tunnel user;
    lines of verifies running at the same time are kept.
    """
    if "\n" in line.strip() or not line.strip():
        raise HostError("the verify key must be one non-empty authorized_keys line")
    script = (
        'set -u\nhome=$(getent passwd "$1" | cut -d: -f6)\n'
        '[ -n "$home" ] && [ -d "$home/.ssh" ] || { echo "no-user" >&2; exit 1; }\n'
        + _VERIFY_FILE
        + '{ [ -f "$f" ] && grep -vxF -- "$2" "$f"; printf "%s\\n" "$2"; } > "$tmp" && keep "$1"'
        " && echo written\n"
    )
    result = conn.sudo_script(script, settings.tunnel.user, line.strip())
    if "written" not in result.stdout:
        raise HostError(
            f"cannot write the verify key for {settings.tunnel.user}: "
            f"{(result.stderr or '').strip()[:200]}",
            hint="run `bastion configure` first: it creates the tunnel user",
        )


def remove_verify_key(conn: HostConnection, settings: Settings, line: str = "") -> None:
    """Remove `line` from the verify keys file, and the file once it is empty (all of it
    when no line is given); removing what is not there is not an error."""
    script = (
        'home=$(getent passwd "$1" | cut -d: -f6)\n[ -n "$home" ] || { echo removed; exit 0; }\n'
        + _VERIFY_FILE
        + 'if [ -n "$2" ] && [ -f "$f" ]; then grep -vxF -- "$2" "$f" > "$tmp";'
        ' if [ -s "$tmp" ]; then keep "$1"; else rm -f "$tmp" "$f"; fi;'
        ' else rm -f "$f"; fi && echo removed\n'
    )
    result = conn.sudo_script(script, settings.tunnel.user, line.strip())
    if "removed" not in result.stdout:
        raise HostError(f"cannot remove the verify key of {settings.tunnel.user}")
