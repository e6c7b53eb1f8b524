"""The database hop: log in through the tunnel as dbt Cloud would, or at least reach the server.

Credentials come from the env var named in `warehouse.password_env`, or from Redshift's
temporary IAM credentials. Without any, a PostgreSQL protocol handshake that gets as far as
the server's authentication request proves the path, and the result says login was not
tested. Messages never carry a password: every one passes `scrub` first.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from dataclasses import dataclass
from typing import Any

from bastion.aws.gateway import AwsGateway
from bastion.config.settings import Settings
from bastion.errors import AwsError

CONNECT_TIMEOUT = 10
_PROTOCOL_3 = 196608
_AUTH_NAMES = {
    0: "none (trust)",
    2: "Kerberos",
    3: "a cleartext password",
    5: "an MD5 password",
    7: "GSSAPI",
    9: "SSPI",
    10: "SASL (SCRAM)",
}


@dataclass(frozen=True)
class Credentials:
    """A database login; `source` says where it came from, never what it is."""

    user: str
    password: str
    source: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***', source={self.source!r})"


@dataclass(frozen=True)
class Login:
    """What the database hop learned."""

    ok: bool
    detail: str
    server_version: str = ""
    login_tested: bool = False


class CredentialsError(Exception):
    """Temporary credentials could not be had; the message is safe to show."""


def logs_in(settings: Settings) -> bool:
    """Whether the database hop will log in with psycopg (else: the protocol handshake)."""
    warehouse = settings.warehouse
    return warehouse.auth == "iam" or bool(
        warehouse.password_env and os.environ.get(warehouse.password_env)
    )


def credentials(settings: Settings, gateway: AwsGateway | None) -> Credentials | None:
    """The login verify uses: IAM temporary credentials, the password env var, or none."""
    warehouse = settings.warehouse
    if warehouse.auth == "iam":
        if gateway is None:
            raise CredentialsError("warehouse.auth = iam needs AWS credentials to ask for a login")
        return iam_credentials(settings, gateway)
    password = os.environ.get(warehouse.password_env, "") if warehouse.password_env else ""
    if not password:
        return None
    return Credentials(warehouse.user, password, f"${warehouse.password_env}")


def iam_credentials(settings: Settings, gateway: AwsGateway) -> Credentials:
    """Redshift get_cluster_credentials / Serverless get_credentials, 15 minutes long."""
    warehouse = settings.warehouse
    try:
        if warehouse.kind == "redshift-serverless":
            if not warehouse.workgroup:
                raise CredentialsError("warehouse.auth = iam needs warehouse.workgroup")
            serverless = gateway.serverless_credentials(warehouse.workgroup, warehouse.database)
            return Credentials(
                serverless["dbUser"], serverless["dbPassword"], "redshift-serverless IAM"
            )
        if not warehouse.redshift_cluster:
            raise CredentialsError("warehouse.auth = iam needs warehouse.redshift_cluster")
        cluster = gateway.cluster_credentials(
            warehouse.redshift_cluster, warehouse.user, warehouse.database
        )
        return Credentials(cluster["DbUser"], cluster["DbPassword"], "redshift IAM")
    except AwsError as exc:
        raise CredentialsError(
            f"AWS refused temporary credentials ({exc.message}); "
            "allow redshift:GetClusterCredentials (or redshift-serverless:GetCredentials) "
            "for this database user"
        ) from None


def login(port: int, settings: Settings, creds: Credentials) -> tuple[Login, Any]:
    """psycopg login on 127.0.0.1:port, SELECT 1 and version(); returns the open connection."""
    import psycopg

    try:
        conn = psycopg.connect(
            host="127.0.0.1",
            port=port,
            dbname=settings.warehouse.database,
            user=creds.user,
            password=creds.password,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="bastion-verify",
            autocommit=True,
        )
    except psycopg.Error as exc:
        return Login(False, scrub(explain_psycopg(exc), creds)), None
    try:
        version = query(conn)
    except psycopg.Error as exc:
        conn.close()
        return Login(False, scrub(explain_psycopg(exc), creds)), None
    detail = f"logged in as {creds.user} ({creds.source}), SELECT 1 ok; {version}"
    return Login(True, scrub(detail, creds), version, login_tested=True), conn


def query(conn: Any) -> str:
    """SELECT 1 and the server's version string, shortened to its product and number."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT 1")
        if cursor.fetchone() != (1,):
            raise RuntimeError("SELECT 1 did not return 1")
        cursor.execute("SELECT version()")
        row = cursor.fetchone()
    return str(row[0]).split(" on ")[0] if row else ""


def explain_psycopg(exc: Exception) -> str:
    """The server's own sentence (e.g. password authentication failed for user "dbt")."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return str(primary)
    text = str(exc).strip()
    fatal = re.findall(r"FATAL:\s+(.+)", text)
    if fatal:
        return fatal[-1].strip()
    if "timeout expired" in text:
        return f"no answer from the database within {CONNECT_TIMEOUT} s through the tunnel"
    if "server closed the connection unexpectedly" in text:
        return (
            "the warehouse closed the connection during the handshake: is "
            "warehouse.port a PostgreSQL/Redshift endpoint?"
        )
    return text.splitlines()[-1] if text else type(exc).__name__


def handshake(sock: socket.socket, settings: Settings) -> Login:
    """Send a StartupMessage and read the first reply: an auth request means 'reachable'."""
    params = b""
    for key, value in (
        ("user", settings.warehouse.user),
        ("database", settings.warehouse.database),
        ("application_name", "bastion-verify"),
    ):
        params += key.encode() + b"\0" + value.encode() + b"\0"
    params += b"\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), _PROTOCOL_3) + params)
    head = _read_exactly(sock, 5)
    kind, length = head[:1], struct.unpack("!i", head[1:])[0]
    if kind not in (b"R", b"E") or not 8 <= length <= 8192:
        return Login(
            False, "the far end does not speak the PostgreSQL protocol: check warehouse.port"
        )
    body = _read_exactly(sock, length - 4)
    not_tested = "login not tested (the variable warehouse.password_env names is not set)"
    if kind == b"R" and len(body) >= 4:
        code = struct.unpack("!i", body[:4])[0]
        method = _AUTH_NAMES.get(code, f"authentication method {code}")
        return Login(True, f"the server asked for {method}: reachable; {not_tested}")
    if kind == b"E":
        fields = dict(
            (item[:1].decode("ascii", "replace"), item[1:].decode("utf-8", "replace"))
            for item in body.split(b"\0")
            if item
        )
        message = fields.get("M", "an error")
        return Login(True, f"the server answered ({message}): reachable; {not_tested}")
    return Login(False, "the far end does not speak the PostgreSQL protocol: check warehouse.port")


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("the warehouse closed the connection during the handshake")
        data += chunk
    return data


def scrub(text: str, creds: Credentials | None) -> str:
    """Remove the password from a message, whatever produced it."""
    if creds is not None and creds.password:
        text = text.replace(creds.password, "***")
    return text
