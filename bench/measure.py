"""Timing the real `bastion` console script, and the table the bench prints.

Every figure is wall time from `subprocess` start to exit (time.perf_counter), so it holds
what a user waits for: interpreter start, imports, the network round trips and any sleeps.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.sshlog import SshActivity

MISSING = "n/a (command missing)"


def bastion_executable() -> str:
    """The `bastion` console script of this interpreter's environment, else of PATH."""
    beside = Path(sys.executable).parent / "bastion"
    found = str(beside) if beside.exists() else shutil.which("bastion")
    if found is None:
        raise FileNotFoundError("the `bastion` console script (pip install -e .)")
    return found


@dataclass(frozen=True)
class Timed:
    """One finished command."""

    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + system seconds of the process and the children it waited for

    @property
    def document(self) -> dict[str, Any] | None:
        """The `--json` object on stdout, when the command printed one."""
        try:
            value = json.loads(self.stdout)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def why(self) -> str:
        """The last lines of stderr: what a failed run said."""
        tail = [line for line in self.stderr.strip().splitlines() if line.strip()][-3:]
        return f"exit {self.returncode}: " + " / ".join(tail)


@dataclass
class Bastion:
    """Runs `bastion` with the bench's environment, from the bench's folder."""

    env: dict[str, str]
    cwd: Path
    executable: str = field(default_factory=bastion_executable)
    _known: dict[str, bool] = field(default_factory=dict)

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Timed:
        return run_timed([self.executable, *args], {**self.env, **(env or {})}, self.cwd, timeout)

    def has(self, command: str) -> bool:
        """Whether this checkout's bastion has `command` yet (its --help succeeds)."""
        if command not in self._known:
            self._known[command] = self.run(command, "--help", timeout=60).returncode == 0
        return self._known[command]


def run_timed(argv: list[str], env: dict[str, str], cwd: Path, timeout: float) -> Timed:
    """Run `argv` to its end: wall time, and the CPU time it used (less sensitive to load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(argv, seconds, done.returncode, done.stdout, done.stderr, cpu)


@dataclass(frozen=True)
class Stats:
    """Median and spread of a series of measurements."""

    values: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def spread(self, unit: str) -> str:
        if len(self.values) < 2:
            return ""
        return f"{_number(min(self.values), unit)}-{_number(max(self.values), unit)}"


def _number(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.3f}"
    if unit == "x":
        return f"{value:.1f}"
    return f"{value:g}"


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet, as the issue states it."""

    text: str
    met: Callable[[float], bool]


def at_most(limit: float, unit: str = "") -> Target:
    return Target(f"<= {_number(limit, unit)}{' ' + unit if unit else ''}", lambda v: v <= limit)


def at_least(limit: float, unit: str = "") -> Target:
    return Target(f">= {_number(limit, unit)}{unit}", lambda v: v >= limit)


def exactly(value: float) -> Target:
    return Target(f"= {_number(value, '')}", lambda v: v == value)


@dataclass
class Row:
    """One line of the table: a measured figure, or why there is none."""

    name: str
    unit: str = "s"
    stats: Stats | None = None
    target: Target | None = None
    absent: str = ""  # MISSING, "failed: ...", "skipped: ..."
    note: str = ""
    cpu: Stats | None = None

    @classmethod
    def of(
        cls,
        name: str,
        values: Sequence[float],
        unit: str = "s",
        target: Target | None = None,
        note: str = "",
        cpu: Sequence[float] = (),
    ) -> Row:
        return cls(
            name,
            unit,
            Stats(tuple(values)) if values else None,
            target,
            note=note,
            cpu=Stats(tuple(cpu)) if cpu else None,
        )

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        if self.stats is None:
            return "FAIL" if self.absent.startswith("failed") else "-"
        return "pass" if self.target.met(self.stats.median) else "FAIL"

    @property
    def figure(self) -> str:
        if self.stats is None:
            return self.absent or "n/a"
        unit = "" if self.unit in {"", "x"} else f" {self.unit}"
        suffix = "x" if self.unit == "x" else unit
        return f"{_number(self.stats.median, self.unit)}{suffix}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "median": self.stats.median if self.stats else None,
            "values": list(self.stats.values) if self.stats else [],
            "cpu_median": self.cpu.median if self.cpu else None,
            "target": self.target.text if self.target else None,
            "verdict": self.verdict or None,
            "absent": self.absent or None,
            "note": self.note or None,
        }


def table(rows: Sequence[Row]) -> str:
    """A plain-text table (it lands in READMEs and CI logs), notes listed below it."""
    header = ("measurement", "median", "min-max", "cpu", "runs", "target", "result")
    lines = [
        (
            row.name,
            row.figure,
            row.stats.spread(row.unit) if row.stats else "",
            f"{row.cpu.median:.3f}" if row.cpu else "",
            str(len(row.stats.values)) if row.stats else "",
            row.target.text if row.target else "",
            row.verdict,
        )
        for row in rows
    ]
    widths = [max(len(cells[i]) for cells in [header, *lines]) for i in range(len(header))]
    out = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells)).rstrip()
        for cells in [header, tuple("-" * w for w in widths), *lines]
    ]
    notes = [f"  [{row.name}] {row.note}" for row in rows if row.note]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def bastion_changed(done: Timed) -> str:
    """The resources a `--json` run reports as changed, "" when it changed nothing."""
    document = done.document or {}
    if not document.get("changed"):
        return ""
    return ", ".join(f"{c.get('target')}/{c.get('resource')}" for c in document.get("changes", []))


@dataclass
class Series:
    """Runs of one measurement, and why it stopped early if it did."""

    runs: list[Timed] = field(default_factory=list)
    ssh: list[SshActivity] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failure: Timed | None = None

    @property
    def seconds(self) -> list[float]:
        return [run.seconds for run in self.runs]

    @property
    def cpu(self) -> list[float]:
        return [run.cpu for run in self.runs]

    def extend(self, other: Series) -> None:
        self.runs += other.runs
        self.ssh += other.ssh
        self.notes += other.notes
        self.failure = self.failure or other.failure

    def row(self, name: str, goal: Target | None) -> Row:
        if not self.runs:
            why = self.failure.why() if self.failure else "; ".join(self.notes)
            code = f"exit {self.failure.returncode}" if self.failure else "no run"
            return Row(name, absent=f"failed ({code})", target=goal, note=why)
        notes = list(dict.fromkeys(self.notes))
        if self.failure is not None:
            notes.append(f"stopped after {len(self.runs)} good runs: {self.failure.why()}")
        return Row.of(name, self.seconds, target=goal, note="; ".join(notes), cpu=self.cpu)

    def count_rows(self, what: str, command: str) -> list[Row]:
        if not self.ssh:
            return []
        return [
            Row.of(
                f"ssh connections / {command}",
                [a.connections for a in self.ssh],
                unit="",
                target=exactly(1) if what == "configure" else None,
            ),
            Row.of(
                f"remote commands / {command}",
                [a.sessions for a in self.ssh],
                unit="",
                target=at_most(2) if what == "configure" else None,
            ),
        ]
