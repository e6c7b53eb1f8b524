"""bastion.toml -> validated, typed Settings.

Lookup: `-c PATH`, else `$BASTION_CONFIG`, else `./bastion.toml`. Relative paths resolve
against the config file's folder; `${NAME}` is taken from the environment, and a value
that came from the environment is never echoed in an error.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bastion.config import images, rules
from bastion.config.keys import parse_public_key, read_keys_file
from bastion.config.source import anchor, describe, interpolate, resolve_paths
from bastion.config.vendor_api import DbtCloudApi, FivetranApi, api_for
from bastion.endpoint import Endpoint
from bastion.errors import ConfigError, InputError
from bastion.vendors.dbt_cloud import allow_list
from bastion.vendors.sources import LABELS, VENDORS, region_cidrs, source_list

DEFAULT_NAME = "bastion.toml"

PositiveInt = Annotated[int, BeforeValidator(rules.positive_int)]
Integer = Annotated[int, BeforeValidator(rules.integer)]
Cidr = Annotated[str, BeforeValidator(lambda v: str(rules.cidr(v)) if isinstance(v, str) else v)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name == "public_keys":
            return value  # parsed by their own rule and written back from their parts
        if isinstance(value, list):
            for index, text in enumerate(value):
                if isinstance(text, str) and rules.has_control_characters(text):
                    raise ValueError(f"[{index}] {rules.CONTROL_CHARACTERS}")
        elif isinstance(value, str):
            rules.no_control_characters(value)
        return value


class AwsSettings(_Section):
    region: str = "us-east-1"
    profile: str = ""

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2}(-gov)?-[a-z]+-\d", value):
            raise ValueError("must be an AWS region such as us-east-1")
        return value

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z0-9_.+=@-]{1,64}", value):
            raise ValueError("must be an AWS profile name (letters, digits, '_', '-', '.')")
        return value


WarehouseKind = Literal["redshift", "redshift-serverless", "postgres", "alloydb"]
_KIND_KEYS = {
    "redshift_cluster": ("redshift",),
    "workgroup": ("redshift-serverless",),
    "rds_instance": ("postgres",),
    "rds_cluster": ("postgres",),
}


class WarehouseSettings(_Section):
    kind: WarehouseKind = "redshift"
    redshift_cluster: str = ""
    workgroup: str = ""
    rds_instance: str = ""
    rds_cluster: str = ""
    host: str = ""
    port: Integer = 0
    security_group_id: str = ""
    database: str = "analytics"
    user: str = "dbt"
    password_env: str = "DBT_ENV_SECRET_PASSWORD"
    auth: Literal["password", "iam"] = "password"

    @field_validator("redshift_cluster", "workgroup", "rds_instance", "rds_cluster")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,62}", value):
            raise ValueError("must be an AWS identifier: a letter, then letters, digits or '-'")
        return value

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return rules.hostname(value) if value else value

    @field_validator("port")
    @classmethod
    def _port(cls, value: int) -> int:
        return rules.port(value, allow_zero=True)

    @field_validator("security_group_id")
    @classmethod
    def _group(cls, value: str) -> str:
        if value and not re.fullmatch(r"sg-[0-9a-f]{8,17}", value):
            raise ValueError("must be a security group id such as sg-0123456789abcdef0")
        return value

    @field_validator("database", "user")
    @classmethod
    def _sql_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$-]{0,62}", value):
            raise ValueError("must be a plain database identifier (letters, digits, '_')")
        return value

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if value and not re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):
            raise ValueError(
                "must be the NAME of an environment variable (upper case, such as "
                "DBT_ENV_SECRET_PASSWORD), not a password; the value is not shown"
            )
        return value

    @model_validator(mode="after")
    def _kind_keys(self) -> WarehouseSettings:
        for key, kinds in _KIND_KEYS.items():
            if getattr(self, key) and self.kind not in kinds:
                raise ValueError(f"warehouse.{key} is only for kind = {' or '.join(kinds)}")
        if self.rds_instance and self.rds_cluster:
            raise ValueError("set warehouse.rds_instance or warehouse.rds_cluster, not both")
        if self.kind == "alloydb" and not self.host:
            raise ValueError("warehouse.host is required for kind = alloydb")
        if self.auth == "iam" and not self.kind.startswith("redshift"):
            raise ValueError("warehouse.auth = iam works with kind redshift or redshift-serverless")
        return self

    @property
    def effective_port(self) -> int:
        if self.port:
            return self.port
        return 5439 if self.kind.startswith("redshift") else 5432

    @property
    def discoverable(self) -> bool:
        """An AWS identifier names the warehouse: its endpoint, VPC and group can be read."""
        return bool(
            self.redshift_cluster or self.workgroup or self.rds_instance or self.rds_cluster
        )

    def configured_endpoint(self) -> Endpoint | None:
        """host:port when the config alone says where the warehouse is (no AWS to ask)."""
        if self.host and (self.port or not self.discoverable):
            return Endpoint(self.host, self.effective_port)
        return None


class BastionSettings(_Section):
    provider: Literal["aws", "existing"] = "aws"
    vpc_id: str = ""
    subnet_id: str = ""
    instance_type: str = "t3.micro"
    ami: str = images.DEFAULT
    ssh_port: Integer = 22
    admin_user: str = ""  # the named image's own when not given
    admin_key: Path = Path("~/.ssh/id_ed25519")
    admin_cidrs: list[Cidr] = Field(default_factory=list)  # required with admin_access = "direct"
    admin_access: Literal["direct", "eice"] = "direct"
    eice_id: str = ""
    address: str = ""
    known_hosts: Path = Path(".bastion/known_hosts")
    ssh_crypto: Literal["compatible", "hardened"] = "compatible"

    @model_validator(mode="before")
    @classmethod
    def _admin_user_of_the_image(cls, data: Any) -> Any:
        """An empty admin_user is the login user of the named image (admin on Debian)."""
        if not isinstance(data, dict) or data.get("admin_user", "") != "":
            return data
        ami = data.get("ami", images.DEFAULT)
        image = images.NAMED_IMAGES.get(ami) if isinstance(ami, str) else None
        return data if image is None else {**data, "admin_user": image.admin_user}

    @field_validator("vpc_id", "subnet_id")
    @classmethod
    def _aws_id(cls, value: str, info: Any) -> str:
        prefix = "vpc" if info.field_name == "vpc_id" else "subnet"
        if value and not re.fullmatch(rf"{prefix}-[0-9a-f]{{8,17}}", value):
            raise ValueError(f"must be an id such as {prefix}-0123456789abcdef0")
        return value

    @field_validator("instance_type")
    @classmethod
    def _instance_type(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z0-9]+", value):
            raise ValueError("must be an EC2 instance type such as t3.micro")
        return value

    @field_validator("ami")
    @classmethod
    def _ami(cls, value: str) -> str:
        return rules.ami(value)

    @field_validator("ssh_port")
    @classmethod
    def _port(cls, value: int) -> int:
        return rules.port(value)

    @field_validator("admin_user")
    @classmethod
    def _admin_user(cls, value: str) -> str:
        if not value:
            return value  # an AMI id or ssm: path without one: refused below, naming both
        rules.posix_user(value)
        if value == "root":
            raise ValueError("must not be root: log in as a sudo user (ec2-user, ubuntu, admin)")
        return value

    @field_validator("admin_cidrs")
    @classmethod
    def _admin_cidrs(cls, value: list[str]) -> list[str]:
        return value  # may be empty with admin_access = "eice": checked with it below

    @field_validator("eice_id")
    @classmethod
    def _eice_id(cls, value: str) -> str:
        if value and not re.fullmatch(r"eice-[0-9a-f]{8,17}", value):
            raise ValueError("must be an endpoint id such as eice-0123456789abcdef0")
        return value

    @model_validator(mode="after")
    def _admin_path(self) -> BastionSettings:
        if self.admin_access == "direct" and not self.admin_cidrs:
            raise ValueError(
                "bastion.admin_cidrs must list at least one CIDR with admin_access = \"direct\": "
                "where the operator and CI connect from (or set admin_access = \"eice\": the "
                "admin path through an EC2 Instance Connect Endpoint needs no address)"
            )
        if self.admin_access == "eice" and self.provider != "aws":
            raise ValueError(
                "bastion.admin_access = \"eice\" needs provider = \"aws\": the endpoint reaches "
                "an instance of the VPC by its private address"
            )
        if self.admin_access == "eice" and self.ssh_port != 22:
            raise ValueError(
                "bastion.ssh_port must be 22 with admin_access = \"eice\" for now: an Instance "
                "Connect Endpoint reaches port 22 only, and sshd listening on a second port is "
                "not done yet; use admin_access = \"direct\" for another port"
            )
        if self.eice_id and self.admin_access != "eice":
            raise ValueError("bastion.eice_id is used only with admin_access = \"eice\"")
        return self

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return rules.hostname(value) if value else value

    @model_validator(mode="after")
    def _admin_user_given(self) -> BastionSettings:
        if not self.admin_user:
            raise ValueError(
                "bastion.admin_user is required when bastion.ami is an AMI id or an ssm: path: "
                "the sudo user the image creates (admin on Debian, ec2-user on Amazon Linux, "
                "ubuntu on Ubuntu)"
            )
        return self

    @property
    def ami_reference(self) -> str:
        """`ami` as AWS takes it: an AMI id, or `ssm:/path` (a named image's parameter for
        the architecture of `instance_type`)."""
        return images.ami_reference(self.ami, self.instance_type)


class DbtCloudSettings(_Section):
    """`[dbt_cloud]` of the one-tool form: the sources of its one tunnel."""

    regions: list[str] = Field(default_factory=lambda: ["us"])
    extra_cidrs: list[Cidr] = Field(default_factory=list)
    api: DbtCloudApi | None = None  # `[dbt_cloud.api]`: keys from dbt Cloud's API

    @field_validator("regions")
    @classmethod
    def _regions(cls, value: list[str]) -> list[str]:
        table = allow_list()
        for region in value:
            if table.resolve(region) is None:
                raise ValueError(f"has an unknown region (known: {', '.join(table.names())})")
        return [table.resolve(r).key for r in value]  # type: ignore[union-attr]


def _tunnel_user(value: str) -> str:
    rules.posix_user(value)
    if value in rules.SYSTEM_ACCOUNTS:
        raise ValueError(
            "must not be root or a system account: use a dedicated user such as dbtcloud"
        )
    return value


def _public_keys(value: list[str]) -> list[str]:
    for index, text in enumerate(value):
        try:
            parse_public_key(text)
        except InputError as exc:
            raise ValueError(f"[{index}] {exc.message}") from None
    return value


class OneToolTunnel(_Section):
    """`[tunnel]` of the one-tool form: dbt Cloud's user, keys and keepalive."""

    user: str = "dbtcloud"
    public_keys: list[str] = Field(default_factory=list)
    keys_file: Path | None = None
    client_alive_interval: PositiveInt = 30
    client_alive_count_max: PositiveInt = 10

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return _tunnel_user(value)

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _public_keys(value)


Vendor = Literal["dbt_cloud", "fivetran", "hightouch", "stitch", "custom"]
assert set(Vendor.__args__) == set(VENDORS)  # type: ignore[attr-defined]


class TunnelSettings(_Section):
    """One tunnel user (`[tunnels.<user>]`): its vendor's sources, its keys, its keepalive.

    The one-tool form (`[tunnel]` + `[dbt_cloud]`) is read as exactly one of these, so
    everything past the config reads `Settings.tunnels` alone. `key` is where the config
    keeps it (`tunnels.<user>`, or `tunnel` in the one-tool form), for messages and edits.
    """

    user: str
    vendor: Vendor
    regions: list[str] = Field(default_factory=list)
    extra_cidrs: list[Cidr] = Field(default_factory=list)
    public_keys: list[str] = Field(default_factory=list)
    keys_file: Path | None = None
    client_alive_interval: PositiveInt = 30
    client_alive_count_max: PositiveInt = 10
    api: DbtCloudApi | FivetranApi | None = None  # keys from the vendor's API
    key: str = Field(default="", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _api(cls, data: Any) -> Any:
        """`api` is read as the vendor's own table (dbt Cloud's or Fivetran's)."""
        if not isinstance(data, dict) or data.get("api") is None:
            return data
        where = "dbt_cloud" if data.get("key") == "tunnel" else data.get("key") or "tunnels"
        return {**data, "api": api_for(str(data.get("vendor", "")), data["api"], where)}

    @field_validator("user")
    @classmethod
    def _user(cls, value: str) -> str:
        return _tunnel_user(value)

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        return _public_keys(value)

    @model_validator(mode="after")
    def _sources(self) -> TunnelSettings:
        table = source_list(self.vendor)
        where = "dbt_cloud" if self.key == "tunnel" else self.where
        resolved = []
        for name in self.regions:
            region = table.resolve(name)
            if region is None:
                known = ", ".join(table.names()) or "none"
                raise ValueError(
                    f"{where}.regions: {name!r} is not a region of {table.label} (known: "
                    f"{known}); for a region bastion has no list of, leave it out and list its "
                    f"addresses in {where}.extra_cidrs"
                )
            resolved.append(region.key)
        object.__setattr__(self, "regions", list(dict.fromkeys(resolved)))
        if not self.extra_cidrs:
            bare = [r for r in self.regions if not table.regions[r].cidrs]
            if bare or not self.regions:
                what = (
                    f"{table.label} publishes no list bastion can cite for "
                    f"{', '.join(bare)}" if bare else "no region with a built-in list is named"
                )
                raise ValueError(
                    f"{where}.extra_cidrs is required: {what}; list the addresses "
                    f"{LABELS[self.vendor]} connects from (see `bastion ips --vendor {self.vendor}`)"
                )
        return self

    @model_validator(mode="after")
    def _api_url(self) -> TunnelSettings:
        """dbt Cloud's API has one default address (region us); the others need `url`."""
        if isinstance(self.api, DbtCloudApi) and not self.api.url:
            where = "dbt_cloud" if self.key == "tunnel" else self.where
            if self.regions and self.regions[0] != "us":
                raise ValueError(
                    f"{where}.api.url is required for dbt Cloud region {self.regions[0]!r}: "
                    "set it to your account's access URL followed by /api (Account settings "
                    'shows it), e.g. "https://ab123.eu1.dbt.com/api"'
                )
        return self

    @property
    def label(self) -> str:
        return LABELS[self.vendor]

    @property
    def where(self) -> str:
        """Where the config keeps this tunnel: `tunnels.<user>`, or `tunnel` (one-tool form)."""
        return self.key or f"tunnels.{self.user}"

    def sources(self) -> list[tuple[str, str]]:
        """(cidr, whose) for every address this user may log in from, but admin_cidrs:
        the regions' lists ("dbt Cloud us"), then extra_cidrs ("extra_cidrs")."""
        unique = dict(region_cidrs(self.vendor, list(self.regions)))
        for cidr in self.extra_cidrs:
            unique.setdefault(cidr, "extra_cidrs")
        return list(unique.items())

    def source_cidrs(self) -> list[str]:
        return [cidr for cidr, _ in self.sources()]

    def configured_keys(self) -> list[Any]:
        """The configured keys (list, then keys_file), deduplicated by fingerprint."""
        keys = [parse_public_key(text) for text in self.public_keys]
        if self.keys_file is not None and self.keys_file.exists():
            keys.extend(read_keys_file(self.keys_file))
        unique = {key.fingerprint: key for key in reversed(keys)}
        return [key for key in keys if unique[key.fingerprint] is key]


class Settings(_Section):
    """The whole validated configuration, plus where it was read from.

    `tunnels` is what everything past the config reads; `tunnel` and `dbt_cloud` are the
    one-tool form as written (None in a file of `[tunnels.<user>]` tables).
    """

    name: str
    aws: AwsSettings = Field(default_factory=AwsSettings)
    warehouse: WarehouseSettings = Field(default_factory=WarehouseSettings)
    bastion: BastionSettings
    dbt_cloud: DbtCloudSettings | None = None
    tunnel: OneToolTunnel | None = None
    tunnels: dict[str, TunnelSettings] = Field(default_factory=dict)
    source: Path = Field(default=Path(DEFAULT_NAME), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _tables(cls, data: Any) -> Any:
        """Each `[tunnels.<user>]` table's name is its user; a file holds one form."""
        if not isinstance(data, dict) or "tunnels" not in data:
            return data
        if "tunnel" in data or "dbt_cloud" in data:
            raise ValueError(
                "set either [tunnels.<user>] tables or the one-tool [tunnel] and [dbt_cloud], "
                "not both: move [tunnel] and [dbt_cloud] into a [tunnels.dbtcloud] table "
                'with vendor = "dbt_cloud"'
            )
        tables = data["tunnels"]
        if not isinstance(tables, dict):
            return data
        named = {}
        for user, table in tables.items():
            if isinstance(table, dict):
                if "user" in table or "key" in table:
                    extra = "user" if "user" in table else "key"
                    raise ValueError(
                        f"tunnels.{user}.{extra} is not a known key: the table's name is the "
                        "tunnel user"
                    )
                table = {**table, "user": user, "key": f"tunnels.{user}"}
            named[user] = table
        return {**data, "tunnels": named}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return rules.name(value)

    @model_validator(mode="after")
    def _cross(self) -> Settings:
        if not self.tunnels:
            tunnel = self.tunnel or OneToolTunnel()
            dbt_cloud = self.dbt_cloud or DbtCloudSettings()
            one = TunnelSettings.model_validate(dict(
                user=tunnel.user,
                vendor="dbt_cloud",
                regions=list(dbt_cloud.regions),
                extra_cidrs=list(dbt_cloud.extra_cidrs),
                public_keys=list(tunnel.public_keys),
                keys_file=tunnel.keys_file,
                client_alive_interval=tunnel.client_alive_interval,
                client_alive_count_max=tunnel.client_alive_count_max,
                api=dbt_cloud.api,
                key="tunnel",
            ))
            object.__setattr__(self, "tunnels", {one.user: one})
        for each in self.tunnels.values():
            if each.user == self.bastion.admin_user:
                raise ValueError(f"{each.where}.user must differ from bastion.admin_user")
        return self

    @property
    def config_dir(self) -> Path:
        return self.source.parent

    @property
    def one_tool(self) -> bool:
        """The file uses the one-tool form (`[tunnel]` + `[dbt_cloud]`, or neither)."""
        return next(iter(self.tunnels.values())).key == "tunnel"

    @property
    def first_tunnel(self) -> TunnelSettings:
        """The first tunnel in the file (the only one in the one-tool form)."""
        return next(iter(self.tunnels.values()))

    def named_sources(self) -> list[tuple[str, str]]:
        """(cidr, "<user>: <whose>") for every tunnel's sources: what each rule of the
        bastion's group is there for ("dbtcloud: dbt Cloud us", "fivetran: extra_cidrs")."""
        return [
            (cidr, f"{tunnel.user}: {whose}")
            for tunnel in self.tunnels.values()
            for cidr, whose in tunnel.sources()
        ]

    def tunnel_named(self, user: str | None) -> TunnelSettings:
        """`--tunnel USER`: that tunnel; none given: the only one (several: refused)."""
        if user is None:
            if len(self.tunnels) == 1:
                return self.first_tunnel
            raise InputError(
                f"this bastion has {len(self.tunnels)} tunnel users "
                f"({', '.join(self.tunnels)}): name one with --tunnel USER"
            )
        if user not in self.tunnels:
            raise InputError(
                f"--tunnel {user!r} is not a tunnel user of this config "
                f"(its tunnel users: {', '.join(self.tunnels)})"
            )
        return self.tunnels[user]

    def selected(self, user: str | None) -> list[TunnelSettings]:
        """`--tunnel USER` for commands that default to every tunnel."""
        return list(self.tunnels.values()) if user is None else [self.tunnel_named(user)]


def locate(path: Path | None, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if path is not None:
        return path
    if environ.get("BASTION_CONFIG"):
        return Path(environ["BASTION_CONFIG"])
    return Path(DEFAULT_NAME)


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read, interpolate and validate the config; every failure is a ConfigError."""
    environ = os.environ if environ is None else environ
    source = locate(path, environ).expanduser()
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"no config file at {source}",
            hint="run `bastion init` to write a commented starter, or pass -c PATH",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {source}: {exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    from_env: set[tuple[str | int, ...]] = set()
    data = interpolate(raw, environ, (), from_env)
    resolve_paths(data, source.parent.resolve())
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe(exc, from_env)) from None
    base = source.parent.resolve()
    paths = {
        "admin_key": anchor(settings.bastion.admin_key, base),
        "known_hosts": anchor(settings.bastion.known_hosts, base),
    }
    settings = settings.model_copy(
        update={"source": source.resolve(), "bastion": settings.bastion.model_copy(update=paths)}
    )
    for tunnel in settings.tunnels.values():
        _check_keys_file(tunnel)
    return settings


def _check_keys_file(tunnel: TunnelSettings) -> None:
    keys_file = tunnel.keys_file
    if keys_file is None:
        return

    if not keys_file.exists():
        raise ConfigError(
            f"{tunnel.where}.keys_file: {keys_file} does not exist",
            hint=f"create it (one public key per line) or remove {tunnel.where}.keys_file",
        )
    try:
        read_keys_file(keys_file)
    except InputError as exc:
        raise ConfigError(f"{tunnel.where}.keys_file: {exc.message}") from None
