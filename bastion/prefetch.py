"""Import (and prepare), in a background thread, what a command needs later, while it waits.

A command spends much of its wall time waiting: a remote script, the tunnel's round trips.
Importing what comes next (jinja2 and the compiled sshd_config template, psycopg for the
database hop) during those waits takes it off the critical path. Start it where the main
thread is about to wait, not before CPU work of its own (an SSH handshake): one process runs
one thread's Python at a time. Python's per-module import locks make the later `import` in
the main thread wait for, and reuse, the thread's work; a failure here is ignored, so the
real import or call reports it where it always did.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib import import_module


def warm(*steps: str | Callable[[], object]) -> threading.Thread:
    """Start importing modules (by name) and calling functions, in order, in a daemon thread."""

    def load() -> None:
        for step in steps:
            try:
                import_module(step) if isinstance(step, str) else step()
            except Exception:  # noqa: S112 - the main thread's own import or call reports it
                continue

    thread = threading.Thread(target=load, name="bastion-prefetch", daemon=True)
    thread.start()
    return thread
