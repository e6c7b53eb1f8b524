"""`bastion verify`: prove the tunnel hop by hop, as the tunnel user, the way dbt Cloud uses it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.config.settings import Settings
    from bastion.endpoint import Endpoint
    from bastion.host.connection import HostConnection
    from bastion.tunnel.verify import Hop, VerifyResult


def command(
    idle: Annotated[
        float,
        typer.Option(
            "--idle",
            min=0,
            max=3600,
            metavar="SECONDS",
            help="Hold the tunnel idle this long, then query again (dbt's keepalive failures).",
        ),
    ] = 0,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Prove the tunnel hop by hop: tcp, ssh, forward, database.

    Logs in to the bastion as the tunnel user with a throw-away key (installed with an expiry beside, never in, the managed authorized_keys, and removed afterwards), opens a forward to the warehouse and logs in to the database through it. Exit 3 names the failing hop and what to do.

    Example:  DBT_ENV_SECRET_PASSWORD=… bastion verify --idle 60 --json
    """

    def body(console: Console, document: dict[str, Any]) -> int:
        settings = load_settings(config)
        run_verify(settings, console, document, idle=idle)
        return 0

    run("verify", json_mode, body)


def run_verify(
    settings: Settings,
    console: Console,
    document: dict[str, Any],
    *,
    idle: float = 0,
    address: str = "",
    target: Endpoint | None = None,
    admin: HostConnection | None = None,
) -> VerifyResult:
    """Verify, print each hop as it finishes, fill document["verify"]; raise VerifyError on failure.

    `up` reuses this (passing the address and warehouse it already resolved) so both report
    a broken tunnel the same way.
    """
    from bastion.errors import VerifyError
    from bastion.tunnel.verify import verify

    def show(hop: Hop) -> None:
        console.findings([hop_row(hop)])
        if hop.name == "database" and hop.ok and idle > 0:
            console.say(f"  … holding the tunnel idle for {idle:.0f} s")

    console.heading("verify: the tunnel as dbt Cloud uses it")
    host = None
    if admin is not None:  # reuse the caller's admin connection to install verify's key
        from bastion.tunnel.verify_key import AdminVerifyKeyHost

        host = AdminVerifyKeyHost(settings, address or admin.address, admin)
    result = verify(settings, address=address, target=target, idle=idle, host=host, on_hop=show)
    document["verify"] = result.to_dict()
    document["bastion"] = {
        **(document.get("bastion") or {}),
        "address": result.address,
        "ssh_port": result.ssh_port,
        "host_key_fingerprint": result.host_key_fingerprint or None,
    }
    failed = result.failed
    if failed is not None:
        raise VerifyError(f"{failed.name}: {failed.detail}")
    if not result.login_tested:
        console.warn("the database was reached, but login was not tested (no credentials)")
    console.ok(f"tunnel works: {result.address}:{result.ssh_port} -> {result.target}")
    return result


def hop_row(hop: Hop) -> tuple[str, str, str, str]:
    """A findings row; the detail is escaped (an IPv6 "[::1]:22" is not console markup)."""
    from rich.markup import escape

    status = "ok" if hop.ok else "fail"
    return (status, hop.name, escape(f"{hop.detail} [{hop.ms:.0f} ms]"), "")
