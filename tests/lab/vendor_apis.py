"""Loopback stand-ins for the vendors' APIs that hand out tunnel keys, the way moto serves AWS.

Written from the API descriptions in ../shared/REFERENCE.md ("Vendor APIs for the tunnel's
public key": dbt Cloud's endpoints as its official Terraform provider calls them, Fivetran's
group public-key endpoint), not from the tool's code. Nothing here leaves 127.0.0.1.

dbt Cloud (base URL `http://127.0.0.1:PORT/api`):
- `Authorization: Token <token>`; any other is 401. Answers are `{"status": {...}, "data": ...}`.
- `GET/PATCH /v3/accounts/{account}/connections/{id}/`: the connection (`name`,
  `is_ssh_tunnel_enabled`, `adapter_version`, `config`); 404 for another.
- `GET /v2/accounts/{account}/encryptions/?connection_id=&state=`: the SSH tunnels.
- `POST /v2/accounts/{account}/encryptions/` creates one, `POST .../encryptions/{id}/`
  updates it (`state: 2` deletes it). Every save makes a new key pair, as dbt does: the
  public half is returned (`public_key`, read-only), the private half stays with "dbt Cloud"
  (`private_key(connection)`, for the test that logs in as dbt Cloud would).
- `resave(connection)`: someone saves the connection in dbt Cloud's UI (a new key pair).

Fivetran (base URL `http://127.0.0.1:PORT`): `GET /v1/groups/{group_id}/public-key` with
HTTP Basic auth (key, secret) -> `{"code": "Success", "data": {"public_key": "ssh-rsa …
fivetran user key"}}`; 401 `AuthFailed`, 404 `NotFound_Group`. One RSA key pair per group.

Both count the requests that change something (`writes`) and can answer the next N
requests with 429 and Retry-After, or a 5xx, without acting on them (`throttle`).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

ACTIVE, DELETED = 1, 2


def _key_pair(kind: str, comment: str) -> tuple[str, str]:
    """(private PEM in OpenSSH format, public line) of a fresh key."""
    key: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else rsa.generate_private_key(
        public_exponent=65537, key_size=2048
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return private, f"{public} {comment}"


@dataclass
class _Service:
    """What both stand-ins share: a lock, a write count, throttling, a request log."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: int = 0
    throttled: int = 0  # answer `throttle_status` to this many more requests
    throttle_status: int = 429
    requests: list[tuple[str, str]] = field(default_factory=list)

    def throttle(self, count: int, status: int = 429) -> None:
        """The next `count` requests are answered `status` (429 with Retry-After: 1, or a
        5xx such as 503) without being acted on."""
        with self.lock:
            self.throttled, self.throttle_status = count, status


@dataclass
class DbtCloudState(_Service):
    token: str = ""
    account_id: int = 0
    connections: dict[int, dict[str, Any]] = field(default_factory=dict)
    encryptions: dict[int, dict[str, Any]] = field(default_factory=dict)
    private: dict[int, str] = field(default_factory=dict)  # encryption id -> private key
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(9001))

    def add_connection(self, connection_id: int, name: str = "warehouse") -> None:
        self.connections[connection_id] = {
            "id": connection_id, "account_id": self.account_id, "name": name,
            "adapter_version": "postgres_v0", "is_ssh_tunnel_enabled": False,
            "config": {"hostname": "", "port": 5432, "dbname": "analytics"},
        }  # fmt: skip

    def active(self, connection_id: int) -> dict[str, Any] | None:
        found = [
            e for e in self.encryptions.values()
            if e["connection_id"] == connection_id and e["state"] == ACTIVE
        ]  # fmt: skip
        return found[-1] if found else None

    def private_pem(self, connection_id: int) -> str:
        """The private half of the connection's current key (OpenSSH PEM), which dbt Cloud
        logs in with."""
        active = self.active(connection_id)
        assert active is not None, f"connection {connection_id} has no SSH tunnel"
        return self.private[active["id"]]

    def private_key(self, connection_id: int) -> paramiko.PKey:
        return paramiko.Ed25519Key.from_private_key(io.StringIO(self.private_pem(connection_id)))

    def resave(self, connection_id: int) -> None:
        """Someone saves the connection in dbt Cloud: a new key pair for its tunnel."""
        with self.lock:
            active = self.active(connection_id)
            assert active is not None
            self._new_key(active)

    def _new_key(self, encryption: dict[str, Any]) -> None:
        private, public = _key_pair("ed25519", "")
        encryption["public_key"] = public.strip()
        self.private[encryption["id"]] = private

    def save(self, body: dict[str, Any], encryption_id: int | None) -> tuple[int, Any]:
        connection_id = body.get("connection_id")
        if connection_id not in self.connections:
            return 404, None
        if encryption_id is None:
            encryption: dict[str, Any] = {"id": next(self._ids), "account_id": self.account_id}
            self.encryptions[encryption["id"]] = encryption
        elif encryption_id in self.encryptions:
            encryption = self.encryptions[encryption_id]
        else:
            return 404, None
        for name in ("connection_id", "username", "hostname", "port", "state"):
            if name in body:
                encryption[name] = body[name]
        encryption.setdefault("state", ACTIVE)
        self._new_key(encryption)  # a new key pair on every save
        self.writes += 1
        return (201 if encryption_id is None else 200), encryption


@dataclass
class FivetranState(_Service):
    key: str = ""
    secret: str = ""
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (private, public)

    def add_group(self, group_id: str) -> None:
        self.groups[group_id] = _key_pair("rsa", "fivetran user key")

    def private_key(self, group_id: str) -> paramiko.PKey:
        return paramiko.RSAKey.from_private_key(io.StringIO(self.groups[group_id][0]))


def _envelope(code: int, data: Any, message: str = "") -> dict[str, Any]:
    return {
        "status": {"code": code, "is_success": code < 400, "user_message": message,
                   "developer_message": ""},
        "data": data,
    }  # fmt: skip


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *_: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        value = json.loads(self.rfile.read(length))
        return value if isinstance(value, dict) else {}

    def _throttled(self) -> bool:
        state = self.server.state
        with state.lock:
            state.requests.append((self.command, self.path))
            if state.throttled > 0:
                state.throttled -= 1
                status = state.throttle_status
                headers = {"Retry-After": "1"} if status == 429 else {}
                self._send(status, {"message": "rate limited" if status == 429 else "unavailable"},
                           headers)  # fmt: skip
                return True
        return False

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        if self._throttled():
            return
        self.server.route(self)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: Any

    def route(self, handler: _Handler) -> None:
        raise NotImplementedError


_CONNECTION = re.compile(r"/api/v3/accounts/(\d+)/connections/(\d+)/")
_ENCRYPTIONS = re.compile(r"/api/v2/accounts/(\d+)/encryptions/(?:(\d+)/)?")


class _DbtCloudServer(_Server):
    state: DbtCloudState

    def route(self, handler: _Handler) -> None:
        state = self.state
        if handler.headers.get("Authorization") != f"Token {state.token}":
            handler._send(401, _envelope(401, None, "Invalid token."))
            return
        parts = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(parts.query)
        with state.lock:
            connection = _CONNECTION.fullmatch(parts.path)
            encryptions = _ENCRYPTIONS.fullmatch(parts.path)
            match = connection or encryptions
            if match is None or int(match.group(1)) != state.account_id:
                handler._send(404, _envelope(404, None, "Not found."))
                return
            if connection is not None:
                found = state.connections.get(int(connection.group(2)))
                if found is None:
                    handler._send(404, _envelope(404, None, "Connection not found."))
                elif handler.command == "GET":
                    handler._send(200, _envelope(200, found))
                elif handler.command == "PATCH":
                    body = handler._body()
                    for name in ("name", "is_ssh_tunnel_enabled", "config"):
                        if name in body:
                            found[name] = body[name]
                    state.writes += 1
                    handler._send(200, _envelope(200, found))
                else:
                    handler._send(405, _envelope(405, None, "Method not allowed."))
                return
            assert encryptions is not None
            ident = encryptions.group(2)
            if handler.command == "GET" and ident is None:
                wanted = {k: int(v[0]) for k, v in query.items() if k in ("connection_id", "state")}
                listed = [
                    e for e in state.encryptions.values()
                    if all(e.get(k) == v for k, v in wanted.items())
                ]  # fmt: skip
                handler._send(200, _envelope(200, listed))
            elif handler.command == "POST":
                code, data = state.save(handler._body(), int(ident) if ident else None)
                handler._send(code, _envelope(code, data, "" if code < 400 else "Not found."))
            else:
                handler._send(405, _envelope(405, None, "Method not allowed."))


_PUBLIC_KEY = re.compile(r"/v1/groups/([^/]+)/public-key")


class _FivetranServer(_Server):
    state: FivetranState

    def route(self, handler: _Handler) -> None:
        state = self.state
        expected = base64.b64encode(f"{state.key}:{state.secret}".encode()).decode()
        if handler.headers.get("Authorization") != f"Basic {expected}":
            handler._send(401, {"code": "AuthFailed", "message": "Invalid API key or secret"})
            return
        match = _PUBLIC_KEY.fullmatch(urllib.parse.urlsplit(handler.path).path)
        if handler.command != "GET" or match is None:
            handler._send(404, {"code": "NotFound", "message": "Not found"})
            return
        group = state.groups.get(match.group(1))
        if group is None:
            handler._send(404, {"code": "NotFound_Group", "message": "Group not found"})
            return
        handler._send(200, {"code": "Success", "data": {"public_key": group[1]}})


@dataclass
class Running:
    """A stand-in serving on loopback: its base URL and its state."""

    url: str
    state: Any


@contextmanager
def _serving(server: _Server, path: str) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def dbt_cloud(token: str, account_id: int, connection_ids: list[int]) -> Iterator[Running]:
    """dbt Cloud's API on 127.0.0.1 (base URL ends in /api), with these connections."""
    state = DbtCloudState(token=token, account_id=account_id)
    for connection_id in connection_ids:
        state.add_connection(connection_id)
    server = _DbtCloudServer(("127.0.0.1", 0), _Handler)
    server.state = state
    with _serving(server, "/api") as url:
        yield Running(url, state)


@contextmanager
def fivetran(key: str, secret: str, group_ids: list[str]) -> Iterator[Running]:
    """Fivetran's API on 127.0.0.1, with these groups (one key pair each)."""
    state = FivetranState(key=key, secret=secret)
    for group_id in group_ids:
        state.add_group(group_id)
    server = _FivetranServer(("127.0.0.1", 0), _Handler)
    server.state = state
    with _serving(server, "") as url:
        yield Running(url, state)
