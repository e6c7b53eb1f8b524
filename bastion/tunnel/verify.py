"""`verify`: prove the tunnel hop by hop, as the tunnel user, the way dbt Cloud uses it.

An ephemeral ed25519 key is installed in the tunnel user's second authorized-keys file
(never the managed `authorized_keys`) with the real keys' restrictions plus an expiry, and
removed in a `finally` that Ctrl-C cannot skip; if removal fails the expiry still closes it.
Then: TCP to the bastion, SSH with the host key pinned, a direct-tcpip channel to the
warehouse, and a database login through a local forward. Each hop is timed; the first
failure stops the walk and says what to do.
"""

from __future__ import annotations

import contextlib
import io
import re
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from bastion.config.rules import host_port

if TYPE_CHECKING:
    import boto3
    import paramiko

    from bastion.config.settings import Settings
    from bastion.endpoint import Endpoint

KEY_LIFETIME = timedelta(minutes=10)
HOP_NAMES = ("tcp", "ssh", "forward", "database")
_OPENSSH_VERSION = re.compile(r"OpenSSH_(\d+)\.(\d+)")


@dataclass(frozen=True)
class Hop:
    """One link of the path: its name (SPEC: tcp, ssh, forward, database), result and time."""

    name: str
    ok: bool
    ms: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "ms": round(self.ms, 1), "detail": self.detail}

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}"


@dataclass
class VerifyResult:
    """Every hop walked, in order; `ok` only when all four passed (and the idle re-query)."""

    address: str
    ssh_port: int
    target: str
    hops: list[Hop] = field(default_factory=list)
    server_version: str = ""
    login_tested: bool = False
    host_key_fingerprint: str = ""
    key_comment: str = ""
    idle_seconds: float = 0

    @property
    def ok(self) -> bool:
        names = {hop.name for hop in self.hops if hop.ok}
        return all(hop.ok for hop in self.hops) and set(HOP_NAMES) <= names

    @property
    def failed(self) -> Hop | None:
        return next((hop for hop in self.hops if not hop.ok), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "hops": [hop.to_dict() for hop in self.hops],
            "address": self.address,
            "ssh_port": self.ssh_port,
            "target": self.target,
            "server_version": self.server_version or None,
            "login_tested": self.login_tested,
            "host_key_fingerprint": self.host_key_fingerprint or None,
            "idle_seconds": self.idle_seconds,
        }


class VerifyKeyHost(Protocol):
    """The admin side of verify: puts the ephemeral key in the second file and takes it out."""

    def install(self, line: str) -> None: ...

    def remove(self, line: str) -> None: ...

    def local_time(self, moment: datetime) -> str:
        """`moment` as YYYYMMDDHHMMSS in the host's own time zone (for OpenSSH < 9.1)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EphemeralKey:
    """A fresh ed25519 key that exists only for one verify run."""

    private: paramiko.PKey
    public_line: str
    comment: str

    @classmethod
    def generate(cls, name: str) -> EphemeralKey:
        import paramiko
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode("ascii")
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        comment = f"bastion-verify-{name}-{stamp}-{uuid.uuid4().hex[:8]}"
        private = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
        return cls(private, f"{public.decode('ascii')} {comment}", comment)


def openssh_version(banner: str) -> tuple[int, int] | None:
    match = _OPENSSH_VERSION.search(banner)
    return (int(match.group(1)), int(match.group(2))) if match else None


def expiry_time(
    expires: datetime, version: tuple[int, int] | None, host: VerifyKeyHost | None
) -> str:
    """expiry-time's value: UTC with 'Z' from OpenSSH 9.1 on, else the host's local time."""
    if version is not None and version >= (9, 1):
        return expires.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")
    if host is None:
        raise ValueError("an OpenSSH older than 9.1 needs the host's local time")
    return host.local_time(expires)


def authorized_line(key: EphemeralKey, target: Endpoint, expiry: str) -> str:
    """The same restrictions the real tunnel keys carry, plus the expiry."""
    options = (
        f'restrict,port-forwarding,permitopen="{host_port(target.host, target.port)}",'
        f'expiry-time="{expiry}"'
    )
    return f"{options} {key.public_line}"


def verify(
    settings: Settings,
    *,
    address: str = "",
    target: Endpoint | None = None,
    idle: float = 0,
    session: boto3.Session | None = None,
    host: VerifyKeyHost | None = None,
    on_hop: Callable[[Hop], None] | None = None,
) -> VerifyResult:
    """Walk tcp -> ssh -> forward -> database (-> idle re-query) and return every hop.

    `address` defaults to bastion.address or the Elastic IP; `target` to the warehouse
    endpoint. `host` installs the ephemeral key (default: an admin login to the bastion).
    Runtime errors of the admin side (cannot log in as the admin) raise; broken hops do not.
    """
    from bastion.tunnel.database import logs_in
    from bastion.tunnel.hops import tcp_check
    from bastion.tunnel.verify_key import bastion_address, warehouse_endpoint

    if logs_in(settings):  # psycopg loads while the SSH logins wait on the network
        from bastion.prefetch import warm

        warm("psycopg")
    address = address or bastion_address(settings, session)
    target = target or warehouse_endpoint(settings, session)
    port = settings.bastion.ssh_port
    result = VerifyResult(address, port, str(target), idle_seconds=idle)

    def record(hop: Hop) -> bool:
        result.hops.append(hop)
        if on_hop is not None:
            on_hop(hop)
        return hop.ok

    tcp_hop, banner = tcp_check(address, port)
    if not record(tcp_hop):
        return result
    key = EphemeralKey.generate(settings.name)
    result.key_comment = key.comment
    lifetime = KEY_LIFETIME + timedelta(seconds=idle)
    with _installed(settings, address, key, target, banner, host, lifetime):
        _walk_tunnel(settings, address, key, target, idle, session, result, record)
    return result


@contextlib.contextmanager
def _installed(
    settings: Settings,
    address: str,
    key: EphemeralKey,
    target: Endpoint,
    banner: str,
    host: VerifyKeyHost | None,
    lifetime: timedelta,
) -> Iterator[str]:
    """Install the ephemeral key; remove it on every way out, a second Ctrl-C included."""
    if host is None:
        from bastion.tunnel.verify_key import AdminVerifyKeyHost

        host = AdminVerifyKeyHost(settings, address)
    try:
        expires = datetime.now(UTC) + lifetime
        line = authorized_line(key, target, expiry_time(expires, openssh_version(banner), host))
        try:
            host.install(line)
        except BaseException:
            with _sigint_deferred(), contextlib.suppress(Exception):
                host.remove(line)  # a half-done install must not stay either
            raise
        try:
            yield line
        finally:
            with _sigint_deferred():
                host.remove(line)
    finally:
        with contextlib.suppress(Exception):
            host.close()


@contextlib.contextmanager
def _sigint_deferred() -> Iterator[None]:
    """Hold Ctrl-C while the key is removed; re-raise it afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _walk_tunnel(
    settings: Settings,
    address: str,
    key: EphemeralKey,
    target: Endpoint,
    idle: float,
    session: boto3.Session | None,
    result: VerifyResult,
    record: Callable[[Hop], bool],
) -> None:
    from bastion.tunnel.hops import database_hop, forward_hop, idle_hop, ssh_hop

    hop, transport = ssh_hop(settings, address, key, result)
    try:
        if not record(hop) or transport is None:
            return
        hop, channel = forward_hop(transport, target)
        if not record(hop) or channel is None:
            return
        hop, conn, forward = database_hop(settings, transport, channel, target, session, result)
        try:
            if not record(hop) or idle <= 0:
                return
            record(idle_hop(settings, conn, forward, idle))
        finally:
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()
            forward.close()
    finally:
        if transport is not None:
            transport.close()
