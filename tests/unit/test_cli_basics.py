"""The commands that need no AWS and no host: ips, the JSON envelope, exit codes for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bastion.vendors.dbt_cloud import allow_list


def bastion(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bastion", *args], capture_output=True, text=True, check=False
    )


def test_ips_json_lists_the_us_addresses_with_their_source() -> None:
    run = bastion("ips", "--region", "us", "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["ok"] is True
    assert document["source"].startswith("https://docs.getdbt.com/")
    assert "52.45.144.63/32" in document["regions"]["us"]["cidrs"]
    assert list(document["regions"]["us"]["cidrs"]) == list(allow_list().regions["us"].cidrs)


@pytest.mark.parametrize(
    ("vendor", "region", "cidr", "source"),
    [
        ("fivetran", "gcp-us-east4", "35.234.176.144/29", "https://fivetran.com/docs/"),
        ("stitch", "na", "52.23.137.21/32", "https://github.com/stitchdata/docs/"),
        ("hightouch", "us-east-1", "54.196.30.169/32", "https://hightouch.io/docs/"),
    ],
)
def test_ips_vendor_shows_its_list_with_source_and_date(
    vendor: str, region: str, cidr: str, source: str
) -> None:
    run = bastion("ips", "--vendor", vendor, "--json")
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    assert document["vendor"] == vendor and document["checked"]
    assert cidr in document["regions"][region]["cidrs"]
    assert document["regions"][region]["source"].startswith(source)


def test_ips_unknown_vendor_is_exit_4() -> None:
    run = bastion("ips", "--vendor", "airbyte", "--json")
    assert run.returncode == 4
    assert "unknown vendor" in json.loads(run.stdout)["error"]["message"]


def test_ips_accepts_an_alias() -> None:
    document = json.loads(bastion("ips", "--region", "eu1", "--json").stdout)
    assert list(document["regions"]) == ["emea"]


def test_unknown_region_is_exit_4_with_one_json_object() -> None:
    run = bastion("ips", "--region", "mars", "--json")
    assert run.returncode == 4
    document = json.loads(run.stdout)
    assert document["error"]["kind"] == "input"
    assert "--region" in document["error"]["message"]


@pytest.mark.parametrize(
    "args", [["nope"], ["ips", "--bogus"], ["plan", "--detailed-exitcode", "extra"]]
)
def test_a_bad_command_line_is_exit_4_not_2(args: list[str]) -> None:
    assert bastion(*args).returncode == 4


def test_json_mode_keeps_human_output_off_stdout() -> None:
    run = bastion("ips", "--json")
    json.loads(run.stdout)  # exactly one JSON document
    assert "dbt Cloud IP addresses" in run.stderr
