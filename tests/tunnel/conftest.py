"""Fixtures for verify, doctor and connection: a moto server over HTTP, and the lab host.

AWS tests talk HTTP to a real moto server (boto3 honours AWS_ENDPOINT_URL), so the tool's
code path is the one it takes against AWS. Lab tests configure the session lab host with
`bastion configure` through the CLI, exactly as a user would, before verifying it.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tunnel.aws_world import AwsWorld, free_port, provision


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_env(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A reset moto and an environment that sends every boto3 call to it."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - moto on loopback
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    return moto_url


@pytest.fixture
def aws_world(moto_env: str, tmp_path: Path) -> AwsWorld:
    """A bastion provisioned by bastion itself into a seeded VPC in moto."""
    return provision(tmp_path)
