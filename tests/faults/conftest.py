"""Shared by the fault tests: the real CLI in-process, and what "nothing changed" means.

The lab (tests/conftest.py) is shared by the whole session; a module that changes its host
restarts it at teardown, so the modules after it start from a pristine host.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from bastion.cli.app import main
from tests.lab import Lab

# What the tool may write on the host, and the accounts it may add.
HOST_FILES = (
    "/etc/ssh/sshd_config",
    "/home/dbtcloud/.ssh/authorized_keys",
    "/etc/passwd",
    "/etc/group",
)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """The real CLI in-process with --json: its exit code and its one JSON object."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([*args, "--json"])
    out = capsys.readouterr().out
    documents = [line for line in out.splitlines() if line.startswith("{")]
    assert len(documents) == 1, f"expected exactly one JSON object on stdout, got {out!r}"
    return int(exited.value.code or 0), json.loads(documents[0])


def host_hashes(lab: Lab) -> dict[str, str]:
    """sha256 of every file the tool may write (a missing file hashes as "missing")."""
    found: dict[str, str] = {}
    for path in HOST_FILES:
        result = lab.host_exec(f"cat {path}")
        found[path] = (
            hashlib.sha256(result.stdout.encode()).hexdigest()
            if result.returncode == 0
            else "missing"
        )
    return found


def sshd_accepts_config(lab: Lab) -> bool:
    return lab.host_exec("/usr/sbin/sshd -t -f /etc/ssh/sshd_config").returncode == 0


@pytest.fixture(scope="module")
def pristine_host_after(lab: Lab) -> Iterator[Lab]:
    """The module may change the host freely: it is restarted when the module ends."""
    try:
        yield lab
    finally:
        lab.restart_host()
