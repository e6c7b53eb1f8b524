"""`bastion keys add`: a tunnel key into the config, then onto the host."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    HostOption,
    JsonOption,
    load_settings,
    run,
)
from bastion.cli.configure import apply_to_host
from bastion.console import Console

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
) -> None:
    """Add a tunnel key to the config (keys_file or public_keys), then apply it to the host.

    Example:  bastion keys add "ssh-ed25519 AAAAC3Nz… dbt-cloud-2026-11"
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.keys import add_to_config

        settings = load_settings(config)
        added = add_to_config(settings, key_or_file)
        document["added"] = [k.fingerprint for k in added]
        for key in added:
            console.ok(f"added {key.describe()} to the config")
        if not added:
            console.say("the key is already configured")
        if not no_apply:
            apply_to_host(console, document, config, host, accept_new_host_key)

    run("keys add", json_mode, body)
