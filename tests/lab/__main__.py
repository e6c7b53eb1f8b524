"""`python -m tests.lab up|down|status|clean`: the lab without invoke."""

from __future__ import annotations

import argparse
import sys

from tests.lab.lab import LabError, start_lab
from tests.lab.report import describe, describe_state
from tests.lab.state import all_states, labs_lock
from tests.lab.teardown import cleanup_stale, teardown


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "clean"])
    parser.add_argument("--prefix", default="bl")
    parser.add_argument("--run-id", default="", help="down: only this lab")
    parser.add_argument("--no-aws", action="store_true", help="up: without moto")
    parser.add_argument("--os", default="", help="up: debian-13 (default), debian-12, debian-11")
    args = parser.parse_args(argv)
    if args.command == "up":
        try:
            print(describe(start_lab(args.prefix, not args.no_aws, detached=True, os_name=args.os)))
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


if __name__ == "__main__":
    sys.exit(main())
