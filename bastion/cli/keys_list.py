"""`bastion keys list`: each tunnel key once, and where it is (config, host, both)."""

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
from bastion.cli.configure import next_steps
from bastion.console import Console


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not read the host.")] = False,
) -> None:
    """List the tunnel keys: fingerprint, type, comment, where each is (config, host, both), and its last login.

    The last login (time, address and whose it is) comes from sshd's log on the host, as far back as the host keeps it (30 days at least once bastion configured it).

    Example:  bastion keys list --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.keys import list_keys

        settings = load_settings(config)
        rows = list_keys(settings, host=host, accept_new=accept_new_host_key, offline=offline)
        document["keys"] = rows
        console.table(
            "tunnel keys" + (" (config only)" if offline else ""),
            ("fingerprint", "type", "comment", "where", "last login"),
            [(r["fingerprint"], r["type"], r["comment"], r["where"], last_login(r, offline))
             for r in rows],
        )  # fmt: skip
        if not rows:
            next_steps(console, settings, host or settings.bastion.address or "<bastion address>")

    run("keys list", json_mode, body)


def last_login(row: dict[str, Any], offline: bool) -> str:
    login = row["last_login"]
    if offline:
        return "(not read)"
    if login is None:
        return "never (in the log)"
    return f"{login['time']} from {login['from']} ({login['source']})"
