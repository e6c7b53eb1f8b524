"""What a run found or did, in the shape of SPEC's `--json`, and how it reports while it works.

The pipeline fills an Outcome as each stage finishes, so a run that fails half-way still
says what it changed; the CLI turns it into the JSON document and the terminal lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bastion.changes import Plan
from bastion.progress import Progress
from bastion.tunnel.result import Hop


class Observer(Progress, Protocol):
    """What a stage reports while it runs; the CLI's console is one, tests pass a recorder."""

    def stage(self, title: str) -> None:
        """A stage begins (a heading)."""
        ...

    def made(self, stage: Plan) -> None:
        """The changes one stage made, and its notices."""
        ...

    def notice(self, text: str) -> None: ...

    def hop(self, hop: Hop) -> None:
        """One verify hop, as it finishes."""
        ...

    def ok(self, text: str) -> None: ...


@dataclass
class Outcome:
    """Changes (planned for `plan`, made for the others), notices, and SPEC's objects."""

    plan: Plan = field(default_factory=Plan)
    bastion: dict[str, Any] | None = None
    verify: dict[str, Any] | None = None
    host: dict[str, Any] | None = None

    def record(self, stage: Plan, observer: Observer | None = None) -> None:
        """Add what a stage made; the observer shows it as it happens."""
        self.plan.extend(stage)
        if observer is not None:
            observer.made(stage)

    def notice(self, text: str, observer: Observer | None = None) -> None:
        self.plan.notices.append(text)
        if observer is not None:
            observer.notice(text)

    def fields(self) -> dict[str, Any]:
        """The document's keys this outcome decides (SPEC "--json")."""
        document: dict[str, Any] = {
            "changes": [change.to_dict() for change in self.plan.changes],
            "notices": list(self.plan.notices),
        }
        for key in ("bastion", "verify", "host"):
            value = getattr(self, key)
            if value is not None:
                document[key] = value
        return document
