"""`bastion keys add`: a tunnel key into the config, then onto the host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    HostOption,
    JsonOption,
    TunnelOption,
    load_settings,
    run,
)
from bastion.cli.configure import apply_to_host
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.config.settings import Settings, TunnelSettings

NoApplyOption = Annotated[
    bool, typer.Option("--no-apply", help="Only edit the config; run `bastion configure` later.")
]


def command(
    key_or_file: Annotated[
        str, typer.Argument(metavar="KEY_OR_FILE", help="A public key line, or a file of them.")
    ],
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    no_apply: NoApplyOption = False,
    tunnel: TunnelOption = None,
) -> None:
    """Add a tunnel key to the config (keys_file or public_keys), then apply it to the host.

    With several tunnel users (tunnels.<user> tables), --tunnel USER names whose key it is; the key goes into that user's table (or its keys_file).

    Example:  bastion keys add "ssh-ed25519 AAAAC3Nz… dbt-cloud-2026-11"
    Example:  bastion keys add --tunnel fivetran ./fivetran_key.pub
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.keys import add_to_config

        settings = load_settings(config)
        chosen = settings.tunnel_named(tunnel)
        added = add_to_config(settings, chosen, key_or_file)
        if len(settings.tunnels) > 1:
            document["tunnel"] = chosen.user
        document["added"] = [k.fingerprint for k in added]
        for key in added:
            console.ok(f"added {key.describe()} to the config" + whose(settings, chosen))
        if not added:
            console.say("the key is already configured" + whose(settings, chosen))
        if not no_apply:
            apply_to_host(console, document, config, host, accept_new_host_key)

    run("keys add", json_mode, body)


def whose(settings: Settings, chosen: TunnelSettings) -> str:
    """Whose key a message is about, when the config has several tunnel users."""
    return "" if len(settings.tunnels) == 1 else f" ([{chosen.where}])"
