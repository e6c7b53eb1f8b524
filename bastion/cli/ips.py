"""`bastion ips`: the built-in dbt Cloud IP allow lists, with their source."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, run
from bastion.console import Console
from bastion.errors import InputError


def command(
    region: Annotated[
        list[str] | None, typer.Option("--region", "-r", help="Only this region (repeatable).")
    ] = None,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show dbt Cloud's published IP addresses by region, with their source and date.

    dbt can change these; your account shows its own under Account settings -> Connection.
    Addresses not listed here go in dbt_cloud.extra_cidrs.

    Example:  bastion ips --region us --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.vendors.dbt_cloud import allow_list  # tomllib and its data: not for --help

        table = allow_list()
        chosen = []
        for name in region or list(table.regions):
            found = table.resolve(name)
            if found is None:
                raise InputError(
                    f"--region: unknown region {name!r}",
                    hint=f"use one of {', '.join(table.names())}",
                )
            chosen.append(found)
        document["source"] = table.source
        document["checked"] = table.checked
        document["regions"] = {
            r.key: {
                "aliases": list(r.aliases),
                "cloud": r.cloud,
                "access_url": r.access_url,
                "cidrs": list(r.cidrs),
            }
            for r in chosen
        }
        console.table(
            f"dbt Cloud IP addresses (source: {table.source}, checked {table.checked})",
            ["region", "aliases", "cloud", "addresses"],
            [(r.key, ", ".join(r.aliases), r.cloud, " ".join(r.cidrs)) for r in chosen],
        )

    run("ips", json_mode, body)
