"""`bastion provision`: the AWS part alone (security groups, key pair, instance, Elastic IP)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run, show_plan
from bastion.console import Console


def command(
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Launch a new instance (new AMI or instance type) and move the Elastic IP to it.",
        ),
    ] = False,
    config: ConfigOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Create or repair the bastion's AWS resources; a re-run changes only what drifted.

    Opens the bastion group to dbt Cloud's addresses, extra_cidrs and admin_cidrs alone, admits the bastion on the warehouse group, and keeps one Elastic IP so the address dbt Cloud uses never changes, even across --replace.

    Example:  bastion provision --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.provision import provision

        settings = load_settings(config)
        if settings.bastion.provider != "aws":
            console.warn("bastion.provider is 'existing': there is nothing to provision on AWS")
            return
        outcome = provision(settings, console, replace=replace)
        document.update(outcome.fields())
        show_plan(console, outcome.plan, applied=True)
        bastion = outcome.bastion or {}
        if bastion.get("public_ip"):
            console.ok(
                f"bastion {bastion['instance_id']} at {bastion['public_ip']}:{settings.bastion.ssh_port}"
            )

    run("provision", json_mode, body)
