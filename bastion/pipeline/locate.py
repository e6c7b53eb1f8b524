"""Where things are, resolved once per run and passed down: the bastion's address, the
warehouse endpoint, what AWS knows of the bastion, and the one boto3 session.

Read-only. AWS is asked only when the config cannot answer (provider `existing` with a
`warehouse.host` needs no AWS at all), and the session is made on first use.

The AWS half (bastion.aws) is imported where it is first needed, not at the top: a run that
never touches AWS (`configure` on an existing host, the benchmark's no-change case) then
does not load its dozen modules (30-40 ms on a small runner, measured by `invoke bench`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.config import rules
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import ConfigError, SshError
from bastion.host.connection import HostConnection, open_admin
from bastion.net import Dial, ssh_socket

if TYPE_CHECKING:
    import boto3

    from bastion.aws.facts import AwsFacts
    from bastion.aws.gateway import AwsGateway
    from bastion.config.keys import PublicKey


@dataclass
class Target:
    """The bastion and the warehouse as this run sees them."""

    settings: Settings
    warehouse: Endpoint
    override: str | None = None  # --host, else bastion.address
    facts: AwsFacts | None = None  # provider aws: what AWS holds now
    vendor_keys: dict[str, list[PublicKey]] = field(default_factory=dict)  # from vendors' APIs
    _session: boto3.Session | None = field(default=None, repr=False)
    _gateway: AwsGateway | None = field(default=None, repr=False)

    @property
    def session(self) -> boto3.Session:
        """The run's boto3 session, made once, when first needed."""
        if self._session is None:
            from bastion.aws import session as aws_session

            self._session = aws_session.make_session(self.settings)
        return self._session

    @property
    def gateway(self) -> AwsGateway:
        if self._gateway is None:
            from bastion.aws.gateway import AwsGateway

            self._gateway = AwsGateway(self.session)
        return self._gateway

    def console_host_keys(self, instance_id: str) -> list[str]:
        """The host key fingerprints cloud-init printed to the instance's console."""
        from bastion.aws.stage import console_host_keys

        return console_host_keys(self.session, instance_id)

    @property
    def through_endpoint(self) -> bool:
        """admin_access = "eice": the admin and verify reach the host through the endpoint."""
        return self.settings.bastion.admin_access == "eice"

    @property
    def address(self) -> str | None:
        """Where the tool connects: --host, bastion.address, else the Elastic IP (through an
        Instance Connect Endpoint: the instance's private address)."""
        if self.through_endpoint:
            return self.override or (self.facts.private_ip if self.facts is not None else None)
        return self.override or (self.facts.public_ip if self.facts is not None else None)

    @property
    def admin_port(self) -> int | None:
        """The one port the admin path reaches, where there is one (an endpoint: 22)."""
        if self.through_endpoint:
            from bastion.aws.instance_connect import TUNNEL_PORT

            return TUNNEL_PORT
        return None

    @property
    def verify_port(self) -> int:
        """Where verify logs in as the tunnel user: ssh_port, or 22 through the endpoint."""
        return self.admin_port or self.settings.bastion.ssh_port

    @property
    def dial(self) -> Dial:
        """How SSH streams open: TCP, or a tunnel through the Instance Connect Endpoint."""
        if not self.through_endpoint:
            return ssh_socket
        endpoint = self.facts.endpoint if self.facts is not None else None
        if endpoint is None:
            raise SshError(
                f"bastion-{self.settings.name} has no Instance Connect Endpoint yet",
                hint="run `bastion up` (or `bastion provision`) to create it, or set "
                "bastion.eice_id to an endpoint of the VPC",
            )
        from bastion.aws.instance_connect import dialer

        return dialer(self.session, endpoint)

    @property
    def host_settings(self) -> Settings:
        """The settings the host is configured and verified with: through an Instance Connect
        Endpoint, the admin (and the tunnel user, for verify) log in from the endpoint's own
        addresses, so AllowUsers admits those besides admin_cidrs. The AWS stage keeps the
        config as written: no rule of the group names them. Keys read from the vendors'
        APIs join their tunnel user's own."""
        settings = self.settings
        if self.vendor_keys:
            keys = self.vendor_keys
            tunnels = {
                user: tunnel.model_copy(update={"public_keys": [
                    *tunnel.public_keys, *(key.openssh() for key in keys.get(user, []))
                ]})
                for user, tunnel in settings.tunnels.items()
            }  # fmt: skip
            settings = settings.model_copy(update={"tunnels": tunnels})
        extra = [f"{address}/32" for address in self.endpoint_addresses]
        if not extra:
            return settings
        bastion = settings.bastion
        cidrs = list(dict.fromkeys([*bastion.admin_cidrs, *extra]))
        return settings.model_copy(
            update={"bastion": bastion.model_copy(update={"admin_cidrs": cidrs})}
        )

    @property
    def endpoint_addresses(self) -> list[str]:
        """The Instance Connect Endpoint's own addresses: where admin logins come from."""
        if not self.through_endpoint or self.facts is None:
            return []
        return list(self.facts.endpoint_addresses)

    @property
    def pins(self) -> list[str]:
        """Host key fingerprints known from AWS (the tag), checked on every connection."""
        if self.facts is not None and self.facts.host_key_tag:
            return [self.facts.host_key_tag]
        return []

    @property
    def recorded_port(self) -> int | None:
        """The port AWS recorded sshd on (`bastion:ssh-port`): it answers there mid-change."""
        return self.facts.ssh_port if self.facts is not None else None

    @property
    def tunnel_host(self) -> str:
        """The SSH tunnel host dbt Cloud uses: the Elastic IP, else the address."""
        public_ip = self.facts.public_ip if self.facts is not None else None
        return public_ip or self.address or ""

    @property
    def running(self) -> bool:
        """False when AWS says there is no instance yet, or it is not running."""
        facts = self.facts
        return facts is None or (bool(facts.instance_id) and facts.instance_state == "running")

    def see(self, facts: AwsFacts) -> None:
        """What AWS holds now (after the AWS stage changed it: a new host, a new address)."""
        self.facts = facts
        self.warehouse = facts.warehouse

    def require_address(self) -> str:
        if self.address:
            return self.address
        if self.settings.bastion.provider != "aws":
            raise ConfigError(
                "bastion.address is required with provider = existing",
                hint="set bastion.address to the host name or IP the tool and dbt Cloud reach, "
                "or pass --host",
            )
        raise ConfigError(
            f"no address to reach the bastion at: bastion-{self.settings.name} has no Elastic IP",
            hint="run `bastion up` (or `bastion provision`) first, set bastion.address, "
            "or pass --host",
        )

    def bastion_json(self, host_key_fingerprint: str | None) -> dict[str, Any]:
        """SPEC's `bastion` object."""
        facts = self.facts
        return {
            "instance_id": facts.instance_id if facts else None,
            "public_ip": facts.public_ip if facts else None,
            "address": self.address,
            "ssh_port": self.settings.bastion.ssh_port,
            "host_key_fingerprint": host_key_fingerprint or (facts.host_key_tag if facts else None),
        }


def uses_aws(settings: Settings) -> bool:
    return settings.bastion.provider == "aws"


def address_override(settings: Settings, host: str | None) -> str | None:
    """--host (checked like bastion.address), else bastion.address, else None (AWS knows)."""
    if host:
        try:
            return rules.hostname(host)
        except ValueError as exc:
            raise ConfigError(f"--host {exc}") from None
    return settings.bastion.address or None


def before_aws(settings: Settings, *, host: str | None = None) -> Target:
    """The target before the AWS stage, whose own read of AWS then completes it (`see`);
    without AWS, the located target."""
    if not uses_aws(settings):
        return locate(settings, host=host)
    return Target(settings, Endpoint("", 0), address_override(settings, host))


def locate(settings: Settings, *, host: str | None = None) -> Target:
    """Read-only: find the bastion and the warehouse without changing anything."""
    target = Target(settings, Endpoint("", 0), address_override(settings, host))
    configured = settings.warehouse.configured_endpoint()
    if not uses_aws(settings) and configured is not None:
        target.warehouse = configured
        return target
    from bastion.aws.discover import resolve_warehouse
    from bastion.aws.stage import status_aws

    if not uses_aws(settings):
        target.warehouse = resolve_warehouse(settings, _session_if_needed(target))
        return target
    target.see(status_aws(settings, target.session))
    return target


def _session_if_needed(target: Target) -> boto3.Session | None:
    """Discovering the warehouse needs AWS; a configured host and port do not."""
    warehouse = target.settings.warehouse
    if warehouse.host or warehouse.kind == "alloydb":
        return None
    return target.session


@contextmanager
def admin(
    target: Target, *, accept_new: bool = False, extra_pins: list[str] | None = None
) -> Iterator[HostConnection]:
    """The admin connection to the target; during an ssh_port change the port AWS recorded
    is tried first (sshd is known to answer there)."""
    recorded = target.recorded_port
    with open_admin(
        target.settings,
        target.require_address(),
        expected_fingerprints=[*target.pins, *(extra_pins or [])],
        accept_new=accept_new,
        ports=(recorded,) if recorded else (),
        dial=target.dial,
        only_port=target.admin_port,
    ) as conn:
        yield conn
