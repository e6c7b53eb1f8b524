"""`bastion keys remove`: a tunnel key out of the config and off the host (never the last by accident)."""

from __future__ import annotations

from typing import Annotated, Any

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
from bastion.cli.keys_add import NoApplyOption, whose
from bastion.console import Console


def command(
    needle: Annotated[
        str, typer.Argument(metavar="FINGERPRINT_OR_COMMENT", help="SHA256:… or the key's comment.")
    ],
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    prune: Annotated[bool, typer.Option("--prune", help="Allow removing the last key.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Remove a key even if it was in use within 24 hours or has a session open.",
        ),
    ] = False,
    no_apply: NoApplyOption = False,
    tunnel: TunnelOption = None,
) -> None:
    """Remove a tunnel key from the config and the host, by fingerprint or comment.

    dbt Cloud makes a new key each time a connection is saved: add the new one, then remove the old. A key in use within the last 24 hours (a session begun or ended then), or with a session still open however long ago it began (sshd's log on the host, read whole), is kept, exit 4 with when and from where, unless --force; with --no-apply the host is not read, so nothing is checked. With several tunnel users, --tunnel USER names whose key it is (only that user's keys are matched).

    Example:  bastion keys remove SHA256:2mPqfV1wlVtZ2pQxXy1Oa7uW0v3rKq9Hc2fJgk3Lr9s
    Example:  bastion keys remove --tunnel fivetran fivetran-2026-10
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.keys import remove_from_config

        settings = load_settings(config)
        chosen = settings.tunnel_named(tunnel)
        key, from_config = remove_from_config(
            settings, chosen, needle, host=host, accept_new=accept_new_host_key,
            read_the_host=not no_apply, prune=prune, force=force,
        )  # fmt: skip
        if len(settings.tunnels) > 1:
            document["tunnel"] = chosen.user
        if from_config:
            console.ok(f"removed {key.describe()} from the config" + whose(settings, chosen))
        fingerprint = key.fingerprint
        document["removed"] = [fingerprint]
        if not no_apply:
            apply_to_host(console, document, config, host, accept_new_host_key, prune=prune,
                   drop=(fingerprint,))  # fmt: skip

    run("keys remove", json_mode, body)
