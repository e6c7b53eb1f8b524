"""Import, in a background thread, modules a command needs later, while it waits on the network.

A command spends much of its wall time waiting: the SSH handshake, a remote script, the
tunnel's round trips. Importing what comes next (jinja2 for the sshd_config, psycopg for the
database hop) during those waits takes it off the critical path. Python's per-module import
locks make the later `import` in the main thread wait for, and reuse, the thread's work; a
failed import here is ignored, so the real import reports it where it always did.
"""

from __future__ import annotations

import threading
from importlib import import_module


def warm(*modules: str) -> threading.Thread:
    """Start importing `modules` (in order) in a daemon thread; returns the thread."""

    def load() -> None:
        for name in modules:
            try:
                import_module(name)
            except Exception:  # noqa: S112 - the main thread's own import reports it
                continue

    thread = threading.Thread(target=load, name="bastion-prefetch", daemon=True)
    thread.start()
    return thread
