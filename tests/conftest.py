"""Session fixtures shared by every test folder: the network lab, and moto on its own.

Only session scope here: a lab takes seconds to start, so the tests share one per release
and restart its host (`lab.restart_host()`) where they need a pristine one.

Which releases a test's lab host runs: the host and e2e tests run on each release CI proves
(Debian 13 and 12), the others on Debian 13; a module may name its own in `LAB_OSES`.
`BASTION_LAB_OS=debian-12` runs every lab test on that release only.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lab import AwsAccount, Lab, MotoServer, running_lab, seed_account, unavailable_reason
from tests.lab import aws_env as make_aws_env
from tests.lab.lab import LAB_OS_ENV, proven_oses

DEFAULT_OSES = ("debian-13",)
EACH_RELEASE = ("host", "e2e")  # the test folders run on every proven release


def lab_oses(module: object, path: Path) -> tuple[str, ...]:
    """The releases a test module's lab runs, first one first."""
    chosen = os.environ.get(LAB_OS_ENV)
    if chosen:
        return (chosen,)
    named = getattr(module, "LAB_OSES", None)
    if named is not None:
        return tuple(named)
    folder = path.parent.name
    return proven_oses() if folder in EACH_RELEASE else DEFAULT_OSES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "lab" in metafunc.fixturenames:
        oses = lab_oses(metafunc.module, metafunc.definition.path)
        metafunc.parametrize("lab_os", oses, indirect=True, scope="session")


@pytest.fixture(scope="session")
def lab_os(request: pytest.FixtureRequest) -> str:
    """The release the lab host runs (a parameter of every test that uses `lab`)."""
    return str(request.param)


@pytest.fixture(scope="session")
def lab(lab_os: str) -> Iterator[Lab]:
    """A running lab (host, warehouse, moto) on `lab_os`, shared by the session; skipped
    without root."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_lab(os_name=lab_os) as running:
        yield running


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto on loopback, without the network lab (for the AWS code's tests)."""
    server = MotoServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def aws_account(moto_server: MotoServer) -> AwsAccount:
    """What moto_server was seeded with: a VPC, subnets, a Redshift cluster `prod`."""
    return seed_account(moto_server.endpoint)


@pytest.fixture(scope="session")
def moto_endpoint(moto_server: MotoServer, aws_account: AwsAccount) -> str:
    """http://127.0.0.1:<port> of the seeded moto_server."""
    return moto_server.endpoint


@pytest.fixture(scope="session")
def aws_env(moto_endpoint: str) -> dict[str, str]:
    """Environment pointing boto3 (and `bastion`) at moto_endpoint, never at real AWS."""
    return make_aws_env(moto_endpoint)
