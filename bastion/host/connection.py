"""SSH connections to the bastion: only the given key, pinned host keys, nothing from ~/.ssh.

A bastion guards a production database, so the tool never trusts what a laptop happens to
have: no agent, no other keys, no `~/.ssh/config`, and a host key that changed is refused
unless the operator says the host was replaced (`--accept-new-host-key`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shlex
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.config.settings import Settings
from bastion.errors import ConfigError, HostError, SshError
from bastion.net import Dial, ssh_socket

if TYPE_CHECKING:
    import paramiko
    from fabric import Connection


CONNECT_TIMEOUT = 10
KEEPALIVE_SECONDS = 15  # below the 30-60 s idle timeouts of common NATs and firewalls
_REACH_HINT = "check the address, the port and that the security group admits you"
_ENDPOINT_HINT = (
    "check the Instance Connect Endpoint (`bastion status`) and that the bastion group admits "
    "the endpoint's group on port 22 (`bastion plan`)"
)
ACCEPT_NEW_HINT = (
    "if the host was replaced on purpose, re-run with --accept-new-host-key; otherwise "
    "someone may be intercepting the connection"
)


class HostUnreachable(SshError):
    """Nothing answered on the port (refused, reset, timed out): worth a retry after a reload."""


def fingerprint(blob: bytes) -> str:
    """A key blob's SHA256 fingerprint exactly as `ssh-keygen -l` prints it."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def host_pattern(address: str, port: int) -> str:
    """How OpenSSH's known_hosts names a host: `addr`, or `[addr]:port` off port 22."""
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class KnownHost:
    pattern: str
    key_type: str
    key_data: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(base64.b64decode(self.key_data))

    def line(self) -> str:
        return f"{self.pattern} {self.key_type} {self.key_data}"


class KnownHosts:
    """The `known_hosts` file beside the config (users commit it): plain OpenSSH format."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[KnownHost]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ConfigError(
                f"cannot read the known_hosts file {self.path}: {exc.strerror}"
            ) from None
        found = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 3 or line.lstrip().startswith(("#", "@")):
                continue
            for pattern in fields[0].split(","):
                found.append(KnownHost(pattern, fields[1], fields[2]))
        return found

    def fingerprints(self, pattern: str) -> list[str]:
        return [entry.fingerprint for entry in self.entries() if entry.pattern == pattern]

    def pin(self, pattern: str, key_type: str, key_data: str) -> None:
        """Replace every entry for `pattern` with this key, atomically (temp file + rename)."""
        keep = [e for e in self.entries() if e.pattern != pattern]
        lines = [e.line() for e in keep] + [KnownHost(pattern, key_type, key_data).line()]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


@dataclass
class HostKeyPins:
    """What a host key must be: pins from known_hosts and from the caller (the AWS tag)."""

    known_hosts: KnownHosts | None = None
    expected: Sequence[str] = ()
    accept_new: bool = False
    learn: bool = True  # write a newly trusted key to known_hosts after login


@dataclass
class _SeenKey:
    key_type: str = ""
    key_data: str = ""
    fingerprint: str = ""
    pinned: bool = False  # already in known_hosts under this pattern


def _pinning_policy(pins: HostKeyPins, pattern: str, seen: _SeenKey) -> Any:
    """A paramiko policy that checks every key itself (paramiko is given no host keys)."""
    import paramiko

    class PinningPolicy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            seen.key_type = key.get_name()
            seen.key_data = key.get_base64()
            seen.fingerprint = fingerprint(key.asbytes())
            local = pins.known_hosts.fingerprints(pattern) if pins.known_hosts else []
            seen.pinned = seen.fingerprint in local
            wanted = [*dict.fromkeys([*local, *pins.expected])]
            if not wanted or seen.fingerprint in wanted or pins.accept_new:
                return
            where = "known_hosts" if local else "the instance tag bastion:host-key"
            raise SshError(
                f"the host key of {pattern} changed: expected {' or '.join(wanted)} "
                f"(pinned in {where}), the host presented {seen.fingerprint}",
                hint=ACCEPT_NEW_HINT,
            )

    return PinningPolicy()


STREAM_CHUNK = 1 << 16  # bytes read from a channel at a time


@dataclass
class Streamed:
    """One command's stdout as it arrives; its exit status and stderr once it has ended."""

    conn: HostConnection
    command: str
    timeout: float | None
    sent: Callable[[], object] | None = None  # called once the command is on its way
    status: int = -1
    errors: bytes = b""

    def chunks(self) -> Iterator[bytes]:
        """stdout in chunks; the channel closes when they end or the reader stops early."""
        import paramiko

        conn = self.conn
        conn.commands_run += 1
        channel = None
        try:
            channel = conn.connection.client.get_transport().open_session(timeout=CONNECT_TIMEOUT)
            channel.settimeout(self.timeout)
            channel.exec_command(self.command)
            if self.sent is not None:
                with contextlib.suppress(Exception):  # a hint (bastion.prefetch): never the read's end
                    self.sent()
            while chunk := channel.recv(STREAM_CHUNK):
                yield chunk
            self.errors = channel.makefile_stderr("rb").read()
            self.status = channel.recv_exit_status()
        except TimeoutError:
            raise HostError(
                f"a command on {conn.address} did not finish in {self.timeout} s"
            ) from None
        except (OSError, EOFError, AttributeError, paramiko.SSHException) as exc:
            raise SshError(f"the connection to {conn.address} broke: {exc}") from None
        finally:
            if channel is not None:
                channel.close()


class HostConnection:
    """An open, authenticated connection; counts the commands it runs (one per round trip)."""

    def __init__(
        self,
        connection: Connection,
        host_key_fingerprint: str,
        pins: HostKeyPins,
        dial: Dial = ssh_socket,
    ) -> None:
        self.connection = connection
        self.host_key_fingerprint = host_key_fingerprint
        self.pins = pins
        self.dial = dial  # how this connection's stream was opened: a fresh login opens alike
        self.commands_run = 0

    @property
    def address(self) -> str:
        return str(self.connection.host)

    @property
    def port(self) -> int:
        return int(self.connection.port)

    @property
    def user(self) -> str:
        return str(self.connection.user)

    def run(self, command: str, *, timeout: float | None = None) -> Any:
        """Run a command, never raising on its exit code (the caller judges it)."""
        from invoke.exceptions import CommandTimedOut

        self.commands_run += 1
        try:
            return self.connection.run(
                command, hide=True, warn=True, in_stream=False, pty=False, timeout=timeout
            )
        except CommandTimedOut:
            raise HostError(f"a command on {self.address} did not finish in {timeout} s") from None
        except (OSError, EOFError) as exc:
            raise SshError(f"the connection to {self.address} broke: {exc}") from None

    def sudo_script(self, script: str, *args: str, timeout: float | None = None) -> Any:
        """Run a shell script as root with `sudo -n sh -c` (never sudo in front of a compound).

        Arguments are expanded by the login shell first, so `"$SSH_CONNECTION"` reaches the
        script as a positional parameter even though sudo resets the environment.
        """
        quoted = " ".join(shlex.quote(a) if not a.startswith('"$') else a for a in args)
        return self.run(f"sudo -n sh -c {shlex.quote(script)} sh {quoted}", timeout=timeout)

    def sudo_stream(
        self,
        script: str,
        *args: str,
        timeout: float | None = None,
        sent: Callable[[], object] | None = None,
    ) -> Streamed:
        """`sudo_script` for an answer of megabytes (a month of sshd's log), its stdout read
        as it arrives, in large chunks (invoke's runner reads a kilobyte at a time, polls
        between reads and keeps all of it): iterate `chunks()`, then read `status` and `errors`.
        `sent` is called once the command is on its way, as the wait for its answer begins."""
        command = f"sudo -n sh -c {shlex.quote(script)} sh {shlex.join(args)}"
        return Streamed(self, command, timeout, sent)

    def close(self) -> None:
        self.connection.close()


def load_private_key(path: Path) -> paramiko.PKey:
    """Read the admin key; an unreadable or encrypted key is a config error, not a traceback."""
    import paramiko

    try:
        return paramiko.PKey.from_path(path.expanduser())
    except FileNotFoundError:
        raise ConfigError(
            f"bastion.admin_key: {path} does not exist",
            hint="point bastion.admin_key at the private key matching the host's admin user",
        ) from None
    except paramiko.PasswordRequiredException:
        raise ConfigError(
            f"bastion.admin_key: {path} is encrypted; bastion does not use an agent",
            hint="use an unencrypted deploy key stored as a CI secret, or decrypt a copy",
        ) from None
    except (paramiko.SSHException, ValueError, OSError) as exc:
        raise ConfigError(
            f"bastion.admin_key: cannot read {path} as a private key: {exc}"
        ) from None


def connect(
    address: str,
    port: int,
    user: str,
    private_key: paramiko.PKey | Path,
    pins: HostKeyPins | Sequence[str],
    *,
    timeout: float = CONNECT_TIMEOUT,
    dial: Dial = ssh_socket,
) -> HostConnection:
    """Open and authenticate a connection with exactly this key, checking the host key pins.

    `pins` may be plain fingerprints (e.g. the `bastion:host-key` tag): they must match, and
    nothing is written to known_hosts. `dial` opens the stream (an Instance Connect
    Endpoint's tunnel instead of TCP).
    """
    if not isinstance(pins, HostKeyPins):
        pins = HostKeyPins(expected=tuple(pins), learn=False)
    pattern = host_pattern(address, port)
    try:  # first: sshd starts its side of the connection while paramiko and Fabric load
        sock = dial(address, port, timeout)
    except OSError as exc:
        hint = _REACH_HINT if dial is ssh_socket else _ENDPOINT_HINT
        raise HostUnreachable(
            f"cannot connect to {pattern} as {user}: {exc or type(exc).__name__}", hint=hint
        ) from None
    try:
        return _login(sock, address, port, user, private_key, pins, pattern, timeout, dial)
    except BaseException:
        sock.close()
        raise


def _login(
    sock: socket.socket | Any,
    address: str,
    port: int,
    user: str,
    private_key: paramiko.PKey | Path,
    pins: HostKeyPins,
    pattern: str,
    timeout: float,
    dial: Dial = ssh_socket,
) -> HostConnection:
    import paramiko
    from fabric import Config, Connection

    pkey = load_private_key(private_key) if isinstance(private_key, Path) else private_key
    config = Config(lazy=True, overrides={"load_ssh_configs": False})
    connection = Connection(
        address,
        user=user,
        port=port,
        config=config,
        forward_agent=False,
        connect_timeout=int(timeout),
        connect_kwargs={
            "pkey": pkey,
            "allow_agent": False,
            "look_for_keys": False,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        },
    )
    seen = _SeenKey()
    connection.client.set_missing_host_key_policy(_pinning_policy(pins, pattern, seen))
    try:
        _open(connection, sock)
    except paramiko.AuthenticationException:
        raise SshError(
            f"{user}@{pattern} refused the key {getattr(pkey, 'fingerprint', '')}".rstrip(),
            hint="check the user and that its authorized_keys holds this key's public half",
        ) from None
    except (TimeoutError, paramiko.SSHException, OSError, EOFError) as exc:
        unreachable = "banner" in str(exc) or not isinstance(exc, paramiko.SSHException)
        raise (HostUnreachable if unreachable else SshError)(
            f"cannot connect to {pattern} as {user}: {exc or type(exc).__name__}",
            hint=_REACH_HINT,
        ) from None
    if pins.learn and pins.known_hosts is not None and not seen.pinned:
        pins.known_hosts.pin(pattern, seen.key_type, seen.key_data)
    return HostConnection(connection, seen.fingerprint, pins, dial)


def _open(connection: Connection, sock: socket.socket | Any) -> None:
    """Log in over a socket of ours (Nagle off, see bastion.net), with SSH keepalives: a
    long quiet wait (cloud-init, up to 900 s) must not be dropped by a NAT or firewall."""
    connection.connect_kwargs["sock"] = sock
    try:
        connection.open()
        connection.transport.set_keepalive(KEEPALIVE_SECONDS)
    except BaseException:
        connection.close()
        raise
    finally:
        del connection.connect_kwargs["sock"]  # the transport holds it from here


def admin_pins(
    settings: Settings, expected_fingerprints: Sequence[str] = (), accept_new: bool = False
) -> HostKeyPins:
    return HostKeyPins(
        known_hosts=KnownHosts(settings.bastion.known_hosts),
        expected=tuple(expected_fingerprints),
        accept_new=accept_new,
    )


def connect_admin(
    settings: Settings,
    address: str,
    *,
    expected_fingerprints: Sequence[str] = (),
    accept_new: bool = False,
    port: int | None = None,
    dial: Dial = ssh_socket,
) -> HostConnection:
    return connect(
        address,
        port or settings.bastion.ssh_port,
        settings.bastion.admin_user,
        settings.bastion.admin_key,
        admin_pins(settings, expected_fingerprints, accept_new),
        dial=dial,
    )


@contextmanager
def open_admin(
    settings: Settings,
    address: str,
    *,
    expected_fingerprints: Sequence[str] = (),
    accept_new: bool = False,
    ports: Sequence[int] = (),
    dial: Dial = ssh_socket,
    only_port: int | None = None,
) -> Iterator[HostConnection]:
    """The admin connection as a context manager: opened here, always closed.

    While an ssh_port change is under way sshd may still listen only on the old port, so
    `ports` (e.g. the one AWS recorded), `ssh_port` and the ports known_hosts pins for this
    address are tried in turn; only "nothing answered" moves on to the next. `only_port`:
    the one port there is (an Instance Connect Endpoint reaches 22 alone).
    """
    known = KnownHosts(settings.bastion.known_hosts)
    tried = list(dict.fromkeys([*ports, *candidate_ports(settings, address, known)]))
    if only_port is not None:
        tried = [only_port]
    for index, port in enumerate(tried):
        try:
            conn = connect_admin(
                settings,
                address,
                expected_fingerprints=expected_fingerprints,
                accept_new=accept_new,
                port=port,
                dial=dial,
            )
            break
        except HostUnreachable:
            if index == len(tried) - 1:
                raise
    try:
        yield conn
    finally:
        conn.close()


def candidate_ports(
    settings: Settings, address: str, known_hosts: KnownHosts, recorded: int | None = None
) -> list[int]:
    """Where sshd may listen now, most likely first: the port AWS recorded, `ssh_port`, then
    every port known_hosts pins for this address (a move this tool began, seen from a laptop
    that has no AWS tag to read)."""
    ports = [p for p in (recorded, settings.bastion.ssh_port) if p]
    for entry in known_hosts.entries():
        if entry.pattern == address:
            ports.append(22)
        elif entry.pattern.startswith(f"[{address}]:"):
            tail = entry.pattern.rsplit(":", 1)[1]
            if tail.isdigit():
                ports.append(int(tail))
    return list(dict.fromkeys(ports))


__all__ = [
    "HostConnection",
    "HostKeyPins",
    "KnownHosts",
    "connect",
    "connect_admin",
    "open_admin",
]
