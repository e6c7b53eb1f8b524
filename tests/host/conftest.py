"""Fixtures for the host tests: configs written as users write them, recorded host output."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from bastion.config import Settings, load

RECORDED = Path(__file__).parent / "recorded"

CONFIG = """\
name = "analytics"

[warehouse]
kind = "postgres"
host = "{warehouse_host}"
port = {warehouse_port}
database = "analytics"
user = "dbt"

[bastion]
provider = "existing"
address = "{address}"
ssh_port = {ssh_port}
admin_user = "{admin_user}"
admin_key = "{admin_key}"
admin_cidrs = [{admin_cidrs}]
ssh_crypto = "{ssh_crypto}"

[dbt_cloud]
regions = ["us"]

[tunnel]
user = "dbtcloud"
public_keys = [{public_keys}]
client_alive_interval = {interval}
client_alive_count_max = {count}
"""

MakeConfig = Callable[..., Settings]


def make_key(folder: Path, name: str, key_type: str = "ed25519", bits: int = 0) -> Path:
    """A real key pair made by ssh-keygen; returns the private key's path."""
    path = folder / name
    if not path.exists():
        extra = ["-b", str(bits)] if bits else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", key_type, *extra, "-N", "", "-C", name, "-f", str(path)],
            check=True,
        )
    return path


def write_config(folder: Path, **values: object) -> Path:
    defaults: dict[str, object] = {
        "warehouse_host": "10.0.2.10",
        "warehouse_port": 5432,
        "address": "203.0.113.10",
        "ssh_port": 22,
        "admin_user": "ec2-user",
        "admin_key": str(make_key(folder, "admin")),
        "admin_cidrs": ["198.51.100.7/32"],
        "ssh_crypto": "compatible",
        "public_keys": [],
        "interval": 30,
        "count": 10,
    }
    defaults.update(values)
    defaults["admin_cidrs"] = ", ".join(f'"{c}"' for c in defaults["admin_cidrs"])  # type: ignore[union-attr]
    defaults["public_keys"] = ", ".join(f'"{k}"' for k in defaults["public_keys"])  # type: ignore[union-attr]
    path = folder / "bastion.toml"
    path.write_text(CONFIG.format(**defaults), encoding="utf-8")
    return path


@pytest.fixture
def make_config(tmp_path: Path) -> MakeConfig:
    def make(**values: object) -> Settings:
        return load(write_config(tmp_path, **values), environ={})

    return make


@pytest.fixture
def tunnel_key(tmp_path: Path) -> str:
    return (make_key(tmp_path, "dbt-cloud-new").with_suffix(".pub")).read_text().strip()


def recorded(name: str) -> str:
    return (RECORDED / f"{name}.txt").read_text(encoding="utf-8")
