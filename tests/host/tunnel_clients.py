"""Tunnel users' SSH sessions from the lab's operator side, the way dbt Cloud's would be:
paramiko for sessions that log in, forward, ask for a shell or a PTY, or are refused;
OpenSSH's client for one that stops answering (SIGSTOP) until sshd's keepalive gives up.

Each action records the operator's clock before and after it (the lab host shares this
machine's clock), so a test can compare what sshd logged with what it did.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paramiko

from bastion.config.keys import parse_public_key
from bastion.host.connection import fingerprint


def now() -> datetime:
    return datetime.now(UTC)


def key_fingerprint(private_key: Path) -> str:
    return parse_public_key(private_key.with_suffix(".pub").read_text()).fingerprint


@dataclass
class Span:
    """An action's bounds on the operator's clock."""

    before: datetime
    after: datetime

    def holds(self, moment: datetime, slack: float = 1.0) -> bool:
        """`moment` (a log's time, to the second or finer) falls within, give or take `slack` s."""
        return (self.before - moment).total_seconds() <= slack and (
            moment - self.after
        ).total_seconds() <= slack


@dataclass
class TunnelSession:
    """One SSH connection as a tunnel user; `login` spans the authentication."""

    lab: Any
    user: str
    key: Path
    source: str = ""  # the operator address to connect from (default: the operator's own)
    first_try: Path | None = None  # a key offered first, which sshd refuses
    login: Span | None = None
    local_port: int = 0  # the client's port, as sshd logs it
    transport: paramiko.Transport | None = field(default=None, repr=False)
    port: int | None = None  # the bastion's port (default: the lab's ssh_port)

    def open(self) -> TunnelSession:
        """Log in; raises paramiko.AuthenticationException when sshd refuses."""
        sock = socket.create_connection(
            (self.lab.bastion_address, self.port or self.lab.ssh_port), timeout=10,
            source_address=(self.source, 0) if self.source else None,
        )  # fmt: skip
        self.local_port = sock.getsockname()[1]
        transport = paramiko.Transport(sock)
        self.transport = transport
        before = now()
        transport.start_client(timeout=10)
        offered = fingerprint(transport.get_remote_server_key().asbytes())
        if offered not in self.lab.host_key_fingerprints:
            transport.close()
            raise AssertionError(f"the lab host offered an unknown host key {offered}")
        key = paramiko.PKey.from_path(self.key)  # ed25519, or RSA as Fivetran's
        try:
            if self.first_try is not None:  # as a client with several keys does
                with contextlib.suppress(paramiko.AuthenticationException):
                    wrong = paramiko.Ed25519Key.from_private_key_file(str(self.first_try))
                    transport.auth_publickey(self.user, wrong)
            transport.auth_publickey(self.user, key)
        except paramiko.SSHException:
            transport.close()
            raise
        self.login = Span(before, now())
        return self

    def forward(self, host: str, port: int) -> bool:
        """Open a direct-tcpip channel (what `ssh -L` does per connection) and close it:
        True if sshd opened it, False if it refused."""
        assert self.transport is not None
        try:
            channel = self.transport.open_channel(
                "direct-tcpip", (host, port), ("127.0.0.1", 40000), timeout=10
            )
        except paramiko.ChannelException:
            return False
        channel.close()
        return True

    def shell(self) -> None:
        """A command, as a person at a terminal would try (sshd answers with nologin)."""
        assert self.transport is not None
        channel = self.transport.open_session(timeout=10)
        channel.exec_command("id")
        channel.recv_exit_status()
        channel.close()

    def pty(self) -> bool:
        """Ask for a terminal: True if sshd gave one."""
        assert self.transport is not None
        channel = self.transport.open_session(timeout=10)
        try:
            channel.get_pty()
        except paramiko.SSHException:
            return False
        finally:
            channel.close()
        return True

    def close(self) -> datetime:
        """Disconnect; returns the time just before."""
        moment = now()
        if self.transport is not None:
            self.transport.close()
        return moment


def refused_login(lab: Any, user: str, key: Path, source: str = "") -> Span:
    """A login sshd must refuse (a key it does not allow, an address it does not admit)."""
    session = TunnelSession(lab, user, key, source)
    before = now()
    try:
        session.open()
    except paramiko.SSHException:
        return Span(before, now())
    session.close()
    raise AssertionError(f"{user} logged in with {key.name} from {source or 'the operator'}")


def frozen_session(lab: Any, user: str, key: Path, folder: Path, seconds: float) -> Span:
    """OpenSSH's client logs in, then stops answering (SIGSTOP) for `seconds`: sshd's
    ClientAlive checks go unanswered and it ends the session (`Timeout, client not
    responding`), if `seconds` exceeds interval x (count + 1). Returns the login's span."""
    known_hosts = folder / "known_hosts.frozen"
    known_hosts.write_text(lab.known_hosts())
    before = now()
    client = subprocess.Popen(
        ["ssh", "-F", "/dev/null", "-N", "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
         "-o", "StrictHostKeyChecking=yes", "-o", "ServerAliveInterval=0",
         "-o", "ConnectTimeout=10", "-o", "LogLevel=VERBOSE",
         "-p", str(lab.ssh_port), f"{user}@{lab.bastion_address}"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert client.stderr is not None
        said = []
        for line in client.stderr:  # "Authenticated to HOST ([ADDR]:PORT) using "publickey"."
            said.append(line)
            if line.startswith("Authenticated to "):
                break
        else:
            raise AssertionError(f"the frozen session never logged in: {''.join(said)[-500:]}")
        span = Span(before, now())
        os.kill(client.pid, signal.SIGSTOP)
        time.sleep(seconds)
    finally:
        client.kill()
        client.wait()
    return span
