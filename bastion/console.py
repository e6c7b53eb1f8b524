"""The one place that writes to the terminal: human output on stderr, `--json` on stdout.

Domain code never prints; it returns values (changes, hops, findings) that the CLI hands
here. Colour only on a TTY and never when NO_COLOR is set (rich honours both).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bastion.changes import Change
from bastion.prefetch import warm

if TYPE_CHECKING:
    from rich.console import Console as RichConsole

# with one of these set, rich alone decides whether stderr is a terminal (FORCE_COLOR=1 says
# it is, TTY_COMPATIBLE=0 says it is not): the console then asks rich
_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
_ACTION_STYLE = {"create": "green", "update": "yellow", "delete": "red"}
_MARK = {
    "ok": "[green]ok[/]",
    "warn": "[yellow]warn[/]",
    "fail": "[red]FAIL[/]",
    "skip": "[dim]skip[/]",
}


class Console:
    """Rich console on stderr; JSON mode keeps stdout for exactly one object.

    rich loads at the first styled line, not before: a CI run's first output is usually a
    status line ("… reading AWS") written plainly while rich loads in the background.
    """

    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self._rich: RichConsole | None = None
        self._prefetching = False

    @property
    def err(self) -> RichConsole:
        if self._rich is None:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(stderr=True, highlight=False, soft_wrap=True)
        return self._rich

    @property
    def interactive(self) -> bool:
        return sys.stdin.isatty() and self.err.is_terminal

    def _plain_stderr(self) -> bool:
        """stderr is a file or pipe and nothing asks rich to treat it as a terminal."""
        if self._rich is not None:
            return not self._rich.is_terminal
        forced = any(os.environ.get(name) for name in _TERMINAL_VARIABLES)
        return not forced and not sys.stderr.isatty()

    def _print(self, markup: str) -> None:
        """Print rich markup that this class built; every piece of data in it is escaped."""
        if not self.quiet:
            self.err.print(markup)

    def say(self, message: str) -> None:
        """A line of plain text: brackets in it (`[host]:port`, `[x]`) are shown as they are."""
        self._print(_escape(message))

    def heading(self, message: str) -> None:
        self._print(f"[bold]{_escape(message)}[/]")

    def ok(self, message: str) -> None:
        self._print(f"[green]✓[/] {_escape(message)}")

    def warn(self, message: str) -> None:
        self.err.print(f"[yellow]![/] {_escape(message)}")

    def error(self, message: str) -> None:
        self.err.print(f"[red]error:[/] {_escape(message)}")

    def plain(self, text: str) -> None:
        """Text that is the command's product (a config snippet): stdout unless --json."""
        if self.json_mode:
            return
        sys.stdout.write(text if text.endswith("\n") else text + "\n")

    @contextmanager
    def status(self, message: str, *, prefetch: bool = True) -> Iterator[None]:
        """A spinner while something waits; a plain line when stderr is not a terminal, and
        rich loads in the background for the lines after the wait: from the start, or, with
        `prefetch=False`, once `prefetch()` says the wait has begun."""
        if self.quiet:
            yield
        elif self._plain_stderr():
            sys.stderr.write(f"… {message}\n")  # as rich would write it: no markup in here
            sys.stderr.flush()
            if prefetch:
                self.prefetch()  # for the lines after the wait
            yield
        else:
            with self.err.status(message):
                yield

    def prefetch(self, *also: str) -> None:
        """Load rich (and the modules named, such as "rich.table") in a background thread,
        once, unless rich is loaded or nothing will be shown. Call it where the main thread
        is about to wait: before CPU work of the main thread's own (an SSH handshake) it
        only slows that work down (bastion.prefetch)."""
        if self.quiet or self._rich is not None or self._prefetching:
            return
        self._prefetching = True
        warm("rich.console", *also)

    def changes(self, changes: Sequence[Change], *, applied: bool) -> None:
        if not changes:
            self._print("[dim]no changes[/]")
            return
        verb = "changed" if applied else "would change"
        self.heading(f"{len(changes)} {'change' if len(changes) == 1 else 'changes'} ({verb}):")
        for change in changes:
            style = _ACTION_STYLE[change.action]
            where = _escape(f"{change.target}/{change.resource}: {change.detail}")
            self._print(f"  [{style}]{change.action:<6}[/] {where}")

    def findings(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """(status, area, what, fix) rows as doctor and verify show them."""
        for status, area, what, fix in rows:
            mark = _MARK.get(status, _escape(status))
            self._print(f"  {mark:<4} [bold]{_escape(area)}[/]: {_escape(what)}")
            if fix and status in {"warn", "fail"}:
                self._print(f"         [dim]fix:[/] {_escape(fix)}")

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if self.quiet:
            return
        from rich.table import Table

        table = Table(title=_escape(title), title_justify="left", show_edge=False, pad_edge=False)
        for column in columns:
            table.add_column(_escape(column))
        for row in rows:
            table.add_row(*(_escape(str(cell)) for cell in row))
        self.err.print(table)

    def emit(self, document: dict[str, Any]) -> None:
        """The one JSON object of `--json`, on stdout, in UTF-8."""
        data = to_json(document) + b"\n"
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (some test runners)
            sys.stdout.write(data.decode())
            sys.stdout.flush()
            return
        sys.stdout.flush()
        buffer.write(data)
        buffer.flush()


def to_json(document: dict[str, Any]) -> bytes:
    """`document` as compact JSON in UTF-8; what JSON has no type for (a path, a time) as its
    str(). orjson: a month of `sessions` is megabytes, a tenth of the standard library's
    time. What orjson declines (an integer past 64 bits, text that is not UTF-8, such as a
    path read with surrogate escapes, a key that is not text) goes through the standard
    library, as compact (and in ASCII, its escapes keeping a surrogate valid JSON)."""
    import orjson

    try:
        return orjson.dumps(
            document,
            default=str,
            option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS,
        )
    except orjson.JSONEncodeError:
        return json.dumps(document, default=str, separators=(",", ":")).encode()


def _escape(text: str) -> str:
    """Data shown through rich: its brackets are text, never markup."""
    from rich.markup import escape

    return escape(text)
