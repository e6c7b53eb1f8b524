"""The warehouse's address as dbt Cloud names it: what `PermitOpen` allows and verify reaches."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """The database address dbt Cloud connects to through the tunnel."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"
