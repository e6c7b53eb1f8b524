"""Each vendor's published source addresses, read from the data files shipped beside the
package (`bastion/data/<vendor>_ips.toml`), with the page they come from and the date
they were checked.

Only a list a vendor publishes is shipped. A vendor or region without one has no
addresses here: its tunnel then names its sources in `extra_cidrs`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

# The vendors a tunnel may name; `custom` has no list at all (extra_cidrs only).
VENDORS = ("dbt_cloud", "fivetran", "hightouch", "stitch", "custom")
LABELS = {
    "dbt_cloud": "dbt Cloud",
    "fivetran": "Fivetran",
    "hightouch": "Hightouch",
    "stitch": "Stitch",
    "custom": "custom",
}


@dataclass(frozen=True)
class Region:
    key: str
    aliases: tuple[str, ...]
    cloud: str
    access_url: str
    cidrs: tuple[str, ...]  # empty: the vendor names the region but no list could be cited
    source: str = ""  # where this region's list comes from, when not the vendor's page


@dataclass(frozen=True)
class SourceList:
    vendor: str
    label: str
    source: str
    checked: str
    note: str
    regions: dict[str, Region]

    def resolve(self, name: str) -> Region | None:
        """The region for a key or one of its aliases (dbt Cloud's `us1` is `us`)."""
        if name in self.regions:
            return self.regions[name]
        return next((r for r in self.regions.values() if name in r.aliases), None)

    def names(self) -> list[str]:
        return sorted({*self.regions, *(a for r in self.regions.values() for a in r.aliases)})


@cache
def source_list(vendor: str) -> SourceList:
    """The vendor's list (KeyError for a vendor bastion does not know)."""
    if vendor not in VENDORS:
        raise KeyError(vendor)
    if vendor == "custom":
        return SourceList(vendor, LABELS[vendor], "", "", "your own addresses", {})
    text = resources.files("bastion").joinpath(f"data/{vendor}_ips.toml").read_text()
    data = tomllib.loads(text)
    regions = {
        key: Region(
            key=key,
            aliases=tuple(value.get("aliases", ())),
            cloud=value.get("cloud", ""),
            access_url=value.get("access_url", ""),
            cidrs=tuple(value.get("cidrs", ())),
            source=value.get("source", ""),
        )
        for key, value in data.get("regions", {}).items()
    }
    return SourceList(
        vendor=vendor,
        label=LABELS[vendor],
        source=data["source"],
        checked=data["checked"],
        note=data.get("note", ""),
        regions=regions,
    )


def region_cidrs(vendor: str, regions: list[str]) -> list[tuple[str, str]]:
    """(cidr, "<Vendor> <region>") for each listed address of the regions, in a stable
    order, each address once."""
    table = source_list(vendor)
    unique: dict[str, str] = {}
    for name in regions:
        region = table.resolve(name)
        if region is None:
            raise KeyError(name)
        for cidr in region.cidrs:
            unique.setdefault(cidr, f"{table.label} {region.key}")
    return list(unique.items())
