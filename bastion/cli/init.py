"""`bastion init`: write a commented starter bastion.toml; never overwrite one."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, run
from bastion.console import Console


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    name: Annotated[
        str, typer.Option(help="Name tagging every resource (a-z, 0-9, -).")
    ] = "analytics",
    kind: Annotated[
        str, typer.Option(help="Warehouse kind: redshift, redshift-serverless, postgres, alloydb.")
    ] = "redshift",
    region: Annotated[str, typer.Option(help="AWS region of the warehouse.")] = "us-east-1",
    provider: Annotated[
        str, typer.Option(help="aws (create the host) or existing (any host).")
    ] = "aws",
    admin_cidr: Annotated[
        list[str] | None,
        typer.Option("--admin-cidr", help="Where you and CI connect from (repeatable)."),
    ] = None,
    vendor: Annotated[
        list[str] | None,
        typer.Option(
            "--vendor",
            metavar="VENDOR",
            show_default=False,
            help="A tool sharing the bastion, one tunnels.<user> table each (repeatable): "
            "dbt_cloud, fivetran, hightouch, stitch, custom.",
        ),
    ] = None,
) -> None:
    """Write a commented starter bastion.toml that explains every key.

    Refuses to overwrite an existing file. Fill in bastion.admin_cidrs and the warehouse, then run `bastion plan`.

    Without --vendor it is the one-tool form for dbt Cloud (dbt_cloud and tunnel tables). With --vendor (repeatable), one tunnels.<user> table per tool: dbtcloud, fivetran, hightouch, stitch, or tunnel for a custom tool, whose extra_cidrs you must fill in (it has no built-in address list).

    Example:  bastion init --name analytics --admin-cidr 198.51.100.7/32
    Example:  bastion init --vendor dbt_cloud --vendor fivetran
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.config.starter import tunnel_users, write_starter

        target = write_starter(
            config, name=name, kind=kind, region=region, provider=provider,
            admin_cidrs=admin_cidr or [], vendors=vendor or [],
        )  # fmt: skip
        document["path"] = str(target)
        if vendor:
            document["tunnels"] = tunnel_users(vendor)
        console.ok(f"wrote {target}")
        if not admin_cidr:
            console.say("next: fill in bastion.admin_cidrs (your address, e.g. 198.51.100.7/32)")
        if vendor and "custom" in vendor:
            console.say("next: fill in tunnels.tunnel.extra_cidrs (where your tool connects from)")
        console.say("then: bastion plan")

    run("init", json_mode, body)
