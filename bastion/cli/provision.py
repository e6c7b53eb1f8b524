"""`bastion provision`: the AWS part alone (security groups, key pair, instance, Elastic IP)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
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
        from bastion.aws.session import make_session
        from bastion.aws.stage import apply_aws

        settings = load_settings(config)
        if settings.bastion.provider != "aws":
            console.warn("bastion.provider is 'existing': there is nothing to provision on AWS")
            return
        plan, facts = apply_aws(settings, make_session(settings), console, replace=replace)
        console.changes(plan.changes, applied=True)
        for notice in plan.notices:
            console.warn(notice)
        document["changes"] = [change.to_dict() for change in plan.changes]
        document["notices"] = plan.notices
        document["bastion"] = {
            "instance_id": facts.instance_id,
            "public_ip": facts.public_ip,
            "address": settings.bastion.address or facts.public_ip,
            "ssh_port": settings.bastion.ssh_port,
            "host_key_fingerprint": facts.host_key_tag,
        }
        if facts.public_ip:
            console.ok(
                f"bastion {facts.instance_id} at {facts.public_ip}:{settings.bastion.ssh_port}"
            )

    run("provision", json_mode, body)
