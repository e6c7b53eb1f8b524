"""The first-boot user data for a non-22 ssh_port, run on a booted lab host as cloud-init runs
it (its file written, then its runcmd as root): sshd answers on the new port and no longer on
22, whether sshd's service binds the port or ssh.socket hands it to sshd."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator

import pytest
import yaml

from bastion.aws.plan import first_boot_user_data
from tests.lab import Lab

pytestmark = pytest.mark.lab
PORT = 2222


@pytest.fixture
def booted(lab: Lab) -> Iterator[Lab]:
    lab.restart_host()
    try:
        yield lab
    finally:
        lab.restart_host()


def _first_boot(lab: Lab) -> None:
    document = yaml.safe_load(first_boot_user_data(PORT))
    for item in document["write_files"]:
        content = base64.b64encode(item["content"].encode()).decode()
        done = lab.host_exec(
            f"echo {content} | base64 -d > {item['path']} && chmod {item['permissions']} {item['path']}"
        )
        assert done.returncode == 0, done.stderr
    for command in document["runcmd"]:
        done = lab.host_exec(command)
        assert done.returncode == 0, done.stdout + done.stderr


def _banner(lab: Lab, port: int) -> str:
    """What answers on `port`: sshd's banner, or "" when the connection is refused."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection((lab.bastion_address, port), timeout=5) as conn:
                return conn.recv(64).decode(errors="replace")
        except ConnectionRefusedError:
            if port != PORT or time.monotonic() > deadline:
                return ""
            time.sleep(0.1)  # the new listener may still be starting


@pytest.mark.parametrize("activation", ["service", "socket"])
def test_a_new_host_listens_on_ssh_port_from_its_first_boot(booted: Lab, activation: str) -> None:
    if activation == "socket":
        switched = booted.host_exec(
            "systemctl disable --now ssh.service && systemctl enable --now ssh.socket"
        )
        assert switched.returncode == 0, switched.stderr
    _first_boot(booted)
    assert _banner(booted, PORT).startswith("SSH-2.0-OpenSSH")
    assert _banner(booted, 22) == ""
    if activation == "socket":
        listen = booted.host_exec("systemctl show -p Listen --value ssh.socket").stdout
        assert f":{PORT} (Stream)" in listen and ":22 (Stream)" not in listen
