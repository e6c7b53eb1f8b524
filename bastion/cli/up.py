"""`bastion up`: provision -> configure -> verify, the whole job in one idempotent run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    JsonOption,
    PruneOption,
    Reporter,
    load_settings,
    recorded,
    run,
)
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.pipeline.locate import Target
    from bastion.pipeline.outcome import Outcome


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    skip_verify: Annotated[
        bool, typer.Option("--skip-verify", help="Leave out the tunnel verification.")
    ] = False,
    accept_new_host_key: AcceptNewOption = False,
    prune: PruneOption = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="Replace the instance (new type or AMI); keeps the Elastic IP."
        ),
    ] = False,
) -> None:
    """Provision, configure and verify: from nothing to a proven tunnel.

    Creates or repairs the AWS resources (provider aws), configures the host over SSH,
    then logs in to the database through the tunnel as dbt Cloud would. Re-running it
    changes nothing unless something drifted. Prints the fields to enter in dbt Cloud.

    Example:  DBT_ENV_SECRET_PASSWORD=… bastion up --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline import up

        settings = load_settings(config)
        with recorded(document) as outcome:
            target = up.up(
                settings, Reporter(console), outcome, skip_verify=skip_verify,
                accept_new=accept_new_host_key, prune=prune, replace=replace,
            )  # fmt: skip
        summary(console, target, outcome)

    run("up", json_mode, body)


def summary(console: Console, target: Target, outcome: Outcome) -> None:
    from bastion.pipeline.connection_info import connection_info

    settings = target.settings
    fingerprint = (outcome.bastion or {}).get("host_key_fingerprint") or ""
    console.heading("summary")
    console.say(f"  changes: {len(outcome.plan.changes) or 'none'}")
    console.say(
        f"  bastion: {target.tunnel_host}:{settings.bastion.ssh_port}  host key {fingerprint}"
    )
    info = connection_info(settings, target.tunnel_host, target.warehouse)
    console.heading("enter in dbt Cloud (connection -> SSH tunnel):")
    for label, value in info.fields():
        console.say(f"  {label:<36} {value}")
    if not settings.first_tunnel.configured_keys():
        console.warn("no dbt Cloud key is installed yet. To finish:")
        console.say(
            "  1. in dbt Cloud, save the connection above with 'Use SSH tunnel' on\n"
            "  2. copy the public key dbt Cloud then shows\n"
            "  3. run: bastion keys add 'ssh-ed25519 AAAA… dbtcloud'\n"
            "  4. in dbt Cloud, test the connection"
        )
