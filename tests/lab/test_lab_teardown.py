"""What stopping a lab leaves behind: nothing, whoever stops it and however it ended."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.lab import Lab, LabError, start_lab
from tests.lab.network import (
    Topology,
    existing_interfaces,
    existing_namespaces,
    namespace_inode,
    safety_route_present,
)
from tests.lab.state import (
    STATE_ROOT,
    LabState,
    ProcessRef,
    labs_lock,
    processes_in_namespace,
)
from tests.lab.teardown import cleanup_stale
from tests.lab.warehouse import Warehouse

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
KINDS = ["namespaces", "interfaces", "routes", "mounts", "processes", "folder"]


@dataclass
class Trace:
    """What a lab had, recorded before it went away."""

    state: LabState
    net_inodes: list[int]
    host_mnt_inode: int
    processes: list[ProcessRef]
    interfaces: tuple[str, ...]
    namespaces: tuple[str, ...]


def trace_of(state: LabState) -> Trace:
    topo = Topology(state.name, state.slot)
    assert state.host_init is not None
    mnt = os.readlink(f"/proc/{state.host_init.pid}/ns/mnt")
    return Trace(
        state=state,
        net_inodes=[i for ns in topo.namespaces if (i := namespace_inode(ns)) is not None],
        host_mnt_inode=int(mnt.split("[")[1].rstrip("]")),
        processes=[p for p in (state.host, state.host_init, state.postmaster, state.moto) if p],
        interfaces=topo.interfaces,
        namespaces=topo.namespaces,
    )


@pytest.fixture(scope="module")
def stopped() -> Trace:
    """A third lab, started and stopped; what it had is kept to look for leftovers."""
    third = start_lab(with_aws=True)
    trace = trace_of(third.state)
    third.stop()
    return trace


@pytest.fixture(scope="module")
def stale() -> Trace:
    """A lab whose owner was killed (kill -9 of a test run), then the next start's cleanup."""
    script = textwrap.dedent("""
        import os, signal
        from tests.lab import start_lab
        lab = start_lab()
        print(lab.run_id, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    owner = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert owner.returncode == -9, owner.stderr
    state = LabState.load(STATE_ROOT / f"bl-{owner.stdout.strip()}")
    assert state is not None and state.host is not None and state.host.alive()
    trace = trace_of(state)
    with labs_lock():
        cleanup_stale("bl")
    return trace


def leftovers(trace: Trace) -> dict[str, object]:
    """Every trace of the lab still on the machine, by kind (empty lists when clean)."""
    mounts = Path("/proc/self/mounts").read_text()
    routes = subprocess.run(
        ["ip", "route", "show", "table", "all"], capture_output=True, text=True
    ).stdout
    subnet = f"10.231.{trace.state.slot}."
    return {
        "namespaces": [ns for ns in trace.namespaces if ns in existing_namespaces()],
        "interfaces": [i for i in trace.interfaces if i in existing_interfaces()],
        "routes": [r for r in routes.splitlines() if subnet in r or trace.state.name in r],
        "mounts": [m for m in mounts.splitlines() if trace.state.name in m],
        "processes": [p.pid for p in trace.processes if p.alive()]
        + [pid for i in trace.net_inodes for pid in processes_in_namespace("net", i)]
        + processes_in_namespace("mnt", trace.host_mnt_inode),
        "folder": [trace.state.dir] if trace.state.dir.exists() else [],
    }


@pytest.mark.parametrize("kind", KINDS)
def test_teardown_leaves_nothing(stopped: Trace, kind: str) -> None:
    assert leftovers(stopped)[kind] == []


@pytest.mark.parametrize("kind", KINDS)
def test_stale_lab_of_a_killed_owner_is_removed(stale: Trace, kind: str) -> None:
    assert leftovers(stale)[kind] == []


def test_stopping_twice_is_harmless() -> None:
    spare = start_lab(with_aws=False)
    spare.stop()
    spare.stop()
    assert not spare.dir.exists()


def test_safety_route_stays_while_another_lab_runs(lab: Lab, stopped: Trace) -> None:
    assert safety_route_present()


def test_a_failed_start_removes_what_it_made(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Warehouse) -> str:
        raise LabError("the database refused (on purpose)")

    monkeypatch.setattr(Warehouse, "create_login", broken)
    with pytest.raises(LabError, match="on purpose"):
        start_lab(prefix="blf", with_aws=True)
    assert [n for n in existing_namespaces() + existing_interfaces() if n.startswith("blf-")] == []
    assert list(STATE_ROOT.glob("blf-*")) == []
