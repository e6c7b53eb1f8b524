"""Properties of the field rules, over generated input (hypothesis).

Every string field of bastion.toml refuses a control character wherever it stands (a CI
secret's trailing newline is the realistic one), naming the key and never echoing a raw
line break; whatever the name rules accept is safe in sshd_config and in a shell.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.config import rules
from bastion.config.settings import load
from bastion.errors import ConfigError

from .test_config import VALID, with_value

# (section, key, a valid value): every string a user writes that reaches AWS, a template
# or a shell. A list field is written as a one-element list.
FIELDS = [
    ("", "name", "analytics"),
    ("aws", "region", "us-east-1"),
    ("aws", "profile", "ops"),
    ("warehouse", "redshift_cluster", "prod"),
    ("warehouse", "host", "db.internal.example"),
    ("warehouse", "security_group_id", "sg-0123456789abcdef0"),
    ("warehouse", "database", "analytics"),
    ("warehouse", "user", "dbt"),
    ("warehouse", "password_env", "DBT_ENV_SECRET_PASSWORD"),
    ("bastion", "vpc_id", "vpc-0123456789abcdef0"),
    ("bastion", "subnet_id", "subnet-0123456789abcdef0"),
    ("bastion", "instance_type", "t3.micro"),
    ("bastion", "ami", "debian-12"),
    ("bastion", "admin_user", "ec2-user"),
    ("bastion", "address", "203.0.113.10"),
    ("bastion", "admin_cidrs", ["198.51.100.7/32"]),
    ("dbt_cloud", "regions", ["us"]),
    ("dbt_cloud", "extra_cidrs", ["192.0.2.0/24"]),
    ("tunnel", "user", "dbtcloud"),
]
CONTROL = st.sampled_from(["\n", "\r", "\x00", "\t", "\x1b", "\x7f", "\r\n"])
SAFE = re.compile(r"[A-Za-z0-9._-]+")


def _toml(value: str | list[str]) -> str:
    return json.dumps(value)  # a JSON string or array of strings is valid TOML


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(FIELDS), control=CONTROL, where=st.floats(0, 1))
def test_a_control_character_in_any_field_is_refused_naming_the_key(
    tmp_path: Path, field: tuple[str, str, str | list[str]], control: str, where: float
) -> None:
    section, key, valid = field
    text = valid[0] if isinstance(valid, list) else valid
    cut = round(where * len(text))
    broken = text[:cut] + control + text[cut:]
    value = [broken] if isinstance(valid, list) else broken
    path = tmp_path / "bastion.toml"
    path.write_text(with_value(section, key, _toml(value)))
    with pytest.raises(ConfigError) as refused:
        load(path)
    message = str(refused.value)
    assert (f"{section}.{key}" if section else key) in message
    assert "control character" in message
    assert control not in message  # shown escaped, if at all: one line, no raw byte


@pytest.mark.parametrize(("section", "key", "valid"), FIELDS)
def test_each_valid_value_of_the_table_loads(
    tmp_path: Path, section: str, key: str, valid: str | list[str]
) -> None:
    """The table above is right: without the control character each value is accepted."""
    path = tmp_path / "bastion.toml"
    path.write_text(with_value(section, key, _toml(valid)))
    load(path)


@given(st.text(max_size=80))
def test_what_the_name_rules_accept_is_safe_in_sshd_config_and_a_shell(value: str) -> None:
    for rule in (rules.name, rules.posix_user, rules.hostname):
        try:
            accepted = rule(value)
        except ValueError:
            continue
        assert SAFE.fullmatch(accepted) or ":" in accepted, (rule.__name__, accepted)
        assert accepted == accepted.strip() and not re.search(r"[\s;`$|&<>'\"\\]", accepted)


@given(st.sampled_from(["root", "ec2-user", "analytics", "db.example.com"]), CONTROL)
def test_a_trailing_control_character_is_never_part_of_a_name(value: str, control: str) -> None:
    for rule in (rules.name, rules.posix_user, rules.hostname):
        with pytest.raises(ValueError):
            rule(value + control)


def test_the_valid_config_used_here_loads(tmp_path: Path) -> None:
    path = tmp_path / "bastion.toml"
    path.write_text(VALID)
    assert load(path).name == "analytics"
