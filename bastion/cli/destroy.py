"""`bastion destroy`: remove everything this name created on AWS, and only that."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run, show_plan
from bastion.console import Console
from bastion.errors import InputError


def command(
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask; required without a terminal.")
    ] = False,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Remove the bastion: its rule on the warehouse group, instance, Elastic IP, group and key.

    Resources are found by their tags, so this works from any machine. Other rules on the warehouse group are never touched. dbt Cloud loses the tunnel: the address is released.

    Example:  bastion destroy --yes
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.provision import destroy

        settings = load_settings(config)
        if not yes:
            if not console.interactive:
                raise InputError(
                    "destroy needs --yes when not run from a terminal",
                    hint="run `bastion destroy --yes` to remove the bastion",
                )
            question = f"Destroy bastion-{settings.name} and release its Elastic IP?"
            if not typer.confirm(question, default=False, err=True):
                raise InputError("destroy was not confirmed; nothing was changed")
        outcome = destroy(settings, console)
        document.update(outcome.fields())
        show_plan(console, outcome.plan, applied=True)

    run("destroy", json_mode, body)
