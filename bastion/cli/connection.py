"""`bastion connection`: the dbt Cloud connection fields, or a profiles.yml snippet."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.console import Console


def command(
    output: Annotated[
        Literal["text", "json", "profiles"],
        typer.Option("--format", "-f", help="text (the form's fields), json, or profiles (YAML)."),
    ] = "text",
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show what to enter in dbt Cloud's connection form, or a profiles.yml target.

    The hostname is the warehouse name PermitOpen allows (matched literally), the SSH tunnel host is the Elastic IP. Secrets appear only as env_var(...) references.

    Example:  bastion connection --format profiles >> ~/.dbt/profiles.yml
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.connection_info import connection_fields

        info = connection_fields(load_settings(config))
        document["connection"] = info.to_dict()
        document["profiles_yml"] = info.profiles_yml()
        if output == "json":
            console.plain(json.dumps(info.to_dict(), indent=2))
        elif output == "profiles":
            console.plain(info.profiles_yml())
        else:
            console.plain("\n".join(f"{label}: {value}" for label, value in info.fields()))

    run("connection", json_mode, body)
