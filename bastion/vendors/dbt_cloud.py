"""dbt Cloud's published IP allow lists, read from the data file shipped beside this module.

The list is data, not code: dbt can change it, so it lives in one file with its source
and the date it was checked.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

# dbt Cloud checks an idle tunnel every 30 s and gives up after 300 s without an answer.
CHECK_SECONDS = 30
GIVE_UP_SECONDS = 300


@dataclass(frozen=True)
class Region:
    key: str
    aliases: tuple[str, ...]
    cloud: str
    access_url: str
    cidrs: tuple[str, ...]


@dataclass(frozen=True)
class AllowList:
    source: str
    checked: str
    regions: dict[str, Region]

    def resolve(self, name: str) -> Region | None:
        """The region for a key or one of its aliases (`us1` is `us`)."""
        if name in self.regions:
            return self.regions[name]
        return next((r for r in self.regions.values() if name in r.aliases), None)

    def names(self) -> list[str]:
        return sorted({*self.regions, *(a for r in self.regions.values() for a in r.aliases)})


@cache
def allow_list() -> AllowList:
    text = resources.files("bastion").joinpath("data/dbt_cloud_ips.toml").read_text()
    data = tomllib.loads(text)
    regions = {
        key: Region(
            key=key,
            aliases=tuple(value["aliases"]),
            cloud=value["cloud"],
            access_url=value["access_url"],
            cidrs=tuple(value["cidrs"]),
        )
        for key, value in data["regions"].items()
    }
    return AllowList(source=data["source"], checked=data["checked"], regions=regions)


def cidrs_for(regions: list[str]) -> list[tuple[str, str]]:
    """(cidr, description) for each address of the given regions, in a stable order."""
    table = allow_list()
    out: list[tuple[str, str]] = []
    for name in regions:
        region = table.resolve(name)
        if region is None:
            raise KeyError(name)
        out.extend((cidr, f"dbt Cloud {region.key}") for cidr in region.cidrs)
    unique: dict[str, str] = {}
    for cidr, description in out:
        unique.setdefault(cidr, description)
    return list(unique.items())


def source_cidrs(regions: list[str], extra_cidrs: list[str]) -> list[str]:
    """Every address dbt Cloud may connect from: the regions' lists, then extra_cidrs."""
    listed = [cidr for cidr, _ in cidrs_for(regions)]
    return list(dict.fromkeys([*listed, *extra_cidrs]))
