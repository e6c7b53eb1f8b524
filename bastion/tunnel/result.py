"""What verify found: each hop (SPEC's tcp, ssh, forward, database) and the whole walk."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

HOP_NAMES = ("tcp", "ssh", "forward", "database")


@dataclass(frozen=True)
class Hop:
    """One link of the path: its name (SPEC: tcp, ssh, forward, database), result and time."""

    name: str
    ok: bool
    ms: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "ms": round(self.ms, 1), "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass
class VerifyResult:
    """Every hop walked, in order; `ok` only when all four passed (and the idle re-query)."""

    address: str
    ssh_port: int
    target: str
    hops: list[Hop] = field(default_factory=list)
    server_version: str = ""
    login_tested: bool = False
    host_key_fingerprint: str = ""
    key_comment: str = ""
    idle_seconds: float = 0
    user: str = ""

    @property
    def ok(self) -> bool:
        names = {hop.name for hop in self.hops if hop.ok}
        return all(hop.ok for hop in self.hops) and set(HOP_NAMES) <= names

    @property
    def failed(self) -> Hop | None:
        return next((hop for hop in self.hops if not hop.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hops": [hop.to_dict() for hop in self.hops],
            "address": self.address,
            "ssh_port": self.ssh_port,
            "target": self.target,
            "server_version": self.server_version or None,
            "login_tested": self.login_tested,
            "host_key_fingerprint": self.host_key_fingerprint or None,
            "idle_seconds": self.idle_seconds,
        }
