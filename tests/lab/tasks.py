"""invoke tasks for a lab that outlives the command: `invoke lab.up`, `invoke lab.down`.

The top-level tasks.py adds `ns` as its `lab` collection.
"""

from __future__ import annotations

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task


@task(
    help={
        "prefix": "name prefix of the lab's namespaces and folders",
        "aws": "also start moto, seeded like a real account (default: yes)",
        "os": "the release the host boots: debian-13 (default), debian-12 or debian-11",
    }
)
def up(c: Context, prefix: str = "bl", aws: bool = True, os: str = "") -> None:
    """Start a lab that stays up; print its addresses and the env that points bastion at it.

    The first start of each release builds its root filesystem (debootstrap, 1-3 minutes).
    """
    from tests.lab.lab import LabError, start_lab
    from tests.lab.report import describe

    try:
        lab = start_lab(prefix, with_aws=aws, detached=True, os_name=os)
    except LabError as error:
        raise Exit(f"lab.up: {error}", code=1) from None
    print(describe(lab))


@task(
    help={
        "prefix": "name prefix of the labs to stop",
        "run_id": "stop only this lab (default: every lab that lab.up started)",
    }
)
def down(c: Context, prefix: str = "bl", run_id: str = "") -> None:
    """Tear down the labs lab.up started: processes, namespaces, links, folders."""
    from tests.lab.state import all_states
    from tests.lab.teardown import teardown

    states = [s for s in all_states(prefix) if s.detached and run_id in ("", s.run_id)]
    if not states:
        print(f"lab.down: no lab of lab.up{f' with run id {run_id}' if run_id else ''} is up")
    for state in states:
        teardown(state)
        print(f"lab.down: {state.name} removed")


ns = Collection("lab", up, down)
