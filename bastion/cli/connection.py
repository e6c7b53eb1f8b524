"""`bastion connection`: each tunnel user's connection fields, or dbt's profiles.yml snippet."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import typer

from bastion.cli.common import ConfigOption, JsonOption, TunnelOption, load_settings, run
from bastion.console import Console


def command(
    output: Annotated[
        Literal["text", "json", "profiles"],
        typer.Option("--format", "-f", help="text (the form's fields), json, or profiles (YAML)."),
    ] = "text",
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    tunnel: TunnelOption = None,
) -> None:
    """Show what to enter in each tool's connection form, or dbt's profiles.yml target.

    The hostname is the warehouse name PermitOpen allows (matched literally), the SSH tunnel host is the Elastic IP. Secrets appear only as env_var(...) references. dbt Cloud gets its whole connection page; Fivetran, Hightouch, Stitch and custom tools their SSH tunnel fields. With several tunnel users every user's form is shown, unless --tunnel USER names one; --format profiles is for the dbt Cloud user.

    Example:  bastion connection --format profiles >> ~/.dbt/profiles.yml
    Example:  bastion connection --tunnel fivetran
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.connection_info import (
            ConnectionInfo,
            connection_forms,
            profiles_form,
        )

        settings = load_settings(config)
        forms = connection_forms(settings, tunnel)
        several = len(settings.tunnels) > 1
        first = next(iter(forms.values()))
        dbt = [form for form in forms.values() if isinstance(form, ConnectionInfo)]
        document["connection"] = first.to_dict()
        document["profiles_yml"] = dbt[0].profiles_yml() if dbt else None
        each = {user: {"vendor": form.vendor, **form.to_dict()} for user, form in forms.items()}
        if several:
            document["tunnels"] = each
        if output == "json":
            console.plain(json.dumps(each if several else first.to_dict(), indent=2))
        elif output == "profiles":
            console.plain(profiles_form(forms).profiles_yml())
        elif several:
            console.plain("\n\n".join(
                f"{user} ({form.label}):\n"
                + "\n".join(f"  {label}: {value}" for label, value in form.fields())
                for user, form in forms.items()
            ))  # fmt: skip
        else:
            console.plain("\n".join(f"{label}: {value}" for label, value in first.fields()))

    run("connection", json_mode, body)
