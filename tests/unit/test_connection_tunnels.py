"""`bastion connection [--tunnel USER]`: each tunnel user's form (dbt Cloud's page, or the SSH
tunnel fields of Fivetran, Hightouch, Stitch, a custom tool); one tunnel user answers exactly
as before, several add a `tunnels` object and keep the first user's fields where they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.cli.app import main
from bastion.cli.common import envelope
from tests.e2e.cli import run_json
from tests.host.conftest import several_tools_config, write_config

TABLES = {
    "dbtcloud": '[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n',
    "dbtcloud2": '[tunnels.dbtcloud2]\nvendor = "dbt_cloud"\nregions = ["emea"]\n',
    "fivetran": '[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n',
    "hightouch": '[tunnels.hightouch]\nvendor = "hightouch"\nregions = ["us-east-1"]\n',
    "stitch": '[tunnels.stitch]\nvendor = "stitch"\nregions = ["na"]\n',
    "tunnel": '[tunnels.tunnel]\nvendor = "custom"\nextra_cidrs = ["192.0.2.0/28"]\n',
}
ONE_TOOL_TUNNEL = {"hostname": "203.0.113.10", "port": 22, "username": "dbtcloud"}


def config(folder: Path, *users: str) -> Path:
    tables = "\n".join(TABLES[user] for user in users)
    return several_tools_config(folder, "\n" + tables, extra_bastion="ssh_port = 2222")


def text_of(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["connection", *args, "-c", str(config)])
    return int(exited.value.code or 0), capsys.readouterr().out


def test_one_tool_form_answers_exactly_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path)
    code, document = run_json(path, capsys, "connection")
    assert code == 0, document
    assert set(document) == {*envelope("connection"), "connection", "profiles_yml"}
    assert set(document["connection"]) == {"warehouse", "ssh_tunnel"}
    assert document["connection"]["ssh_tunnel"] == ONE_TOOL_TUNNEL
    assert document["connection"]["warehouse"]["username"] == "dbt"
    assert "dbtcloud@203.0.113.10" in document["profiles_yml"]
    code, text = text_of(path, capsys)
    assert code == 0
    assert text.splitlines()[0] == "Connection type: Postgres"
    assert "SSH tunnel username: dbtcloud" in text.splitlines()
    assert "(dbt Cloud)" not in text


def test_several_users_add_tunnels_and_keep_the_first_users_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "dbtcloud", "fivetran")
    code, document = run_json(path, capsys, "connection")
    assert code == 0, document
    tunnels = document["tunnels"]
    assert list(tunnels) == ["dbtcloud", "fivetran"]
    assert [t["vendor"] for t in tunnels.values()] == ["dbt_cloud", "fivetran"]
    first = {k: v for k, v in tunnels["dbtcloud"].items() if k != "vendor"}
    assert document["connection"] == first
    assert tunnels["fivetran"]["ssh_tunnel"] == {
        "hostname": "203.0.113.10", "port": 2222, "username": "fivetran", "require_tls": None}  # fmt: skip
    assert tunnels["fivetran"]["warehouse"] == {
        "type": "postgres", "hostname": "10.0.2.10", "port": 5432, "database": "analytics"}  # fmt: skip
    assert "dbtcloud@203.0.113.10" in document["profiles_yml"]


def test_fivetran_gets_its_ssh_tunnel_fields_and_tls_is_left_to_the_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = text_of(config(tmp_path, "dbtcloud", "fivetran"), capsys)
    assert code == 0
    dbt, fivetran = text.split("\n\n")
    assert dbt.splitlines()[0] == "dbtcloud (dbt Cloud):"
    assert "  SSH tunnel username: dbtcloud" in dbt.splitlines()
    assert fivetran.splitlines() == [
        "fivetran (Fivetran):",
        "  Host: 10.0.2.10",
        "  Port: 5432",
        "  Database: analytics",
        "  Connection method: Connect via an SSH tunnel",
        "  SSH host: 203.0.113.10",
        "  SSH port: 2222",
        "  SSH user: fivetran",
        "  Require TLS through tunnel: yours to choose (on if the warehouse requires TLS)",
    ]


@pytest.mark.parametrize(("user", "label"),
                         [("hightouch", "Hightouch"), ("stitch", "Stitch"), ("tunnel", "custom")])  # fmt: skip
def test_other_tools_get_host_port_and_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], user: str, label: str
) -> None:
    path = config(tmp_path, "dbtcloud", user)
    code, text = text_of(path, capsys, "--tunnel", user)
    assert code == 0
    assert text.splitlines()[0] == f"{user} ({label}):"
    assert {"  SSH host: 203.0.113.10", "  SSH port: 2222", f"  SSH user: {user}"} <= set(
        text.splitlines()
    )
    assert "TLS" not in text and "dbtcloud" not in text
    code, document = run_json(path, capsys, "connection", "--tunnel", user)
    assert list(document["tunnels"]) == [user]
    assert document["connection"]["ssh_tunnel"] == {
        "hostname": "203.0.113.10", "port": 2222, "username": user}  # fmt: skip


def test_a_first_user_of_another_vendor_keeps_its_place_and_profiles_are_dbts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, "fivetran", "dbtcloud")
    code, document = run_json(path, capsys, "connection")
    assert code == 0
    assert document["connection"]["ssh_tunnel"]["username"] == "fivetran"
    assert "dbtcloud@203.0.113.10" in document["profiles_yml"]
    code, text = text_of(path, capsys, "--format", "profiles")
    assert code == 0 and "analytics:\n  target: prod" in text
    assert "dbtcloud@203.0.113.10" in text


@pytest.mark.parametrize(
    ("users", "argv", "message"),
    [
        (("dbtcloud", "fivetran"), ("--tunnel", "fivetran", "--format", "profiles"),
         "no tunnel user here has vendor dbt_cloud (fivetran: Fivetran)"),
        (("dbtcloud", "dbtcloud2"), ("--format", "profiles"),
         "several dbt Cloud tunnel users (dbtcloud, dbtcloud2): name one with --tunnel USER"),
        (("dbtcloud", "fivetran"), ("--tunnel", "stitch"),
         "(its tunnel users: dbtcloud, fivetran)"),
    ],
)  # fmt: skip
def test_refused_selections_are_exit_4(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    users: tuple[str, ...],
    argv: tuple[str, ...],
    message: str,
) -> None:
    code, document = run_json(config(tmp_path, *users), capsys, "connection", *argv)
    assert code == 4 and document["error"]["kind"] == "input"
    assert message in document["error"]["message"]


def test_profiles_of_a_named_dbt_user(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = config(tmp_path, "dbtcloud", "dbtcloud2")
    code, text = text_of(path, capsys, "--format", "profiles", "--tunnel", "dbtcloud2")
    assert code == 0 and "dbtcloud2@203.0.113.10" in text
    code, text = text_of(path, capsys, "--format", "json", "--tunnel", "dbtcloud2")
    assert code == 0 and '"dbtcloud2"' in text and '"dbtcloud"' not in text
