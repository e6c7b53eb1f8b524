"""`bastion plan`: what `up` would change, on AWS and on the host; changes nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.cli.configure import HostOption, PruneOption
from bastion.console import Console


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 2 when changes are pending (0 when none); for CI on pull requests.",
        ),
    ] = False,
    host: HostOption = None,
    prune: PruneOption = False,
) -> None:
    """Show what `bastion up` would change, on AWS and on the host, without changing anything.

    A newer image behind an ssm: AMI parameter is a notice, not a change.

    Example:  bastion plan --detailed-exitcode || [ $? -eq 2 ]
    """

    def body(console: Console, document: dict[str, Any]) -> int:
        from bastion.pipeline import locate as pipeline

        settings = load_settings(config)
        outcome = pipeline.plan(settings, host=host, prune=prune)
        document["changes"] = [change.to_dict() for change in outcome.plan.changes]
        document["notices"] = outcome.plan.notices
        document["bastion"] = outcome.bastion
        console.changes(outcome.plan.changes, applied=False)
        for notice in outcome.plan.notices:
            console.warn(notice)
        return 2 if detailed_exitcode and outcome.plan.changed else 0

    run("plan", json_mode, body)
