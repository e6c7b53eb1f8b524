"""Keys from the vendors' APIs, against the loopback stand-ins (tests/lab/vendor_apis.py):
the `api` tables of the config, the two clients and their errors, and the vendor stage's
plan and apply (dbt Cloud's tunnel saved once, rotated keys followed, nothing written by a
read)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.apis.dbt_cloud import DbtCloud
from bastion.apis.fivetran import group_public_key
from bastion.apis.http import retry_after
from bastion.config.settings import Settings, load
from bastion.errors import BastionError, ConfigError, InputError, VendorError
from bastion.pipeline.outcome import Outcome
from bastion.pipeline.vendor import apply_vendors, connection_mark, group_mark, read_vendors
from tests.host.conftest import several_tools_config
from tests.lab.vendor_apis import Running, dbt_cloud, fivetran

TOKEN = "dbtc_" + "s3cr3t" * 6  # what a dbt Cloud service token looks like
ACCOUNT, CONNECTION = 12345, 678
KEY, SECRET = "fivetranKey123", "fivetranSecret456"

def _load(folder: Path, tables: str) -> Settings:
    return load(several_tools_config(folder, tables), environ={})


def _tables(dbt_url: str, fivetran_url: str = "") -> str:
    text = (
        '[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n'
        f"[tunnels.dbtcloud.api]\naccount_id = {ACCOUNT}\nconnection_ids = [{CONNECTION}]\n"
        f'url = "{dbt_url}"\n'
    )
    if fivetran_url:
        text += (
            '[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n'
            f'[tunnels.fivetran.api]\ngroup_id = "decent_dragon"\nurl = "{fivetran_url}"\n'
        )
    return text


ENVIRON = {"DBT_CLOUD_API_TOKEN": TOKEN, "FIVETRAN_API_KEY": KEY, "FIVETRAN_API_SECRET": SECRET}


@pytest.fixture
def dbt() -> Iterator[Running]:
    with dbt_cloud(TOKEN, ACCOUNT, [CONNECTION]) as running:
        yield running


@pytest.fixture
def five() -> Iterator[Running]:
    with fivetran(KEY, SECRET, ["decent_dragon"]) as running:
        yield running


class Recorder:
    def __init__(self) -> None:
        self.stages: list[object] = []

    def status(self, text: str):
        import contextlib

        return contextlib.nullcontext()

    def made(self, stage: object) -> None:
        self.stages.append(stage)

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None


# --- config ------------------------------------------------------------------------------


def test_the_api_tables_are_read_as_each_vendors_own(tmp_path: Path) -> None:
    settings = _load(tmp_path, _tables("http://127.0.0.1:9/api/", "https://api.fivetran.com"))
    dbt_api, fivetran_api = (settings.tunnels[u].api for u in ("dbtcloud", "fivetran"))
    assert dbt_api is not None and fivetran_api is not None
    assert dbt_api.model_dump() == {
        "url": "http://127.0.0.1:9/api", "account_id": ACCOUNT,
        "connection_ids": [CONNECTION], "token_env": "DBT_CLOUD_API_TOKEN",
    }  # fmt: skip
    assert fivetran_api.model_dump()["group_id"] == "decent_dragon"


def test_the_one_tool_form_takes_dbt_clouds_api_under_dbt_cloud(tmp_path: Path) -> None:
    settings = _load(tmp_path, "[dbt_cloud.api]\naccount_id = 1\nconnection_ids = [2, 2, 3]\n")
    api = settings.first_tunnel.api
    assert api is not None and api.model_dump()["connection_ids"] == [2, 3]


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        (_tables("http://example.com/api"), "tunnels.dbtcloud.api.url must use https"),
        (_tables("https://user:pw@cloud.getdbt.com/api"), "must not carry credentials"),
        (_tables("ftp://cloud.getdbt.com"), "tunnels.dbtcloud.api.url must be an https:// URL"),
        ('[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n[tunnels.dbtcloud.api]\n'
         "connection_ids = [1]\n", "tunnels.dbtcloud.api.account_id is required"),
        ('[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n[tunnels.dbtcloud.api]\n'
         "account_id = 1\nconnection_ids = []\n", "tunnels.dbtcloud.api.connection_ids"),
        ('[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n[tunnels.dbtcloud.api]\n'
         f'account_id = 1\nconnection_ids = [1]\ntoken_env = "{TOKEN}"\n',
         "tunnels.dbtcloud.api.token_env must be the NAME of an environment variable"),
        ('[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n[tunnels.dbtcloud.api]\n'
         f'account_id = 1\nconnection_ids = [1]\ntoken = "{TOKEN}"\n',
         "tunnels.dbtcloud.api.token is not a known key"),
        ('[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n'
         '[tunnels.fivetran.api]\ngroup_id = "a/../b"\n', "tunnels.fivetran.api.group_id"),
        ('[tunnels.stitch]\nvendor = "stitch"\nregions = ["na"]\n[tunnels.stitch.api]\n'
         'group_id = "x"\n', "tunnels.stitch.api: bastion reads keys from dbt Cloud's"),
        ("[dbt_cloud.api]\naccount_id = 0\nconnection_ids = [1]\n", "dbt_cloud.api.account_id"),
    ],
)  # fmt: skip
def test_bad_api_tables_are_config_errors_that_never_show_a_secret(
    tmp_path: Path, tables: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, tables)
    assert message in str(caught.value)
    assert TOKEN not in str(caught.value)


def test_a_region_other_than_us_needs_its_access_url(tmp_path: Path) -> None:
    text = _tables("").replace('regions = ["us"]', 'regions = ["emea"]').replace('url = ""\n', "")
    with pytest.raises(ConfigError, match="tunnels.dbtcloud.api.url is required for dbt Cloud region 'emea'"):
        _load(tmp_path, text)


def test_a_secret_is_trimmed_and_one_that_cannot_be_a_token_is_exit_4(tmp_path: Path) -> None:
    api = _load(tmp_path, _tables("https://cloud.getdbt.com/api")).tunnels["dbtcloud"].api
    assert api is not None
    assert api.secret("token_env", {"DBT_CLOUD_API_TOKEN": TOKEN + "\n"}) == TOKEN
    for bad in ("dbtc_abc déf", "dbtc_abc\x1b[31m", "dbt c"):
        with pytest.raises(ConfigError) as caught:
            api.secret("token_env", {"DBT_CLOUD_API_TOKEN": bad})
        assert "DBT_CLOUD_API_TOKEN holds spaces" in caught.value.message
        assert bad not in str(caught.value)


# --- the clients -------------------------------------------------------------------------


def test_dbt_cloud_saves_a_tunnel_and_makes_a_new_key_on_every_save(dbt: Running) -> None:
    client = DbtCloud(dbt.url, ACCOUNT, TOKEN, "DBT_CLOUD_API_TOKEN")
    try:
        assert client.connection(CONNECTION)["is_ssh_tunnel_enabled"] is False
        assert client.tunnel(CONNECTION) is None
        made = client.save_tunnel(CONNECTION, None, "203.0.113.10", 22, "dbtcloud")
        assert made.points_at("203.0.113.10", 22, "dbtcloud") and made.public_key is not None
        assert client.tunnel(CONNECTION) == made
        again = client.save_tunnel(CONNECTION, made, "203.0.113.10", 2222, "dbtcloud")
        assert again.id == made.id and again.port == 2222
        assert again.public_key is not None and again.public_key != made.public_key
        client.enable_tunnel(CONNECTION)
        assert client.connection(CONNECTION)["is_ssh_tunnel_enabled"] is True
    finally:
        client.close()
    assert dbt.state.writes == 3


def test_dbt_cloud_errors_name_the_variable_and_never_the_token(dbt: Running) -> None:
    wrong = DbtCloud(dbt.url, ACCOUNT, TOKEN + "x", "DBT_CLOUD_API_TOKEN")
    with pytest.raises(VendorError) as refused:
        wrong.connection(CONNECTION)
    wrong.close()
    assert refused.value.kind == "vendor" and refused.value.exit_code == 1
    assert "DBT_CLOUD_API_TOKEN" in str(refused.value) and TOKEN not in str(refused.value)
    client = DbtCloud(dbt.url, ACCOUNT, TOKEN, "DBT_CLOUD_API_TOKEN")
    with pytest.raises(InputError, match="no connection 999"):
        client.connection(999)
    client.close()


def test_429_is_retried_after_the_time_the_api_asks(dbt: Running) -> None:
    dbt.state.throttle(1)
    client = DbtCloud(dbt.url, ACCOUNT, TOKEN, "DBT_CLOUD_API_TOKEN")
    try:
        assert client.connection(CONNECTION)["id"] == CONNECTION
    finally:
        client.close()
    assert len(dbt.state.requests) == 2
    assert retry_after("3", 1) == 3.0 and retry_after(None, 2) == 4.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1) == 0.0  # a time in the past
    assert retry_after("9999", 1) == 30.0


def test_a_save_is_never_sent_twice_but_a_refused_one_is_retried(dbt: Running) -> None:
    client = DbtCloud(dbt.url, ACCOUNT, TOKEN, "DBT_CLOUD_API_TOKEN")
    try:
        dbt.state.throttle(1, status=503)  # a 5xx on a write: it may have been acted on
        with pytest.raises(VendorError, match="503"):
            client.save_tunnel(CONNECTION, None, "203.0.113.10", 22, "dbtcloud")
        assert len(dbt.state.requests) == 1, "not retried"
        dbt.state.throttle(1, status=429)  # refused before it was read: safe to send again
        client.save_tunnel(CONNECTION, None, "203.0.113.10", 22, "dbtcloud")
        assert len(dbt.state.requests) == 3 and dbt.state.writes == 1
        dbt.state.throttle(1, status=503)  # a read is retried on a 5xx
        assert client.tunnel(CONNECTION) is not None
    finally:
        client.close()


def test_fivetran_hands_out_the_groups_key(five: Running) -> None:
    key = group_public_key(five.url, "decent_dragon", (KEY, SECRET), "K and S")
    assert key.key_type == "ssh-rsa" and key.comment == "fivetran user key"
    with pytest.raises(VendorError, match="check K and S") as refused:
        group_public_key(five.url, "decent_dragon", (KEY, "wrong"), "K and S")
    assert SECRET not in str(refused.value)
    with pytest.raises(InputError, match="no group other"):
        group_public_key(five.url, "other", (KEY, SECRET), "K and S")


# --- the stage ---------------------------------------------------------------------------


def test_read_plans_the_tunnel_apply_saves_it_and_a_second_read_changes_nothing(
    tmp_path: Path, dbt: Running, five: Running
) -> None:
    settings = _load(tmp_path, _tables(dbt.url, five.url))
    found = read_vendors(settings, "203.0.113.10", ENVIRON)
    assert [c.to_dict() for c in found.plan().changes] == [{
        "target": "dbt_cloud", "resource": "ssh_tunnel", "action": "create",
        "detail": f"connection {CONNECTION}: SSH tunnel to dbtcloud@203.0.113.10:22; "
        "'Use SSH tunnel' turned on (dbt Cloud generates its key)",
    }]  # fmt: skip
    assert [k.comment for k in found.keys["fivetran"]] == [group_mark("decent_dragon")]
    assert "dbtcloud" not in found.keys and dbt.state.writes == 0, "a read writes nothing"

    recorder, outcome = Recorder(), Outcome()
    keys = apply_vendors(settings, found, recorder, outcome, ENVIRON)  # type: ignore[arg-type]
    (mine,) = keys["dbtcloud"]
    assert mine.comment == connection_mark(CONNECTION)
    active = dbt.state.active(CONNECTION)
    assert active is not None and mine.openssh().split()[1] == active["public_key"].split()[1]
    assert dbt.state.connections[CONNECTION]["is_ssh_tunnel_enabled"] is True
    assert [c.resource for c in outcome.plan.changes] == ["ssh_tunnel"]
    assert len(recorder.stages) == 1, "the write is reported as it is made"

    again = read_vendors(settings, "203.0.113.10", ENVIRON)
    assert again.writes == [] and again.keys["dbtcloud"] == [mine]

    dbt.state.resave(CONNECTION)  # someone saved the connection in dbt Cloud
    rotated = read_vendors(settings, "203.0.113.10", ENVIRON)
    assert rotated.writes == [], "the tunnel still points at the bastion: nothing to write"
    assert rotated.keys["dbtcloud"] != [mine] and dbt.state.writes == 2

    moved = read_vendors(settings, "203.0.113.99", ENVIRON)
    assert [c.action for c in moved.plan().changes] == ["update"]


def test_a_missing_variable_is_exit_4_naming_it(tmp_path: Path, dbt: Running) -> None:
    settings = _load(tmp_path, _tables(dbt.url))
    with pytest.raises(BastionError) as caught:
        read_vendors(settings, "203.0.113.10", {})
    assert caught.value.exit_code == 4 and "DBT_CLOUD_API_TOKEN is not set" in caught.value.message


def test_each_write_is_recorded_as_made_and_the_key_in_use_stays_until_replaced(
    tmp_path: Path,
) -> None:
    with dbt_cloud(TOKEN, ACCOUNT, [CONNECTION, CONNECTION + 1]) as dbt:
        text = _tables(dbt.url).replace(f"[{CONNECTION}]", f"[{CONNECTION}, {CONNECTION + 1}]")
        settings = _load(tmp_path, text)
        recorder, outcome = Recorder(), Outcome()
        found = read_vendors(settings, "203.0.113.10", ENVIRON)
        keys = apply_vendors(settings, found, recorder, outcome, ENVIRON)  # type: ignore[arg-type]
        assert len(recorder.stages) == 2, "one report per write, as each is made"
        assert sorted(k.comment for k in keys["dbtcloud"]) == [
            connection_mark(CONNECTION), connection_mark(CONNECTION + 1),
        ]  # fmt: skip

        moved = read_vendors(settings, "203.0.113.99", ENVIRON)
        assert len(moved.writes) == 2
        assert moved.keys["dbtcloud"] == keys["dbtcloud"], "the keys in use stay until replaced"
        after = apply_vendors(settings, moved, Recorder(), Outcome(), ENVIRON)  # type: ignore[arg-type]
        assert len(after["dbtcloud"]) == 2 and not set(after["dbtcloud"]) & set(keys["dbtcloud"])

        dbt.state.connections[CONNECTION]["is_ssh_tunnel_enabled"] = False  # switched off in dbt
        switched = read_vendors(settings, "203.0.113.99", ENVIRON)
        (write,) = switched.writes
        assert (write.save, write.enable) == (False, True)
        assert "'Use SSH tunnel' turned on" in switched.plan().changes[0].detail
        writes = dbt.state.writes
        kept = apply_vendors(settings, switched, Recorder(), Outcome(), ENVIRON)  # type: ignore[arg-type]
        assert dbt.state.writes == writes + 1, "one PATCH, no save: no new key"
        assert kept["dbtcloud"] == after["dbtcloud"]


def test_a_save_without_an_address_is_refused_before_any_write(tmp_path: Path, dbt: Running) -> None:
    settings = _load(tmp_path, _tables(dbt.url))
    found = read_vendors(settings, "", ENVIRON)
    with pytest.raises(ConfigError, match="no address to give dbt Cloud's SSH tunnel"):
        apply_vendors(settings, found, Recorder(), Outcome(), ENVIRON)  # type: ignore[arg-type]
    assert dbt.state.writes == 0


def test_a_failed_save_changes_nothing_and_a_write_to_what_vanished_is_not_exit_4(
    tmp_path: Path, dbt: Running
) -> None:
    settings = _load(tmp_path, _tables(dbt.url))
    found = read_vendors(settings, "203.0.113.10", ENVIRON)
    (write,) = found.writes
    assert (write.save, write.enable) == (True, True)
    dbt.state.throttle(1, status=503)  # the save fails: the switch must not be turned on
    outcome = Outcome()
    with pytest.raises(VendorError):
        apply_vendors(settings, found, Recorder(), outcome, ENVIRON)  # type: ignore[arg-type]
    assert dbt.state.connections[CONNECTION]["is_ssh_tunnel_enabled"] is False
    assert dbt.state.writes == 0 and outcome.plan.changes == []
    assert any(f"connection {CONNECTION}: the SSH tunnel save failed" in n for n in outcome.plan.notices)

    client = DbtCloud(dbt.url, ACCOUNT, TOKEN, "DBT_CLOUD_API_TOKEN")
    try:
        with pytest.raises(VendorError, match="no longer has") as gone:
            client.enable_tunnel(999)  # deleted between the read and the write
    finally:
        client.close()
    assert gone.value.exit_code == 1
