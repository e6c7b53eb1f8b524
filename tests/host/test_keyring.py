"""`keys add` / `keys remove` edit the user's committed files minimally and safely."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.config.edit import add_keys, matches, read_argument, remove_keys
from bastion.config.keys import parse_public_key
from bastion.config.settings import load
from bastion.errors import InputError
from tests.host.conftest import MakeConfig, make_key


def _pub(folder: Path, name: str) -> str:
    return make_key(folder, name).with_suffix(".pub").read_text().strip()


def test_add_and_remove_in_public_keys_keep_comments(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    settings = make_config(public_keys=[_pub(tmp_path, "first")])
    text = settings.source.read_text().replace("[tunnel]", "# keys rotate\n[tunnel]  # dbt Cloud")
    settings.source.write_text(text)
    settings = load(settings.source, environ={})
    second = parse_public_key(_pub(tmp_path, "second"))
    assert add_keys(settings, [second]) == [second]
    settings = load(settings.source, environ={})
    assert [k.comment for k in settings.first_tunnel.configured_keys()] == ["first", "second"]
    assert (
        "# keys rotate" in settings.source.read_text()
        and "# dbt Cloud" in settings.source.read_text()
    )
    assert add_keys(settings, [second]) == [], "adding twice is a no-op"
    assert remove_keys(settings, {second.fingerprint}) == 1
    assert [k.comment for k in load(settings.source, environ={}).first_tunnel.configured_keys()] == ["first"]


def test_keys_file_is_preferred_when_configured(make_config: MakeConfig, tmp_path: Path) -> None:
    settings = make_config()
    keys_file = tmp_path / "dbt_keys.pub"
    keys_file.write_text("# dbt Cloud keys\n")
    settings.source.write_text(settings.source.read_text().replace(
        "[tunnel]\n", '[tunnel]\nkeys_file = "dbt_keys.pub"\n'))  # fmt: skip
    settings = load(settings.source, environ={})
    key = parse_public_key(_pub(tmp_path, "rotated"))
    add_keys(settings, [key])
    assert keys_file.read_text().splitlines() == ["# dbt Cloud keys", key.openssh()]
    assert remove_keys(load(settings.source, environ={}), {key.fingerprint}) == 1
    assert keys_file.read_text().strip() == "# dbt Cloud keys"


def test_argument_is_a_key_or_a_file(tmp_path: Path) -> None:
    line = _pub(tmp_path, "a")
    path = tmp_path / "keys.txt"
    path.write_text(line + "\n" + _pub(tmp_path, "b") + "\n")
    assert len(read_argument(str(path))) == 2
    assert read_argument(line)[0].comment == "a"
    with pytest.raises(InputError):
        read_argument("ssh-dss AAAAB3NzaC1kc3MAAACBAP")


def test_a_key_whose_base64_is_no_possible_file_name_is_read_as_a_key() -> None:
    # 300 characters without "/" cannot be a path component (ENAMETOOLONG): still a key
    with pytest.raises(InputError, match="key"):
        read_argument("ssh-dss AAAAB3NzaC1kc3M" + "A" * 300 + " old-dsa")


def test_match_by_fingerprint_with_or_without_prefix_or_comment(tmp_path: Path) -> None:
    key = parse_public_key(_pub(tmp_path, "dbt-cloud-1"))
    assert matches(key, key.fingerprint)
    assert matches(key, key.fingerprint.removeprefix("SHA256:"))
    assert matches(key, "dbt-cloud-1") and not matches(key, "dbt-cloud")
