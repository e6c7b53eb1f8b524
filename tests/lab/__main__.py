"""`python -m tests.lab up|down|status|clean|build`: the lab without invoke.

`build` makes the cached root filesystems of the hosts ahead of time (CI does, in parallel).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor

from tests.lab.cache import RELEASES, LabBuildError, os_root
from tests.lab.lab import LabError, start_lab
from tests.lab.report import describe, describe_state
from tests.lab.state import all_states, labs_lock
from tests.lab.teardown import cleanup_stale, teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "clean", "build"])
    parser.add_argument("--prefix", default="bl")
    parser.add_argument("--run-id", default="", help="down: only this lab")
    parser.add_argument("--no-aws", action="store_true", help="up: without moto")
    parser.add_argument(
        "--os", action="append", default=[], help="up: the host's release (default debian-13); "
        "build: the releases whose root filesystems to build (repeatable; default all)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "build":
        return _build(args.os or list(RELEASES))
    if args.command == "up":
        os_name = args.os[-1] if args.os else ""
        try:
            print(describe(start_lab(args.prefix, not args.no_aws, detached=True, os_name=os_name)))
        except LabError as error:
            print(f"lab up: {error}", file=sys.stderr)
            return 1
    elif args.command == "down":
        for state in all_states(args.prefix):
            if state.detached and args.run_id in ("", state.run_id):
                teardown(state)
                print(f"{state.name} removed")
    elif args.command == "status":
        for state in all_states(args.prefix):
            print(describe_state(state))
    else:
        with labs_lock():
            for name in cleanup_stale(args.prefix):
                print(f"{name} removed (stale)")
    return 0


def _build(releases: list[str]) -> int:
    """Build the root filesystems side by side (each mostly waits on the mirror)."""
    with ThreadPoolExecutor(max_workers=len(releases)) as pool:
        futures = {name: pool.submit(os_root, name) for name in releases}
    failed = 0
    for name, future in futures.items():
        try:
            print(f"{name}: {future.result()}")
        except LabBuildError as error:
            print(f"{name}: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
