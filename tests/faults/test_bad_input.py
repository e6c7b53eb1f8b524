"""The bad-input table: every refusal of SPEC's "Input that is refused", through the real CLI.

Each row runs `bastion up --json` (or `bastion keys add --json` for a key) against a bastion
that already exists and is converged (the lab's moto and host), and must end with exit 4, a
message naming the key (or the rule, for a pasted key), and nothing changed: AWS (every
describe_* of instances, groups with their rules, addresses and key pairs), the host
(sha256 of sshd_config, authorized_keys, passwd, group) and the config file itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, rsa

from tests.faults.conftest import host_hashes, run_cli
from tests.lab import Lab

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

NAME = "faults-input"
HOST_ONLY_SYSTEM_ACCOUNT = "svc-backup"  # made on the host with useradd -r; not on any list
SECRET = "s3cr3t-from-env"


def _openssh(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


ED25519 = ed25519.Ed25519PrivateKey.generate()
TUNNEL_KEY = f"{_openssh(ED25519)} dbt-cloud"
OTHER_KEY = f"{_openssh(ed25519.Ed25519PrivateKey.generate())} other"
PRIVATE_KEY = ED25519.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
).decode()
DSA_KEY = f"{_openssh(dsa.generate_private_key(key_size=1024))} old-dsa"  # noqa: S505
RSA_1024 = f"{_openssh(rsa.generate_private_key(public_exponent=65537, key_size=1024))} short"  # noqa: S505
ED25519_BLOB = OTHER_KEY.split()[1]


@dataclass(frozen=True)
class Case:
    """One refusal: what to run, what to change in the config, what the message must name."""

    names: tuple[str, ...]  # every one must appear in the message
    set: dict[tuple[str, str], str | None] = field(default_factory=dict)  # TOML literals
    key: str | None = None  # run `keys add <key>` instead of `up`
    argv: tuple[str, ...] | None = None  # a command line of its own (config still passed)
    raw: str | None = None  # the config file's whole text
    env: dict[str, str] = field(default_factory=dict)


def _q(text: str) -> str:
    return json.dumps(text)  # a TOML basic string is a JSON string for these values


CASES: dict[str, Case] = {
    # --- keys, pasted (`keys add`) and configured (`up`) ---
    "key-private": Case(("private",), key=PRIVATE_KEY),
    "key-private-in-config": Case(
        ("tunnel.public_keys[0]", "private"), {("tunnel", "public_keys"): f"[{_q(PRIVATE_KEY)}]"}
    ),
    "key-dsa": Case(("dsa",), key=DSA_KEY),
    "key-rsa-1024": Case(("2048",), key=RSA_1024),
    "key-options": Case(("options",), key=f'no-pty,permitopen="*:*" {OTHER_KEY}'),
    "key-options-in-config": Case(
        ("tunnel.public_keys[0]", "options"),
        {("tunnel", "public_keys"): f"[{_q('command=/bin/sh ' + OTHER_KEY)}]"},
    ),
    "key-two-lines": Case(("line",), key=f"{OTHER_KEY}\n{TUNNEL_KEY}"),
    "key-bad-base64": Case(("base64",), key="ssh-ed25519 AAAAC3Nz!!not*base64 x"),
    "key-type-mismatch": Case(("ssh-rsa", "ed25519"), key=f"ssh-rsa {ED25519_BLOB} x"),
    # --- keepalive ---
    "keepalive-zero": Case(("tunnel.client_alive_interval",), {("tunnel", "client_alive_interval"): "0"}),
    "keepalive-negative": Case(("tunnel.client_alive_interval",), {("tunnel", "client_alive_interval"): "-30"}),
    "keepalive-float": Case(("tunnel.client_alive_count_max",), {("tunnel", "client_alive_count_max"): "1.5"}),
    "keepalive-bool": Case(("tunnel.client_alive_count_max",), {("tunnel", "client_alive_count_max"): "true"}),
    "keepalive-string": Case(("tunnel.client_alive_interval",), {("tunnel", "client_alive_interval"): '"30"'}),
    # --- ports ---
    "ssh_port-zero": Case(("bastion.ssh_port",), {("bastion", "ssh_port"): "0"}),
    "ssh_port-65536": Case(("bastion.ssh_port",), {("bastion", "ssh_port"): "65536"}),
    "warehouse-port-negative": Case(("warehouse.port",), {("warehouse", "port"): "-1"}),
    "warehouse-port-70000": Case(("warehouse.port",), {("warehouse", "port"): "70000"}),
    # --- CIDRs: parsed, not compared as text ---
    "cidr-world-v4": Case(("bastion.admin_cidrs",), {("bastion", "admin_cidrs"): '["0.0.0.0/0"]'}),
    "cidr-world-v4-spelled": Case(("dbt_cloud.extra_cidrs",), {("dbt_cloud", "extra_cidrs"): '["0.0.0.0/00"]'}),
    "cidr-broad-v4": Case(("dbt_cloud.extra_cidrs",), {("dbt_cloud", "extra_cidrs"): '["8.0.0.0/15"]'}),
    "cidr-world-v6": Case(("bastion.admin_cidrs",), {("bastion", "admin_cidrs"): '["::/0"]'}),
    "cidr-world-v6-spelled": Case(("bastion.admin_cidrs",), {("bastion", "admin_cidrs"): '["0:0::0/0"]'}),
    "cidr-broad-v6": Case(("dbt_cloud.extra_cidrs",), {("dbt_cloud", "extra_cidrs"): '["2a00:1450::/47"]'}),
    "cidr-v4-mapped-v6": Case(("dbt_cloud.extra_cidrs",), {("dbt_cloud", "extra_cidrs"): '["::ffff:0.0.0.0/96"]'}),
    "cidr-not-a-cidr": Case(("bastion.admin_cidrs",), {("bastion", "admin_cidrs"): '["10.0.0.1/32; rm -rf /"]'}),
    "cidr-empty-admin": Case(("bastion.admin_cidrs",), {("bastion", "admin_cidrs"): "[]"}),
    # --- the tunnel user ---
    "tunnel-user-root": Case(("tunnel.user",), {("tunnel", "user"): '"root"'}),
    "tunnel-user-admin": Case(("tunnel.user",), {("tunnel", "user"): '"ec2-user"'}),
    "tunnel-user-system": Case(("tunnel.user",), {("tunnel", "user"): '"sshd"'}),
    "tunnel-user-host-system": Case(("tunnel.user",), {("tunnel", "user"): _q(HOST_ONLY_SYSTEM_ACCOUNT)}),
    # --- names that could inject into a config file or a shell ---
    "host-semicolon": Case(("warehouse.host",), {("warehouse", "host"): '"db.internal;id"'}),
    "host-newline": Case(("warehouse.host",), {("warehouse", "host"): '"db.internal\\nPermitOpen any"'}),
    "host-subshell": Case(("warehouse.host",), {("warehouse", "host"): '"$(reboot)"'}),
    "host-quote": Case(("warehouse.host",), {("warehouse", "host"): "\"db'x\""}),
    "host-space": Case(("warehouse.host",), {("warehouse", "host"): '"db.internal any"'}),
    "address-injection": Case(("bastion.address",), {("bastion", "address"): '"10.0.0.1 -oProxyCommand=id"'}),
    "address-backtick": Case(("bastion.address",), {("bastion", "address"): '"`id`"'}),
    "tunnel-user-semicolon": Case(("tunnel.user",), {("tunnel", "user"): '"dbt;id"'}),
    "tunnel-user-newline": Case(("tunnel.user",), {("tunnel", "user"): '"dbt\\nMatch all"'}),
    "tunnel-user-subshell": Case(("tunnel.user",), {("tunnel", "user"): '"$(id)"'}),
    "tunnel-user-quote": Case(("tunnel.user",), {("tunnel", "user"): '"dbt\\"x"'}),
    "tunnel-user-dash": Case(("tunnel.user",), {("tunnel", "user"): '"-oops"'}),
    "admin-user-injection": Case(("bastion.admin_user",), {("bastion", "admin_user"): '"ec2-user`id`"'}),
    "host-from-env-not-echoed": Case(
        ("warehouse.host",), {("warehouse", "host"): '"${BAD_HOST}"'}, env={"BAD_HOST": f"db;{SECRET}"}
    ),
    # --- a trailing newline (a CI secret's), a NUL: names are matched whole ---
    "tunnel-user-root-newline": Case(("tunnel.user",), {("tunnel", "user"): '"root\\n"'}),
    "tunnel-user-newline-from-env": Case(
        ("tunnel.user",), {("tunnel", "user"): '"${TUNNEL_USER}"'}, env={"TUNNEL_USER": "root\n"}
    ),
    "admin-user-newline": Case(("bastion.admin_user",), {("bastion", "admin_user"): '"ec2-user\\n"'}),
    "host-newline-from-env": Case(
        ("warehouse.host",), {("warehouse", "host"): '"${DB_HOST}"'}, env={"DB_HOST": "10.231.9.9\n"}
    ),
    "name-newline": Case(("name",), {("", "name"): '"acc\\n"'}),
    "host-nul": Case(("warehouse.host",), {("warehouse", "host"): '"db.internal\\u0000x"'}),
    "password-env-nul": Case(("warehouse.password_env",), {("warehouse", "password_env"): '"DBT\\u0000X"'}),
    # --- unknown regions, kinds, keys ---
    "unknown-region": Case(("dbt_cloud.regions",), {("dbt_cloud", "regions"): '["mars"]'}),
    "unknown-kind": Case(("warehouse.kind",), {("warehouse", "kind"): '"mysql"'}),
    "unknown-key": Case(("bastion.colour",), {("bastion", "colour"): '"red"'}),
    "unknown-aws-region": Case(("aws.region",), {("aws", "region"): '"mars-east-1"'}),
    # --- the file itself ---
    "missing-config": Case(("bastion.toml",), argv=("up", "-c", "{folder}/nowhere/bastion.toml")),
    "invalid-toml": Case(("toml",), raw='name = "faults-input"\n[bastion\n'),
    # --- the command line ---
    "cli-unknown-option": Case(("--frobnicate",), argv=("up", "--frobnicate")),
    "cli-bad-idle": Case(("--idle",), argv=("verify", "--idle", "soon")),
    "cli-bad-format": Case(("--format",), argv=("connection", "--format", "xml")),
    "cli-keys-add-missing-key": Case(("KEY_OR_FILE",), argv=("keys", "add")),
}  # fmt: skip


def _base(lab: Lab) -> dict[tuple[str, str], str | None]:
    return {
        ("", "name"): _q(NAME),
        ("warehouse", "kind"): '"redshift"',
        ("warehouse", "redshift_cluster"): '"prod"',
        ("warehouse", "host"): _q(lab.warehouse_host),
        ("warehouse", "port"): str(lab.warehouse_port),
        ("warehouse", "database"): _q(lab.db_name),
        ("warehouse", "user"): _q(lab.db_user),
        ("bastion", "admin_key"): _q(str(lab.admin_key)),
        ("bastion", "admin_cidrs"): _q(f"{lab.operator_address}/32").join("[]"),
        ("bastion", "address"): _q(lab.bastion_address),
        ("tunnel", "public_keys"): f"[{_q(TUNNEL_KEY)}]",
    }


def render(values: dict[tuple[str, str], str | None]) -> str:
    sections: dict[str, list[str]] = {}
    for (section, key), literal in values.items():
        if literal is not None:
            sections.setdefault(section, []).append(f"{key} = {literal}")
    lines = sections.pop("", [])
    for section, entries in sections.items():
        lines += [f"[{section}]", *entries]
    return "\n".join(lines) + "\n"


@functools.cache
def _ec2(endpoint: str) -> Any:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("ec2", endpoint_url=endpoint)


def aws_state(lab: Lab) -> str:
    """Every describe_* the tool's resources show, as one comparable text."""
    ec2 = _ec2(lab.moto_endpoint)
    state = {
        "instances": ec2.describe_instances()["Reservations"],
        "security_groups": ec2.describe_security_groups()["SecurityGroups"],
        "rules": ec2.describe_security_group_rules()["SecurityGroupRules"],
        "addresses": ec2.describe_addresses()["Addresses"],
        "key_pairs": ec2.describe_key_pairs()["KeyPairs"],
    }
    return json.dumps(state, sort_keys=True, default=str)


@dataclass
class Bastion:
    lab: Lab
    folder: Path
    good: str  # the config's text that `up` converged with


@pytest.fixture(scope="module")
def bastion(
    pristine_host_after: Lab, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Bastion]:
    """A bastion made and converged with a good config: the state no refusal may change."""
    lab = pristine_host_after
    lab.restart_host()
    assert (
        lab.host_exec(f"useradd -r -M -s /usr/sbin/nologin {HOST_ONLY_SYSTEM_ACCOUNT}").returncode
        == 0
    )
    folder = tmp_path_factory.mktemp("bad-input")
    good = render(_base(lab))
    (folder / "bastion.toml").write_text(good, encoding="utf-8")
    patch = pytest.MonkeyPatch()
    for key, value in {**lab.aws_env(), "DBT_ENV_SECRET_PASSWORD": lab.db_password}.items():
        patch.setenv(key, value)
    patch.chdir(folder)
    try:
        yield Bastion(lab, folder, good)
    finally:
        patch.undo()


@pytest.fixture(scope="module")
def converged(bastion: Bastion) -> Bastion:
    import contextlib
    import io

    from bastion.cli.app import main

    with contextlib.redirect_stdout(io.StringIO()) as out, pytest.raises(SystemExit) as exited:
        main(["up", "--skip-verify", "--json", "-c", str(bastion.folder / "bastion.toml")])
    assert exited.value.code in (0, None), out.getvalue()
    return bastion


PARAMS = list(CASES)


def _restore(converged: Bastion, capsys: pytest.CaptureFixture[str]) -> None:
    """An input that was wrongly accepted changed things: put the converged state back."""
    code, document = run_cli(
        capsys, "up", "--skip-verify", "-c", str(converged.folder / "bastion.toml")
    )
    assert code == 0, document["error"]


@pytest.mark.parametrize("case", PARAMS)
def test_refused_input_exits_4_names_the_key_and_changes_nothing(
    case: str,
    converged: Bastion,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    row = CASES[case]
    lab = converged.lab
    config = tmp_path / "bastion.toml"
    text = row.raw if row.raw is not None else render({**_base(lab), **row.set})
    config.write_text(text, encoding="utf-8")
    # the converged bastion's pinned host key, as a user's repository would hold it
    (tmp_path / ".bastion").mkdir()
    (tmp_path / ".bastion" / "known_hosts").write_text(
        (converged.folder / ".bastion" / "known_hosts").read_text()
    )
    for key, value in row.env.items():
        monkeypatch.setenv(key, value)
    if row.argv is not None:
        argv = [arg.format(folder=tmp_path) for arg in row.argv]
        if not any(arg == "-c" for arg in argv):
            argv += ["-c", str(config)]
    elif row.key is not None:
        argv = ["keys", "add", row.key, "-c", str(config)]
    else:
        argv = ["up", "-c", str(config)]
    aws_before, host_before = aws_state(lab), host_hashes(lab)
    config_before = hashlib.sha256(config.read_bytes()).hexdigest()

    code, document = run_cli(capsys, *argv)
    aws_after, host_after = aws_state(lab), host_hashes(lab)
    if code != 4 and row.argv is None and row.raw is None:
        _restore(converged, capsys)

    assert code == 4, json.dumps(document, indent=1)
    assert document["ok"] is False
    assert document["error"]["kind"] in ("config", "input")
    message = document["error"]["message"]
    for name in row.names:
        assert name.lower() in message.lower(), message
    assert SECRET not in message
    assert aws_after == aws_before, "AWS changed"
    assert host_after == host_before, "the host changed"
    assert hashlib.sha256(config.read_bytes()).hexdigest() == config_before, "config changed"
