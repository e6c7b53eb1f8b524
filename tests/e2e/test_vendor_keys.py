"""Keys straight from the vendor, end to end on the lab: dbt Cloud's API (a loopback
stand-in, tests/lab/vendor_apis.py) holds connection 678, Fivetran's holds group
decent_dragon; the config names them and no key.

An unknown connection is exit 4 before anything changes anywhere.

From nothing, `plan` lists the `dbt_cloud/ssh_tunnel` it would save and writes nothing;
one `up` points the connection's tunnel at the bastion's address, port and user, and the
key dbt Cloud generated logs in and reaches the warehouse, as dbt Cloud would with its
private half; a second `up` writes nothing anywhere; a key regenerated in dbt Cloud (the
connection saved again) is rotated by the next `up`: the old key is refused, the new one
works. Fivetran's group key is installed for `fivetran` and logs in, and nothing is
written to Fivetran.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bastion.cli.app import main
from tests.e2e.world import World, bastion, lab_world
from tests.host.tunnel_clients import TunnelSession, refused_login
from tests.lab import Lab, bastion_toml
from tests.lab.vendor_apis import Running, dbt_cloud, fivetran

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "fromapi"
ACCOUNT, CONNECTION = 4242, 678
TOKEN = "dbtc_" + "e2e-token-" * 4
GROUP, FIVETRAN_KEY, FIVETRAN_SECRET = "decent_dragon", "ftkey-e2e", "ftsecret-e2e"
NEW_PORT, BLOCKED_PORT = 2222, 2200


@pytest.fixture(scope="module")
def dbt() -> Iterator[Running]:
    with dbt_cloud(TOKEN, ACCOUNT, [CONNECTION]) as running:
        yield running


@pytest.fixture(scope="module")
def five() -> Iterator[Running]:
    with fivetran(FIVETRAN_KEY, FIVETRAN_SECRET, [GROUP]) as running:
        yield running


def config_text(
    lab: Lab, dbt: Running, five: Running, connection: int = CONNECTION, ssh_port: int = 22
) -> str:
    return bastion_toml(lab, NAME, extra_bastion=f"ssh_port = {ssh_port}", extra=(
        '[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n'
        f"[tunnels.dbtcloud.api]\naccount_id = {ACCOUNT}\nconnection_ids = [{connection}]\n"
        f'token_env = "DBT_CLOUD_API_TOKEN"\nurl = "{dbt.url}"\n'
        '[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n'
        f'[tunnels.fivetran.api]\ngroup_id = "{GROUP}"\nurl = "{five.url}"\n'
    ))  # fmt: skip


@pytest.fixture(scope="module")
def world(
    lab: Lab, tmp_path_factory: pytest.TempPathFactory, dbt: Running, five: Running
) -> Iterator[World]:
    with lab_world(lab, tmp_path_factory, NAME) as found:
        found.config.write_text(config_text(lab, dbt, five))
        patch = pytest.MonkeyPatch()
        patch.setenv("DBT_CLOUD_API_TOKEN", TOKEN)
        patch.setenv("FIVETRAN_API_KEY", FIVETRAN_KEY)
        patch.setenv("FIVETRAN_API_SECRET", FIVETRAN_SECRET)
        try:
            yield found
        finally:
            patch.undo()


def test_an_unknown_connection_is_exit_4_and_nothing_changes_anywhere(
    world: World, dbt: Running, five: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    world.config.write_text(config_text(world.lab, dbt, five, connection=999))
    try:
        code, refused = bastion(world, capsys, "up")
    finally:
        world.config.write_text(config_text(world.lab, dbt, five))
    assert code == 4 and "no connection 999" in refused["error"]["message"]
    assert refused["changes"] == [] and dbt.state.writes == 0
    assert (
        boto3.client("ec2", region_name="us-east-1").describe_security_groups(
            Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
        )["SecurityGroups"]
        == []
    ), "the AWS stage did not run"


def dbt_clouds_key(dbt: Running, folder: Path, name: str) -> Path:
    """The private half dbt Cloud holds for the connection, as a key file for a client."""
    path = folder / name
    path.write_text(dbt.state.private_pem(CONNECTION))
    os.chmod(path, 0o600)
    return path


def logs_in_and_forwards(
    lab: Lab, key: Path, user: str = "dbtcloud", port: int | None = None
) -> bool:
    session = TunnelSession(lab, user, key, port=port).open()
    try:
        return session.forward(lab.warehouse_host, lab.warehouse_port)
    finally:
        session.close()


def test_plan_from_nothing_lists_the_tunnel_and_writes_nothing(
    world: World, dbt: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, planned = bastion(world, capsys, "plan")
    assert code == 0, planned["error"]
    tunnel = [c for c in planned["changes"] if c["target"] == "dbt_cloud"]
    assert [(c["resource"], c["action"]) for c in tunnel] == [("ssh_tunnel", "create")]
    assert f"connection {CONNECTION}" in tunnel[0]["detail"]
    assert dbt.state.writes == 0 and dbt.state.encryptions == {}


def test_one_up_points_dbt_cloud_at_the_bastion_and_its_key_reaches_the_warehouse(
    world: World, dbt: Running, five: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    kinds = [(c["target"], c["resource"], c["action"]) for c in made["changes"]]
    assert ("dbt_cloud", "ssh_tunnel", "create") in kinds
    saved = kinds.index(("dbt_cloud", "ssh_tunnel", "create"))
    first_host = next(i for i, kind in enumerate(kinds) if kind[0] == "host")
    assert {kind[0] for kind in kinds[:saved]} == {"aws"} and saved < first_host, (
        "after the AWS stage (the Elastic IP is known), before the host stage (the key)"
    )
    assert made["verify"]["ok"]

    tunnel = dbt.state.active(CONNECTION)
    assert tunnel is not None
    assert (tunnel["hostname"], tunnel["port"], tunnel["username"]) == (
        made["bastion"]["public_ip"], 22, "dbtcloud",
    )  # fmt: skip
    assert dbt.state.connections[CONNECTION]["is_ssh_tunnel_enabled"] is True
    on_host = world.lab.host_exec("cat /home/dbtcloud/.ssh/authorized_keys").stdout
    assert tunnel["public_key"].split()[1] in on_host
    assert f"dbt-cloud-connection-{CONNECTION}" in on_host, "marked with its connection"
    assert logs_in_and_forwards(world.lab, dbt_clouds_key(dbt, world.folder, "dbt-first"))

    fivetran_key = world.folder / "fivetran-group"
    fivetran_key.write_text(five.state.groups[GROUP][0])
    os.chmod(fivetran_key, 0o600)
    session = TunnelSession(world.lab, "fivetran", fivetran_key).open()
    try:
        assert session.forward(world.lab.warehouse_host, world.lab.warehouse_port)
    finally:
        session.close()
    assert five.state.writes == 0 and {m for m, _ in five.state.requests} == {"GET"}

    code, listing = bastion(world, capsys, "keys", "list")
    assert code == 0, listing["error"]
    sources = {row["user"]: (row["api"], row["where"]) for row in listing["keys"]}
    assert sources == {
        "dbtcloud": (f"dbt Cloud connection {CONNECTION}", "host"),
        "fivetran": (f"Fivetran group {GROUP}", "host"),
    }
    code, refused = bastion(
        world,
        capsys,
        "keys",
        "remove",
        "--tunnel",
        "dbtcloud",
        f"dbt-cloud-connection-{CONNECTION}",
    )
    assert (
        code == 4 and f"came from dbt Cloud connection {CONNECTION}" in refused["error"]["message"]
    )
    assert (
        tunnel["public_key"].split()[1]
        in world.lab.host_exec("cat /home/dbtcloud/.ssh/authorized_keys").stdout
    ), "nothing was changed"


def test_a_second_up_writes_nothing_anywhere(
    world: World, dbt: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    writes = dbt.state.writes
    code, again = bastion(world, capsys, "up")
    assert code == 0, again["error"]
    assert (again["changed"], again["changes"]) == (False, [])
    assert dbt.state.writes == writes, "no write to dbt Cloud"
    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert (code, planned["changes"]) == (0, [])


def test_a_key_regenerated_in_dbt_cloud_is_rotated_by_the_next_up(
    world: World, dbt: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    old = dbt_clouds_key(dbt, world.folder, "dbt-before")
    dbt.state.resave(CONNECTION)  # someone saves the connection in dbt Cloud: a new key pair
    new = dbt_clouds_key(dbt, world.folder, "dbt-after")
    writes = dbt.state.writes

    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert code == 2, planned["error"]
    assert [(c["target"], c["resource"]) for c in planned["changes"]] == [
        ("host", "authorized_keys")
    ]
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    assert made["changes"] == planned["changes"]
    assert dbt.state.writes == writes, "the tunnel already points at the bastion"

    refused_login(world.lab, "dbtcloud", old)
    assert logs_in_and_forwards(world.lab, new)


def test_a_token_dbt_cloud_refuses_is_exit_1_naming_the_variable(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBT_CLOUD_API_TOKEN", "dbtc_revoked")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["plan", "-c", str(world.config), "--json"])
    out, err = capsys.readouterr()
    refused = json.loads(out)
    assert exited.value.code == 1
    assert refused["error"]["kind"] == "vendor"
    assert "DBT_CLOUD_API_TOKEN" in refused["error"]["message"]
    assert "dbtc_revoked" not in out + err, "the token is never shown"


def test_an_ssh_port_change_moves_dbt_cloud_once_verified_and_keeps_every_api_key(
    world: World, dbt: Running, five: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """Both phases of the move in one `up`: dbt Cloud's tunnel is moved to the new port
    once verify proved it (its new key goes on the host before the old port closes), and
    the keys from the APIs (dbt Cloud's new one, Fivetran's) are on the host after phase two."""
    before = dict(dbt.state.active(CONNECTION) or {})  # a copy: a save changes it in place
    assert before["port"] == 22
    world.config.write_text(config_text(world.lab, dbt, five, ssh_port=NEW_PORT))
    code, planned = bastion(world, capsys, "plan")
    assert code == 0, planned["error"]
    moves = [c["detail"] for c in planned["changes"] if c["target"] == "dbt_cloud"]
    assert len(moves) == 1 and f":{NEW_PORT} once the tunnel is verified on it" in moves[0]
    targets = [c["target"] for c in planned["changes"]]
    assert "host" in targets[: targets.index("dbt_cloud")], "listed in the order up makes them"

    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    assert made["verify"]["ok"]
    kinds = [(c["target"], c["resource"]) for c in made["changes"]]
    saved = kinds.index(("dbt_cloud", "ssh_tunnel"))
    assert ("host", "sshd_config") in kinds[:saved], "phase one, then verify, then dbt Cloud"
    after = kinds[saved + 1 :]
    assert after.index(("host", "authorized_keys")) < after.index(("host", "sshd_config")), (
        "its new key goes on the host before phase two closes 22"
    )
    tunnel = dbt.state.active(CONNECTION)
    assert tunnel is not None and tunnel["port"] == NEW_PORT
    assert tunnel["public_key"] != before["public_key"], "dbt Cloud made a new key pair"
    listening = world.lab.host_exec("ss -ltn").stdout
    assert f":{NEW_PORT} " in listening and ":22 " not in listening, "phase two closed 22"
    on_host = world.lab.host_exec("cat /home/dbtcloud/.ssh/authorized_keys").stdout
    assert tunnel["public_key"].split()[1] in on_host
    assert before["public_key"].split()[1] not in on_host, "the key it replaced is gone"
    dbt_key = dbt_clouds_key(dbt, world.folder, "dbt-moved")
    assert logs_in_and_forwards(world.lab, dbt_key, port=NEW_PORT)
    fivetran_key = world.folder / "fivetran-moved"
    fivetran_key.write_text(five.state.groups[GROUP][0])
    os.chmod(fivetran_key, 0o600)
    assert logs_in_and_forwards(world.lab, fivetran_key, "fivetran", port=NEW_PORT)

    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert (code, planned["changes"]) == (0, []), planned["changes"]


def test_a_port_move_whose_verify_fails_leaves_dbt_cloud_on_the_port_that_works(
    world: World, dbt: Running, five: Running, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Verify fails on the next port: dbt Cloud is not written and its key still reaches
    the warehouse on the port it uses; the next `up` moves it."""
    from bastion.host import desired as desired_module

    render = desired_module.render_sshd_config

    def no_forward_for_the_operator(*args: Any) -> str:
        """Breaks verify's forward hop only (the operator's address, which verify uses)."""
        text = render(*args)
        block = f"Match User dbtcloud Address {world.lab.operator_address}\n    PermitOpen none\n\n"
        return text.replace("Match User dbtcloud", block + "Match User dbtcloud", 1)

    writes = dbt.state.writes
    monkeypatch.setattr(desired_module, "render_sshd_config", no_forward_for_the_operator)
    world.config.write_text(config_text(world.lab, dbt, five, ssh_port=BLOCKED_PORT))
    code, failed = bastion(world, capsys, "up")
    assert code == 3, failed["error"]
    assert dbt.state.writes == writes, "dbt Cloud was not written"
    assert "dbt_cloud" not in {c["target"] for c in failed["changes"]}
    tunnel = dbt.state.active(CONNECTION)
    assert tunnel is not None and tunnel["port"] == NEW_PORT

    # its key still logs in where it points (the forward from the operator's address is what
    # the broken rule refuses)
    TunnelSession(world.lab, "dbtcloud", dbt_clouds_key(dbt, world.folder, "dbt-still"),
                  port=NEW_PORT).open().close()  # fmt: skip
    # configure (or keys add) meanwhile: the admin logs in on the new port, but dbt Cloud
    # still uses the old one, which stays open
    code, configured = bastion(world, capsys, "configure")
    assert code == 0, configured["error"]
    assert any("still uses them" in n for n in configured["notices"]), configured["notices"]
    assert f":{NEW_PORT} " in world.lab.host_exec("ss -ltn").stdout
    monkeypatch.undo()
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    tunnel = dbt.state.active(CONNECTION)
    assert tunnel is not None and tunnel["port"] == BLOCKED_PORT
    assert logs_in_and_forwards(
        world.lab, dbt_clouds_key(dbt, world.folder, "dbt-last"), port=BLOCKED_PORT
    )
    listening = world.lab.host_exec("ss -ltn").stdout
    assert f":{BLOCKED_PORT} " in listening and f":{NEW_PORT} " not in listening
    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert (code, planned["changes"]) == (0, []), planned["changes"]


def test_a_tunnel_edited_to_another_port_is_put_back_once_verified(
    world: World, dbt: Running, capsys: pytest.CaptureFixture[str]
) -> None:
    """No port move: someone set another port in dbt Cloud. `up` verifies, saves the tunnel
    back on the bastion's port, and installs the key dbt Cloud generated."""
    tunnel = dbt.state.active(CONNECTION)
    assert tunnel is not None and tunnel["port"] == BLOCKED_PORT
    old_key = tunnel["public_key"]
    tunnel["port"] = 2022  # edited in dbt Cloud's UI (the stand-in's state, as its save keeps it)
    code, made = bastion(world, capsys, "up")
    assert code == 0, made["error"]
    kinds = [(c["target"], c["resource"]) for c in made["changes"]]
    assert kinds == [("dbt_cloud", "ssh_tunnel"), ("host", "authorized_keys")], kinds
    moved = dbt.state.active(CONNECTION)
    assert moved is not None and moved["port"] == BLOCKED_PORT and moved["public_key"] != old_key
    key = dbt_clouds_key(dbt, world.folder, "dbt-back")
    assert logs_in_and_forwards(world.lab, key, port=BLOCKED_PORT)
    code, planned = bastion(world, capsys, "plan", "--detailed-exitcode")
    assert (code, planned["changes"]) == (0, []), planned["changes"]
