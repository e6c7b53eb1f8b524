"""Taking a lab away, from its state file alone: by its owner, by `invoke lab.down`, or by
the next lab start when the owner died (a killed test run).

Every step tolerates "already gone", so teardown can run twice, or after a start that
failed half way. The safety route goes last, and only when no other lab is left.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.lab import network
from tests.lab.aws import stop_moto_process
from tests.lab.host import stop_host
from tests.lab.network import Topology
from tests.lab.state import RUN_ID_PATTERN, LabState, lab_folders, labs_lock
from tests.lab.warehouse import stop_postmaster


def teardown(state: LabState) -> None:
    """Stop the lab's processes, remove its network and folder, maybe the safety route.

    The route goes only when no lab folder is left, alive or stale: a stale lab's links
    and a tool still retrying its addresses stay contained until it is cleaned up.
    """
    try:
        _remove(state)
    finally:
        with labs_lock():
            if not lab_folders():
                network.remove_safety_route()


def _remove(state: LabState) -> None:
    """Every step runs even if an earlier one failed; the first failure is raised at the end."""
    topo = Topology(state.name, state.slot)
    steps: list[Callable[[], None]] = [
        lambda: stop_host(state.host, state.host_init),
        lambda: stop_postmaster(state.postmaster),
        lambda: stop_moto_process(state.moto),
        # Anything else still in the namespaces (a tunnel a test left open, say).
        lambda: _kill_all([pid for ns in topo.namespaces for pid in network.namespace_pids(ns)]),
        lambda: network.destroy_network(topo),
        lambda: _unmount_under(state.dir),
        lambda: shutil.rmtree(state.dir, ignore_errors=True),
    ]
    errors = []
    for step in steps:
        try:
            step()
        except Exception as error:  # keep removing; report afterwards
            errors.append(error)
    if errors:
        raise errors[0]


def cleanup_stale(prefix: str) -> list[str]:
    """Tear down labs of `prefix` whose owner is gone; returns what was removed.

    Also removes namespaces and links named like ours that have no state folder: a state is
    written before anything is created, so those belong to nobody. Call with the labs lock
    held (a lab starting meanwhile has its state written, under the same lock).
    """
    removed = []
    for folder in lab_folders(prefix):
        state = LabState.load(folder)
        if state is None:
            _unmount_under(folder)
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
        elif not state.owner_alive():
            with contextlib.suppress(Exception):
                _remove(state)
            removed.append(state.name)
    known = {folder.name for folder in lab_folders(prefix)}
    ours = re.compile(rf"({re.escape(prefix)}-{RUN_ID_PATTERN.pattern})-(bastion|warehouse|[obdw])")
    for ns in network.existing_namespaces():
        match = ours.fullmatch(ns)
        if match and match.group(1) not in known:
            _kill_all(network.namespace_pids(ns))
            network.ip("netns", "del", ns, check=False)
            removed.append(ns)
    for link in network.existing_interfaces():
        match = ours.fullmatch(link)
        if match and match.group(1) not in known:
            network.ip("link", "del", link, check=False)
            removed.append(link)
    return removed


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _unmount_under(folder: Path) -> None:
    """Mounts the root namespace holds under the lab folder, deepest first.

    Normally there are none: the host's mounts live in its own mount namespace.
    """
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            target = line.split()[1].replace("\\040", " ")
            if target == str(folder) or target.startswith(f"{folder}/"):
                mounts.append(target)
    for target in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", target], capture_output=True)
