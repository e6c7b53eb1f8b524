"""Several tunnel users on one bastion, planned on a recorded host: the one-tool form is the
same bastion as its `[tunnels.dbtcloud]` twin; each user is fenced to its own sources; a
tunnel taken out of the config loses its access and says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bastion.config.settings import Settings, load
from bastion.endpoint import Endpoint
from bastion.errors import ConfigError
from bastion.host.desired import KEYS_HEADER, desired_host, key_line
from bastion.host.fact_sections import parse_facts
from bastion.host.facts import FileStat, HostFacts, PasswdEntry
from bastion.host.plan import build_plan
from tests.host.conftest import make_key, recorded, several_tools_config, write_config

WAREHOUSE = Endpoint("10.0.2.10", 5432)

DBTCLOUD = """
[tunnels.dbtcloud]
vendor = "dbt_cloud"
regions = ["us"]
extra_cidrs = ["192.0.2.0/28"]
public_keys = [{keys}]
client_alive_interval = 30
client_alive_count_max = 10
"""

FIVETRAN = """
[tunnels.fivetran]
vendor = "fivetran"
regions = ["gcp-us-east4"]
extra_cidrs = ["192.0.2.64/28"]
public_keys = [{keys}]
client_alive_interval = 60
client_alive_count_max = 5
"""


def _key(folder: Path, name: str) -> str:
    return make_key(folder, name).with_suffix(".pub").read_text().strip()


def _several(folder: Path, *tables: str) -> Settings:
    path = several_tools_config(folder, "".join(tables), name="several.toml")
    return load(path, environ={})


def _one_tool(folder: Path, key: str) -> Settings:
    one = folder / "one"
    one.mkdir(exist_ok=True)
    path = write_config(one, public_keys=[key], extra_cidrs=["192.0.2.0/28"])
    text = path.read_text().replace('kind = "redshift"', 'kind = "postgres"')
    path.write_text(text)
    return load(path, environ={})


def _converged(settings: Settings, facts: HostFacts) -> HostFacts:
    """The facts the host reports right after configure made it as `settings` asks."""
    desired = desired_host(settings, facts, WAREHOUSE)
    users = dict(facts.users)
    keys: dict[str, str | None] = {}
    sshd_of = {}
    files = {}
    for uid, (user, tunnel) in enumerate(desired.tunnels.items(), start=1001):
        users[user] = PasswdEntry(user, uid, uid, "dbt-bastion", f"/home/{user}",
                                  "/usr/sbin/nologin")  # fmt: skip
        lines = [key_line(k, WAREHOUSE) for k in tunnel.keys]
        keys[user] = "\n".join([KEYS_HEADER, *lines]) + "\n"
        sshd_of[user] = {k: [v] for k, v in tunnel.effective.items()}
        files[f"/home/{user}"] = FileStat(user, user, 0o750, "directory")
        files[f"/home/{user}/.ssh"] = FileStat(user, user, 0o700, "directory")
        files[f"/home/{user}/.ssh/authorized_keys"] = FileStat(user, user, 0o600, "regular file")
    host = build_plan(settings, facts, WAREHOUSE)
    marker_line = next(c for c in host.lines if "/var/lib/dbt-bastion/state.json" in c)
    import base64
    import json

    marker = json.loads(base64.b64decode(marker_line.split()[-1]).decode())
    return dataclasses.replace(
        facts,
        users=users,
        groups={user: users[user].gid for user in desired.tunnels},
        authorized_keys_of=keys,
        sshd_config_sha256=desired.sshd_config_sha256,
        marker=marker,
        instance_connect=[],
        sshd_unit=dataclasses.replace(facts.sshd_unit, options=()),
        journald=dataclasses.replace(facts.journald, storage="persistent"),
        moduli_small=0,
        cloud_init="done",
        files={**facts.files, **files},
        sshd={k: [v] for k, v in desired.effective.items()},
        sshd_tunnel_of=sshd_of,
    )


@pytest.fixture
def facts() -> HostFacts:
    return parse_facts(recorded("debian12"))


def test_the_one_tool_form_is_the_same_bastion_as_its_tunnels_twin(
    tmp_path: Path, facts: HostFacts
) -> None:
    key = _key(tmp_path, "dbt-cloud")
    one = _one_tool(tmp_path, key)
    twin = _several(tmp_path, DBTCLOUD.format(keys=f'"{key}"'))
    assert {u: t.model_dump() for u, t in one.tunnels.items()} == {
        u: t.model_dump() for u, t in twin.tunnels.items()
    }
    assert one.named_sources() == twin.named_sources()  # the group's rules and descriptions
    a, b = build_plan(one, facts, WAREHOUSE), build_plan(twin, facts, WAREHOUSE)
    assert a.desired is not None and b.desired is not None
    assert a.desired.sshd_config == b.desired.sshd_config
    assert a.lines == b.lines  # the same accounts, authorized_keys and state, byte for byte
    assert build_plan(twin, _converged(one, facts), WAREHOUSE).plan.changes == []


def test_each_tunnel_user_is_admitted_only_from_its_own_sources(
    tmp_path: Path, facts: HostFacts
) -> None:
    settings = _several(
        tmp_path,
        DBTCLOUD.format(keys=f'"{_key(tmp_path, "dbt-cloud")}"'),
        FIVETRAN.format(keys=f'"{_key(tmp_path, "fivetran")}"'),
    )
    desired = desired_host(settings, facts, WAREHOUSE)
    allow = next(line for line in desired.sshd_config.splitlines() if line.startswith("AllowUsers"))
    entries = allow.split()[1:]
    assert "fivetran@35.234.176.144/29" in entries and "fivetran@192.0.2.64/28" in entries
    assert "dbtcloud@52.45.144.63" in entries and "dbtcloud@192.0.2.0/28" in entries
    assert "dbtcloud@35.234.176.144/29" not in entries
    assert "fivetran@192.0.2.0/28" not in entries and "fivetran@52.45.144.63" not in entries
    assert {"dbtcloud@198.51.100.7", "fivetran@198.51.100.7"} <= set(entries)  # for verify
    blocks = desired.sshd_config.split("Match User ")[1:]
    assert [b.split()[0] for b in blocks] == ["dbtcloud", "fivetran"]
    assert "ClientAliveInterval 60" in blocks[1] and "ClientAliveCountMax 5" in blocks[1]
    assert "ClientAliveInterval 30" in blocks[0]
    assert desired.tunnels["fivetran"].effective["clientaliveinterval"] == "60"


def test_two_tunnels_plan_two_users_with_their_own_keys(tmp_path: Path, facts: HostFacts) -> None:
    settings = _several(
        tmp_path,
        DBTCLOUD.format(keys=f'"{_key(tmp_path, "dbt-cloud")}"'),
        FIVETRAN.format(keys=f'"{_key(tmp_path, "fivetran")}"'),
    )
    changes = build_plan(settings, facts, WAREHOUSE).plan.changes
    users = [c.detail for c in changes if c.resource == "tunnel_user"]
    assert [d.split()[1] for d in users] == ["dbtcloud", "fivetran"]
    keys = [c.detail for c in changes if c.resource == "authorized_keys"]
    assert "/home/dbtcloud/" in keys[0] and "(dbt-cloud)" in keys[0]
    assert "/home/fivetran/" in keys[1] and "(fivetran)" in keys[1]
    assert build_plan(settings, _converged(settings, facts), WAREHOUSE).plan.changes == []


def test_a_removed_tunnel_loses_its_access_and_keeps_its_home(
    tmp_path: Path, facts: HostFacts
) -> None:
    dbt = DBTCLOUD.format(keys=f'"{_key(tmp_path, "dbt-cloud")}"')
    both = _several(tmp_path, dbt, FIVETRAN.format(keys=f'"{_key(tmp_path, "fivetran")}"'))
    host = _converged(both, facts)
    alone = _several(tmp_path, dbt)
    plan = build_plan(alone, host, WAREHOUSE)
    removal = [c for c in plan.plan.changes if c.resource == "tunnel_user"]
    assert [c.action for c in removal] == ["delete"]
    assert "fivetran" in removal[0].detail and "emptied" in removal[0].detail
    assert "locked" in removal[0].detail and "home /home/fivetran kept" in removal[0].detail
    assert any(c.resource == "sshd_config" for c in plan.plan.changes)
    assert plan.desired is not None and "Match User fivetran" not in plan.desired.sshd_config
    assert "expire_user fivetran" in plan.lines
    done = dataclasses.replace(
        _converged(alone, host),
        authorized_keys_of={**_converged(alone, host).authorized_keys_of, "fivetran": ""},
        expired={"fivetran": True},
    )
    assert build_plan(alone, done, WAREHOUSE).plan.changes == []


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ('[tunnel]\nuser = "dbtcloud"\n' + FIVETRAN.format(keys=""), "not both"),
        ('[tunnels.airbyte]\nvendor = "airbyte"\nextra_cidrs = ["192.0.2.0/28"]\n',
         "tunnels.airbyte.vendor must be one of"),
        ('[tunnels.hightouch]\nvendor = "hightouch"\nregions = ["eu-west-1"]\n',
         "tunnels.hightouch.extra_cidrs is required"),
        ('[tunnels.custom]\nvendor = "custom"\n', "tunnels.custom.extra_cidrs is required"),
        ('[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["aws-us-east-1"]\n',
         "'aws-us-east-1' is not a region of Fivetran"),
        ('[tunnels.ec2-user]\nvendor = "custom"\nextra_cidrs = ["192.0.2.0/28"]\n',
         "tunnels.ec2-user.user must not be"),
        ('[tunnels.root]\nvendor = "custom"\nextra_cidrs = ["192.0.2.0/28"]\n',
         "must not be root or a system account"),
        ('[tunnels.a]\nvendor = "custom"\nextra_cidrs = ["192.0.2.0/28"]\n[tunnels.a]\n',
         "not valid TOML"),
    ],
)  # fmt: skip
def test_bad_tunnel_tables_are_config_errors(tmp_path: Path, tables: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _several(tmp_path, tables)
    assert message in caught.value.message
