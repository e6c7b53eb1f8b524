"""`bastion ips`: the built-in source lists of each vendor (dbt Cloud by default), with
their source and date."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, run
from bastion.console import Console
from bastion.errors import InputError


def command(
    vendor: Annotated[
        str,
        typer.Option(
            "--vendor", help="dbt_cloud, fivetran, hightouch or stitch (the tunnel's vendor)."
        ),
    ] = "dbt_cloud",
    region: Annotated[
        list[str] | None, typer.Option("--region", "-r", help="Only this region (repeatable).")
    ] = None,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show a vendor's published IP addresses by region, with their source and date.

    Vendors can change these; dbt Cloud shows each account's own under Account settings ->
    Connection. A region without addresses has no list bastion can cite: its addresses go in
    the tunnel's extra_cidrs (dbt_cloud.extra_cidrs in the one-tool form), which is then
    required.

    Example:  bastion ips --vendor fivetran --region gcp-us-east4 --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.vendors.sources import VENDORS, source_list  # tomllib: not for --help

        if vendor not in VENDORS or vendor == "custom":
            listed = ", ".join(v for v in VENDORS if v != "custom")
            raise InputError(f"--vendor: unknown vendor {vendor!r}", hint=f"use one of {listed}")
        table = source_list(vendor)
        chosen = []
        for name in region or list(table.regions):
            found = table.resolve(name)
            if found is None:
                raise InputError(
                    f"--region: unknown region {name!r}",
                    hint=f"use one of {', '.join(table.names())}",
                )
            chosen.append(found)
        document["vendor"] = vendor
        document["source"] = table.source
        document["checked"] = table.checked
        document["regions"] = {
            r.key: {
                "aliases": list(r.aliases),
                "cloud": r.cloud,
                "access_url": r.access_url,
                "cidrs": list(r.cidrs),
                "source": r.source or table.source,
            }
            for r in chosen
        }
        console.table(
            f"{table.label} IP addresses (source: {table.source}, checked {table.checked})",
            ["region", "aliases", "cloud", "addresses"],
            [
                (r.key, ", ".join(r.aliases), r.cloud, " ".join(r.cidrs) or "none: extra_cidrs")
                for r in chosen
            ],
        )
        if table.note:
            console.say(table.note)

    run("ips", json_mode, body)
