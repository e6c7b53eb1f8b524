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
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

from bastion.aws.gateway import AwsGateway
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.net import Dial
from bastion.prefetch import warm
from bastion.tunnel.database import logs_in
from bastion.tunnel.hops import database_hop, forward_hop, idle_hop, ssh_hop, tcp_check
from bastion.tunnel.result import Hop, VerifyResult
from bastion.tunnel.verify_key import (
    EphemeralKey,
    VerifyKeyHost,
    authorized_line,
    expiry_time,
    openssh_version,
)

KEY_LIFETIME = timedelta(minutes=10)


def verify(
    settings: Settings,
    *,
    address: str,
    target: Endpoint,
    host: VerifyKeyHost,
    user: str = "",
    idle: float = 0,
    gateway: AwsGateway | None = None,
    on_hop: Callable[[Hop], None] | None = None,
    via: tuple[int, Dial] | None = None,
) -> VerifyResult:
    """Walk tcp -> ssh -> forward -> database (-> idle re-query) as tunnel user `user` (the
    first tunnel's when not given) and return every hop.

    `host` installs the ephemeral key (an admin login to the bastion); `gateway` asks AWS
    for temporary database credentials when `warehouse.auth = "iam"`. Runtime errors of the
    admin side (cannot log in as the admin) raise; broken hops do not. `via` (port, dial):
    the tunnel user logs in through an Instance Connect Endpoint, on the port it reaches.
    """
    if logs_in(settings):  # psycopg loads while the SSH logins wait on the network
        warm("psycopg")
    port = via[0] if via is not None else settings.bastion.ssh_port
    user = user or settings.first_tunnel.user
    result = VerifyResult(address, port, str(target), idle_seconds=idle, user=user)

    def record(hop: Hop) -> bool:
        result.hops.append(hop)
        if on_hop is not None:
            on_hop(hop)
        return hop.ok

    tcp_hop, banner = tcp_check(address, port, via[1] if via is not None else None)
    if not record(tcp_hop):
        return result
    key = EphemeralKey.generate(settings.name)
    result.key_comment = key.comment
    lifetime = KEY_LIFETIME + timedelta(seconds=idle)
    with _installed(key, target, banner, host, lifetime):
        _walk_tunnel(settings, address, key, target, idle, gateway, result, record, via)
    return result


@contextlib.contextmanager
def _installed(
    key: EphemeralKey,
    target: Endpoint,
    banner: str,
    host: VerifyKeyHost,
    lifetime: timedelta,
) -> Iterator[str]:
    """Install the ephemeral key; remove it on every way out, a second Ctrl-C included.
    The admin login stays open (the caller closes `host`): the next tunnel user's key may
    need it."""
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
    gateway: AwsGateway | None,
    result: VerifyResult,
    record: Callable[[Hop], bool],
    via: tuple[int, Dial] | None = None,
) -> None:
    hop, transport = ssh_hop(settings, address, key, result, user=result.user, via=via)
    try:
        if not record(hop) or transport is None:
            return
        hop, channel = forward_hop(transport, target)
        if not record(hop) or channel is None:
            return
        hop, conn, forward = database_hop(settings, transport, channel, target, gateway, result)
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
