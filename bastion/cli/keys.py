"""`bastion keys list|add|remove`: the tunnel user's keys, in the config and on the host.

Rotation is the normal case (dbt Cloud makes a new key each time a connection is saved):
add the new key, let dbt Cloud use it, then remove the old one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.cli.common import (
    AcceptNewOption,
    ConfigOption,
    HostOption,
    JsonOption,
    Reporter,
    load_settings,
    recorded,
    run,
)
from bastion.cli.configure import next_steps
from bastion.console import Console
from bastion.errors import InputError

if TYPE_CHECKING:
    from bastion.config.settings import Settings

app = typer.Typer(
    name="keys",
    help="Manage the tunnel user's public keys (config and host).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

NoApplyOption = Annotated[
    bool, typer.Option("--no-apply", help="Only edit the config; run `bastion configure` later.")
]


def _host_keys(settings: Settings, host: str | None, accept_new: bool) -> list[Any]:
    """The keys in the tunnel user's authorized_keys, read in the one facts round trip."""
    from bastion.config.keys import parse_authorized_keys
    from bastion.pipeline.locate import locate
    from bastion.pipeline.plan import read_host

    facts = read_host(locate(settings, host=host), accept_new=accept_new)
    entries = parse_authorized_keys(facts.authorized_keys or "")
    return [e.key for e in entries if e.key is not None]


def _apply(
    console: Console,
    document: dict[str, Any],
    config: Any,
    host: str | None,
    accept_new: bool,
    *,
    prune: bool = False,
    drop: tuple[str, ...] = (),
) -> None:
    from bastion.pipeline import up

    settings = load_settings(config)
    with recorded(document) as outcome:
        target = up.configure(
            settings, Reporter(console), outcome, host=host, accept_new=accept_new,
            prune=prune, drop=drop,
        )  # fmt: skip
    next_steps(console, settings, target.require_address())


@app.command("list")
def list_command(
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    offline: Annotated[bool, typer.Option("--offline", help="Do not read the host.")] = False,
) -> None:
    """List the tunnel keys: fingerprint, type, comment, and where each is (config, host, both).

    Example:  bastion keys list --json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        settings = load_settings(config)
        configured = {k.fingerprint: k for k in settings.tunnel_keys()}
        on_host: dict[str, Any] = {}
        if not offline:
            keys = _host_keys(settings, host, accept_new_host_key)
            on_host = {k.fingerprint: k for k in keys}
        rows = []
        for fingerprint in dict.fromkeys([*configured, *on_host]):
            key = configured.get(fingerprint) or on_host[fingerprint]
            where = "both" if fingerprint in configured and fingerprint in on_host else (
                "config" if fingerprint in configured else "host"
            )  # fmt: skip
            rows.append({"fingerprint": fingerprint, "type": key.key_type, "bits": key.bits,
                         "comment": key.comment, "where": where})  # fmt: skip
        document["keys"] = rows
        console.table(
            "tunnel keys" + (" (config only)" if offline else ""),
            ("fingerprint", "type", "comment", "where"),
            [(r["fingerprint"], r["type"], r["comment"], r["where"]) for r in rows],
        )
        if not rows:
            next_steps(console, settings, host or settings.bastion.address or "<bastion address>")

    run("keys list", json_mode, body)


@app.command("add")
def add_command(
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
        from bastion.config.edit import add_keys, read_argument

        keys = read_argument(key_or_file)
        settings = load_settings(config)
        added = add_keys(settings, keys)
        document["added"] = [k.fingerprint for k in added]
        for key in added:
            console.ok(f"added {key.describe()} to the config")
        if not added:
            console.say("the key is already configured")
        if not no_apply:
            _apply(console, document, config, host, accept_new_host_key)

    run("keys add", json_mode, body)


@app.command("remove")
def remove_command(
    needle: Annotated[
        str, typer.Argument(metavar="FINGERPRINT_OR_COMMENT", help="SHA256:… or the key's comment.")
    ],
    config: ConfigOption = None,
    json_mode: JsonOption = False,
    host: HostOption = None,
    accept_new_host_key: AcceptNewOption = False,
    prune: Annotated[bool, typer.Option("--prune", help="Allow removing the last key.")] = False,
    no_apply: NoApplyOption = False,
) -> None:
    """Remove a tunnel key from the config and the host, by fingerprint or comment.

    dbt Cloud makes a new key each time a connection is saved: add the new one, then remove the old.

    Example:  bastion keys remove SHA256:2mPqfV1wlVtZ2pQxXy1Oa7uW0v3rKq9Hc2fJgk3Lr9s
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.config.edit import matches, remove_keys

        settings = load_settings(config)
        configured = settings.tunnel_keys()
        hits = {k.fingerprint: k for k in configured if matches(k, needle)}
        host_hits: dict[str, Any] = {}
        if not no_apply:
            on_host = _host_keys(settings, host, accept_new_host_key)
            host_hits = {k.fingerprint: k for k in on_host if matches(k, needle)}
        found = {**host_hits, **hits}
        if not found:
            raise InputError(f"no tunnel key matches {needle!r}", hint="see `bastion keys list`")
        if len(found) > 1:
            listed = ", ".join(k.describe() for k in found.values())
            raise InputError(f"{needle!r} matches {len(found)} keys: {listed}",
                             hint="name the key by its fingerprint")  # fmt: skip
        fingerprint = next(iter(found))
        if hits and len(configured) == 1 and not prune:
            raise InputError(
                "that is the last tunnel key: dbt Cloud could no longer connect",
                hint="add the new key first (rotation), or pass --prune to remove it anyway",
            )
        if hits:
            remove_keys(settings, {fingerprint})
            console.ok(f"removed {found[fingerprint].describe()} from the config")
        document["removed"] = [fingerprint]
        if not no_apply:
            _apply(console, document, config, host, accept_new_host_key, prune=prune,
                   drop=(fingerprint,))  # fmt: skip

    run("keys remove", json_mode, body)
