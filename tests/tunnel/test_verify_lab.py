"""`bastion verify` on the lab: a real sshd, a real PostgreSQL, only reachable through the tunnel.

Every test runs the real command line and checks, before and after, that the tunnel user's
managed authorized_keys is byte-identical and verify's own key file is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.tunnel.conftest import KEYS_DIR, PASSWORD_ENV, bastion_cli, managed_keys

pytestmark = pytest.mark.lab


def verify_json(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, Any], str]:
    done = bastion_cli("verify", "-c", str(config), "--json", *args, env=env)
    return done.returncode, json.loads(done.stdout), done.stderr


def failed_hop(document: dict[str, Any]) -> dict[str, Any]:
    return next(h for h in document["verify"]["hops"] if not h["ok"])


def test_the_warehouse_is_not_reachable_without_the_tunnel(tunnel_lab: Any) -> None:
    with pytest.raises(OSError):
        socket.create_connection((tunnel_lab.warehouse_host, tunnel_lab.warehouse_port), timeout=2)


def test_verify_succeeds_with_all_four_hops(
    configured: Path, with_password: dict[str, str], untouched_keys: None
) -> None:
    code, document, stderr = verify_json(configured, env=with_password)
    assert code == 0, stderr
    hops = document["verify"]["hops"]
    assert [h["name"] for h in hops] == ["tcp", "ssh", "forward", "database"]
    assert all(h["ok"] and h["ms"] > 0 for h in hops)
    assert document["verify"]["login_tested"] is True
    assert document["verify"]["server_version"].startswith("PostgreSQL 15")
    assert document["ok"] is True and document["error"] is None
    print("hop ms:", {h["name"]: h["ms"] for h in hops})


def test_no_password_still_reaches_the_server_and_says_login_was_not_tested(
    configured: Path, monkeypatch: pytest.MonkeyPatch, untouched_keys: None
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    code, document, stderr = verify_json(configured)
    assert code == 0, stderr
    database = document["verify"]["hops"][3]
    assert database["ok"] and "login not tested" in database["detail"]
    assert "SCRAM" in database["detail"]
    assert document["verify"]["login_tested"] is False


def test_wrong_password_fails_the_database_hop_without_echoing_it(
    configured: Path, tunnel_lab: Any, untouched_keys: None
) -> None:
    wrong = "not-the-password-9f2c"
    code, document, stderr = verify_json(configured, env={PASSWORD_ENV: wrong})
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "database"
    assert hop["detail"] == f'password authentication failed for user "{tunnel_lab.db_user}"'
    assert document["error"]["message"].startswith("database: password authentication failed")
    assert wrong not in json.dumps(document) + stderr


def test_stopped_database_fails_the_forward_hop(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    tunnel_lab.stop_database()
    try:
        code, document, _ = verify_json(configured, env=with_password)
    finally:
        tunnel_lab.start_database()
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "forward"
    assert "the warehouse is down" in hop["detail"]
    assert [h["name"] for h in document["verify"]["hops"]] == ["tcp", "ssh", "forward"]


def test_permitopen_naming_another_target_fails_the_forward_hop(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    reconfigure_sshd(tunnel_lab, r"s/^\(\s*PermitOpen\) .*/\1 10.254.254.254:5432/")
    code, document, _ = verify_json(configured, env=with_password)
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "forward"
    target = f"{tunnel_lab.warehouse_host}:{tunnel_lab.warehouse_port}"
    assert (
        hop["detail"]
        == f"refused by the bastion: PermitOpen does not allow {target} (run bastion configure)"
    )


def test_sshd_down_fails_the_tcp_hop(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: Any
) -> None:
    stop_sshd(tunnel_lab)
    try:
        code, document, _ = verify_json(configured, env=with_password)
    finally:
        start_sshd(tunnel_lab)
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "tcp"
    assert "refused the connection" in hop["detail"]
    assert document["verify"]["hops"] == [hop]


def test_idle_tunnel_is_queried_again(
    configured: Path, with_password: dict[str, str], untouched_keys: None
) -> None:
    code, document, stderr = verify_json(configured, "--idle", "3", env=with_password)
    assert code == 0, stderr
    idle = document["verify"]["hops"][-1]
    assert idle["name"] == "idle" and idle["ok"]
    assert "after 3 s idle" in idle["detail"]


def test_ctrl_c_still_removes_the_key(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "bastion", "verify", "-c", str(configured), "--idle", "60"],
        stderr=subprocess.PIPE, text=True, env={**os.environ, **with_password},
    )  # fmt: skip
    assert process.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        lines.append(line)
        if "holding the tunnel idle" in line or not line:
            break
    assert any("holding the tunnel idle" in line for line in lines), lines
    assert managed_keys(tunnel_lab).splitlines()[-1].strip() == "1"  # installed meanwhile
    installed = tunnel_lab.host_exec(f"cat {KEYS_DIR}/authorized_keys.verify").stdout
    target = f"{tunnel_lab.warehouse_host}:{tunnel_lab.warehouse_port}"
    assert re.fullmatch(
        rf'restrict,port-forwarding,permitopen="{re.escape(target)}",expiry-time="\d{{14}}Z" '
        r"ssh-ed25519 \S+ bastion-verify-lab-\S+\n",
        installed,
    ), installed
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130


def wait_until(condition: Callable[[], bool], what: str, deadline: float = 60) -> None:
    """Poll `condition` until it holds; fail, saying `what` never happened, after `deadline` s."""
    give_up = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < give_up, f"{what}: not within {deadline} s"
        time.sleep(0.05)


LISTENING = "Server listening on"  # what sshd logs once a listening socket is bound


def sshd_log(lab: Any) -> str:
    return str(lab.sshd_log())


def ssh_port_refuses(lab: Any) -> bool:
    """True once nothing listens on the SSH port (a refused connect never reaches sshd)."""
    try:
        socket.create_connection((lab.bastion_address, lab.ssh_port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    except OSError:  # reset or timed out: a dying sshd still held the port
        pass
    return False


def reconfigure_sshd(lab: Any, sed: str) -> None:
    """Edit the rendered sshd_config on the host and reload sshd, as a hand edit would."""
    listening = sshd_log(lab).count(LISTENING)
    done = lab.host_exec(
        f"sed -i '{sed}' /etc/ssh/sshd_config && systemctl reload ssh"
    )
    assert done.returncode == 0, done.stderr
    wait_until(
        lambda: sshd_log(lab).count(LISTENING) > listening,
        "sshd listening again after its SIGHUP re-exec",
    )


def stop_sshd(lab: Any) -> None:
    done = lab.host_exec("systemctl stop ssh")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: ssh_port_refuses(lab), "the SSH port refusing connections")


def start_sshd(lab: Any) -> None:
    listening = sshd_log(lab).count(LISTENING)
    done = lab.host_exec("systemctl start ssh")
    assert done.returncode == 0, done.stderr
    wait_until(lambda: sshd_log(lab).count(LISTENING) > listening, "sshd listening")


@pytest.mark.parametrize("output", ["text", "json", "profiles"])
def test_connection_shows_the_fields_for_dbt_cloud(
    configured: Path, tunnel_lab: Any, output: str
) -> None:
    done = bastion_cli("connection", "-c", str(configured), "--format", output)
    assert done.returncode == 0, done.stderr
    assert tunnel_lab.warehouse_host in done.stdout and tunnel_lab.bastion_address in done.stdout
    if output == "json":
        fields = json.loads(done.stdout)
        assert fields["ssh_tunnel"] == {
            "hostname": tunnel_lab.bastion_address, "port": 22, "username": "dbtcloud",
        }  # fmt: skip
    if output == "profiles":
        assert f"password: \"{{{{ env_var('{PASSWORD_ENV}') }}}}\"" in done.stdout
        assert tunnel_lab.db_password not in done.stdout


@contextlib.contextmanager
def replies_dropped(lab: Any, side: str) -> Iterator[None]:
    """Make one side's replies vanish (a blackhole route back), as a dropping firewall would.

    The SYN arrives, its SYN-ACK is routed nowhere: the client waits and sees no answer.
    """
    from tests.lab.network import Topology

    topo = Topology(lab.name, lab._state.slot)
    namespace, peer = (
        (topo.bastion_ns, topo.operator_address)
        if side == "bastion"
        else (topo.warehouse_ns, topo.bastion_inner_address)
    )
    route = ["ip", "-n", namespace, "route", "{}", "blackhole", f"{peer}/32"]
    subprocess.run([part.format("add") for part in route], check=True)
    try:
        yield
    finally:
        subprocess.run([part.format("del") for part in route], check=True)


def test_silently_dropped_ssh_port_fails_the_tcp_hop_after_5_s(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    with replies_dropped(tunnel_lab, "bastion"):
        code, document, _ = verify_json(configured, env=with_password)
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "tcp"
    assert hop["ms"] >= 5000, "gave up before its 5 s connect timeout"
    assert hop["detail"] == (
        f"no answer from {tunnel_lab.bastion_address}:22 within 5 s: check the security group "
        "rule for your address and the subnet's route to an internet gateway"
    )


def test_silently_dropped_warehouse_fails_the_forward_hop(
    configured: Path, tunnel_lab: Any, with_password: dict[str, str], untouched_keys: None
) -> None:
    with replies_dropped(tunnel_lab, "warehouse"):
        code, document, _ = verify_json(configured, env=with_password)
    assert code == 3
    hop = failed_hop(document)
    assert hop["name"] == "forward"
    assert "security group does not admit the bastion" in hop["detail"]
