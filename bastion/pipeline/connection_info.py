"""What to type into dbt Cloud's connection form, and the matching profiles.yml snippet.

The warehouse hostname must be exactly the name PermitOpen allows (sshd matches it
literally), and the SSH tunnel host is the Elastic IP dbt Cloud's addresses were admitted
to. Secrets appear only as `env_var(...)` references, never as values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import AwsError
from bastion.pipeline.locate import Target, locate


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


def connection_info(settings: Settings, tunnel_host: str, warehouse: Endpoint) -> ConnectionInfo:
    """Assemble the fields from the config, the Elastic IP and the warehouse endpoint."""
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
        tunnel_user=settings.first_tunnel.user,
        region=settings.aws.region,
        cluster_id=w.redshift_cluster,
        workgroup=w.workgroup,
        profile_name=settings.name.replace("-", "_"),
    )


def connection_fields(settings: Settings) -> ConnectionInfo:
    """The fields for the located bastion: the Elastic IP (provider aws), else bastion.address.
    AWS out of reach is no obstacle when bastion.address and warehouse.host say it all."""
    try:
        target = locate(settings)
    except AwsError:
        warehouse = settings.warehouse
        if not (settings.bastion.address and warehouse.host):
            raise
        endpoint = Endpoint(warehouse.host, warehouse.effective_port)
        target = Target(settings, endpoint, settings.bastion.address)
    tunnel_host = target.tunnel_host or target.require_address()
    return connection_info(settings, tunnel_host, target.warehouse)
