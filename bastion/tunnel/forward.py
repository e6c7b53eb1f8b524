"""A local port forward over an authenticated paramiko Transport, the way dbt Cloud tunnels.

psycopg needs a TCP address, so verify listens on 127.0.0.1 and pumps each accepted
connection through its own `direct-tcpip` channel. The forward is ready when `__enter__`
returns (the listening socket exists before any client connects), which avoids the race
Fabric's `forward_local` has between returning and its socket appearing.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko

_CHUNK = 32768


class LocalForward:
    """127.0.0.1:<port> -> bastion -> target, one channel per accepted connection.

    `first_channel` (already opened by the forward hop) serves the first connection, so the
    channel the forward hop proved is the one the database hop uses.
    """

    def __init__(
        self,
        transport: paramiko.Transport,
        target: tuple[str, int],
        *,
        first_channel: paramiko.Channel | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self._transport = transport
        self._target = target
        self._spare = first_channel
        self._open_timeout = open_timeout
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._closing = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pairs: list[tuple[socket.socket, paramiko.Channel]] = []
        self._lock = threading.Lock()
        self.errors: list[str] = []

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> LocalForward:
        thread = threading.Thread(target=self._accept_loop, name="bastion-forward", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closing.set()
        # close() alone does not wake a thread blocked in accept() on Linux: shut it down.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            pairs = list(self._pairs)
            spare, self._spare = self._spare, None
        for client, channel in pairs:
            with contextlib.suppress(Exception):
                channel.close()
            with contextlib.suppress(OSError):
                client.close()
        if spare is not None:
            with contextlib.suppress(Exception):
                spare.close()
        for thread in self._threads:
            thread.join(timeout=2)

    def _accept_loop(self) -> None:
        while not self._closing.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                channel = self._channel()
            except Exception as exc:
                self.errors.append(str(exc))
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, channel))
            pump = threading.Thread(
                target=self._pump, args=(client, channel), name="bastion-pump", daemon=True
            )
            pump.start()
            self._threads.append(pump)

    def _channel(self) -> paramiko.Channel:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and not spare.closed:
            return spare
        return self._transport.open_channel(
            "direct-tcpip", self._target, ("127.0.0.1", 0), timeout=self._open_timeout
        )

    def _pump(self, client: socket.socket, channel: paramiko.Channel) -> None:
        try:
            while not self._closing.is_set():
                readable, _, _ = select.select([client, channel], [], [], 0.5)  # type: ignore[type-var]
                if client in readable:
                    data = client.recv(_CHUNK)
                    if not data:
                        break
                    channel.sendall(data)
                if channel in readable:
                    data = channel.recv(_CHUNK)
                    if not data:
                        break
                    client.sendall(data)
        except (OSError, EOFError):
            pass
        finally:
            with contextlib.suppress(Exception):
                channel.close()
            with contextlib.suppress(OSError):
                client.close()
