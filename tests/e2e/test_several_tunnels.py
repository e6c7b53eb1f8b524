"""Several tools on one bastion, end to end on the lab: dbt Cloud (`dbtcloud`, region us)
and Fivetran (`fivetran`, Google Cloud us-east4), each with its own key and its own extra
source, a second address of the lab's operator side (never a public one).

One group admits the union; each user logs in only from its own sources, and only to the
warehouse; `verify` proves both and names the user whose hop broke; taking `fivetran` out
of the config shows in `plan`, and after `up` its key no longer logs in while `dbtcloud`
still does; the same `dbtcloud` in the one-tool form then plans no change.
"""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from bastion.vendors.sources import region_cidrs
from tests.e2e.world import World, bastion, lab_world
from tests.host.conftest import make_key
from tests.host.tunnel_clients import TunnelSession, refused_login
from tests.lab import Lab, bastion_toml

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "several"
USERS = ("dbtcloud", "fivetran")


class Tools:
    """The world, each user's key and the operator-side address each user is admitted from."""

    def __init__(self, world: World, source: dict[str, str]) -> None:
        self.world = world
        self.lab = world.lab
        self.source = source
        self.key = {user: make_key(world.folder, f"{user}-key") for user in USERS}

    def public(self, user: str) -> str:
        return self.key[user].with_suffix(".pub").read_text().strip()

    def table(self, user: str) -> str:
        vendor, region = {"dbtcloud": ("dbt_cloud", "us"), "fivetran": ("fivetran", "gcp-us-east4")}[
            user
        ]
        return (
            f'[tunnels.{user}]\nvendor = "{vendor}"\nregions = ["{region}"]\n'
            f'extra_cidrs = ["{self.source[user]}/32"]\npublic_keys = ["{self.public(user)}"]\n'
        )

    def write(self, *users: str) -> None:
        extra = "\n".join(self.table(user) for user in users)
        self.world.config.write_text(bastion_toml(self.lab, NAME, extra=extra))

    def write_one_tool(self) -> None:
        """`dbtcloud` as the one-tool form says it: [tunnel] + [dbt_cloud]."""
        extra = (
            f'[tunnel]\npublic_keys = ["{self.public("dbtcloud")}"]\n'
            f'[dbt_cloud]\nregions = ["us"]\nextra_cidrs = ["{self.source["dbtcloud"]}/32"]\n'
        )
        self.world.config.write_text(bastion_toml(self.lab, NAME, extra=extra))

    def session(self, user: str, source: str) -> TunnelSession:
        return TunnelSession(self.lab, user, self.key[user], source=source).open()


@pytest.fixture(scope="module")
def tools(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tools]:
    with (
        lab_world(lab, tmp_path_factory, NAME) as world,
        lab.extra_operator_address(9) as dbt_source,
        lab.extra_operator_address(10) as fivetran_source,
    ):
        found = Tools(world, {"dbtcloud": dbt_source, "fivetran": fivetran_source})
        found.write(*USERS)
        yield found


def group_rules() -> dict[str, str]:
    """cidr -> description of every rule of the bastion's group."""
    ec2 = boto3.client("ec2", region_name="us-east-1")
    (group,) = ec2.describe_security_groups(
        Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
    )["SecurityGroups"]
    return {
        ip["CidrIp"]: ip.get("Description", "")
        for permission in group["IpPermissions"]
        for ip in permission.get("IpRanges", [])
    }


BAD = {
    "both forms": '[tunnel]\nuser = "dbtcloud"\n[tunnels.fivetran]\nvendor = "fivetran"\n'
                  'regions = ["gcp-us-east4"]\n',
    "a duplicate user": '[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n'
                        '[tunnels.fivetran]\nvendor = "custom"\nextra_cidrs = ["10.231.0.9/32"]\n',
    "an unknown vendor": '[tunnels.airbyte]\nvendor = "airbyte"\nextra_cidrs = ["10.231.0.9/32"]\n',
    "a region without a list": '[tunnels.fivetran]\nvendor = "fivetran"\n'
                               'regions = ["gcp-europe-west2"]\n',
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_tunnel_tables_are_exit_4_and_change_nothing(
    tools: Tools, capsys: pytest.CaptureFixture[str], case: str
) -> None:
    good = tools.world.config.read_text()
    tools.world.config.write_text(bastion_toml(tools.lab, NAME, extra=BAD[case]))
    try:
        code, refused = bastion(tools.world, capsys, "up")
    finally:
        tools.world.config.write_text(good)
    assert code == 4 and refused["error"]["kind"] == "config", refused["error"]
    assert refused["changes"] == []
    groups = boto3.client("ec2", region_name="us-east-1").describe_security_groups(
        Filters=[{"Name": "tag:bastion:name", "Values": [NAME]}]
    )["SecurityGroups"]
    assert groups == [], "nothing was created"
    assert tools.lab.host_exec("getent passwd fivetran dbtcloud").stdout == ""


def test_up_gives_one_group_with_the_union_and_verifies_every_user(
    tools: Tools, capsys: pytest.CaptureFixture[str]
) -> None:
    code, made = bastion(tools.world, capsys, "up")
    assert code == 0, made["error"]

    rules = group_rules()
    wanted = {
        **{cidr: f"dbtcloud: {whose}" for cidr, whose in region_cidrs("dbt_cloud", ["us"])},
        **{cidr: f"fivetran: {whose}" for cidr, whose in region_cidrs("fivetran", ["gcp-us-east4"])},
        f"{tools.source['dbtcloud']}/32": "dbtcloud: extra_cidrs",
        f"{tools.source['fivetran']}/32": "fivetran: extra_cidrs",
    }
    admin = f"{tools.lab.operator_address}/32"
    assert set(rules) == {*wanted, admin}
    for cidr, description in wanted.items():
        assert rules[cidr].startswith(description), (cidr, rules[cidr])

    verified = made["verify"]
    assert verified["ok"] and set(verified["tunnels"]) == set(USERS)
    assert all(each["ok"] for each in verified["tunnels"].values())
    assert verified["hops"] == verified["tunnels"]["dbtcloud"]["hops"], "the first user's hops beside"
    assert [hop["name"] for hop in verified["tunnels"]["fivetran"]["hops"]] == [
        "tcp", "ssh", "forward", "database",
    ]  # fmt: skip


def test_each_user_has_its_own_keys_and_match_block(tools: Tools) -> None:
    lab = tools.lab
    for user in USERS:
        keys = lab.host_exec(f"cat /home/{user}/.ssh/authorized_keys").stdout
        assert f"{user}-key" in keys
        other = next(u for u in USERS if u != user)
        assert f"{other}-key" not in keys
    config = lab.host_exec("cat /etc/ssh/sshd_config").stdout
    assert [line.split()[2] for line in config.splitlines() if line.startswith("Match User")] == list(
        USERS
    )


def test_each_user_logs_in_from_its_own_source_only_and_forwards_only_to_the_warehouse(
    tools: Tools,
) -> None:
    lab = tools.lab
    for user in USERS:
        other = next(u for u in USERS if u != user)
        session = tools.session(user, tools.source[user])
        try:
            assert session.forward(lab.warehouse_host, lab.warehouse_port)
            assert not session.forward(lab.bastion_address, 22)
        finally:
            session.close()
        # the other tool's address, with this user's own (valid) key: AllowUsers refuses
        refused_login(lab, user, tools.key[user], source=tools.source[other])
        # this tool's address, the other user's name, this tool's key: not that user's key
        refused_login(lab, other, tools.key[user], source=tools.source[user])


def test_verify_names_the_user_whose_hop_failed(
    tools: Tools, capsys: pytest.CaptureFixture[str]
) -> None:
    code, alone = bastion(tools.world, capsys, "verify", "--tunnel", "fivetran")
    assert code == 0, alone["error"]
    assert list(alone["verify"]["tunnels"]) == ["fivetran"]

    tools.lab.host_exec("usermod --expiredate 1 fivetran")  # sshd refuses an expired account
    try:
        code, broken = bastion(tools.world, capsys, "verify")
    finally:
        tools.lab.host_exec("usermod --expiredate '' fivetran")
    assert code == 3
    assert broken["error"]["kind"] == "verify"
    assert broken["error"]["message"].startswith("fivetran: ssh:")
    assert broken["verify"]["tunnels"]["dbtcloud"]["ok"]
    assert not broken["verify"]["ok"] and not broken["verify"]["tunnels"]["fivetran"]["ok"]

    code, unknown = bastion(tools.world, capsys, "verify", "--tunnel", "stitch")
    assert code == 4 and "stitch" in unknown["error"]["message"]


def test_removing_a_tunnel_takes_its_access_and_leaves_the_other(
    tools: Tools, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = tools.lab
    tools.write("dbtcloud")
    code, planned = bastion(tools.world, capsys, "plan", "--detailed-exitcode")
    assert code == 2, planned["error"]
    removal = [c for c in planned["changes"] if c["resource"] == "tunnel_user"]
    assert [c["action"] for c in removal] == ["delete"] and "fivetran" in removal[0]["detail"]
    gone = {c["detail"] for c in planned["changes"] if c["resource"] == "security_group_rule"}
    assert any(tools.source["fivetran"] in detail for detail in gone)

    code, made = bastion(tools.world, capsys, "up")
    assert code == 0, made["error"]
    assert made["changes"] == planned["changes"]
    assert "fivetran" not in made["verify"].get("tunnels", {})
    refused_login(lab, "fivetran", tools.key["fivetran"], source=tools.source["fivetran"])
    refused_login(lab, "fivetran", tools.key["fivetran"])  # not even from admin_cidrs
    assert lab.host_exec("test -d /home/fivetran").returncode == 0, "its home is kept"
    session = tools.session("dbtcloud", tools.source["dbtcloud"])
    try:
        assert session.forward(lab.warehouse_host, lab.warehouse_port)
    finally:
        session.close()
    assert f"{tools.source['fivetran']}/32" not in group_rules()


def test_the_one_tool_form_of_the_same_bastion_plans_no_change(
    tools: Tools, capsys: pytest.CaptureFixture[str]
) -> None:
    tools.write_one_tool()
    code, planned = bastion(tools.world, capsys, "plan", "--detailed-exitcode")
    assert (code, planned["changes"]) == (0, []), planned["error"]

