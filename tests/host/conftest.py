"""Fixtures for the host tests: configs written as users write them, host output recorded on
lab hosts or reconstructed from documentation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion.config.settings import Settings, load

RECORDED = Path(__file__).parent / "recorded"
RECONSTRUCTED = Path(__file__).parent / "reconstructed"

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
extra_cidrs = [{extra_cidrs}]

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
        "extra_cidrs": [],
        "interval": 30,
        "count": 10,
    }
    defaults.update(values)
    defaults["admin_cidrs"] = ", ".join(f'"{c}"' for c in defaults["admin_cidrs"])  # type: ignore[union-attr]
    defaults["public_keys"] = ", ".join(f'"{k}"' for k in defaults["public_keys"])  # type: ignore[union-attr]
    defaults["extra_cidrs"] = ", ".join(f'"{c}"' for c in defaults["extra_cidrs"])  # type: ignore[union-attr]
    path = folder / "bastion.toml"
    path.write_text(CONFIG.format(**defaults), encoding="utf-8")
    return path


SEVERAL_TOOLS_HEAD = """\
name = "analytics"

[warehouse]
kind = "postgres"
host = "10.0.2.10"
port = 5432

[bastion]
provider = "existing"
address = "203.0.113.10"
admin_user = "ec2-user"
admin_key = "{admin_key}"
admin_cidrs = ["198.51.100.7/32"]
"""


def several_tools_config(
    folder: Path, tables: str, *, extra_bastion: str = "", name: str = "bastion.toml"
) -> Path:
    """A config in the several-tools form: the usual warehouse and host, then `tables`
    (`[tunnels.<user>]` ...); `extra_bastion` lines go in [bastion]."""
    head = SEVERAL_TOOLS_HEAD.format(admin_key=make_key(folder, "admin"))
    path = folder / name
    path.write_text(head + extra_bastion + ("\n" if extra_bastion else "") + tables)
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
    """The facts script's output captured on a lab host (recorded/capture.py)."""
    return (RECORDED / f"{name}.txt").read_text(encoding="utf-8")


def reconstructed(name: str) -> str:
    """Facts of a host no test has run, put together from its documentation
    (reconstructed/README.md)."""
    return (RECONSTRUCTED / f"{name}.txt").read_text(encoding="utf-8")


# --- the lab -------------------------------------------------------------------------------


@dataclass
class LabHost:
    """A pristine lab host and a bastion.toml pointing at it, as a user would write it."""

    lab: Any
    folder: Path
    config: Path

    def settings(self) -> Settings:
        return load(self.config, environ={})

    def rewrite(self, **values: object) -> None:
        write_lab_config(self.lab, self.folder, **values)

    def cli(
        self, *args: str, timeout: float = 120, env: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], str]:
        """Run the real CLI (`python -m bastion … --json`) and return code, JSON, stderr."""
        result = subprocess.run(
            [sys.executable, "-m", "bastion", *args, "-c", str(self.config), "--json"],
            capture_output=True, text=True, timeout=timeout, cwd=self.folder,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        document = json.loads(lines[-1]) if lines else {}
        return result.returncode, document, result.stderr

    def sh(self, command: str) -> str:
        """A root shell on the host from outside (the serial console)."""
        result = self.lab.host_exec(command)
        assert result.returncode == 0, result.stderr
        return str(result.stdout)

    def log_counts(self) -> tuple[int, int]:
        """(admin logins accepted, sshd reloads) so far, from sshd's own log."""
        log = self.lab.sshd_log()
        accepted = log.count(f"Accepted publickey for {self.lab.admin_user} ")
        return accepted, log.count("Received SIGHUP")


def write_lab_config(lab: Any, folder: Path, **values: object) -> Path:
    return write_config(
        folder,
        **{
            "warehouse_host": lab.warehouse_host,
            "warehouse_port": lab.warehouse_port,
            "address": lab.bastion_address,
            "ssh_port": lab.ssh_port,
            "admin_user": lab.admin_user,
            "admin_key": str(lab.admin_key),
            "admin_cidrs": [f"{lab.operator_address}/32"],
            **values,
        },
    )


@pytest.fixture
def lab_host(lab: Any, tmp_path: Path) -> LabHost:
    """A pristine host (restarted: new host keys, nothing configured) for one test."""
    lab.restart_host()
    return LabHost(lab, tmp_path, write_lab_config(lab, tmp_path))


@pytest.fixture(scope="module")
def configured_host(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> LabHost:
    """One host configured once (with a tunnel key the tests hold), shared by a module."""
    lab.restart_host()
    folder = tmp_path_factory.mktemp("configured")
    key = make_key(folder, "tunnel-test").with_suffix(".pub").read_text().strip()
    host = LabHost(lab, folder, write_lab_config(lab, folder, public_keys=[key]))
    code, document, stderr = host.cli("configure")
    assert code == 0 and document["changed"], stderr
    return host
