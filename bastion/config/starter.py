"""`init`: a commented starter bastion.toml, from checked options, never over another file.

Without `--vendor` it is the one-tool form (`[dbt_cloud]` + `[tunnel]`); with one or more,
one `[tunnels.<user>]` table per vendor, each naming a region with a built-in list where
the vendor has one, so the file loads as soon as admin_cidrs is filled in (a custom tool
has no list: its extra_cidrs must be filled in too, and the file is refused until then).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bastion.config import rules
from bastion.config.settings import locate
from bastion.errors import InputError
from bastion.templates import render
from bastion.vendors.sources import LABELS, VENDORS, source_list

KINDS = ("redshift", "redshift-serverless", "postgres", "alloydb")
PROVIDERS = ("aws", "existing")
ONE_TOOL_TABLES = "\n[dbt_cloud]\n"  # where the template's one-tool tables begin


@dataclass(frozen=True)
class StarterTunnel:
    """What the starter writes for one vendor: its user, a region with a built-in list (none
    for a vendor without one), and where the tool shows the public key to paste."""

    user: str
    region: str
    key_from: str


STARTER_TUNNELS = {
    "dbt_cloud": StarterTunnel(
        "dbtcloud", "us", "dbt Cloud shows after you save an SSH-tunnel connection"
    ),
    "fivetran": StarterTunnel(
        "fivetran", "gcp-us-east4",
        "Fivetran shows in the destination's SSH tunnel setup (one per group)",
    ),
    "hightouch": StarterTunnel(
        "hightouch", "us-east-1", "Hightouch shows when you set up the source's SSH tunnel"
    ),
    "stitch": StarterTunnel(
        "stitch", "na", "Stitch shows in the integration's SSH tunnel settings"
    ),
    "custom": StarterTunnel("tunnel", "", "your tool uses for its SSH tunnel"),
}  # fmt: skip
assert set(STARTER_TUNNELS) == set(VENDORS)


def write_starter(
    config: Path | None,
    *,
    name: str,
    kind: str,
    region: str,
    provider: str,
    admin_cidrs: list[str],
    vendors: list[str] | None = None,
) -> Path:
    """Check every option (exit 4 names the option), then write the file where the config
    is looked for; returns its path. `vendors`: the several-tools form, one table each."""
    target = locate(config)
    checks = {
        "--name": lambda: rules.name(name),
        "--kind": lambda: _one_of(kind, KINDS),
        "--provider": lambda: _one_of(provider, PROVIDERS),
        "--admin-cidr": lambda: [rules.cidr(c) for c in admin_cidrs],
        "--vendor": lambda: [_one_of(v, VENDORS) for v in vendors or []],
    }
    for option, check in checks.items():
        try:
            check()
        except ValueError as exc:
            raise InputError(f"{option} {exc}") from None
    if target.exists():
        raise InputError(
            f"{target} already exists; bastion init never overwrites a config",
            hint="edit it, or pass -c NEW_PATH to write another",
        )
    text = render(
        "bastion.toml.j2",
        name=name,
        kind=kind,
        region=region,
        provider=provider,
        admin_cidrs=[str(rules.cidr(c)) for c in admin_cidrs],
    )
    if vendors:
        text = text[: text.index(ONE_TOOL_TABLES) + 1] + tunnel_tables(vendors)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "x", encoding="utf-8") as handle:
        handle.write(text)
    return target


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


def tunnel_users(vendors: list[str]) -> list[str]:
    """The tunnel users the starter names for these vendors, each vendor once."""
    return [STARTER_TUNNELS[v].user for v in dict.fromkeys(vendors)]


def tunnel_tables(vendors: list[str]) -> str:
    """One commented `[tunnels.<user>]` table per vendor (each vendor once, in order)."""
    intro = (
        "# Several tools share this bastion: one [tunnels.<user>] table each. The table's name\n"
        "# is the user the tool logs in as (tunnel only: no shell); each user may log in only\n"
        "# from its own sources (its regions' built-in lists and its extra_cidrs), with its own\n"
        "# keys and keepalive. `bastion ips --vendor V` shows a vendor's lists, `bastion keys add\n"
        "# --tunnel USER KEY` adds a key, `bastion connection` shows each tool's form.\n"
    )
    return intro + "".join(_table(v) for v in dict.fromkeys(vendors))


def _table(vendor: str) -> str:
    starter = STARTER_TUNNELS[vendor]
    label = LABELS[vendor]
    listed = [key for key, region in source_list(vendor).regions.items() if region.cidrs]
    if starter.region:
        sources = (
            f"# {label}'s built-in address lists (`bastion ips --vendor {vendor}`):\n"
            f"#   {', '.join(listed)}\n"
            f'regions = ["{starter.region}"]\n'
            "extra_cidrs = []              # more addresses for this user alone (another region"
            " or cloud)\n"
        )
    else:
        sources = (
            "# A custom tool has no built-in address list: name the networks it connects from.\n"
            "regions = []\n"
            "# REQUIRED: `bastion plan` refuses this file (exit 4) until extra_cidrs names at\n"
            "# least one network, such as 192.0.2.0/24 (a documentation range: use your own).\n"
            "extra_cidrs = []\n"
        )
    keepalive = (
        "# dbt Cloud checks the tunnel every 30 s and gives up after 300 s: keep 30 x 10.\n"
        if vendor == "dbt_cloud"
        else "# sshd asks every 30 s whether the tool is still there and drops it after 10 misses.\n"
    )
    return (
        f"\n[tunnels.{starter.user}]\n"
        f'vendor = "{vendor}"\n'
        + sources
        + f"# The public keys {starter.key_from};\n"
        f'# one string each. Easiest: `bastion keys add --tunnel {starter.user} "ssh-ed25519 AAAA…"`.\n'
        "public_keys = []\n"
        'keys_file = ""                # or a file with one public key per line\n'
        + keepalive
        + "client_alive_interval = 30\n"
        "client_alive_count_max = 10\n"
    )
