"""`python -m tests.faults.traced_cli …`: the real `bastion` CLI, with the host apply script
traced. Inside the host lock each run appends `start <pid> <time>` and, when done,
`end <pid> <time>` to TRACE on the host, so a test can prove two runs never overlapped.

With KILL_AFTER_LAUNCH=1 in its environment the process SIGKILLs itself the moment
RunInstances has answered: "killed right after the instance was launched", every time.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from bastion.host import apply

TRACE = f"{apply.STATE_DIR}/fault-trace.log"
LOCKED = "flock -w 60 9 || fail 'another bastion run holds the lock on this host'\n"


def traced(*args: Any, **kwargs: Any) -> str:
    script = real(*args, **kwargs)
    done = f"echo {apply.APPLIED}\n"
    assert script.count(LOCKED) == 1 and script.count(done) == 1, "the apply script changed"
    stamp = 'echo "{} $$ $(date +%s.%N)" >> ' + TRACE + "\n"
    script = script.replace(LOCKED, LOCKED + stamp.format("start"))
    return script.replace(done, stamp.format("end") + done)


def launch_then_die(self: Any, params: dict[str, Any]) -> dict[str, Any]:
    instance = real_launch(self, params)
    os.kill(os.getpid(), signal.SIGKILL)
    return instance  # pragma: no cover


def install() -> None:
    """Trace this process's apply script (and die after the launch if asked). Only the CLI
    run as `python -m tests.faults.traced_cli` does this: a test that imports TRACE must not
    find every later apply script of its session traced."""
    global real, real_launch
    real = apply.apply_script
    apply.apply_script = traced
    if os.environ.get("KILL_AFTER_LAUNCH") == "1":
        from bastion.aws.gateway import AwsGateway

        real_launch = AwsGateway.run_instance
        AwsGateway.run_instance = launch_then_die  # type: ignore[method-assign]


real: Any = None
real_launch: Any = None

if __name__ == "__main__":
    from bastion.cli.app import main

    install()
    main(sys.argv[1:])
