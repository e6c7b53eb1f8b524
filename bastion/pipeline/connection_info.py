"""What to type into each tool's connection form (dbt Cloud's, and the SSH tunnel fields of
Fivetran's, Hightouch's, Stitch's or a custom tool's), and dbt's profiles.yml snippet.

The warehouse hostname must be exactly the name PermitOpen allows (sshd matches it
literally), and the SSH tunnel host is the Elastic IP the tools' addresses were admitted
to. Secrets appear only as `env_var(...)` references, never as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.config.settings import Settings, TunnelSettings
from bastion.endpoint import Endpoint
from bastion.errors import AwsError, InputError
from bastion.pipeline.locate import Target, locate
from bastion.vendors.sources import LABELS


@dataclass(frozen=True)
class ConnectionInfo:
    """The fields of dbt Cloud's connection page (with SSH tunnel enabled)."""

    adapter: str
    hostname: str
    port: int
    database: str
    username: str
    auth: str
    password_env: str
    tunnel_host: str
    tunnel_port: int
    tunnel_user: str
    region: str
    cluster_id: str
    workgroup: str
    profile_name: str
    vendor = "dbt_cloud"
    label = LABELS["dbt_cloud"]

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) in the order dbt Cloud's form asks for them."""
        rows = [
            (
                "Connection type",
                self.adapter.capitalize() if self.adapter != "redshift" else "Redshift",
            ),
            ("Hostname", self.hostname),
            ("Port", str(self.port)),
            ("Database", self.database),
            ("Use SSH tunnel", "yes"),
            ("SSH tunnel hostname", self.tunnel_host),
            ("SSH tunnel port", str(self.tunnel_port)),
            ("SSH tunnel username", self.tunnel_user),
            ("Development credentials: username", self.username),
        ]
        if self.auth == "iam":
            rows.append(("Auth method", "IAM user (temporary credentials)"))
        else:
            rows.append(("Development credentials: password", f"value of ${self.password_env}"))
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "warehouse": {
                "type": self.adapter,
                "hostname": self.hostname,
                "port": self.port,
                "database": self.database,
                "username": self.username,
                "auth": self.auth,
                "password_env": self.password_env if self.auth == "password" else None,
            },
            "ssh_tunnel": {
                "hostname": self.tunnel_host,
                "port": self.tunnel_port,
                "username": self.tunnel_user,
            },
        }

    def profiles_yml(self) -> str:
        """A profiles.yml target (also usable as dbt Cloud extended attributes)."""
        lines = [
            f"{self.profile_name}:",
            "  target: prod",
            "  outputs:",
            "    prod:",
            f"      type: {self.adapter}",
            f"      host: {self.hostname}",
            f"      port: {self.port}",
            f"      dbname: {self.database}",
            f"      user: {self.username}",
        ]
        if self.auth == "iam":
            lines += ["      method: iam", f"      region: {self.region}"]
            if self.cluster_id:
                lines.append(f"      cluster_id: {self.cluster_id}")
            lines.append("      iam_profile: \"{{ env_var('DBT_ENV_AWS_PROFILE', 'default') }}\"")
        else:
            lines.append(f"      password: \"{{{{ env_var('{self.password_env}') }}}}\"")
        lines += [
            f"      schema: \"{{{{ env_var('DBT_SCHEMA', '{self.username}') }}}}\"",
            "      threads: 4",
            "      keepalives_idle: 30  # below any idle timeout between dbt and the warehouse",
            "      connect_timeout: 30",
        ]
        note = (
            "# dbt Cloud: enter the SSH tunnel fields in the connection form; these keys can\n"
            "# go in the environment's extended attributes. dbt Core has no SSH tunnel: run\n"
            f"#   ssh -N -L {self.port}:{self.hostname}:{self.port} {self.tunnel_user}@{self.tunnel_host}\n"
            "# and set host: 127.0.0.1 (the key must be one of the tunnel user's keys).\n"
        )
        if self.auth == "password" and not self.password_env.startswith("DBT_ENV_SECRET_"):
            note += "# dbt Cloud only hides variables named DBT_ENV_SECRET_*: rename the password one.\n"
        return note + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class TunnelForm:
    """The fields of another tool's connection form with an SSH tunnel (Fivetran, Hightouch,
    Stitch, custom): the warehouse as PermitOpen names it, then the tunnel's host, port and
    user. The warehouse login is the tool's own, not the config's (that one is dbt's)."""

    vendor: str
    adapter: str
    hostname: str
    port: int
    database: str
    tunnel_host: str
    tunnel_port: int
    tunnel_user: str

    @property
    def label(self) -> str:
        return LABELS[self.vendor]

    def fields(self) -> list[tuple[str, str]]:
        """(label, value) in the order the tool's form asks for them."""
        fivetran = self.vendor == "fivetran"
        rows = [
            ("Host", self.hostname),
            ("Port", str(self.port)),
            ("Database", self.database),
            ("Connection method", "Connect via an SSH tunnel") if fivetran
            else ("Use SSH tunnel", "yes"),
            ("SSH host", self.tunnel_host),
            ("SSH port", str(self.tunnel_port)),
            ("SSH user", self.tunnel_user),
        ]  # fmt: skip
        if fivetran:
            rows.append(
                ("Require TLS through tunnel", "yours to choose (on if the warehouse requires TLS)")
            )
        return rows

    def to_dict(self) -> dict[str, Any]:
        tunnel: dict[str, Any] = {
            "hostname": self.tunnel_host,
            "port": self.tunnel_port,
            "username": self.tunnel_user,
        }
        if self.vendor == "fivetran":
            tunnel["require_tls"] = None  # Fivetran asks; the warehouse's own TLS decides
        return {
            "warehouse": {
                "type": self.adapter,
                "hostname": self.hostname,
                "port": self.port,
                "database": self.database,
            },
            "ssh_tunnel": tunnel,
        }


ConnectionForm = ConnectionInfo | TunnelForm


def connection_info(
    settings: Settings,
    tunnel_host: str,
    warehouse: Endpoint,
    tunnel: TunnelSettings | None = None,
) -> ConnectionInfo:
    """Assemble dbt Cloud's fields from the config, the Elastic IP and the warehouse
    endpoint, for the tunnel user given (else the first)."""
    w = settings.warehouse
    return ConnectionInfo(
        adapter="redshift" if w.kind.startswith("redshift") else "postgres",
        hostname=warehouse.host,
        port=warehouse.port,
        database=w.database,
        username=w.user,
        auth=w.auth,
        password_env=w.password_env,
        tunnel_host=tunnel_host,
        tunnel_port=settings.bastion.ssh_port,
        tunnel_user=(tunnel or settings.first_tunnel).user,
        region=settings.aws.region,
        cluster_id=w.redshift_cluster,
        workgroup=w.workgroup,
        profile_name=settings.name.replace("-", "_"),
    )


def connection_form(
    settings: Settings, tunnel: TunnelSettings, tunnel_host: str, warehouse: Endpoint
) -> ConnectionForm:
    """The form of the tunnel's vendor: dbt Cloud's whole page, else the SSH tunnel fields."""
    if tunnel.vendor == "dbt_cloud":
        return connection_info(settings, tunnel_host, warehouse, tunnel)
    return TunnelForm(
        vendor=tunnel.vendor,
        adapter="redshift" if settings.warehouse.kind.startswith("redshift") else "postgres",
        hostname=warehouse.host,
        port=warehouse.port,
        database=settings.warehouse.database,
        tunnel_host=tunnel_host,
        tunnel_port=settings.bastion.ssh_port,
        tunnel_user=tunnel.user,
    )


def connection_fields(settings: Settings) -> ConnectionInfo:
    """dbt Cloud's fields for the located bastion and the first tunnel user."""
    tunnel_host, warehouse = _located(settings)
    return connection_info(settings, tunnel_host, warehouse)


def connection_forms(settings: Settings, user: str | None) -> dict[str, ConnectionForm]:
    """Each selected tunnel user's form (all, or the one `--tunnel` names), in config order."""
    tunnels = settings.selected(user)
    tunnel_host, warehouse = _located(settings)
    return {t.user: connection_form(settings, t, tunnel_host, warehouse) for t in tunnels}


def profiles_form(forms: dict[str, ConnectionForm]) -> ConnectionInfo:
    """The one dbt Cloud user whose profiles.yml `--format profiles` prints."""
    dbt = [form for form in forms.values() if isinstance(form, ConnectionInfo)]
    if not dbt:
        raise InputError(
            "--format profiles writes dbt's profiles.yml, and no tunnel user here has "
            f"vendor dbt_cloud ({', '.join(f'{u}: {LABELS[f.vendor]}' for u, f in forms.items())})",
            hint="use --format text or json for the other tools' fields",
        )
    if len(dbt) > 1:
        users = ", ".join(form.tunnel_user for form in dbt)
        raise InputError(
            f"several dbt Cloud tunnel users ({users}): name one with --tunnel USER for its "
            "profiles.yml"
        )
    return dbt[0]


def _located(settings: Settings) -> tuple[str, Endpoint]:
    """The tunnel host (the Elastic IP with provider aws, else bastion.address) and the
    warehouse. AWS out of reach is no obstacle when bastion.address and warehouse.host say
    it all."""
    try:
        target = locate(settings)
    except AwsError:
        warehouse = settings.warehouse
        if not (settings.bastion.address and warehouse.host):
            raise
        endpoint = Endpoint(warehouse.host, warehouse.effective_port)
        target = Target(settings, endpoint, settings.bastion.address)
    return target.tunnel_host or target.require_address(), target.warehouse
