"""`bastion verify`: prove the tunnel hop by hop, as the tunnel user, the way dbt Cloud uses it."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import (
    ConfigOption,
    JsonOption,
    Reporter,
    TunnelOption,
    load_settings,
    recorded,
    run,
)
from bastion.console import Console


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
    tunnel: TunnelOption = None,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Prove the tunnel hop by hop: tcp, ssh, forward, database, as every tunnel user (or --tunnel USER).

    Logs in to the bastion as each tunnel user with a throw-away key (installed with an expiry beside, never in, the managed authorized_keys, and removed afterwards), opens a forward to the warehouse and logs in to the database through it. Exit 3 names the failing hop (and, with several tunnel users, whose) and what to do.

    Example:  DBT_ENV_SECRET_PASSWORD=… bastion verify --idle 60 --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.locate import locate
        from bastion.pipeline.verify import verify_tunnel

        settings = load_settings(config)
        with recorded(document) as outcome:
            settings.selected(tunnel)  # an unknown --tunnel is exit 4 before anything connects
            verify_tunnel(locate(settings), Reporter(console), outcome, idle=idle, tunnel=tunnel)

    run("verify", json_mode, body)
