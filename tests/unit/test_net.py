"""bastion.net: SSH's TCP connections go out with Nagle's algorithm off."""

from __future__ import annotations

import socket

import pytest

from bastion.net import ssh_socket


def test_the_socket_is_connected_with_nodelay() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with ssh_socket("127.0.0.1", port, 5) as sock:
            assert sock.getpeername() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1


def test_a_refused_port_raises_as_create_connection_does() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        ssh_socket("127.0.0.1", port, 5)
