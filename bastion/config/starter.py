"""`init`: a commented starter bastion.toml, from checked options, never over another file."""

from __future__ import annotations

from pathlib import Path

from bastion.config import rules
from bastion.config.settings import locate
from bastion.errors import InputError
from bastion.templates import render

KINDS = ("redshift", "redshift-serverless", "postgres", "alloydb")
PROVIDERS = ("aws", "existing")


def write_starter(
    config: Path | None,
    *,
    name: str,
    kind: str,
    region: str,
    provider: str,
    admin_cidrs: list[str],
) -> Path:
    """Check every option (exit 4 names the option), then write the file where the config
    is looked for; returns its path."""
    target = locate(config)
    checks = {
        "--name": lambda: rules.name(name),
        "--kind": lambda: _one_of(kind, KINDS),
        "--provider": lambda: _one_of(provider, PROVIDERS),
        "--admin-cidr": lambda: [rules.cidr(c) for c in admin_cidrs],
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
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "x", encoding="utf-8") as handle:
        handle.write(text)
    return target


def _one_of(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value
