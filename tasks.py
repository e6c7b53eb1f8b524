"""Developer tasks: `invoke --list`. The README's test command is `invoke test`."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke.collection import Collection
from invoke.context import Context
from invoke.tasks import task

PY = sys.executable


@task
def lint(c: Context) -> None:
    """ruff and mypy over the package, tests and tasks; the layer contract (pyproject.toml)."""
    c.run(f"{PY} -m ruff check bastion tests demo bench tasks.py", pty=False)
    c.run(f"{PY} -m mypy", pty=False)
    c.run(f"{Path(PY).parent / 'lint-imports'}", pty=False)


@task(pre=[lint])
def test(c: Context, k: str = "", lab: bool = True) -> None:
    """Lint, then every test, the lab ones included (they need root)."""
    marker = "" if lab else "-m 'not lab and not e2e'"
    select = f"-k {k!r}" if k else ""
    c.run(f"{PY} -m pytest {marker} {select}", pty=False)


@task(help={"os": "the release the lab host boots: debian-13 (default), debian-12, debian-11"})
def demo(c: Context, os: str = "") -> None:
    """The whole job end to end on a local lab: up, up again (no changes), doctor, teardown."""
    c.run(f"{PY} demo/run.py" + (f" --os {os}" if os else ""), pty=False)


@task
def iam_policy(c: Context) -> None:
    """Regenerate docs/iam-policy.json from docs/iam-policy.example.toml (a test keeps them equal)."""
    c.run(
        f"{PY} -m bastion iam-policy -c docs/iam-policy.example.toml --account 123456789012"
        " > docs/iam-policy.json",
        pty=False,
    )


from bench.tasks import bench  # noqa: E402  (the benchmark lives beside its peer playbook)

ns = Collection(lint, test, demo, iam_policy, bench)
try:
    from tests.lab.tasks import ns as lab_ns
except ImportError:  # the lab package is part of the checkout; this guards partial installs
    lab_ns = None
if lab_ns is not None:
    ns.add_collection(lab_ns, name="lab")
