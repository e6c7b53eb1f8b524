"""`bastion plan`: what `up` would change, on AWS and on the host; changes nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import (
    ConfigOption,
    HostOption,
    JsonOption,
    PruneOption,
    load_settings,
    recorded,
    run,
    show_plan,
)
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

    The changes are listed in the order `up` makes them: AWS, the host, the host-key tag,
    then (during an ssh_port change) phase two, which `up` runs once the tunnel verified on
    the new port. A newer image behind a named image (debian-13) or an ssm: parameter is a
    notice, not a change.
    A host that cannot be read: the AWS changes are listed, and the exit code is 1.

    Example:  bastion plan --detailed-exitcode || [ $? -eq 2 ]
    """

    def body(console: Console, document: dict[str, Any]) -> int:
        from bastion.pipeline import plan

        settings = load_settings(config)
        with recorded(document) as outcome:
            try:
                plan.plan(settings, outcome, host=host, prune=prune)
            finally:
                show_plan(console, outcome.plan, applied=False)
        return 2 if detailed_exitcode and outcome.plan.changed else 0

    run("plan", json_mode, body)
