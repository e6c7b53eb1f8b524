"""Session fixtures shared by every test folder: the network lab, and moto on its own.

Only session scope here: a lab takes seconds to start, so the tests share one and restart
its host (`lab.restart_host()`) where they need a pristine one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab import AwsAccount, Lab, MotoServer, running_lab, seed_account, unavailable_reason
from tests.lab import aws_env as make_aws_env


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """A running lab (host, warehouse, moto), shared by the session; skipped without root."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_lab() as running:
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
