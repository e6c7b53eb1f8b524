"""dbt Cloud's published IP allow lists, read from the data file shipped beside this module.

The list is data, not code: dbt can change it, so it lives in one file with its source
and the date it was checked.
"""

from __future__ import annotations

from bastion.vendors.sources import Region, SourceList, region_cidrs, source_list

# dbt Cloud checks an idle tunnel every 30 s and gives up after 300 s without an answer.
CHECK_SECONDS = 30
GIVE_UP_SECONDS = 300

AllowList = SourceList
__all__ = ["AllowList", "Region", "allow_list", "cidrs_for", "source_cidrs"]


def allow_list() -> SourceList:
    return source_list("dbt_cloud")


def cidrs_for(regions: list[str]) -> list[tuple[str, str]]:
    """(cidr, description) for each address of the given regions, in a stable order."""
    return region_cidrs("dbt_cloud", regions)


def source_cidrs(regions: list[str], extra_cidrs: list[str]) -> list[str]:
    """Every address dbt Cloud may connect from: the regions' lists, then extra_cidrs."""
    listed = [cidr for cidr, _ in cidrs_for(regions)]
    return list(dict.fromkeys([*listed, *extra_cidrs]))
