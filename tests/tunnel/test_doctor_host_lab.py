"""Doctor names each broken host link on the lab, from the tunnel user's effective sshd settings.

Each test breaks one thing by hand in the rendered sshd_config (as an operator's edit would)
and reloads sshd; the `configured` fixture puts the host right again for the next test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.tunnel.conftest import bastion_cli
from tests.tunnel.test_verify_lab import reconfigure_sshd

pytestmark = pytest.mark.lab


def doctor_json(config: Path, env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    done = bastion_cli("doctor", "-c", str(config), "--json", env=env)
    return done.returncode, json.loads(done.stdout)


def finding(document: dict[str, Any], link: str) -> dict[str, Any]:
    return next(f for f in document["doctor"]["findings"] if f["link"] == link)


def test_a_configured_host_passes_every_link(
    configured: Path, with_password: dict[str, str], untouched_keys: None
) -> None:
    code, document = doctor_json(configured, with_password)
    assert code == 0, [f for f in document["doctor"]["findings"] if f["status"] == "fail"]
    statuses = {f["link"]: f["status"] for f in document["doctor"]["findings"]}
    for link in ("host.keepalive", "host.forwarding", "host.permitopen", "tunnel.database"):
        assert statuses[link] == "ok", document
    assert document["verify"]["ok"] is True


def test_keepalive_too_low_fails(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    reconfigure_sshd(tunnel_lab, r"s/^\(\s*ClientAliveCountMax\) .*/\1 2/")
    code, document = doctor_json(configured, with_password)
    assert code == 3
    found = finding(document, "host.keepalive")
    assert found["status"] == "fail"
    assert "after 60 s" in found["what"] and "300 s" in found["what"]
    assert "ClientAliveCountMax 10" in found["fix"]


def test_forwarding_off_fails(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    reconfigure_sshd(tunnel_lab, r"s/^\(\s*AllowTcpForwarding\) local/\1 no/")
    code, document = doctor_json(configured, with_password)
    assert code == 3
    assert finding(document, "host.forwarding")["status"] == "fail"
    assert finding(document, "tunnel.forward")["status"] == "fail"


def test_permitopen_wrong_fails(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    reconfigure_sshd(tunnel_lab, r"s/^\(\s*PermitOpen\) .*/\1 10.254.254.254:5432/")
    code, document = doctor_json(configured, with_password)
    assert code == 3
    found = finding(document, "host.permitopen")
    assert found["status"] == "fail"
    assert "names 10.254.254.254:5432" in found["what"]
    assert f"{tunnel_lab.warehouse_host}:{tunnel_lab.warehouse_port}" in found["what"]
    assert "PermitOpen does not allow" in finding(document, "tunnel.forward")["what"]
    assert "host.permitopen" in document["doctor"]["explanation"]
