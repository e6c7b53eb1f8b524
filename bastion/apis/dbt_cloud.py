"""dbt Cloud's API for a connection's SSH tunnel, as its official Terraform provider uses it.

Base URL ends in `/api`; `Authorization: Token <token>`; answers are `{"status": …,
"data": …}`. A connection: `GET/PATCH /v3/accounts/{account}/connections/{id}/`. Its SSH
tunnel (an "encryption"): listed by `GET /v2/accounts/{account}/encryptions/?connection_id=
{id}&state=1`, created by `POST /v2/accounts/{account}/encryptions/`, updated by `POST
/v2/accounts/{account}/encryptions/{enc}/`. dbt generates the key pair on every save and
returns the public half (`public_key`), which the bastion must then accept.

Every value read here is checked before the tool uses it: ids are integers, the public key
parses as one (and is re-rendered from its parts), the rest is only compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.apis.http import VendorApi
from bastion.config.keys import PublicKey, parse_public_key
from bastion.errors import InputError, VendorError

ACTIVE = 1


@dataclass(frozen=True)
class SshTunnel:
    """A connection's SSH tunnel settings as dbt Cloud holds them."""

    id: int
    connection_id: int
    hostname: str
    port: int
    username: str
    public_key: PublicKey | None

    def points_at(self, hostname: str, port: int, username: str) -> bool:
        return (self.hostname, self.port, self.username) == (hostname, port, username)


class DbtCloud:
    """One account's connections and their SSH tunnels."""

    def __init__(self, base: str, account_id: int, token: str, token_env: str) -> None:
        self.account_id = account_id
        self._api = VendorApi(
            base,
            who="dbt Cloud",
            credentials=token_env,
            headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        )

    def close(self) -> None:
        self._api.close()

    def connection(self, connection_id: int) -> dict[str, Any]:
        data = self._data(
            "GET", f"/v3/accounts/{self.account_id}/connections/{connection_id}/",
            what=f"connection {connection_id} in account {self.account_id}",
        )  # fmt: skip
        if not isinstance(data, dict) or _int(data.get("id")) != connection_id:
            raise VendorError(f"dbt Cloud answered connection {connection_id} with another object")
        return data

    def enable_tunnel(self, connection_id: int) -> None:
        """Set the connection's `is_ssh_tunnel_enabled` (what the connection page's
        "Use SSH tunnel" switch does)."""
        self._data(
            "PATCH", f"/v3/accounts/{self.account_id}/connections/{connection_id}/",
            what=f"connection {connection_id}", json={"is_ssh_tunnel_enabled": True},
        )  # fmt: skip

    def tunnel(self, connection_id: int) -> SshTunnel | None:
        """The connection's active SSH tunnel, or None; more than one is an error (as the
        provider treats it)."""
        data = self._data(
            "GET", f"/v2/accounts/{self.account_id}/encryptions/",
            what=f"SSH tunnels of connection {connection_id}",
            params={"connection_id": connection_id, "state": ACTIVE},
        )  # fmt: skip
        if not isinstance(data, list):
            raise VendorError("dbt Cloud answered the SSH tunnel list with something not a list")
        found = [
            _tunnel(item)
            for item in data
            if isinstance(item, dict)
            and _int(item.get("connection_id")) == connection_id
            and _int(item.get("state")) == ACTIVE
        ]
        if len(found) > 1:
            raise VendorError(
                f"dbt Cloud holds {len(found)} active SSH tunnels for connection {connection_id}",
                hint="keep one in the connection's settings in dbt Cloud, then run again",
            )
        return found[0] if found else None

    def save_tunnel(
        self, connection_id: int, existing: SshTunnel | None, hostname: str, port: int, username: str
    ) -> SshTunnel:
        """Create or update the connection's SSH tunnel; dbt generates a new key pair."""
        body = {
            "account_id": self.account_id,
            "connection_id": connection_id,
            "hostname": hostname,
            "port": port,
            "username": username,
            "state": ACTIVE,
        }
        base = f"/v2/accounts/{self.account_id}/encryptions/"
        if existing is None:
            data = self._data("POST", base, what="an SSH tunnel", json=body)
        else:
            data = self._data(
                "POST", f"{base}{existing.id}/", what=f"SSH tunnel {existing.id}",
                json={"id": existing.id, **body},
            )  # fmt: skip
        if not isinstance(data, dict):
            raise VendorError("dbt Cloud answered the SSH tunnel save with something not an object")
        saved = _tunnel(data)
        if saved.public_key is None:
            raise VendorError(
                f"dbt Cloud saved the SSH tunnel of connection {connection_id} but returned no "
                "public key", hint="run again; if it persists, save the connection in dbt Cloud",
            )  # fmt: skip
        return saved

    def _data(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        body = self._api.call(method, path, what=what, **kwargs)
        if not isinstance(body, dict) or "data" not in body:
            raise VendorError(f"dbt Cloud answered {method} {path} without its data envelope")
        return body["data"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _tunnel(item: dict[str, Any]) -> SshTunnel:
    ident, connection, port = (_int(item.get(k)) for k in ("id", "connection_id", "port"))
    if ident is None or connection is None:
        raise VendorError("dbt Cloud returned an SSH tunnel without its id or connection_id")
    text = item.get("public_key")
    key = None
    if isinstance(text, str) and text.strip():
        try:
            key = parse_public_key(text)
        except InputError as exc:
            raise VendorError(
                f"dbt Cloud returned a public key for connection {connection} that is not one: "
                f"{exc.message}"
            ) from None
    return SshTunnel(
        id=ident,
        connection_id=connection,
        hostname=str(item.get("hostname") or ""),
        port=port or 0,
        username=str(item.get("username") or ""),
        public_key=key,
    )
