"""Molecule's verify step: the converged lab host, checked with testinfra over SSH."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import testinfra


def _lab() -> dict[str, str]:
    env = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "lab.env"
    pairs = (line.removeprefix("export ").split("=", 1) for line in env.read_text().splitlines())
    return dict(pairs)


@pytest.fixture(scope="module")
def bastion() -> Any:
    lab = _lab()
    return testinfra.get_host(
        f"paramiko://ec2-user@{lab['BASTION_LAB_ADDRESS']}:22",
        ssh_identity_file=lab["BASTION_LAB_ADMIN_KEY"],
        sudo=True,
    )


def test_tunnel_user_has_no_shell(bastion: Any) -> None:
    assert bastion.user("dbtcloud").shell == "/usr/sbin/nologin"


@pytest.mark.parametrize(
    ("path", "mode"),
    [("/home/dbtcloud/.ssh", 0o700), ("/home/dbtcloud/.ssh/authorized_keys", 0o600)],
)
def test_tunnel_user_files(bastion: Any, path: str, mode: int) -> None:
    assert bastion.file(path).mode == mode
    assert bastion.file(path).user == "dbtcloud"


@pytest.mark.parametrize(
    "line",
    ["allowtcpforwarding local", "permittty no", "forcecommand /usr/sbin/nologin",
     "clientaliveinterval 30", "clientalivecountmax 10"],
)  # fmt: skip
def test_effective_settings_for_the_tunnel_user(bastion: Any, line: str) -> None:
    output = bastion.check_output("sshd -T -C user=dbtcloud,host=52.45.144.63,addr=52.45.144.63")
    assert line in output.splitlines()


@pytest.mark.parametrize(
    "line", ["permitrootlogin no", "passwordauthentication no", "allowtcpforwarding no"]
)
def test_global_settings(bastion: Any, line: str) -> None:
    assert line in bastion.check_output("sshd -T").splitlines()
