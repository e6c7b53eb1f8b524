"""`bastion configure`: the host part alone, on any host reachable over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    HostOption,
    JsonOption,
    PruneOption,
    Reporter,
    load_settings,
    recorded,
    run,
)
from bastion.console import Console

if TYPE_CHECKING:
    from bastion.config.settings import Settings


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    prune: PruneOption = False,
) -> None:
    """Configure the bastion host over SSH: tunnel user, its keys, a hardened sshd.

    Reads the host in one round trip and changes only what differs; sshd is reloaded only
    when its config changed, behind a timer that restores the old file unless a fresh admin
    login succeeds. Keys on a host bastion never managed are kept unless --prune.
    A new ssh_port is reached in two steps: sshd listens on both ports, a fresh admin
    login on the new one proves it, then the old port closes.

    Example:  bastion configure --host 203.0.113.10
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline import configure

        settings = load_settings(config)
        with recorded(document) as outcome:
            target = configure.configure(
                settings, Reporter(console), outcome, host=host,
                accept_new=accept_new_host_key, prune=prune,
            )  # fmt: skip
        next_steps(console, settings, target.require_address())

    run("configure", json_mode, body)


def next_steps(console: Console, settings: Settings, address: str) -> None:
    if not settings.first_tunnel.configured_keys():
        console.say(
            "no tunnel key yet: in dbt Cloud, save the connection with SSH tunnel "
            f"(host {address}, port {settings.bastion.ssh_port}, user {settings.first_tunnel.user}), "
            "copy the public key it shows, then run `bastion keys add 'ssh-ed25519 AAAA…'`"
        )


def apply_to_host(
    console: Console,
    document: dict[str, Any],
    config: Path | None,
    host: str | None,
    accept_new: bool,
    *,
    prune: bool = False,
    drop: tuple[str, ...] = (),
) -> None:
    """`configure` after a key edit: the host gets the config's keys (and loses `drop`)."""
    from bastion.pipeline import configure

    settings = load_settings(config)
    with recorded(document) as outcome:
        target = configure.configure(
            settings, Reporter(console), outcome, host=host, accept_new=accept_new,
            prune=prune, drop=drop,
        )  # fmt: skip
    next_steps(console, settings, target.require_address())
