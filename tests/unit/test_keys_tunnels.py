"""`bastion keys list|add|remove --tunnel USER`: with several tunnel users each command works
on one user's keys (its table of the config, its authorized_keys on the host); the one-tool
form behaves and answers as it always did."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bastion.config.keys import parse_public_key
from bastion.config.settings import Settings, load
from bastion.endpoint import Endpoint
from bastion.host.fact_sections import parse_facts
from bastion.host.facts import HostFacts
from bastion.host.plan import build_plan
from bastion.host.sessions import Session, SessionReport
from tests.e2e.cli import run_json
from tests.host.conftest import make_key, recorded, several_tools_config, write_config
from tests.host.test_tunnels import _converged

WAREHOUSE = Endpoint("10.0.2.10", 5432)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

SEVERAL_TABLES = """\

# dbt Cloud's production account
[tunnels.dbtcloud]
vendor = "dbt_cloud"
regions = ["us"]
{dbt_keys}

{fivetran_header}  # Fivetran, group "warehouse"
vendor = "fivetran"
regions = ["gcp-us-east4"]
{fivetran_keys}
client_alive_interval = 60
"""


def pub(folder: Path, name: str) -> str:
    """A real public key line whose comment is `name` (two folders: two keys, one comment)."""
    folder.mkdir(parents=True, exist_ok=True)
    return make_key(folder, name).with_suffix(".pub").read_text().strip()


def quoted(*keys: str) -> str:
    return ", ".join(f'"{k}"' for k in keys)


def several(
    folder: Path,
    dbt_keys: tuple[str, ...] | None = (),
    fivetran_keys: tuple[str, ...] = (),
    fivetran_header: str = "[tunnels.fivetran]",
) -> Path:
    """A config with two tunnel users; dbt_keys None: its table has no public_keys."""
    dbt = "" if dbt_keys is None else f"public_keys = [{quoted(*dbt_keys)}]  # rotated by hand"
    return several_tools_config(folder, SEVERAL_TABLES.format(
        dbt_keys=dbt,
        fivetran_header=fivetran_header,
        fivetran_keys=f"public_keys = [{quoted(*fivetran_keys)}]",
    ))  # fmt: skip


def comments(config: Path, user: str) -> list[str]:
    return [k.comment for k in load(config, environ={}).tunnels[user].configured_keys()]


# --- keys add ------------------------------------------------------------------------------


def test_add_with_tunnel_writes_that_users_table_only_and_keeps_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),), fivetran_keys=())
    new = pub(tmp_path, "fivetran-2026-12")
    code, document = run_json(config, capsys, "keys", "add", new, "--tunnel", "fivetran",
                              "--no-apply")  # fmt: skip
    assert code == 0, document
    assert document["tunnel"] == "fivetran"
    assert document["added"] == [parse_public_key(new).fingerprint]
    assert comments(config, "fivetran") == ["fivetran-2026-12"]
    assert comments(config, "dbtcloud") == ["dbt-1"]
    text = config.read_text()
    for kept in ("# dbt Cloud's production account", "# rotated by hand",
                 '# Fivetran, group "warehouse"', "client_alive_interval = 60"):  # fmt: skip
        assert kept in text


def test_add_into_a_table_without_public_keys_lands_in_that_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=None, fivetran_keys=(pub(tmp_path, "ft-1"),))
    code, _ = run_json(config, capsys, "keys", "add", pub(tmp_path, "dbt-1"), "--tunnel",
                       "dbtcloud", "--no-apply")  # fmt: skip
    assert code == 0
    assert comments(config, "dbtcloud") == ["dbt-1"]
    assert comments(config, "fivetran") == ["ft-1"]
    text = config.read_text()
    assert text.index("[tunnels.dbtcloud]") < text.index("dbt-1") < text.index("[tunnels.fivetran]")


@pytest.mark.parametrize(
    "header", ['[tunnels."fivetran"]', "[ tunnels . fivetran ]", "[tunnels.'fivetran']"]
)
def test_add_finds_the_table_however_its_header_is_spelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], header: str
) -> None:
    config = several(tmp_path, fivetran_keys=(pub(tmp_path, "ft-1"),), fivetran_header=header,
                     dbt_keys=(pub(tmp_path, "dbt-1"),))  # fmt: skip
    code, _ = run_json(config, capsys, "keys", "add", pub(tmp_path, "ft-2"), "--tunnel",
                       "fivetran", "--no-apply")  # fmt: skip
    assert code == 0
    assert comments(config, "fivetran") == ["ft-1", "ft-2"]
    assert comments(config, "dbtcloud") == ["dbt-1"]


def test_add_to_a_users_keys_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),))
    keys_file = tmp_path / "fivetran_keys.pub"
    keys_file.write_text("# Fivetran's group key\n")
    config.write_text(config.read_text().replace(
        "public_keys = []\n", 'keys_file = "fivetran_keys.pub"\n'))  # fmt: skip
    before = config.read_text()
    key = pub(tmp_path, "ft")
    code, _ = run_json(config, capsys, "keys", "add", key, "--tunnel", "fivetran", "--no-apply")
    assert code == 0
    assert keys_file.read_text().splitlines() == ["# Fivetran's group key", key]
    assert config.read_text() == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "2 tunnel users (dbtcloud, fivetran): name one with --tunnel USER"),
        (("--tunnel", "hightouch"), "(its tunnel users: dbtcloud, fivetran)"),
    ],
)
def test_add_without_a_known_tunnel_is_exit_4_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),))
    before = config.read_text()
    code, document = run_json(config, capsys, "keys", "add", pub(tmp_path, "x"), *argv,
                              "--no-apply")  # fmt: skip
    assert code == 4 and document["error"]["kind"] == "input"
    assert message in document["error"]["message"]
    assert config.read_text() == before


def test_one_tool_form_answers_as_before(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, public_keys=[pub(tmp_path, "dbt-1")])
    key = pub(tmp_path, "dbt-2")
    code, document = run_json(config, capsys, "keys", "add", key, "--no-apply")
    assert code == 0
    assert "tunnel" not in document
    assert document["added"] == [parse_public_key(key).fingerprint]
    assert comments(config, "dbtcloud") == ["dbt-1", "dbt-2"]
    assert "[tunnel]" in config.read_text() and "[tunnels" not in config.read_text()
    code, document = run_json(config, capsys, "keys", "add", key, "--no-apply", "--tunnel",
                              "dbtcloud")  # fmt: skip
    assert code == 0 and document["added"] == []


# --- keys remove ---------------------------------------------------------------------------


def test_remove_by_comment_touches_only_the_named_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dbt_rotating = pub(tmp_path / "a", "rotating")
    ft_rotating = pub(tmp_path / "b", "rotating")
    config = several(tmp_path, dbt_keys=(dbt_rotating, pub(tmp_path, "dbt-new")),
                     fivetran_keys=(ft_rotating, pub(tmp_path, "ft-new")))  # fmt: skip
    code, document = run_json(config, capsys, "keys", "remove", "rotating", "--tunnel",
                              "fivetran", "--no-apply")  # fmt: skip
    assert code == 0, document
    assert document["tunnel"] == "fivetran"
    assert document["removed"] == [parse_public_key(ft_rotating).fingerprint]
    assert comments(config, "fivetran") == ["ft-new"]
    assert comments(config, "dbtcloud") == ["rotating", "dbt-new"]


def test_remove_needs_tunnel_with_several_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "a"), pub(tmp_path, "b")))
    code, document = run_json(config, capsys, "keys", "remove", "a", "--no-apply")
    assert code == 4 and "--tunnel USER" in document["error"]["message"]
    assert comments(config, "dbtcloud") == ["a", "b"]


def test_remove_of_another_users_key_is_no_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"), pub(tmp_path, "dbt-2")),
                     fivetran_keys=(pub(tmp_path, "ft-1"),))  # fmt: skip
    code, document = run_json(config, capsys, "keys", "remove", "dbt-1", "--tunnel", "fivetran",
                              "--no-apply")  # fmt: skip
    assert code == 4
    assert "no tunnel key of fivetran matches 'dbt-1'" in document["error"]["message"]
    assert comments(config, "dbtcloud") == ["dbt-1", "dbt-2"]


def test_remove_of_a_users_last_key_names_the_user_and_its_vendor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"), pub(tmp_path, "dbt-2")),
                     fivetran_keys=(pub(tmp_path, "ft-1"),))  # fmt: skip
    code, document = run_json(config, capsys, "keys", "remove", "ft-1", "--tunnel", "fivetran",
                              "--no-apply")  # fmt: skip
    assert code == 4
    assert document["error"]["message"].startswith(
        "that is the last tunnel key of fivetran: Fivetran could no longer connect"
    )
    assert comments(config, "fivetran") == ["ft-1"]


# --- keys list -----------------------------------------------------------------------------


def test_list_offline_names_each_keys_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),),
                     fivetran_keys=(pub(tmp_path, "ft-1"), pub(tmp_path, "ft-2")))  # fmt: skip
    code, document = run_json(config, capsys, "keys", "list", "--offline")
    assert code == 0
    assert [(k["user"], k["comment"], k["where"]) for k in document["keys"]] == [
        ("dbtcloud", "dbt-1", "config"),
        ("fivetran", "ft-1", "config"),
        ("fivetran", "ft-2", "config"),
    ]
    code, document = run_json(config, capsys, "keys", "list", "--offline", "--tunnel", "fivetran")
    assert [(k["user"], k["comment"]) for k in document["keys"]] == [
        ("fivetran", "ft-1"), ("fivetran", "ft-2")]  # fmt: skip


def test_list_table_has_a_user_column_with_several_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bastion.cli.app import main

    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),))
    with pytest.raises(SystemExit) as exited:
        main(["keys", "list", "--offline", "-c", str(config)])
    assert exited.value.code == 0
    err = capsys.readouterr().err
    cells = [[c for c in line.replace("┃", "│").split("│") if c.strip()]
             for line in err.splitlines()]  # fmt: skip
    header = next(row for row in cells if any("fingerprint" in c for c in row))
    assert [c.strip() for c in header[:2]] == ["user", "fingerprint"]
    assert any(row and row[0].strip() == "dbtcloud" for row in cells)
    assert "no key yet for fivetran" in " ".join(err.split())


def test_list_of_the_one_tool_form_has_no_user_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, public_keys=[pub(tmp_path, "dbt-1")])
    code, document = run_json(config, capsys, "keys", "list", "--offline")
    assert code == 0
    assert [sorted(k) for k in document["keys"]] == [
        ["api", "bits", "comment", "fingerprint", "last_login", "type", "where"]
    ]


# --- the host side, with a stand-in for the one admin connection ---------------------------


def login(user: str, key: str, hours_ago: float, address: str = "52.45.144.63") -> Session:
    start = NOW - timedelta(hours=hours_ago)
    return Session(user=user, address=address, port=40000, source="dbt Cloud us",
                   key=parse_public_key(key).fingerprint, key_type="ED25519", key_comment="",
                   start=start, end=start + timedelta(minutes=5), ended="disconnected",
                   seconds=300.0, forwards={}, verify_key=False)  # fmt: skip


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the host holds: each user's authorized_keys lines and sshd's logins."""
    state: dict[str, Any] = {"authorized_keys": {}, "sessions": [], "reads": 0}

    @contextmanager
    def admin(target: object, accept_new: bool = False) -> Iterator[object]:
        yield object()

    def read_logins(
        settings: Settings,
        conn: object,
        *,
        since_seconds: int | None = None,
        with_ends: bool = False,
        need_log: bool = True,
    ) -> tuple[object, SessionReport]:
        state["reads"] += 1
        state["with_ends"], state["need_log"] = with_ends, need_log
        keys = {u: "\n".join(lines) + "\n" for u, lines in state["authorized_keys"].items()}
        report = SessionReport(sessions=list(state["sessions"]), refused=[], now=NOW,
                               source="journal", forwards_logged=True)  # fmt: skip
        return SimpleNamespace(authorized_keys=keys), report

    monkeypatch.setattr("bastion.pipeline.keys.locate", lambda settings, host=None: object())
    monkeypatch.setattr("bastion.pipeline.keys.admin", admin)
    monkeypatch.setattr("bastion.pipeline.keys.read_logins", read_logins)
    return state


def test_list_reads_each_users_keys_and_last_login_as_that_user(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: dict[str, Any]
) -> None:
    shared = pub(tmp_path, "shared")
    dbt_only, on_host = pub(tmp_path, "dbt-1"), pub(tmp_path, "ft-by-hand")
    config = several(tmp_path, dbt_keys=(dbt_only, shared), fivetran_keys=(shared,))
    host["authorized_keys"] = {"dbtcloud": [dbt_only], "fivetran": [shared, on_host]}
    host["sessions"] = [login("dbtcloud", shared, 1), login("fivetran", shared, 30)]
    code, document = run_json(config, capsys, "keys", "list")
    assert code == 0, document
    rows = {(k["user"], k["comment"]): k for k in document["keys"]}
    assert {u_c: r["where"] for u_c, r in rows.items()} == {
        ("dbtcloud", "dbt-1"): "both",
        ("dbtcloud", "shared"): "config",
        ("fivetran", "shared"): "both",
        ("fivetran", "ft-by-hand"): "host",
    }
    assert rows[("dbtcloud", "shared")]["last_login"]["time"] == "2026-11-30T11:00:00Z"
    assert rows[("fivetran", "shared")]["last_login"]["time"] == "2026-11-29T06:00:00Z"
    assert rows[("fivetran", "shared")]["last_login"]["user"] == "fivetran"
    assert rows[("dbtcloud", "dbt-1")]["last_login"] is None


def test_remove_checks_recent_logins_of_that_user_only(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    host: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared, spare = pub(tmp_path, "shared"), pub(tmp_path, "spare")
    config = several(tmp_path, dbt_keys=(shared, spare), fivetran_keys=(shared, spare))
    host["authorized_keys"] = {"dbtcloud": [shared, spare], "fivetran": [shared, spare]}
    host["sessions"] = [login("dbtcloud", shared, 1)]  # dbt Cloud uses it, Fivetran does not
    applied: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "bastion.cli.keys_remove.apply_to_host",
        lambda console, document, config, host, accept_new, **options: applied.append(options),
    )
    code, document = run_json(config, capsys, "keys", "remove", "shared", "--tunnel", "dbtcloud")
    assert code == 4 and "within the last 24 hours" in document["error"]["message"]
    assert "dbt Cloud's connection" in document["error"]["message"] and not applied

    code, document = run_json(config, capsys, "keys", "remove", "shared", "--tunnel", "fivetran")
    assert code == 0, document
    assert applied == [{"prune": False, "drop": (parse_public_key(shared).fingerprint,)}]
    assert comments(config, "fivetran") == ["spare"]
    assert comments(config, "dbtcloud") == ["shared", "spare"]


def test_remove_refuses_a_key_whose_session_is_still_open_however_long_ago_it_began(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    host: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tunnel open for two days logged in two days ago: still in use; one that began 30
    hours ago and ended an hour ago was in use within the last 24. A key whose last session
    ended 29 hours ago goes without --force. The host's log is read whole, with the sessions'
    ends; with --force a host without a log is no error."""
    old, older, spare = pub(tmp_path, "old"), pub(tmp_path, "older"), pub(tmp_path, "spare")
    lately = pub(tmp_path, "lately")
    config = write_config(tmp_path, public_keys=[old, older, lately, spare])
    host["authorized_keys"] = {"dbtcloud": [old, older, lately, spare]}
    still = replace(login("dbtcloud", old, 48, address="54.81.134.249"), end=None, ended="")
    long = replace(login("dbtcloud", lately, 30), end=NOW - timedelta(hours=1))
    host["sessions"] = [still, login("dbtcloud", older, 29.1), long]
    applied: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "bastion.cli.keys_remove.apply_to_host",
        lambda console, document, config, host, accept_new, **options: applied.append(options),
    )
    code, document = run_json(config, capsys, "keys", "remove", "old")
    assert code == 4, document
    message = document["error"]["message"]
    assert "has a session open since 2026-11-28T12:00:00Z from 54.81.134.249" in message
    assert "would be cut off" in message and not applied and host["with_ends"] and host["need_log"]
    assert comments(config, "dbtcloud") == ["old", "older", "lately", "spare"]

    code, document = run_json(config, capsys, "keys", "remove", "lately")
    assert code == 4, document
    assert ("logged in 2026-11-29T06:00:00Z from 52.45.144.63 (dbt Cloud us) and was in use until "
            "2026-11-30T11:00:00Z, within the last 24 hours") in document["error"]["message"]  # fmt: skip

    code, document = run_json(config, capsys, "keys", "remove", "older")
    assert code == 0, document
    assert comments(config, "dbtcloud") == ["old", "lately", "spare"]

    code, document = run_json(config, capsys, "keys", "remove", "old", "--force")
    assert code == 0, document
    assert comments(config, "dbtcloud") == ["lately", "spare"] and host["need_log"] is False


def test_remove_matches_a_key_on_that_users_host_file_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: dict[str, Any]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),),
                     fivetran_keys=(pub(tmp_path, "ft-1"),))  # fmt: skip
    host["authorized_keys"] = {"dbtcloud": [pub(tmp_path, "by-hand")], "fivetran": []}
    code, document = run_json(config, capsys, "keys", "remove", "by-hand", "--tunnel", "fivetran")
    assert code == 4 and "no tunnel key of fivetran matches" in document["error"]["message"]


def test_prune_that_would_reach_another_users_keys_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], host: dict[str, Any]
) -> None:
    ft = pub(tmp_path, "ft-1")
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),), fivetran_keys=(ft,))
    before = config.read_text()
    host["authorized_keys"] = {"dbtcloud": [pub(tmp_path, "kept-by-hand")], "fivetran": [ft]}
    code, document = run_json(config, capsys, "keys", "remove", "ft-1", "--tunnel", "fivetran",
                              "--prune")  # fmt: skip
    assert code == 4
    message = document["error"]["message"]
    assert "--prune would also remove" in message and "dbtcloud" in message
    assert "kept-by-hand" in message
    assert config.read_text() == before


# --- what the host step then changes -------------------------------------------------------


def test_a_key_added_for_one_user_changes_that_users_authorized_keys_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = several(tmp_path, dbt_keys=(pub(tmp_path, "dbt-1"),),
                     fivetran_keys=(pub(tmp_path, "ft-1"),))  # fmt: skip
    facts: HostFacts = parse_facts(recorded("debian12"))
    host = _converged(load(config, environ={}), facts)
    code, _ = run_json(config, capsys, "keys", "add", pub(tmp_path, "ft-2"), "--tunnel",
                       "fivetran", "--no-apply")  # fmt: skip
    assert code == 0
    changes = build_plan(load(config, environ={}), host, WAREHOUSE).plan.changes
    assert [(c.resource, c.action) for c in changes] == [("authorized_keys", "update")]
    assert "/home/fivetran/.ssh/authorized_keys" in changes[0].detail
    assert "+ " in changes[0].detail and "(ft-2)" in changes[0].detail
