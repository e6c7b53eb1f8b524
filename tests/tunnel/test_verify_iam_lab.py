"""verify with warehouse.auth = "iam": temporary credentials from Redshift (moto over HTTP),
used to log in to the lab database through the tunnel.

moto's get_cluster_credentials returns DbUser "IAM:<user>" and a random DbPassword. Seeding
moto's random generator makes that password known in advance, so the lab database can hold
a role "IAM:dbt" with exactly the password the tool will be given.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from tests.tunnel.conftest import bastion_cli, write_lab_config

pytestmark = pytest.mark.lab
CLUSTER = "prod"


def seed_moto(url: str, seed: int) -> None:
    request = urllib.request.Request(f"{url}/moto-api/seed?a={seed}", method="POST")  # noqa: S310
    urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - moto on loopback


def superuser(lab: Any) -> psycopg.Connection[Any]:
    """PostgreSQL's own superuser over its unix socket (a file: no network namespace involved)."""
    warehouse = lab._warehouse
    return psycopg.connect(
        host=str(warehouse.socket_dir), port=warehouse.port, user="postgres",
        dbname="postgres", autocommit=True,
    )  # fmt: skip


@pytest.fixture
def iam_config(configured: Path, tunnel_lab: Any, tmp_path: Path, moto_env: str) -> Path:
    """The same host and warehouse, as a Redshift cluster `prod` with IAM auth."""
    boto3.client("redshift").create_cluster(
        ClusterIdentifier=CLUSTER, NodeType="ra3.xlplus", MasterUsername="admin",
        MasterUserPassword="Lab-only-1", ClusterType="single-node", DBName=tunnel_lab.db_name,
    )  # fmt: skip
    config = write_lab_config(
        tunnel_lab, tmp_path, kind="redshift", redshift_cluster=CLUSTER, auth="iam"
    )
    return config


@pytest.fixture
def iam_role(tunnel_lab: Any, moto_env: str) -> Iterator[tuple[str, str]]:
    """Learn the credentials moto will hand out after seed 7, and make the database accept them."""
    seed_moto(moto_env, 7)
    answer = boto3.client("redshift").get_cluster_credentials(
        DbUser=tunnel_lab.db_user, DbName=tunnel_lab.db_name, ClusterIdentifier=CLUSTER,
        DurationSeconds=900, AutoCreate=False,
    )  # fmt: skip
    user, password = answer["DbUser"], answer["DbPassword"]
    with superuser(tunnel_lab) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(password)
            )
        )
    try:
        yield user, password
    finally:
        with superuser(tunnel_lab) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))


def test_iam_credentials_log_in_through_the_tunnel(
    iam_config: Path, iam_role: tuple[str, str], moto_env: str, untouched_keys: None
) -> None:
    user, password = iam_role
    seed_moto(moto_env, 7)  # the tool's get_cluster_credentials now returns that password
    done = bastion_cli("verify", "-c", str(iam_config), "--json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    database = document["verify"]["hops"][3]
    assert database["ok"]
    assert database["detail"].startswith(f"logged in as {user} (redshift IAM)")
    assert document["verify"]["login_tested"] is True
    assert password not in done.stdout + done.stderr


def test_other_iam_credentials_are_refused_by_the_database(
    iam_config: Path, iam_role: tuple[str, str], moto_env: str, untouched_keys: None
) -> None:
    user, _ = iam_role
    seed_moto(moto_env, 8)  # another password than the role has
    done = bastion_cli("verify", "-c", str(iam_config), "--json")
    assert done.returncode == 3
    hop = json.loads(done.stdout)["verify"]["hops"][3]
    assert hop == {**hop, "name": "database", "ok": False}
    assert hop["detail"] == f'password authentication failed for user "{user}"'
