"""Fixtures for verify, doctor and connection: a moto server over HTTP, and the lab host.

AWS tests talk HTTP to a real moto server (boto3 honours AWS_ENDPOINT_URL), so the tool's
code path is the one it takes against AWS. Lab tests configure the session lab host with
`bastion configure` through the CLI, exactly as a user would, before verifying it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


# --- the lab ---------------------------------------------------------------------------

PASSWORD_ENV = "BASTION_TEST_DB_PASSWORD"


@pytest.fixture(scope="session")
def tunnel_lab(lab: Any) -> Any:
    """The session lab (tests/conftest.py's `lab`)."""
    return lab


def write_lab_config(lab: Any, folder: Path, **warehouse: Any) -> Path:
    """A config for the lab host as a user would write it (provider existing)."""
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(lab.known_hosts())
    tunnel_key = folder / "dbtcloud_ed25519"
    if not tunnel_key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbt-cloud",
                        "-f", str(tunnel_key)], check=True)  # fmt: skip
    values = {
        "kind": "postgres", "host": lab.warehouse_host, "port": lab.warehouse_port,
        "database": lab.db_name, "user": lab.db_user, "password_env": PASSWORD_ENV,
        **warehouse,
    }  # fmt: skip
    lines = "\n".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
    config = folder / "bastion.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            name = "lab"
            [aws]
            region = "us-east-1"
            [bastion]
            provider = "existing"
            address = "{lab.bastion_address}"
            ssh_port = {lab.ssh_port}
            admin_user = "{lab.admin_user}"
            admin_key = "{lab.admin_key}"
            admin_cidrs = ["{lab.operator_address}/32"]
            known_hosts = "{known_hosts}"
            [tunnel]
            user = "dbtcloud"
            public_keys = [{json.dumps(tunnel_key.with_suffix(".pub").read_text().strip())}]
            [warehouse]
            """
        )
        + lines
        + "\n"
    )
    return config


def bastion_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> Any:
    """Run the real `bastion` command line in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args],
        capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="session")
def lab_config(tunnel_lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab host configured by `bastion configure` (once per session)."""
    config = write_lab_config(tunnel_lab, tmp_path_factory.mktemp("tunnel"))
    configure(config)
    return config


def configure(config: Path) -> None:
    """`bastion configure`, retried twice: right after sshd's SIGHUP re-exec, its port is
    briefly closed and configure's confirming login can be refused (then it rolls back)."""
    for _ in range(3):
        done = bastion_cli("configure", "-c", str(config))
        if done.returncode == 0:
            return
        if "fresh admin login failed" not in done.stderr:
            break
    raise AssertionError(done.stderr)


@pytest.fixture
def configured(tunnel_lab: Any, lab_config: Path) -> Path:
    """The configured host, re-converged before each test (a test may have broken it).

    known_hosts is rewritten from the lab first: another test may have restarted the host,
    which gives it new host keys.
    """
    (lab_config.parent / "known_hosts").write_text(tunnel_lab.known_hosts())
    configure(lab_config)
    return lab_config


@pytest.fixture
def with_password(tunnel_lab: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv(PASSWORD_ENV, tunnel_lab.db_password)
    return {PASSWORD_ENV: tunnel_lab.db_password}


KEYS_DIR = "$(getent passwd dbtcloud | cut -d: -f6)/.ssh"


def managed_keys(lab: Any) -> str:
    """The managed file's bytes (hashed on the host) and whether verify's file exists."""
    done = lab.host_exec(
        f'cd {KEYS_DIR} && sha256sum authorized_keys && ls -a . | grep -c "authorized_keys.verify" || true'
    )
    return done.stdout


@pytest.fixture
def untouched_keys(tunnel_lab: Any, configured: Path) -> Iterator[None]:
    """Fail the test unless authorized_keys is byte-identical and verify's file is gone after it."""
    before = managed_keys(tunnel_lab)
    assert before.splitlines()[-1].strip() == "0", before
    yield
    after = managed_keys(tunnel_lab)
    assert after == before
