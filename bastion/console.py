"""The one place that writes to the terminal: human output on stderr, `--json` on stdout.

Domain code never prints; it returns values (changes, hops, findings) that the CLI hands
here. Colour only on a TTY and never when NO_COLOR is set (rich honours both).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bastion.changes import Change

if TYPE_CHECKING:
    from rich.console import Console as RichConsole

_ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red"}
_MARK = {
    "ok": "[green]ok[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


class Console:
    """Rich console on stderr; JSON mode keeps stdout for exactly one object."""

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        from rich.console import Console as RichConsole

        self.err: RichConsole = RichConsole(stderr=True, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.err.is_terminal

    def say(self, message: str) -> None:
        if not self.quiet:
            self.err.print(message)

    def heading(self, message: str) -> None:
        self.say(f"[bold]{message}[/]")

    def ok(self, message: str) -> None:
        self.say(f"[green]✓[/] {message}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]![/] {message}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/] {message}", markup=True)

    def plain(self, text: str) -> None:
        """Text that is the command's product (a config snippet): stdout unless --json."""
        if self.json_mode:
            return
        sys.stdout.write(text if text.endswith("\n") else text + "\n")

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        """A spinner while something waits; a plain line when stderr is not a terminal."""
        if self.err.is_terminal and not self.quiet:
            with self.err.status(message):
                yield
        else:
            self.say(f"… {message}")
            yield

    def changes(self, changes: Sequence[Change], *, applied: bool) -> None:
        if not changes:
            self.say("[dim]no changes[/]")
            return
        verb = "changed" if applied else "would change"
        self.heading(f"{len(changes)} {'change' if len(changes) == 1 else 'changes'} ({verb}):")
        for change in changes:
            style = _ACTION_STYLE[change.action]
            self.say(
                f"  [{style}]{change.action:<6}[/] {change.target}/{change.resource}: {change.detail}"
            )

    def findings(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """(status, area, what, fix) rows as doctor and verify show them."""
        for status, area, what, fix in rows:
            self.say(f"  {_MARK.get(status, status):<4} [bold]{area}[/]: {what}")
            if fix and status in {"warn", "fail"}:
                self.say(f"         [dim]fix:[/] {fix}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(column)
        for row in rows:
            table.add_row(*(str(cell) for cell in row))
        self.err.print(table)

    def emit(self, document: dict[str, Any]) -> None:
        """The one JSON object of `--json`, on stdout."""
        sys.stdout.write(json.dumps(document, indent=None, default=str) + "\n")
        sys.stdout.flush()
