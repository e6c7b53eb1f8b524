"""A doctor finding: one link of the path, its status, and the fix an operator can apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "warn", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    """`link` names the link stably (aws.nacl, host.keepalive, tunnel.forward) for --json and tests."""

    status: Status
    area: str
    what: str
    fix: str = ""
    link: str = ""

    def row(self) -> tuple[str, str, str, str]:
        return (self.status, self.area, self.what, self.fix)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "area": self.area,
            "link": self.link,
            "what": self.what,
            "fix": self.fix or None,
        }
