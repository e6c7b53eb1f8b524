"""The TCP connection under every SSH session bastion opens: Nagle's algorithm off.

SSH sends whole packets and often two in a row (a login request right after the key
exchange, a channel request right after the open). With Nagle's algorithm on, the second
small packet waits until the server acknowledges the first, and Linux delays that ACK by
40 ms: several stalls per login. Measured on the lab, an admin login took 65-77 ms with
Nagle and 24-28 ms without; OpenSSH's client turns it off for interactive sessions too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

# How an SSH session's stream is opened: (address, port, timeout) -> a connected socket, or a
# socket-like stream (an Instance Connect Endpoint's websocket); raises OSError when nothing
# answers. `ssh_socket` is the direct path.
Dial = Callable[[str, int, float], Any]


def ssh_socket(address: str, port: int, timeout: float) -> socket.socket:
    """A connected TCP socket to address:port with TCP_NODELAY; raises OSError as
    socket.create_connection does (TimeoutError, ConnectionRefusedError, ...)."""
    sock = socket.create_connection((address, port), timeout=timeout)
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        raise
    return sock
