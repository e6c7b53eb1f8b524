"""What every command shares: the -c/--json options and the one place errors become exit codes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.console import Console
from bastion.errors import BastionError

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c",
        "--config",
        help="Config file (default: $BASTION_CONFIG, else ./bastion.toml).",
        show_default=False,
        dir_okay=False,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON object on stdout; human output goes to stderr."),
]

Body = Callable[[Console, dict[str, Any]], int | None]


def envelope(command: str) -> dict[str, Any]:
    return {
        "command": command,
        "ok": True,
        "changed": False,
        "changes": [],
        "bastion": None,
        "verify": None,
        "error": None,
    }


def run(command: str, json_mode: bool, body: Body) -> None:
    """Run a command body; turn BastionError into its exit code and the JSON error object."""
    console = Console(json_mode=json_mode)
    document = envelope(command)
    code = 0
    try:
        code = body(console, document) or 0
    except BastionError as exc:
        code = exc.exit_code
        document["ok"] = False
        document["error"] = {"kind": exc.kind, "message": str(exc)}
        console.error(str(exc))
    except KeyboardInterrupt:
        code = 130
        document["ok"] = False
        document["error"] = {"kind": "input", "message": "interrupted"}
        console.error("interrupted")
    document["changed"] = bool(document["changes"])
    if code not in (0, 2):
        document["ok"] = False
    if json_mode:
        console.emit(document)
    raise typer.Exit(code)


def load_settings(config: Path | None) -> Any:
    from bastion.config.settings import load

    return load(config)
