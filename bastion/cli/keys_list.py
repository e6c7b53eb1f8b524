"""`bastion keys list`: each tunnel key once, and where it is (config, host, both)."""

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
from bastion.cli.configure import next_steps
from bastion.console import Console


def command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not read the host.")] = False,
    tunnel: TunnelOption = None,
) -> None:
    """List the tunnel keys: fingerprint, type, comment, where each is (config, host, both), and its last login.

    A key installed from a vendor's API says which connection (dbt Cloud) or group (Fivetran) it came from; `bastion up` keeps those in step with the vendor. The last login (time, address and whose it is) comes from sshd's log on the host, as far back as the host keeps it (30 days at least once bastion configured it). With several tunnel users, every user's keys are listed, each with its user, unless --tunnel USER names one.

    Example:  bastion keys list --json
    Example:  bastion keys list --tunnel fivetran --offline
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.pipeline.keys import list_keys

        settings = load_settings(config)
        chosen = settings.selected(tunnel)
        rows = list_keys(settings, chosen, host=host, accept_new=accept_new_host_key,
                         offline=offline)  # fmt: skip
        document["keys"] = rows
        several = len(settings.tunnels) > 1
        columns = ("fingerprint", "type", "comment", "where", "last login")
        console.table(
            "tunnel keys" + (" (config only)" if offline else ""),
            (("user", *columns) if several else columns),
            [((r["user"],) if several else ()) + (r["fingerprint"], r["type"], r["comment"],
              f"{r['where']}, from {r['api']}" if r["api"] else r["where"],
              last_login(r, offline)) for r in rows],
        )  # fmt: skip
        address = host or settings.bastion.address or "<bastion address>"
        if not several and not rows:
            next_steps(console, settings, address)
        keyless = [t.user for t in chosen if not any(r.get("user") == t.user for r in rows)]
        if several and keyless:
            console.say(
                f"no key yet for {', '.join(keyless)}: save the tool's connection with SSH "
                f"tunnel (host {address}, port {settings.bastion.ssh_port}, `bastion "
                "connection` shows every field), then `bastion keys add --tunnel USER "
                "'ssh-ed25519 AAAA…'`"
            )

    run("keys list", json_mode, body)


def last_login(row: dict[str, Any], offline: bool) -> str:
    login = row["last_login"]
    if offline:
        return "(not read)"
    if login is None:
        return "never (in the log)"
    return f"{login['time']} from {login['from']} ({login['source']})"
