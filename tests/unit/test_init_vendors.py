"""`bastion init --vendor V ...`: the several-tools starter, one commented [tunnels.<user>]
table per vendor, that loads once admin_cidrs (and a custom tool's extra_cidrs) is filled in;
without --vendor the one-tool starter, byte for byte as before."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from bastion.config.settings import load
from bastion.config.starter import STARTER_TUNNELS
from bastion.errors import ConfigError
from bastion.templates import render
from bastion.vendors.sources import VENDORS, source_list
from tests.e2e.cli import run_json
from tests.host.conftest import make_key

COMBINATIONS = [
    combo for size in range(1, len(VENDORS) + 1) for combo in itertools.combinations(VENDORS, size)
]
USERS = {"dbt_cloud": "dbtcloud", "fivetran": "fivetran", "hightouch": "hightouch",
         "stitch": "stitch", "custom": "tunnel"}  # fmt: skip


def init(
    target: Path, capsys: pytest.CaptureFixture[str], *vendors: str, admin: bool = True
) -> tuple[int, dict[str, object]]:
    argv = [arg for vendor in vendors for arg in ("--vendor", vendor)]
    if admin:
        argv += ["--admin-cidr", "198.51.100.7/32"]
    return run_json(target, capsys, "init", *argv)


def fill_in_custom(target: Path) -> None:
    """What the user does for a custom tool: name its network in the table's extra_cidrs."""
    text = target.read_text()
    table = text.index("[tunnels.tunnel]")
    fixed = text[table:].replace("extra_cidrs = []", 'extra_cidrs = ["203.0.113.0/24"]', 1)
    target.write_text(text[:table] + fixed)


@pytest.mark.parametrize("vendors", COMBINATIONS, ids="+".join)
def test_each_vendor_combination_loads_once_filled_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vendors: tuple[str, ...]
) -> None:
    target = tmp_path / "bastion.toml"
    code, document = init(target, capsys, *vendors)
    assert code == 0, document
    assert document["tunnels"] == [USERS[v] for v in vendors]
    if "custom" in vendors:
        with pytest.raises(ConfigError, match=r"tunnels\.tunnel\.extra_cidrs is required"):
            load(target, environ={})
        fill_in_custom(target)
    settings = load(target, environ={})
    assert not settings.one_tool
    assert {u: t.vendor for u, t in settings.tunnels.items()} == {USERS[v]: v for v in vendors}
    for vendor in vendors:
        tunnel = settings.tunnels[USERS[vendor]]
        if vendor == "custom":
            assert tunnel.regions == [] and tunnel.extra_cidrs == ["203.0.113.0/24"]
        else:
            assert len(tunnel.regions) == 1 and tunnel.extra_cidrs == []
            assert source_list(vendor).regions[tunnel.regions[0]].cidrs, "a region with a list"
        assert (tunnel.client_alive_interval, tunnel.client_alive_count_max) == (30, 10)
        assert tunnel.public_keys == [] and tunnel.keys_file is None


def test_the_starter_still_needs_admin_cidrs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    code, _ = init(target, capsys, "fivetran", admin=False)
    assert code == 0
    with pytest.raises(ConfigError, match="admin_cidrs must list at least one"):
        load(target, environ={})


def test_without_vendor_the_one_tool_starter_is_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    code, document = run_json(target, capsys, "init", "--admin-cidr", "198.51.100.7/32")
    assert code == 0 and "tunnels" not in document
    assert target.read_text() == render(
        "bastion.toml.j2", name="analytics", kind="redshift", region="us-east-1",
        provider="aws", admin_cidrs=["198.51.100.7/32"],
    )  # fmt: skip
    assert load(target, environ={}).one_tool


def test_the_several_tools_starter_keeps_the_rest_of_the_one_tool_starter(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, several = tmp_path / "one.toml", tmp_path / "several.toml"
    assert init(one, capsys)[0] == 0 and init(several, capsys, "dbt_cloud")[0] == 0
    shared = one.read_text().split("\n[dbt_cloud]\n")[0]
    assert several.read_text().startswith(shared + "\n")
    assert "[dbt_cloud]" not in several.read_text() and "\n[tunnel]" not in several.read_text()


def test_only_a_vendor_without_a_list_is_marked_required(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    assert init(target, capsys, *VENDORS)[0] == 0
    tables = re.split(r"\n(?=\[tunnels\.)", target.read_text())[1:]
    required = [t.split("]")[0] for t in tables if "REQUIRED" in t]
    assert required == ["[tunnels.tunnel"]
    for table in tables:
        assert "bastion keys add --tunnel" in table and "client_alive_interval = 30" in table


def test_a_vendor_given_twice_is_one_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    code, document = init(target, capsys, "fivetran", "dbt_cloud", "fivetran")
    assert code == 0 and document["tunnels"] == ["fivetran", "dbtcloud"]
    assert list(load(target, environ={}).tunnels) == ["fivetran", "dbtcloud"]


def test_an_unknown_vendor_is_exit_4_naming_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    code, document = init(target, capsys, "dbt_cloud", "airbyte")
    assert code == 4 and document["error"]["kind"] == "input"  # type: ignore[index]
    message = document["error"]["message"]  # type: ignore[index]
    assert message.startswith("--vendor") and all(v in message for v in VENDORS)
    assert not target.exists()


def test_keys_add_edits_a_table_the_starter_wrote(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "bastion.toml"
    assert init(target, capsys, "dbt_cloud", "stitch")[0] == 0
    key = make_key(tmp_path, "stitch-key").with_suffix(".pub").read_text().strip()
    code, document = run_json(target, capsys, "keys", "add", key, "--tunnel", "stitch",
                              "--no-apply")  # fmt: skip
    assert code == 0, document
    tunnels = load(target, environ={}).tunnels
    assert [k.comment for k in tunnels["stitch"].configured_keys()] == ["stitch-key"]
    assert tunnels["dbtcloud"].configured_keys() == []
    assert "# The public keys Stitch shows" in target.read_text()


def test_every_vendor_has_a_starter_table() -> None:
    assert {v: s.user for v, s in STARTER_TUNNELS.items()} == USERS


@pytest.mark.parametrize(
    ("command", "example"),
    [
        (("init",), "bastion init --vendor dbt_cloud --vendor fivetran"),
        (("keys", "add"), "bastion keys add --tunnel fivetran"),
        (("keys", "remove"), "bastion keys remove --tunnel fivetran"),
        (("keys", "list"), "bastion keys list --tunnel fivetran"),
        (("connection",), "bastion connection --tunnel fivetran"),
    ],
)
def test_help_teaches_the_several_tools_options_with_an_example(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...], example: str
) -> None:
    from bastion.cli.app import main

    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"Example: {example}" in text
    assert "tunnels.<user>" in text or "several tunnel users" in text.lower()
