"""Where verify connects, what host key it trusts, and how the ephemeral key gets on the host.

The address is `bastion.address`, else the Elastic IP that AWS reports; the host key must
match what `known_hosts` (written by configure) pins; the key is installed by an admin
login through the host module, which owns the tunnel user's second authorized-keys file.
"""

from __future__ import annotations

import shlex
from datetime import datetime
from typing import TYPE_CHECKING

from bastion.errors import ConfigError, HostError

if TYPE_CHECKING:
    import boto3
    import paramiko

    from bastion.config.settings import Settings
    from bastion.endpoint import Endpoint
    from bastion.host.connection import HostConnection


class HostKeyMismatch(Exception):
    """The bastion presented a host key the pins do not name; the message says what to do."""


def bastion_address(settings: Settings, session: boto3.Session | None) -> str:
    """Where the tool connects: bastion.address if set, else the instance's Elastic IP."""
    if settings.bastion.address:
        return settings.bastion.address
    if settings.bastion.provider != "aws":
        raise ConfigError(
            "bastion.address is required with provider = existing",
            hint="set bastion.address to the host name or IP the tool and dbt Cloud reach",
        )
    from bastion.aws.session import make_session
    from bastion.aws.stage import status_aws

    facts = status_aws(settings, session or make_session(settings))
    public_ip = getattr(facts, "public_ip", None)
    if not public_ip:
        raise HostError(
            f"no Elastic IP found for bastion-{settings.name}",
            hint="run bastion up (or bastion provision) first, or set bastion.address",
        )
    return str(public_ip)


def warehouse_endpoint(settings: Settings, session: boto3.Session | None) -> Endpoint:
    """The warehouse host:port as dbt Cloud names it (PermitOpen matches it literally)."""
    from bastion.aws.discover import resolve_warehouse

    if session is None and _needs_aws(settings):
        from bastion.aws.session import make_session

        session = make_session(settings)
    return resolve_warehouse(settings, session)


def _needs_aws(settings: Settings) -> bool:
    w = settings.warehouse
    return not (w.host and w.port) and bool(
        w.redshift_cluster or w.workgroup or w.rds_instance or w.rds_cluster
    )


def check_host_key(settings: Settings, address: str, key: paramiko.PKey) -> None:
    """The tunnel login trusts only what configure pinned; nothing is learned here."""
    from bastion.host.connection import KnownHosts, fingerprint, host_pattern

    pattern = host_pattern(address, settings.bastion.ssh_port)
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


class AdminVerifyKeyHost:
    """Installs/removes the verify key through an admin login (opened lazily, reopened once)."""

    def __init__(
        self, settings: Settings, address: str, connection: HostConnection | None = None
    ) -> None:
        self._settings = settings
        self._address = address
        self._conn: HostConnection | None = connection
        self._borrowed = connection  # `up` lends its open admin connection: never closed here

    def _connection(self, fresh: bool = False) -> HostConnection:
        from bastion.host.connection import connect_admin

        if fresh and self._conn is not None:
            if self._conn is not self._borrowed:
                self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = connect_admin(self._settings, self._address)
        return self._conn

    def install(self, line: str) -> None:
        from bastion.host.stage import install_verify_key

        install_verify_key(self._connection(), self._settings, line)

    def remove(self, line: str) -> None:
        from bastion.host.stage import remove_verify_key

        try:  # only this run's line: a verify running at the same time keeps its own
            remove_verify_key(self._connection(), self._settings, line)
        except Exception:
            try:
                remove_verify_key(self._connection(fresh=True), self._settings, line)
            except Exception as exc:
                raise HostError(
                    f"could not remove verify's key from {self._settings.tunnel.user}'s "
                    f"authorized_keys.verify on {self._address}: {exc}",
                    hint="sshd refuses it by itself within minutes (expiry-time); delete the "
                    "line from the file by hand to tidy up",
                ) from None

    def local_time(self, moment: datetime) -> str:
        epoch = int(moment.timestamp())
        out = self._connection().run(f"date -d @{shlex.quote(str(epoch))} +%Y%m%d%H%M%S")
        text = str(getattr(out, "stdout", "")).strip()
        if len(text) != 14 or not text.isdigit():
            raise HostError("cannot read the host's local time for the verify key's expiry")
        return text

    def close(self) -> None:
        if self._conn is not None and self._conn is not self._borrowed:
            self._conn.close()
        self._conn = None
