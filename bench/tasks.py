"""The `bench` task, for the top-level tasks.py: `from bench.tasks import bench`."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from invoke.context import Context
from invoke.tasks import task


@task(
    help={
        "runs": "repetitions per figure; the table shows medians (default 5)",
        "strict": "exit non-zero when a measured figure misses its target",
        "json": "also write the rows to this file",
        "skip_up": "leave out the provider=aws rows (`up`, AWS call counts)",
    }
)
def bench(
    c: Context, runs: int = 5, strict: bool = False, json: str = "", skip_up: bool = False
) -> None:
    """Time bastion's commands on a lab beside the Ansible peer; print medians and targets (root)."""
    options = [f"--runs {int(runs)}"]
    if strict:
        options.append("--strict")
    if json:
        options.append(f"--json {shlex.quote(json)}")
    if skip_up:
        options.append("--skip-up")
    with c.cd(str(Path(__file__).resolve().parent.parent)):  # the checkout: bench and tests
        c.run(f"{sys.executable} -m bench.run {' '.join(options)}", pty=False)
