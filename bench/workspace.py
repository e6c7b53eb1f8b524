"""The bench's folder: three bastion.toml files for the lab, its known_hosts, a tunnel key."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab import Lab

PASSWORD_ENV = "BENCH_DB_PASSWORD"
NAME = "bench"
TUNNEL_USER = "dbtcloud"


def child_environment(lab: Lab, folder: Path) -> dict[str, str]:
    """What `bastion` and `ansible-playbook` run with: the lab's AWS and database password.

    Bytecode caching is on (into the bench's folder, not the checkout), as it is for anyone
    who installed the package: PYTHONDONTWRITEBYTECODE would recompile bastion every run.
    """
    env = {
        **os.environ,
        **lab.aws_env(),
        PASSWORD_ENV: lab.db_password,
        "NO_COLOR": "1",
        "PYTHONPYCACHEPREFIX": str(folder / "pycache"),
    }
    for name in ("BASTION_CONFIG", "PYTHONDONTWRITEBYTECODE", "AWS_PROFILE"):
        env.pop(name, None)
    return env


@dataclass
class Workspace:
    """The bench's temporary folder: configs, known_hosts, the tunnel key, the peer."""

    folder: Path
    lab: Lab

    @property
    def existing_config(self) -> Path:
        return self.folder / "existing" / "bastion.toml"

    @property
    def aws_config(self) -> Path:
        return self.folder / "aws" / "bastion.toml"

    @property
    def eice_config(self) -> Path:
        return self.folder / "eice" / "bastion.toml"

    def tunnel_public_key(self) -> str:
        key = self.folder / "dbt_cloud_ed25519"
        if not key.exists():
            subprocess.run(
                [
                    "ssh-keygen",
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "dbt-cloud-bench",
                    "-f",
                    str(key),
                ],
                check=True,
                capture_output=True,
            )
        return key.with_suffix(".pub").read_text().strip()

    def write_configs(self) -> None:
        """provider "existing" (configure, verify), provider "aws" with moto (up), and
        provider "aws" with admin_access = "eice" (configure over the endpoint's stand-in)."""
        lab = self.lab
        head = f'name = "{NAME}"\n\n[aws]\nregion = "us-east-1"\n\n'
        warehouse = (
            f'host = "{lab.warehouse_host}"\nport = {lab.warehouse_port}\n'
            f'database = "{lab.db_name}"\nuser = "{lab.db_user}"\n'
            f'password_env = "{PASSWORD_ENV}"\n'
        )
        bastion = (
            f'address = "{lab.bastion_address}"\nssh_port = {lab.ssh_port}\n'
            f'admin_user = "{lab.admin_user}"\nadmin_key = "{lab.admin_key}"\n'
            f'admin_cidrs = ["{lab.operator_address}/32"]\nknown_hosts = "known_hosts"\n'
        )
        tunnel = (
            f'\n[tunnel]\nuser = "{TUNNEL_USER}"\n'
            f"public_keys = [{json.dumps(self.tunnel_public_key())}]\n"
        )
        existing = (
            head
            + '[warehouse]\nkind = "postgres"\n'
            + warehouse
            + '\n[bastion]\nprovider = "existing"\n'
            + bastion
            + tunnel
        )
        aws = (
            head
            + '[warehouse]\nkind = "redshift"\nredshift_cluster = "prod"\n'
            + warehouse
            + '\n[bastion]\nprovider = "aws"\n'
            + bastion
            + tunnel
        )
        # admin through the Instance Connect Endpoint's stand-in: no operator address, and
        # the host reached at its private address (through the endpoint), not at the lab's
        eice = (
            f'name = "{NAME}-eice"\n\n[aws]\nregion = "us-east-1"\n\n'
            + '[warehouse]\nkind = "redshift"\nredshift_cluster = "prod"\n'
            + warehouse
            + '\n[bastion]\nprovider = "aws"\nadmin_access = "eice"\nadmin_cidrs = []\n'
            + f'admin_user = "{lab.admin_user}"\nadmin_key = "{lab.admin_key}"\n'
            + 'known_hosts = "known_hosts"\n'
            + tunnel
        )
        known = "".join(f"{line}\n" for line in lab.known_hosts_lines)
        for path, text, hosts in (
            (self.existing_config, existing, known),
            (self.aws_config, aws, ""),
            (self.eice_config, eice, ""),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            (path.parent / "known_hosts").write_text(hosts)
