"""Running the real CLI in-process with --json, as the end-to-end tests do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bastion.cli.app import main


def run_json(
    config: Path, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, Any]]:
    """The exit code and the one JSON object of `bastion ARGS -c CONFIG --json`."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main([*args, "-c", str(config), "--json"])
    return int(exited.value.code or 0), json.loads(capsys.readouterr().out)
