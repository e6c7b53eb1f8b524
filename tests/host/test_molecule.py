"""The molecule scenario (molecule/default) end to end on each proven release: ~30 s on the
lab, so it runs here whenever molecule and ansible-core are installed (they are not bastion
dependencies)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.lab import LAB_OS_ENV, proven_oses

pytestmark = pytest.mark.lab
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("release", proven_oses())
def test_molecule_default_scenario_converges_idempotently(release: str) -> None:
    bin_dir = str(Path(sys.executable).parent)
    path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    if not (shutil.which("molecule", path=path) and shutil.which("ansible-playbook", path=path)):
        pytest.skip("pip install molecule ansible-core to run the molecule scenario")
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    result = subprocess.run(
        ["molecule", "test"], cwd=ROOT,
        env={**os.environ, "PATH": path, "NO_COLOR": "1", LAB_OS_ENV: release},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    assert result.returncode == 0, output[-4000:]
    assert re.search(r"idempotence\W+Executed: Successful", output), output[-4000:]
    assert re.search(r"\d+ passed", output), "the testinfra verify step ran its tests"
