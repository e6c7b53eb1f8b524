"""What long-running domain code may report while it works, without importing the console.

Domain code (AWS provisioning, host changes) waits on slow things; it reports through any
object with these two methods, so the CLI passes its Console and tests pass NullProgress.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol


class Progress(Protocol):
    """A spinner around a wait, and a line of news; bastion.console.Console is one."""

    def status(self, message: str) -> AbstractContextManager[None]: ...

    def say(self, message: str) -> None: ...


class NullProgress:
    """Reports nothing: for tests and for callers that only want the result."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    @contextmanager
    def status(self, message: str) -> Iterator[None]:
        self.messages.append(message)
        yield

    def say(self, message: str) -> None:
        self.messages.append(message)
