"""A package the host lacks is installed after the package lists are refreshed, and a failed
install says what to do (and leaves the host as it was).

The lab host cannot reach a package mirror, so apt-get is a stand-in (first on the apply
script's PATH) that behaves like apt on an image shipped without package lists: `install`
cannot find the package until `update` ran."""

from __future__ import annotations

import pytest

from tests.host.conftest import LabHost
from tests.host.snapshot import differences, host_snapshot

pytestmark = pytest.mark.lab

APT_GET = """#!/bin/sh
echo "$*" >> /run/apt-calls
case " $* " in
  *" update "*)
    if [ -e /run/apt-offline ]; then
      echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease" >&2
      exit 100
    fi
    touch /run/apt-lists ;;
  *" install "*)
    [ -e /run/apt-lists ] || { echo "E: Unable to locate package unattended-upgrades" >&2; exit 100; }
    touch /var/lib/dpkg/info/unattended-upgrades.list ;;
esac
exit 0
"""
PACKAGE_LIST = "/var/lib/dpkg/info/unattended-upgrades.list"


def _without_unattended_upgrades(host: LabHost) -> None:
    result = host.lab.host_exec(
        f"mv {PACKAGE_LIST} /root/ && cat > /usr/local/sbin/apt-get && "
        "chmod 755 /usr/local/sbin/apt-get",
        input=APT_GET,
    )
    assert result.returncode == 0, result.stderr


def _apt_calls(host: LabHost) -> list[str]:
    return host.lab.host_exec("cat /run/apt-calls").stdout.split("\n")[:-1]


def test_a_missing_package_is_installed_after_apt_get_update(lab_host: LabHost) -> None:
    _without_unattended_upgrades(lab_host)

    code, document, stderr = lab_host.cli("configure")

    assert code == 0, stderr
    assert "auto_updates" in {c["resource"] for c in document["changes"]}
    calls = _apt_calls(lab_host)
    assert [call.split()[0] for call in calls] == ["update", "install"], calls
    assert "unattended-upgrades" in calls[1]


def test_a_failed_package_install_names_the_fix_and_changes_nothing(lab_host: LabHost) -> None:
    _without_unattended_upgrades(lab_host)
    lab_host.sh("touch /run/apt-offline")
    before = host_snapshot(lab_host.lab)

    code, document, stderr = lab_host.cli("configure")

    assert code == 1, stderr
    error = document["error"]
    said = f"{error['message']} {error.get('hint', '')}"
    assert "apt-get update" in said and "unattended-upgrades" in said, said
    assert "Failed to fetch" in said, "apt's own reason is shown"
    after = host_snapshot(lab_host.lab)
    assert after == before, differences(before, after)
