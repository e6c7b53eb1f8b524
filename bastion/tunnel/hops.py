"""The hops: tcp, ssh, forward, database, and the idle re-query.

Each returns a Hop whose detail, on failure, names the likely cause and the fix in the
words an operator uses, e.g. "refused by the bastion: PermitOpen does not allow H:P".
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import TYPE_CHECKING, Any

from bastion.aws.gateway import AwsGateway
from bastion.config.rules import host_port
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.host.connection import KnownHosts, fingerprint, host_pattern
from bastion.net import Dial, ssh_socket
from bastion.tunnel.database import (
    CredentialsError,
    credentials,
    explain_psycopg,
    handshake,
    login,
    query,
)
from bastion.tunnel.forward import LocalForward
from bastion.tunnel.result import Hop, VerifyResult
from bastion.tunnel.verify_key import EphemeralKey

if TYPE_CHECKING:
    import paramiko


TCP_TIMEOUT = 5.0
SSH_TIMEOUT = 15.0
CHANNEL_TIMEOUT = 10.0
# sshd's SSH_OPEN_* reason codes for a refused direct-tcpip channel
_ADMINISTRATIVELY_PROHIBITED = 1
_CONNECT_FAILED = 2


class HostKeyMismatch(Exception):
    """The bastion presented a host key the pins do not name; the message says what to do."""


def check_host_key(
    settings: Settings, address: str, key: paramiko.PKey, port: int | None = None
) -> None:
    """The tunnel login trusts only what configure pinned; nothing is learned here."""
    pattern = host_pattern(address, port or settings.bastion.ssh_port)
    pinned = KnownHosts(settings.bastion.known_hosts).fingerprints(pattern)
    seen = fingerprint(key.asbytes())
    if not pinned:
        raise HostKeyMismatch(
            f"no host key pinned for {pattern} in {settings.bastion.known_hosts}: "
            "run bastion configure first (it pins the key)"
        )
    if seen not in pinned:
        raise HostKeyMismatch(
            f"the host key of {pattern} is {seen}, but {' or '.join(pinned)} is pinned: "
            "if the host was replaced, run bastion configure --accept-new-host-key; "
            "otherwise someone may be intercepting the connection"
        )


def tcp_check(address: str, port: int, dial: Dial | None = None) -> tuple[Hop, str]:
    """Hop 1: can we open a TCP connection to the bastion's SSH port? Also reads the banner.
    `dial`: through an Instance Connect Endpoint's tunnel instead."""
    where = host_port(address, port)
    started = time.perf_counter()
    try:
        if dial is None:
            sock = socket.create_connection((address, port), timeout=TCP_TIMEOUT)
        else:
            sock = dial(address, port, TCP_TIMEOUT)
    except TimeoutError:
        return _fail("tcp", started, _no_answer(where)), ""
    except ConnectionRefusedError:
        return _fail(
            "tcp",
            started,
            f"{where} refused the connection: sshd is not running there or listens on "
            "another port (check bastion.ssh_port; on the host: systemctl status sshd)",
        ), ""
    except OSError as exc:
        return _fail("tcp", started, f"cannot reach {where}: {exc.strerror or exc}"), ""
    ms = _ms(started)
    banner = ""
    with contextlib.closing(sock):
        sock.settimeout(TCP_TIMEOUT)
        with contextlib.suppress(OSError):
            banner = sock.recv(256).decode("ascii", "replace").strip()
    if not banner.startswith("SSH-"):
        return Hop("tcp", False, ms, f"{where} accepted TCP but sent no SSH banner: is "
                   "bastion.ssh_port the SSH port, and no proxy in between?"), banner  # fmt: skip
    return Hop("tcp", True, ms, f"{where} reachable ({banner.split()[0]})"), banner


def _no_answer(where: str) -> str:
    return (
        f"no answer from {where} within {TCP_TIMEOUT:.0f} s: check the security group rule "
        "for your address and the subnet's route to an internet gateway"
    )


def ssh_hop(
    settings: Settings,
    address: str,
    key: EphemeralKey,
    result: VerifyResult,
    *,
    user: str,
    via: tuple[int, Dial] | None = None,
) -> tuple[Hop, paramiko.Transport | None]:
    """Hop 2: SSH handshake, host key against the pins, public-key login as `user`."""
    import paramiko

    port = settings.bastion.ssh_port
    if via is not None:  # through an Instance Connect Endpoint: its port and its tunnel
        port, dial = via
    else:
        dial = ssh_socket
    where = host_port(address, port)
    started = time.perf_counter()
    try:
        sock = dial(address, port, TCP_TIMEOUT)
    except OSError as exc:
        return _fail("ssh", started, f"lost {where} between hops: {exc}"), None
    transport = paramiko.Transport(sock)
    transport.banner_timeout = SSH_TIMEOUT
    transport.handshake_timeout = SSH_TIMEOUT
    try:
        transport.start_client(timeout=SSH_TIMEOUT)
        server_key = transport.get_remote_server_key()
        result.host_key_fingerprint = server_key.fingerprint
        check_host_key(settings, address, server_key, port)
        transport.auth_publickey(user, key.private)
    except HostKeyMismatch as exc:
        transport.close()
        return _fail("ssh", started, str(exc)), None
    except paramiko.AuthenticationException:
        transport.close()
        return _fail(
            "ssh",
            started,
            f"{where} refused {user}'s key: sshd's AllowUsers does not admit your address for "
            f"{user}, or AuthorizedKeysFile does not list the verify file (run bastion configure)",
        ), None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        transport.close()
        return _fail(
            "ssh", started, f"SSH handshake with {where} failed: {exc or type(exc).__name__}"
        ), None
    ms = (time.perf_counter() - started) * 1000
    return Hop(
        "ssh", True, ms, f"logged in as {user}, host key {server_key.fingerprint}"
    ), transport


def forward_hop(
    transport: paramiko.Transport, target: Endpoint
) -> tuple[Hop, paramiko.Channel | None]:
    """Hop 3: ask the bastion for a direct-tcpip channel to the warehouse, as ssh -L does."""
    import paramiko

    where = host_port(target.host, target.port)
    started = time.perf_counter()
    try:
        channel = transport.open_channel(
            "direct-tcpip", (target.host, target.port), ("127.0.0.1", 0), timeout=CHANNEL_TIMEOUT
        )
    except paramiko.ChannelException as exc:
        if exc.code == _ADMINISTRATIVELY_PROHIBITED:
            detail = (
                f"refused by the bastion: PermitOpen does not allow {where} (run bastion configure)"
            )
        elif exc.code == _CONNECT_FAILED:
            detail = (
                f"the bastion could not connect to {where} ({exc.text}): the warehouse is down, "
                "or its security group does not admit the bastion's group on that port"
            )
        else:
            detail = f"the bastion refused the channel to {where}: {exc.text} (code {exc.code})"
        return _fail("forward", started, detail), None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        detail = (
            f"no answer from {where} within {CHANNEL_TIMEOUT:.0f} s: the warehouse's security "
            "group does not admit the bastion, or the warehouse is not in the bastion's VPC"
            if "Timeout" in str(exc)
            else f"the channel to {where} failed: {exc}"
        )
        return _fail("forward", started, detail), None
    ms = (time.perf_counter() - started) * 1000
    return Hop("forward", True, ms, f"channel to {where} opened through the bastion"), channel


def database_hop(
    settings: Settings,
    transport: paramiko.Transport,
    channel: paramiko.Channel,
    target: Endpoint,
    gateway: AwsGateway | None,
    result: VerifyResult,
) -> tuple[Hop, Any, LocalForward]:
    """Hop 4: log in and SELECT 1 through a local forward; without credentials, a handshake."""
    started = time.perf_counter()
    forward = LocalForward(transport, (target.host, target.port), first_channel=channel).__enter__()
    try:
        creds = credentials(settings, gateway)
    except CredentialsError as exc:
        return _fail("database", started, str(exc)), None, forward
    if creds is None:
        try:
            with socket.create_connection(
                ("127.0.0.1", forward.port), timeout=CHANNEL_TIMEOUT
            ) as sock:
                outcome = handshake(sock, settings)
        except OSError as exc:
            return (
                _fail("database", started, f"handshake through the tunnel failed: {exc}"),
                None,
                forward,
            )
        return Hop("database", outcome.ok, _ms(started), outcome.detail), None, forward
    outcome, conn = login(forward.port, settings, creds)
    result.server_version = outcome.server_version
    result.login_tested = outcome.login_tested
    return Hop("database", outcome.ok, _ms(started), outcome.detail), conn, forward


def idle_hop(settings: Settings, conn: Any, forward: LocalForward, idle: float) -> Hop:
    """Hold the tunnel idle, then query again: dbt's keepalive failures show up here."""
    time.sleep(idle)
    started = time.perf_counter()
    name = "idle"
    hint = (
        f"the tunnel died while idle for {idle:.0f} s: raise ClientAliveInterval/"
        "ClientAliveCountMax (dbt: 30 s / 10) and any load balancer idle timeout above 30 s"
    )
    if conn is not None:
        try:
            query(conn)
        except Exception as exc:
            return _fail(name, started, f"{hint} ({explain_psycopg(exc)})")
        return Hop(
            name, True, _ms(started), f"after {idle:.0f} s idle, SELECT 1 on the same connection ok"
        )
    try:
        with socket.create_connection(("127.0.0.1", forward.port), timeout=CHANNEL_TIMEOUT) as sock:
            outcome = handshake(sock, settings)
    except OSError as exc:
        return _fail(name, started, f"{hint} ({exc})")
    return Hop(name, outcome.ok, _ms(started), f"after {idle:.0f} s idle: {outcome.detail}")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _fail(name: str, started: float, detail: str) -> Hop:
    return Hop(name, False, _ms(started), detail)
