"""Changes as plain values: every stage returns them before anything is applied.

Reporting, `--json`, `plan` and the tests all read these values, so `plan` and `up`
can never disagree about what a run would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["aws", "host", "dbt_cloud"]  # the JSON field "target": what changes (dbt_cloud: its API)
Action = Literal["create", "update", "delete"]


@dataclass(frozen=True)
class Change:
    """One difference between what is wanted and what exists."""

    target: Side
    resource: str
    action: Action
    detail: str

    def to_dict(self) -> dict[str, str]:
        return {
            "target": self.target,
            "resource": self.resource,
            "action": self.action,
            "detail": self.detail,
        }

    def __str__(self) -> str:
        sign = {"create": "+", "update": "~", "delete": "-"}[self.action]
        return f"{sign} {self.target}/{self.resource}: {self.detail}"


@dataclass
class Plan:
    """The changes a stage would make, and notices that are not changes."""

    changes: list[Change] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    def add(self, target: Side, resource: str, action: Action, detail: str) -> Change:
        change = Change(target, resource, action, detail)
        self.changes.append(change)
        return change

    def extend(self, other: Plan) -> None:
        self.changes.extend(other.changes)
        self.notices.extend(other.notices)

    @property
    def changed(self) -> bool:
        return bool(self.changes)
