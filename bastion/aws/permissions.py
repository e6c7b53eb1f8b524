"""Security group rules as small comparable values.

AWS nests rules (one IpPermission holds many sources); bastion compares them one source
at a time, so "exactly these rules" is a set difference and every change names one rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL_TRAFFIC = "-1"


@dataclass(frozen=True)
class SecurityGroupRule:
    """One permission for one source (a CIDR or a security group id)."""

    protocol: str
    from_port: int
    to_port: int
    source: str
    description: str = field(default="", compare=False)

    @property
    def key(self) -> tuple[str, int, int, str]:
        return (self.protocol, self.from_port, self.to_port, self.source)

    @property
    def is_group(self) -> bool:
        return self.source.startswith("sg-")

    def ports(self) -> str:
        if self.protocol == ALL_TRAFFIC:
            return "all traffic"
        if self.from_port == self.to_port:
            return f"{self.protocol}/{self.from_port}"
        return f"{self.protocol}/{self.from_port}-{self.to_port}"

    def describe(self, direction: str = "from") -> str:
        label = f" ({self.description})" if self.description else ""
        return f"{self.ports()} {direction} {self.source}{label}"

    def permission(self, *, with_description: bool = True) -> dict[str, Any]:
        """The IpPermissions entry for exactly this rule."""
        entry: dict[str, Any] = {"IpProtocol": self.protocol}
        if self.protocol != ALL_TRAFFIC:
            entry["FromPort"] = self.from_port
            entry["ToPort"] = self.to_port
        described = (
            {"Description": self.description} if with_description and self.description else {}
        )
        if self.is_group:
            entry["UserIdGroupPairs"] = [{"GroupId": self.source, **described}]
        elif ":" in self.source:
            entry["Ipv6Ranges"] = [{"CidrIpv6": self.source, **described}]
        elif self.source.startswith("pl-"):
            entry["PrefixListIds"] = [{"PrefixListId": self.source, **described}]
        else:
            entry["IpRanges"] = [{"CidrIp": self.source, **described}]
        return entry


def flatten(permissions: Iterable[dict[str, Any]]) -> list[SecurityGroupRule]:
    """AWS IpPermissions -> one SecurityGroupRule per source."""
    rules: list[SecurityGroupRule] = []
    for entry in permissions:
        protocol = str(entry.get("IpProtocol", ALL_TRAFFIC))
        if protocol in {"6", "tcp"}:
            protocol = "tcp"
        low = int(entry.get("FromPort", -1)) if protocol != ALL_TRAFFIC else -1
        high = int(entry.get("ToPort", -1)) if protocol != ALL_TRAFFIC else -1
        sources = [
            *((r["CidrIp"], r.get("Description", "")) for r in entry.get("IpRanges", [])),
            *((r["CidrIpv6"], r.get("Description", "")) for r in entry.get("Ipv6Ranges", [])),
            *((r["GroupId"], r.get("Description", "")) for r in entry.get("UserIdGroupPairs", [])),
            *(
                (r["PrefixListId"], r.get("Description", ""))
                for r in entry.get("PrefixListIds", [])
            ),
        ]
        rules.extend(
            SecurityGroupRule(protocol, low, high, source, description or "")
            for source, description in sources
        )
    return sorted(rules, key=lambda r: r.key)
