"""What every command shares: the -c/--json options and the one place errors become exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bastion.console import Console
from bastion.errors import BastionError

if TYPE_CHECKING:  # the pipeline loads when a command runs: `--help` needs typer alone
    from bastion.changes import Plan
    from bastion.config.settings import Settings
    from bastion.pipeline.outcome import Outcome
    from bastion.tunnel.result import Hop

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

HostOption = Annotated[
    str | None,
    typer.Option("--host", help="Reach the host here (overrides bastion.address and AWS).",
                 show_default=False),
]  # fmt: skip
AcceptNewOption = Annotated[
    bool,
    typer.Option("--accept-new-host-key", help="Trust a changed host key (the host was replaced)."),
]
TunnelOption = Annotated[
    str | None,
    typer.Option("--tunnel", metavar="USER", show_default=False,
                 help="Only this tunnel user (the name of its tunnels.<user> table)."),
]  # fmt: skip
PruneOption = Annotated[
    bool,
    typer.Option("--prune", help="Remove tunnel keys on the host that the config does not list."),
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


def load_settings(config: Path | None) -> Settings:
    from bastion.config.settings import load

    return load(config)


@contextmanager
def recorded(document: dict[str, Any]) -> Iterator[Outcome]:
    """An Outcome for the pipeline to fill; its fields reach the JSON document even when
    the run fails half-way (what was changed is never lost from the report)."""
    from bastion.pipeline.outcome import Outcome

    outcome = Outcome()
    try:
        yield outcome
    finally:
        document.update(outcome.fields())


class Reporter:
    """The pipeline's Observer, on the console."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def status(self, message: str) -> AbstractContextManager[None]:
        return self.console.status(message)

    def say(self, message: str) -> None:
        self.console.say(message)

    def stage(self, title: str) -> None:
        self.console.heading(title)

    def made(self, stage: Plan) -> None:
        self.console.changes(stage.changes, applied=True)
        for notice in stage.notices:
            self.console.warn(notice)

    def notice(self, text: str) -> None:
        self.console.warn(text)

    def hop(self, hop: Hop) -> None:
        self.console.findings([hop_row(hop)])

    def ok(self, text: str) -> None:
        self.console.ok(text)


def hop_row(hop: Hop) -> tuple[str, str, str, str]:
    """A verify hop as a findings row (status, name, detail with its time, no fix)."""
    return ("ok" if hop.ok else "fail", hop.name, f"{hop.detail} [{hop.ms:.0f} ms]", "")


def show_plan(console: Console, plan: Plan, *, applied: bool) -> None:
    console.changes(plan.changes, applied=applied)
    for notice in plan.notices:
        console.warn(notice)
