"""What a lab leaves on the machine, written down so any later process can take it away.

Namespaces, veths, routes and daemons outlive the Python process that made them (a killed
test run, `invoke lab.up`), so every lab keeps a JSON state file in its own folder under
STATE_ROOT, written before anything is created and updated as processes start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_ROOT = Path("/run/bastion-lab")
CACHE_ROOT = Path("/var/cache/bastion-lab")
PREFIX_PATTERN = re.compile(r"[a-z]{1,4}")
RUN_ID_PATTERN = re.compile(r"[0-9a-f]{6}")


@dataclass(frozen=True)
class ProcessRef:
    """A pid plus its start time, so a recycled pid is never mistaken for ours."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        """The reference of a running process, or None when there is no such process."""
        stat = _read_stat(pid)
        return None if stat is None else cls(pid, int(stat[19]))

    def alive(self) -> bool:
        """True while the very process this refers to runs (a zombie counts as gone)."""
        stat = _read_stat(self.pid)
        if stat is None or int(stat[19]) != self.start_time:
            return False
        if stat[0] == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, os.WNOHANG)  # our own child: reap it
            return False
        return True

    def kill(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the process if it is still the one we started."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait_gone(self, timeout: float) -> bool:
        """Poll until the process has ended; False if it still runs after `timeout` s."""
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True


def _read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid` (this kernel has no /proc/<pid>/task/*/children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _read_stat(int(entry.name))
            if stat is not None and int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def processes_in_namespace(kind: str, inode: int) -> list[int]:
    """Pids whose namespace of `kind` ("net", "mnt", ...) is the one with `inode`."""
    wanted = f"{kind}:[{inode}]"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(entry / "ns" / kind) == wanted:
                    found.append(int(entry.name))
    return found


@dataclass
class LabState:
    """Everything teardown needs; the lab's names all derive from prefix and run_id."""

    prefix: str
    run_id: str
    slot: int
    detached: bool = False
    owner: ProcessRef | None = None
    host: ProcessRef | None = None
    host_init: ProcessRef | None = None
    postmaster: ProcessRef | None = None
    moto: ProcessRef | None = None
    moto_endpoint: str = ""
    created: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return f"{self.prefix}-{self.run_id}"

    @property
    def dir(self) -> Path:
        return STATE_ROOT / self.name

    def save(self) -> None:
        """Write the state atomically (a reader never sees half a file)."""
        self.dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(self.dir / "state.json")

    @classmethod
    def load(cls, folder: Path) -> LabState | None:
        """The state in `folder`, or None if it is missing or unreadable."""
        try:
            raw = json.loads((folder / "state.json").read_text())
        except (OSError, ValueError):
            return None
        for key in ("owner", "host", "host_init", "postmaster", "moto"):
            if raw.get(key) is not None:
                raw[key] = ProcessRef(**raw[key])
        return cls(**raw)

    def owner_alive(self) -> bool:
        """A lab is alive while the process that started it runs, and a detached one
        (`invoke lab.up`) also while its host runs."""
        owners = (self.owner, self.host if self.detached else None)
        return any(owner is not None and owner.alive() for owner in owners)


def lab_folders(prefix: str | None = None) -> list[Path]:
    """Folders of labs on this machine, of one prefix or of all."""
    if not STATE_ROOT.is_dir():
        return []
    prefixes = re.escape(prefix) if prefix else PREFIX_PATTERN.pattern
    pattern = re.compile(rf"({prefixes})-({RUN_ID_PATTERN.pattern})")
    return sorted(p for p in STATE_ROOT.iterdir() if p.is_dir() and pattern.fullmatch(p.name))


def all_states(prefix: str | None = None) -> list[LabState]:
    """The readable states of labs on this machine."""
    return [s for f in lab_folders(prefix) if (s := LabState.load(f)) is not None]


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock: labs starting and stopping at once take turns here."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def labs_lock() -> contextlib.AbstractContextManager[None]:
    """The machine-wide lock around slot allocation, stale cleanup and the safety route."""
    return file_lock(STATE_ROOT / ".lock")
