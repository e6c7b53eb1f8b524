"""The vendor stage: keys from the vendors' APIs instead of pasted ones.

For every tunnel with an `api` table. dbt Cloud: each listed connection's SSH tunnel must
name the bastion's public address, `ssh_port` and the tunnel user; where it does not, the
change is `dbt_cloud/ssh_tunnel` (create or update), which `up` writes after the AWS stage
(the Elastic IP is known then); dbt generates a key pair on every save, and the public half
it returns becomes that user's key for that connection. Fivetran: the group's public key is
read; nothing is written there.

The keys reach the host stage as extra keys of their tunnel user, each marked in its
comment with where it came from (`dbt-cloud-connection-678`, `fivetran-group-g_1`): the
managed authorized_keys holds exactly the configured keys plus these, so a key of a
connection no longer listed, or replaced by a newer one, goes; keys given by hand stay.
`plan` reads and never writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bastion.changes import Action, Plan
from bastion.config.keys import PublicKey
from bastion.config.settings import Settings, TunnelSettings
from bastion.config.vendor_api import CONNECTION_MARK, GROUP_MARK, DbtCloudApi, FivetranApi
from bastion.errors import ConfigError, VendorError
from bastion.pipeline.locate import Target
from bastion.pipeline.outcome import Observer, Outcome

if TYPE_CHECKING:  # the HTTP client (httpx, ~0.2 s to import) loads only for an api tunnel
    from bastion.apis.dbt_cloud import DbtCloud, SshTunnel


def connection_mark(connection_id: int) -> str:
    return f"{CONNECTION_MARK}{connection_id}"


def group_mark(group_id: str) -> str:
    return f"{GROUP_MARK}{group_id}"


@dataclass(frozen=True)
class TunnelWrite:
    """One dbt Cloud connection `up` writes: its SSH tunnel saved (a new key pair), and/or
    its "Use SSH tunnel" switch turned on (the key stays)."""

    user: str
    connection_id: int
    existing: SshTunnel | None
    save: bool  # the tunnel is missing or names another host, port or user
    enable: bool  # the connection's "Use SSH tunnel" is off

    @property
    def action(self) -> Action:
        return "create" if self.existing is None else "update"

    def port_only(self, hostname: str, port: int) -> bool:
        """The tunnel names this bastion and user already, on another port: an ssh_port
        change. dbt Cloud keeps the port it uses (open on both sides until phase two) and
        is moved once the new port is verified."""
        current = self.existing
        return (
            self.save and current is not None and current.public_key is not None
            and (current.hostname, current.username) == (hostname, self.user)
            and current.port != port
        )  # fmt: skip

    def describe(self, hostname: str, port: int) -> str:
        where = f"{self.user}@{hostname or '(the Elastic IP)'}:{port}"
        switch = "; 'Use SSH tunnel' turned on" if self.enable else ""
        if not self.save:
            return (
                f"connection {self.connection_id}: 'Use SSH tunnel' turned on (the tunnel "
                f"already points at {where}; its key stays)"
            )
        if self.existing is None:
            return (
                f"connection {self.connection_id}: SSH tunnel to {where}{switch} "
                "(dbt Cloud generates its key)"
            )
        old = printable(
            f"{self.existing.username}@{self.existing.hostname}:{self.existing.port}"
        )
        when = " once the tunnel is verified on it" if self.port_only(hostname, port) else ""
        return (
            f"connection {self.connection_id}: SSH tunnel {old} -> {where}{switch}{when} "
            "(dbt Cloud generates a new key)"
        )


def printable(text: str, limit: int = 120) -> str:
    """A vendor's text as the terminal and the plan may show it."""
    return "".join(char if char.isprintable() else "?" for char in text)[:limit]


@dataclass
class VendorPlan:
    """What the vendors hold now: the writes `up` makes and the keys known so far (a
    connection's current key stays until a save replaces it)."""

    hostname: str
    port: int
    writes: list[TunnelWrite] = field(default_factory=list)
    keys: dict[str, list[PublicKey]] = field(default_factory=dict)
    moved: bool = False  # a tunnel was moved to the new port: its new key is to be installed

    def port_moves(self) -> list[TunnelWrite]:
        """The writes that only move a tunnel to the new ssh_port (made after verify)."""
        return [w for w in self.writes if w.port_only(self.hostname, self.port)]

    def plan(self, *, port_moves: bool | None = None) -> Plan:
        """The writes as changes: all of them, or those that only move the port (True), or
        the others (False)."""
        planned = Plan()
        moving = self.port_moves()
        for write in self.writes:
            if port_moves is not None and (write in moving) is not port_moves:
                continue
            planned.add("dbt_cloud", "ssh_tunnel", write.action, write.describe(self.hostname, self.port))
        return planned


def uses_vendor_api(settings: Settings) -> bool:
    return any(tunnel.api is not None for tunnel in settings.tunnels.values())


def read_for(target: Target, observer: Observer | None = None) -> VendorPlan | None:
    """Read-only, for a run's target: the vendors' keys join the host stage's settings;
    None when no tunnel has an api table."""
    if not uses_vendor_api(target.settings):
        return None
    with observer.status("reading the vendors' APIs") if observer else contextlib.nullcontext():
        found = read_vendors(target.settings, target.tunnel_host)
    target.vendor_keys = found.keys
    return found


def vendor_stage(target: Target, observer: Observer, outcome: Outcome) -> VendorPlan | None:
    """`up`'s stage between AWS and the host: save the dbt Cloud tunnels that differ, and
    hand every api tunnel user's keys to the host stage. A tunnel that differs only by its
    port waits for `move_ports` (after verify); the plan is returned for it."""
    found = read_for(target, observer)
    if found is None:
        return None
    target.vendor_keys = apply_vendors(target.settings, found, observer, outcome)
    return found


def move_ports(
    target: Target, found: VendorPlan | None, observer: Observer, outcome: Outcome
) -> None:
    """After verify proved the new ssh_port: save the dbt Cloud tunnels still on another
    port. Their new keys join the host stage's settings as each is made (a failed save
    leaves those made before it to install: `found.moved`)."""
    if found is None or not found.port_moves():
        return
    try:
        apply_vendors(target.settings, found, observer, outcome, port_moves=True)
    finally:
        target.vendor_keys = found.keys


def read_vendors(
    settings: Settings, hostname: str, environ: Mapping[str, str] | None = None
) -> VendorPlan:
    """Read-only: each api tunnel's keys now, and the dbt Cloud tunnels to save."""
    environ = os.environ if environ is None else environ
    port = settings.bastion.ssh_port
    found = VendorPlan(hostname, port)
    for tunnel in settings.tunnels.values():
        api = tunnel.api
        if isinstance(api, DbtCloudApi):
            _read_dbt_cloud(tunnel, api, found, environ)
        elif isinstance(api, FivetranApi):
            found.keys.setdefault(tunnel.user, []).append(_fivetran_key(api, environ))
    return found


def apply_vendors(
    settings: Settings,
    planned: VendorPlan,
    observer: Observer,
    outcome: Outcome,
    environ: Mapping[str, str] | None = None,
    *,
    port_moves: bool = False,
) -> dict[str, list[PublicKey]]:
    """Make the planned dbt Cloud writes, each recorded as it is made (those that only move
    the port when `port_moves`, the others when not); every api tunnel user's keys, a saved
    connection's new key in place of its old one."""
    environ = os.environ if environ is None else environ
    if not planned.hostname and any(write.save for write in planned.writes):
        raise ConfigError(
            "no address to give dbt Cloud's SSH tunnel: the bastion has no Elastic IP and "
            "bastion.address is not set",
            hint="set bastion.address (provider = existing), or run `bastion up` with provider aws",
        )
    keys = planned.keys  # kept up to date as each write is made, whatever follows
    moving = planned.port_moves()
    for write in planned.writes:
        if (write in moving) is not port_moves:
            continue
        tunnel = settings.tunnels[write.user]
        assert isinstance(tunnel.api, DbtCloudApi)
        client = _dbt_cloud(tunnel, tunnel.api, environ)
        made = False
        try:
            with observer.status(f"dbt Cloud: writing connection {write.connection_id}"):
                # the tunnel first: a switch turned on over a tunnel that failed to save
                # would send dbt Cloud to the wrong place
                if write.save:
                    try:
                        saved = client.save_tunnel(
                            write.connection_id, write.existing, planned.hostname, planned.port,
                            write.user,
                        )  # fmt: skip
                    except VendorError:
                        # dbt Cloud may have saved it (and made a new key) before its answer
                        # failed: the next run reads the tunnel and key it holds
                        outcome.notice(
                            f"dbt Cloud connection {write.connection_id}: the SSH tunnel save "
                            "failed and may have been made; the next `bastion up` reads the "
                            "tunnel and key dbt Cloud holds and installs that key", observer,
                        )  # fmt: skip
                        raise
                    made = True
                    assert saved.public_key is not None
                    mark = connection_mark(write.connection_id)
                    keys[write.user] = [
                        *(key for key in keys.get(write.user, []) if key.comment != mark),
                        _marked(saved.public_key, write.connection_id),
                    ]
                    planned.moved = planned.moved or port_moves
                if write.enable:
                    client.enable_tunnel(write.connection_id)
                    made = True
        finally:
            client.close()
            if made:  # recorded as soon as dbt Cloud changed, whatever follows
                done = Plan()
                done.add("dbt_cloud", "ssh_tunnel", write.action,
                         write.describe(planned.hostname, planned.port))  # fmt: skip
                outcome.record(done, observer)
    return keys


def _read_dbt_cloud(
    tunnel: TunnelSettings, api: DbtCloudApi, found: VendorPlan, environ: Mapping[str, str]
) -> None:
    client = _dbt_cloud(tunnel, api, environ)
    try:
        for connection_id in api.connection_ids:
            connection = client.connection(connection_id)
            current = client.tunnel(connection_id)
            if current is not None and current.public_key is not None:
                # the key dbt Cloud uses now stays on the host until a save replaces it
                found.keys.setdefault(tunnel.user, []).append(
                    _marked(current.public_key, connection_id)
                )
            enable = connection.get("is_ssh_tunnel_enabled") is not True
            save = current is None or current.public_key is None or not current.points_at(
                found.hostname, found.port, tunnel.user
            )
            if save or enable:
                found.writes.append(TunnelWrite(tunnel.user, connection_id, current, save, enable))
    finally:
        client.close()


def _dbt_cloud(tunnel: TunnelSettings, api: DbtCloudApi, environ: Mapping[str, str]) -> DbtCloud:
    from bastion.apis.dbt_cloud import DbtCloud

    token = api.secret("token_env", environ)
    return DbtCloud(api.base_url(list(tunnel.regions)), api.account_id, token, api.token_env)


def _fivetran_key(api: FivetranApi, environ: Mapping[str, str]) -> PublicKey:
    from bastion.apis.fivetran import group_public_key

    auth = (api.secret("key_env", environ), api.secret("secret_env", environ))
    key = group_public_key(api.base_url(), api.group_id, auth, f"{api.key_env} and {api.secret_env}")
    return dataclasses.replace(key, comment=group_mark(api.group_id))


def _marked(key: PublicKey, connection_id: int) -> PublicKey:
    return dataclasses.replace(key, comment=connection_mark(connection_id))
