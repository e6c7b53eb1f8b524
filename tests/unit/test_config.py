"""bastion.toml loading: lookup, interpolation, paths, and every refusal of SPEC."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from bastion.config.settings import load
from bastion.errors import ConfigError

VALID = """\
name = "analytics"

[aws]
region = "us-east-1"

[warehouse]
kind = "redshift"
redshift_cluster = "prod"
database = "analytics"
user = "dbt"

[bastion]
admin_key = "keys/admin"
admin_cidrs = ["198.51.100.7/32"]

[dbt_cloud]
regions = ["us"]

[tunnel]
client_alive_interval = 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bastion.toml"
    path.write_text(text)
    return path


def with_value(section: str, key: str, value: str) -> str:
    """VALID with `key = value` set in [section] (or at the top level for section "")."""
    lines = VALID.splitlines()
    data = tomllib.loads(VALID)
    table = data if not section else data.get(section, {})
    if key in table:
        prefix = f"{key} ="
        start = lines.index(f"[{section}]") if section else 0
        for index in range(start, len(lines)):
            if lines[index].startswith(prefix):
                lines[index] = f"{key} = {value}"
                break
    elif section and f"[{section}]" in lines:
        lines.insert(lines.index(f"[{section}]") + 1, f"{key} = {value}")
    elif section:
        lines += [f"[{section}]", f"{key} = {value}"]
    else:
        lines.insert(0, f"{key} = {value}")
    return "\n".join(lines) + "\n"


def with_bastion_value(text: str, key: str, value: str) -> str:
    """`text` with `key = value` added at the top of [bastion]."""
    return text.replace("[bastion]\n", f"[bastion]\n{key} = {value}\n", 1)


def test_valid_config_loads_with_defaults(tmp_path: Path) -> None:
    settings = load(write(tmp_path, VALID), environ={})
    assert list(settings.tunnels) == ["dbtcloud"]
    assert settings.tunnels["dbtcloud"].client_alive_count_max == 10
    assert settings.warehouse.effective_port == 5439
    assert settings.bastion.ssh_crypto == "compatible"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    settings = load(write(tmp_path, VALID), environ={})
    assert settings.bastion.admin_key == tmp_path.resolve() / "keys" / "admin"
    assert settings.bastion.known_hosts == tmp_path.resolve() / ".bastion" / "known_hosts"


def test_lookup_order_prefers_flag_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    from_env = write(tmp_path / "a", VALID.replace('"analytics"', '"from-env"', 1))
    write(tmp_path / "b", VALID.replace('"analytics"', '"from-cwd"', 1))
    monkeypatch.chdir(tmp_path / "b")
    assert load(None, environ={}).name == "from-cwd"
    assert load(None, environ={"BASTION_CONFIG": str(from_env)}).name == "from-env"
    assert load(from_env, environ={"BASTION_CONFIG": "/nonexistent"}).name == "from-env"


def test_environment_references_are_interpolated(tmp_path: Path) -> None:
    text = with_value("bastion", "ssh_port", '"${SSH_PORT}"')
    settings = load(write(tmp_path, text), environ={"SSH_PORT": "2222"})
    assert settings.bastion.ssh_port == 2222


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    text = with_value("bastion", "address", '"${BASTION_ADDR}"')
    with pytest.raises(ConfigError, match=r"bastion\.address.*BASTION_ADDR is not set"):
        load(write(tmp_path, text), environ={})


def test_value_from_environment_is_never_echoed(tmp_path: Path) -> None:
    text = with_value("bastion", "address", '"${BASTION_ADDR}"')
    secret = "not;a-host$(reboot)"
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={"BASTION_ADDR": secret})
    assert "bastion.address" in str(caught.value)
    assert secret not in str(caught.value)


def test_missing_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="bastion init"):
        load(tmp_path / "absent.toml", environ={})


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(write(tmp_path, "name = \n"), environ={})


REFUSED = [
    # (section, key, TOML value, text the message must contain)
    ("", "name", '"Analytics_1"', "name"),
    ("", "surprise", '"x"', "surprise is not a known key"),
    ("warehouse", "colour", '"blue"', "warehouse.colour is not a known key"),
    ("warehouse", "kind", '"mysql"', "warehouse.kind"),
    ("warehouse", "host", '"db.example.com; rm -rf /"', "warehouse.host"),
    ("warehouse", "host", '"db\\nPermitOpen any"', "warehouse.host"),
    ("warehouse", "port", "70000", "warehouse.port"),
    ("warehouse", "port", "-1", "warehouse.port"),
    ("warehouse", "password_env", '"hunter2 !"', "warehouse.password_env"),
    ("warehouse", "auth", '"kerberos"', "warehouse.auth"),
    ("bastion", "ssh_port", "0", "bastion.ssh_port"),
    ("bastion", "ssh_port", "65536", "bastion.ssh_port"),
    ("bastion", "admin_cidrs", "[]", "bastion.admin_cidrs must list at least one"),
    ("bastion", "admin_cidrs", '["0.0.0.0/0"]', "bastion.admin_cidrs[0]"),
    ("bastion", "admin_cidrs", '["::/0"]', "whole internet"),
    ("bastion", "admin_cidrs", '["8.0.0.0/8"]', "too broad"),
    ("bastion", "admin_cidrs", '["2001:4860::/32"]', "too broad"),
    ("bastion", "admin_cidrs", '["198.51.100.7/24"]', "host bits"),
    ("bastion", "admin_cidrs", '["not-a-cidr"]', "bastion.admin_cidrs[0]"),
    ("bastion", "admin_user", '"root"', "bastion.admin_user"),
    ("bastion", "admin_user", '"ec2-user;id"', "bastion.admin_user"),
    ("bastion", "provider", '"gcp"', "bastion.provider"),
    ("bastion", "ssh_crypto", '"weak"', "bastion.ssh_crypto"),
    ("bastion", "ami", '"ubuntu-latest"', "bastion.ami"),
    ("bastion", "ami", '"Debian-13"', "bastion.ami must be a named image (debian-13, debian-12, "),
    ("bastion", "ami", '"ami-XYZ"', "al2023, ubuntu-24.04, ubuntu-22.04), an AMI id"),
    ("bastion", "ami", '"aws/service/debian/release/13/latest/amd64"', "bastion.ami"),
    ("dbt_cloud", "regions", '["mars"]', "dbt_cloud.regions"),
    ("dbt_cloud", "extra_cidrs", '["0.0.0.0/0"]', "dbt_cloud.extra_cidrs[0]"),
    ("tunnel", "user", '"root"', "tunnel.user"),
    ("tunnel", "user", '"ec2-user"', "tunnel.user"),
    ("tunnel", "user", '"sshd"', "tunnel.user"),
    ("tunnel", "user", '"Dbt Cloud"', "tunnel.user"),
    (
        "tunnel",
        "client_alive_interval",
        "0",
        "tunnel.client_alive_interval must be a positive integer (got 0)",
    ),
    ("tunnel", "client_alive_interval", "-5", "tunnel.client_alive_interval"),
    ("tunnel", "client_alive_count_max", "1.5", "tunnel.client_alive_count_max"),
    ("tunnel", "client_alive_count_max", "true", "tunnel.client_alive_count_max"),
    ("tunnel", "client_alive_interval", '"thirty"', "tunnel.client_alive_interval"),
]


@pytest.mark.parametrize(("section", "key", "value", "expected"), REFUSED)
def test_refused_value_names_the_key(
    tmp_path: Path, section: str, key: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, with_value(section, key, value)), environ={})
    assert expected in str(caught.value)
    assert caught.value.exit_code == 4


def test_admin_cidrs_are_required(tmp_path: Path) -> None:
    text = VALID.replace('admin_cidrs = ["198.51.100.7/32"]\n', "")
    with pytest.raises(ConfigError, match=r"bastion\.admin_cidrs must list at least one CIDR"):
        load(write(tmp_path, text), environ={})


def test_admin_cidrs_may_be_empty_through_an_instance_connect_endpoint(tmp_path: Path) -> None:
    text = VALID.replace('admin_cidrs = ["198.51.100.7/32"]\n', 'admin_access = "eice"\n')
    settings = load(write(tmp_path, text), environ={})
    assert settings.bastion.admin_access == "eice"
    assert settings.bastion.admin_cidrs == []


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ('admin_access = "eice"\nssh_port = 2222\n', "ssh_port must be 22"),
        ('admin_access = "eice"\neice_id = "eice-nothex"\n', "eice_id"),
        ('eice_id = "eice-0123456789abcdef0"\n', "only with admin_access"),
        ('admin_access = "eice"\nprovider = "existing"\naddress = "10.0.0.5"\n', "provider"),
    ],
)
def test_instance_connect_settings_that_cannot_work_are_refused(
    tmp_path: Path, lines: str, message: str
) -> None:
    text = VALID.replace('admin_cidrs = ["198.51.100.7/32"]\n', f'admin_cidrs = ["198.51.100.7/32"]\n{lines}')
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, text), environ={})


def test_tunnel_user_must_differ_from_admin(tmp_path: Path) -> None:
    text = with_value("bastion", "admin_user", '"ops"')
    text = with_value("tunnel", "user", '"ops"').replace(
        'admin_key = "keys/admin"', 'admin_user = "ops"\nadmin_key = "keys/admin"'
    )
    with pytest.raises(ConfigError, match="tunnel.user must differ"):
        load(write(tmp_path, text), environ={})


def test_the_default_image_is_debian_13_with_its_admin_user(tmp_path: Path) -> None:
    settings = load(write(tmp_path, VALID), environ={})
    assert (settings.bastion.ami, settings.bastion.admin_user) == ("debian-13", "admin")


@pytest.mark.parametrize(
    ("ami", "admin_user"),
    [
        ("debian-13", "admin"),
        ("debian-12", "admin"),
        ("al2023", "ec2-user"),
        ("ubuntu-24.04", "ubuntu"),
        ("ubuntu-22.04", "ubuntu"),
    ],
)
def test_a_named_image_gives_admin_user_its_default(
    tmp_path: Path, ami: str, admin_user: str
) -> None:
    settings = load(write(tmp_path, with_value("bastion", "ami", f'"{ami}"')), environ={})
    assert settings.bastion.admin_user == admin_user


def test_an_empty_admin_user_is_the_named_images(tmp_path: Path) -> None:
    text = with_value("bastion", "ami", '"ubuntu-24.04"')
    settings = load(write(tmp_path, with_bastion_value(text, "admin_user", '""')), environ={})
    assert settings.bastion.admin_user == "ubuntu"


def test_a_given_admin_user_wins_over_the_images(tmp_path: Path) -> None:
    text = with_bastion_value(with_value("bastion", "ami", '"al2023"'), "admin_user", '"ops"')
    assert load(write(tmp_path, text), environ={}).bastion.admin_user == "ops"


@pytest.mark.parametrize("ami", ["ami-0123456789abcdef0", "ssm:/golden/bastion-ami"])
def test_an_ami_id_or_ssm_path_needs_admin_user(tmp_path: Path, ami: str) -> None:
    text = with_value("bastion", "ami", f'"{ami}"')
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={})
    assert str(caught.value).startswith("bastion.admin_user is required when bastion.ami is")
    assert caught.value.exit_code == 4
    settings = load(write(tmp_path, with_bastion_value(text, "admin_user", '"ops"')), environ={})
    assert (settings.bastion.ami, settings.bastion.admin_user) == (ami, "ops")


def test_private_networks_may_be_broad(tmp_path: Path) -> None:
    settings = load(
        write(tmp_path, with_value("bastion", "admin_cidrs", '["10.0.0.0/8"]')), environ={}
    )
    assert settings.bastion.admin_cidrs == ["10.0.0.0/8"]


def test_region_aliases_resolve(tmp_path: Path) -> None:
    settings = load(
        write(tmp_path, with_value("dbt_cloud", "regions", '["us1", "eu1"]')), environ={}
    )
    assert settings.dbt_cloud.regions == ["us", "emea"]


def test_alloydb_needs_a_host(tmp_path: Path) -> None:
    text = VALID.replace('kind = "redshift"\nredshift_cluster = "prod"', 'kind = "alloydb"')
    with pytest.raises(ConfigError, match="warehouse.host is required"):
        load(write(tmp_path, text), environ={})


def test_key_for_another_kind_is_refused(tmp_path: Path) -> None:
    text = with_value("warehouse", "workgroup", '"wg"')
    with pytest.raises(
        ConfigError, match="warehouse.workgroup is only for kind = redshift-serverless"
    ):
        load(write(tmp_path, text), environ={})


def test_init_writes_a_config_that_loads_once_filled_in(tmp_path: Path) -> None:
    target = tmp_path / "bastion.toml"
    run = subprocess.run(
        [sys.executable, "-m", "bastion", "init", "-c", str(target)], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    with pytest.raises(ConfigError, match="admin_cidrs must list at least one"):
        load(target, environ={})
    target.write_text(
        target.read_text().replace("admin_cidrs = []", 'admin_cidrs = ["198.51.100.7/32"]')
    )
    settings = load(target, environ={})
    assert settings.name == "analytics"
    again = subprocess.run(
        [sys.executable, "-m", "bastion", "init", "-c", str(target)], capture_output=True, text=True
    )
    assert again.returncode == 4
    assert "never overwrites" in again.stderr


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ('"-----BEGIN OPENSSH PRIVATE KEY-----"', "PRIVATE key"),
        ('"ssh-dss AAAAB3NzaC1kc3MAAACBAP"', "DSA"),
        ('"no-pty ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB"', "options"),
    ],
)
def test_refused_tunnel_key_names_the_list_entry(tmp_path: Path, value: str, rule: str) -> None:
    text = with_value("tunnel", "public_keys", f"[{value}]")
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={})
    assert "tunnel.public_keys[0]" in str(caught.value)
    assert rule.lower() in str(caught.value).lower()


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("tunnel", "client_alive_interval", '"30"'),
        ("bastion", "ssh_port", '"22"'),
        ("bastion", "admin_cidrs", '["::ffff:0.0.0.0/96"]'),
        ("bastion", "admin_cidrs", '["::ffff:8.0.0.0/104"]'),
    ],
)
def test_strings_for_integers_and_mapped_world_ranges_are_refused(
    tmp_path: Path, section: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        load(write(tmp_path, with_value(section, key, value)), environ={})


def test_an_integer_from_the_environment_is_read_as_an_integer(tmp_path: Path) -> None:
    text = with_value("tunnel", "client_alive_interval", '"${KEEPALIVE}"')
    assert (
        load(write(tmp_path, text), environ={"KEEPALIVE": "45"}).tunnel.client_alive_interval == 45
    )
    with pytest.raises(ConfigError) as caught:
        load(write(tmp_path, text), environ={"KEEPALIVE": "forty"})
    assert "tunnel.client_alive_interval" in str(caught.value)
    assert "forty" not in str(caught.value)
