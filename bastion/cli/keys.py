"""`bastion keys list|add|remove`: the tunnel user's keys, in the config and on the host."""

from __future__ import annotations

import typer

from bastion.cli import keys_add, keys_list, keys_remove

app = typer.Typer(
    name="keys",
    help="Manage the tunnel user's public keys (config and host).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("list")(keys_list.command)
app.command("add")(keys_add.command)
app.command("remove")(keys_remove.command)
