"""A `bastion` run as a short-lived process: no cycle collector, no interpreter teardown.

A run allocates a lot at the start (imports, botocore's service models) and little after,
and everything it allocated goes away with the process. CPython's cycle collector would
still walk those objects again and again while they load (0.2 s of `up`), for no memory
back: a no-change `up` peaks at the same ~115 MB with or without it. Waits allocate little
that only the collector could free (600 EC2 polls leave ~1,600 such objects, no RSS growth),
so the collector stays off for the whole run.

When a command is done, CPython's shutdown still frees every object it ever made, one by
one: botocore's EC2 service model alone is hundreds of thousands of dicts and strings. That
costs 0.1 s after `configure` and 0.2 s after `up` on a small CI runner, for memory the
kernel takes back in one go anyway. So the program, once its work and every exit handler
are done, ends the process directly. Work is never cut short: other threads are joined
first, `atexit` handlers run (logging, temporary files), and both streams are flushed.

Only the console script and `python -m bastion` leave this way; `main()` called in-process
(tests, other programs) returns by raising SystemExit as usual. BASTION_NORMAL_EXIT=1 makes
the program run and exit as any Python program does (collector on, full teardown): for
profilers and debuggers that report at interpreter exit.
"""

from __future__ import annotations

import atexit
import gc
import os
import sys
import threading
from collections.abc import Callable
from typing import NoReturn


def exit_status(exc: SystemExit) -> int:
    """The process status CPython would give for this SystemExit (printing a message one)."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


NORMAL_EXIT = "BASTION_NORMAL_EXIT"


def run_and_leave(main: Callable[[], object]) -> NoReturn:
    """Run `main`, finish everything a normal exit finishes, then end the process."""
    if os.environ.get(NORMAL_EXIT, "0") not in ("", "0"):
        main()
        sys.exit(0)
    gc.disable()
    try:
        main()
        status = 0
    except SystemExit as exc:
        status = exit_status(exc)
    # an exception other than SystemExit propagates: traceback and the usual shutdown
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread is not current and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # the handlers a normal exit runs, in the same order
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (`| head`): nothing more to say
            status = status or 1
    os._exit(status)
