"""The program as a short-lived process: no cycle collector, a quick exit that keeps the
status and cuts nothing short (threads, atexit handlers, buffered output)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROGRAM = textwrap.dedent(
    """
    import atexit, gc, sys, threading, time
    from pathlib import Path
    from bastion.cli.leave import run_and_leave

    out = Path(sys.argv[1])

    def main():
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
        (out / "gc").write_text(str(gc.isenabled()))
        sys.stdout.write("buffered, no newline")
        {end}

    run_and_leave(main)
    """
)


def _run(tmp_path: Path, end: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM.format(end=end), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("end", "status"),
    [("return None", 0), ("raise SystemExit(3)", 3), ("sys.exit(130)", 130), ("sys.exit()", 0)],
)
def test_the_status_is_kept_and_nothing_is_cut_short(tmp_path: Path, end: str, status: int) -> None:
    done = _run(tmp_path, end)
    assert done.returncode == status, done.stderr
    assert done.stdout == "buffered, no newline"
    assert (tmp_path / "thread").read_text() == "done"  # joined, not killed
    assert (tmp_path / "atexit").read_text() == "ran"
    assert (tmp_path / "gc").read_text() == "False"  # no cycle collection during the run


def test_a_message_exit_prints_it_and_is_status_1(tmp_path: Path) -> None:
    done = _run(tmp_path, "sys.exit('config not found')")
    assert done.returncode == 1
    assert "config not found" in done.stderr


def test_an_unexpected_error_still_shows_its_traceback(tmp_path: Path) -> None:
    done = _run(tmp_path, "raise RuntimeError('boom')")
    assert done.returncode == 1
    assert "RuntimeError: boom" in done.stderr


def test_the_console_script_uses_it() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["bastion"] == "bastion.cli.app:run"


FINALIZER = "class Freed:\n    def __del__(self):\n        print('freed')\nkept = Freed()\n"


@pytest.mark.parametrize(("switch", "normal"), [("1", True), ("0", False)])
def test_a_switch_makes_it_exit_as_any_python_program(
    tmp_path: Path, switch: str, normal: bool
) -> None:
    """Profilers and debuggers report at interpreter exit: BASTION_NORMAL_EXIT=1 gives them
    one (the collector on, module objects freed at exit), with the same status."""
    program = PROGRAM.replace("run_and_leave(main)", FINALIZER + "run_and_leave(main)")
    done = subprocess.run(
        [sys.executable, "-c", program.format(end="raise SystemExit(3)"), str(tmp_path)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "BASTION_NORMAL_EXIT": switch},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "gc").read_text() == str(normal)
    assert ("freed" in done.stdout) is normal
    assert (tmp_path / "atexit").read_text() == "ran"
