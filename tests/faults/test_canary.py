"""No secret is ever shown: canaries in every secret-bearing place, looked for everywhere.

The canaries: the database password (in the variable warehouse.password_env names), a
wrong password there, a password put where the variable's NAME belongs, and a secret that
reaches a refused field through `${VAR}`. Every command runs with them, on its success and
its failure paths; stdout, stderr, the --json document, every file in the config's folder
and the files the tool writes on the host must hold none of them.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bastion.cli.app import main
from tests.lab import Lab, bastion_toml

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "canary"
WRONG_PASSWORD = f"Canary-Wrong-{secrets.token_hex(8)}"
MISPLACED = f"CanaryPassw0rd{secrets.token_hex(6)}"  # a password where a variable's name belongs
FROM_ENV = f"canary-{secrets.token_hex(8)}"
HOST_PLACES = "/etc/ssh /var/lib/dbt-bastion /home /etc/passwd /etc/group"

COMMANDS = [
    ("up",),
    ("plan",),
    ("verify",),
    ("status",),
    ("doctor",),
    ("configure",),
    ("keys", "list"),
    ("connection",),
    ("connection", "--format", "profiles"),
    ("connection", "--format", "json"),
    ("provision",),
    ("iam-policy",),
    ("ips",),
]
READ_CONFIG = [command for command in COMMANDS if command != ("ips",)]  # ips lists built-in data


@dataclass
class World:
    lab: Lab
    folder: Path
    good: str

    @property
    def config(self) -> Path:
        return self.folder / "bastion.toml"

    def canaries(self) -> list[str]:
        return [self.lab.db_password, WRONG_PASSWORD, MISPLACED, FROM_ENV]


@pytest.fixture(scope="module")
def world(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    lab.restart_host()
    folder = tmp_path_factory.mktemp("canary")
    patch = pytest.MonkeyPatch()
    for key, value in lab.aws_env().items():
        patch.setenv(key, value)
    patch.setenv("DBT_ENV_SECRET_PASSWORD", lab.db_password)
    patch.chdir(folder)
    found = World(lab, folder, bastion_toml(lab, NAME))
    found.config.write_text(found.good)
    try:
        yield found
    finally:
        patch.undo()
        lab.restart_host()


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Everything the command printed (stdout with its JSON, and stderr) and its exit code."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(list(args))
    captured = capsys.readouterr()
    return int(exited.value.code or 0), captured.out + captured.err


def assert_nowhere(world: World, printed: str) -> None:
    for canary in world.canaries():
        assert canary not in printed, "a secret was printed"
        for path in world.folder.rglob("*"):
            if path.is_file():
                assert canary not in path.read_text(errors="replace"), f"a secret in {path}"
        found = world.lab.host_exec(f"grep -rlF -- {canary} {HOST_PLACES}")
        assert found.stdout.strip() == "", f"a secret on the host: {found.stdout}"


@pytest.mark.parametrize("json_mode", [True, False], ids=["json", "text"])
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_the_password_is_never_shown(
    world: World, capsys: pytest.CaptureFixture[str], command: tuple[str, ...], json_mode: bool
) -> None:
    code, printed = run(
        capsys, *command, "-c", str(world.config), *(["--json"] if json_mode else [])
    )
    assert code == 0, printed
    assert_nowhere(world, printed)


@pytest.mark.parametrize("command", [("verify",), ("doctor",), ("up",)], ids=" ".join)
def test_a_wrong_password_fails_the_login_and_is_never_shown(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: tuple[str, ...],
) -> None:
    monkeypatch.setenv("DBT_ENV_SECRET_PASSWORD", WRONG_PASSWORD)
    code, printed = run(capsys, *command, "-c", str(world.config), "--json")
    assert code == 3, printed
    assert "database" in printed
    assert_nowhere(world, printed)


@pytest.mark.parametrize("command", READ_CONFIG, ids=" ".join)
def test_a_password_where_the_variable_name_belongs_is_refused_unshown(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path, command: tuple[str, ...]
) -> None:
    config = tmp_path / "bastion.toml"
    config.write_text(
        world.good.replace("[warehouse]", f'[warehouse]\npassword_env = "{MISPLACED}"')
    )
    code, printed = run(capsys, *command, "-c", str(config), "--json")
    assert code == 4, printed
    assert "warehouse.password_env" in printed
    assert_nowhere(world, printed)


@pytest.mark.parametrize("command", [("up",), ("plan",), ("connection",)], ids=" ".join)
def test_a_secret_from_the_environment_in_a_refused_field_is_never_shown(
    world: World,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: tuple[str, ...],
) -> None:
    monkeypatch.setenv("DB_HOST", f"db;{FROM_ENV}")
    config = tmp_path / "bastion.toml"
    host_line = f'host = "{world.lab.warehouse_host}"'
    config.write_text(world.good.replace(host_line, 'host = "${DB_HOST}"'))
    code, printed = run(capsys, *command, "-c", str(config), "--json")
    assert code == 4, printed
    assert "warehouse.host" in printed
    assert_nowhere(world, printed)
