"""Molecule's verify step: the converged lab host, checked with testinfra over SSH.

What the host should say comes from the scenario's own inputs, not from literals: the lab's
addresses (lab.env), the tunnel user, keys and dbt Cloud regions (the bastion.toml create.yml
wrote), and dbt Cloud's published addresses (bastion's data file, through bastion.vendors).
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest
import testinfra

from bastion.vendors.dbt_cloud import cidrs_for

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
ADMIN_USER = "admin"  # bastion's default admin_user (the debian-13 image), which the scenario keeps


def _lab() -> dict[str, str]:
    env = EPHEMERAL / "lab.env"
    pairs = (line.removeprefix("export ").split("=", 1) for line in env.read_text().splitlines())
    return dict(pairs)


LAB = _lab()
CONFIG = tomllib.loads((EPHEMERAL / "bastion.toml").read_text())
TUNNEL_USER: str = CONFIG["tunnel"]["user"]
TUNNEL_KEYS: list[str] = CONFIG["tunnel"]["public_keys"]
ADMIN_CIDRS: list[str] = CONFIG["bastion"]["admin_cidrs"]
DBT_CLOUD_CIDRS = [cidr for cidr, _ in cidrs_for(CONFIG["dbt_cloud"]["regions"])]
WAREHOUSE = f"{LAB['BASTION_LAB_WAREHOUSE_HOST']}:{LAB['BASTION_LAB_WAREHOUSE_PORT']}"
KEY_OPTIONS = f'restrict,port-forwarding,permitopen="{WAREHOUSE}"'


def allow_users_source(cidr: str) -> str:
    """A CIDR as AllowUsers writes it: a single address bare, a network as addr/len."""
    network = ipaddress.ip_network(cidr)
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def an_address_in(cidr: str) -> str:
    network = ipaddress.ip_network(cidr)
    return str(network.network_address if network.num_addresses == 1 else next(network.hosts()))


def key_of(line: str) -> str:
    """`type base64` of a public key or of an authorized_keys line (options dropped)."""
    fields = line.split()
    start = next(i for i, field in enumerate(fields) if field.startswith(("ssh-", "ecdsa-")))
    return " ".join(fields[start : start + 2])


@pytest.fixture(scope="module")
def bastion() -> Any:
    return testinfra.get_host(
        f"paramiko://{ADMIN_USER}@{LAB['BASTION_LAB_ADDRESS']}:22",
        ssh_identity_file=LAB["BASTION_LAB_ADMIN_KEY"],
        sudo=True,
    )


@pytest.fixture(scope="module")
def tunnel_settings(bastion: Any) -> list[str]:
    """sshd's effective settings for the tunnel user logging in from a dbt Cloud address."""
    address = an_address_in(DBT_CLOUD_CIDRS[0])
    command = f"sshd -T -C user={TUNNEL_USER},host={address},addr={address}"
    return list(bastion.check_output(command).splitlines())


@pytest.fixture(scope="module")
def allow_users(bastion: Any) -> list[str]:
    """The effective AllowUsers entries, one `user@source` each."""
    lines = bastion.check_output("sshd -T").splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.startswith("allowusers ")]


@pytest.fixture(scope="module")
def authorized_keys(bastion: Any) -> list[str]:
    """The key lines of the tunnel user's authorized_keys (comments and blank lines left out)."""
    text = bastion.file(f"/home/{TUNNEL_USER}/.ssh/authorized_keys").content_string
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_tunnel_user_has_no_shell(bastion: Any) -> None:
    assert bastion.user(TUNNEL_USER).shell == "/usr/sbin/nologin"


@pytest.mark.parametrize(
    ("path", "mode"),
    [(f"/home/{TUNNEL_USER}/.ssh", 0o700), (f"/home/{TUNNEL_USER}/.ssh/authorized_keys", 0o600)],
)
def test_tunnel_user_files(bastion: Any, path: str, mode: int) -> None:
    assert bastion.file(path).mode == mode
    assert bastion.file(path).user == TUNNEL_USER


@pytest.mark.parametrize(
    "line",
    ["allowtcpforwarding local", "permittty no", "forcecommand /usr/sbin/nologin",
     "clientaliveinterval 30", "clientalivecountmax 10"],
)  # fmt: skip
def test_effective_settings_for_the_tunnel_user(tunnel_settings: list[str], line: str) -> None:
    assert line in tunnel_settings


def test_tunnel_user_may_open_the_warehouse_and_nothing_else(tunnel_settings: list[str]) -> None:
    permit_open = [line for line in tunnel_settings if line.startswith("permitopen ")]
    assert permit_open == [f"permitopen {WAREHOUSE}"]


@pytest.mark.parametrize(
    "line", ["permitrootlogin no", "passwordauthentication no", "allowtcpforwarding no"]
)
def test_global_settings(bastion: Any, line: str) -> None:
    assert line in bastion.check_output("sshd -T").splitlines()


@pytest.mark.parametrize("cidr", DBT_CLOUD_CIDRS)
def test_allow_users_admits_the_tunnel_user_from_each_dbt_cloud_address(
    allow_users: list[str], cidr: str
) -> None:
    assert f"{TUNNEL_USER}@{allow_users_source(cidr)}" in allow_users


def test_allow_users_admits_no_one_else(allow_users: list[str]) -> None:
    """The admin from the admin networks; the tunnel user from dbt Cloud and the admin
    networks (where `bastion verify` logs in as it)."""
    admins = [allow_users_source(cidr) for cidr in ADMIN_CIDRS]
    tunnel = [allow_users_source(cidr) for cidr in DBT_CLOUD_CIDRS] + admins
    expected = [f"{ADMIN_USER}@{source}" for source in admins]
    expected += [f"{TUNNEL_USER}@{source}" for source in tunnel]
    assert sorted(allow_users) == sorted(expected)


@pytest.mark.parametrize("key", TUNNEL_KEYS, ids=[key.split()[-1] for key in TUNNEL_KEYS])
def test_each_tunnel_key_may_only_forward_to_the_warehouse(
    authorized_keys: list[str], key: str
) -> None:
    lines = [line for line in authorized_keys if key_of(line) == key_of(key)]
    assert [line.split(" ", 1)[0] for line in lines] == [KEY_OPTIONS]


def test_authorized_keys_holds_only_the_configured_keys(authorized_keys: list[str]) -> None:
    assert sorted(key_of(line) for line in authorized_keys) == sorted(map(key_of, TUNNEL_KEYS))
