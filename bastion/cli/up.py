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
    from bastion.pipeline.connection_info import connection_form

    settings = target.settings
    fingerprint = (outcome.bastion or {}).get("host_key_fingerprint") or ""
    console.heading("summary")
    console.say(f"  changes: {len(outcome.plan.changes) or 'none'}")
    console.say(
        f"  bastion: {target.tunnel_host}:{settings.bastion.ssh_port}  host key {fingerprint}"
    )
    several = len(settings.tunnels) > 1
    for tunnel in settings.tunnels.values():
        form = connection_form(settings, tunnel, target.tunnel_host, target.warehouse)
        whose = f" for {tunnel.user}" if several else ""
        console.heading(f"enter in {tunnel.label}{whose} (connection -> SSH tunnel):")
        for label, value in form.fields():
            console.say(f"  {label:<36} {value}")
        if tunnel.vendor == "fivetran":
            console.say(f"  Fivetran pins the bastion's host key: approve {fingerprint} there")
        if tunnel.api is not None:
            console.say(f"  keys: from {tunnel.label}'s API; `bastion up` keeps them in step")
        elif not tunnel.configured_keys():
            _no_key_yet(console, tunnel.label, tunnel.user, several)


def _no_key_yet(console: Console, label: str, user: str, several: bool) -> None:
    option = f" --tunnel {user}" if several else ""
    console.warn(f"no {label} key is installed yet. To finish:")
    console.say(
        f"  1. in {label}, save the connection above with its SSH tunnel on\n"
        f"  2. copy the public key {label} then shows\n"
        f"  3. run: bastion keys add{option} 'ssh-ed25519 AAAA… {user}'\n"
        f"  4. in {label}, test the connection"
    )
