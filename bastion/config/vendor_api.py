"""`[tunnels.<user>.api]` (and `[dbt_cloud.api]` in the one-tool form): where a tunnel
user's public keys come from when the vendor's API hands them out instead of a person.

Secrets are never in the file: the config names the environment variables that hold them
(`token_env`, `key_env`, `secret_env`), and only those are read, at the moment of the call.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from bastion.config import rules
from bastion.errors import ConfigError

PositiveInt = Annotated[int, BeforeValidator(rules.positive_int)]
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_GROUP_ID = re.compile(r"[A-Za-z0-9_]{1,64}")

CONNECTION_MARK = "dbt-cloud-connection-"  # the comment of a key dbt Cloud's API gave
GROUP_MARK = "fivetran-group-"  # the comment of a key Fivetran's API gave
DBT_CLOUD_DEFAULT_URL = "https://cloud.getdbt.com/api"  # the "us" multi-tenant access URL
FIVETRAN_DEFAULT_URL = "https://api.fivetran.com"


class _Api(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    url: str = ""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return api_url(value) if value else value

    def secret(self, name_field: str, environ: Mapping[str, str]) -> str:
        """The value of the variable `name_field` names; ConfigError (exit 4) naming the
        variable, never its value, when it is not set."""
        name = getattr(self, name_field)
        value = environ.get(name, "").strip()  # a pasted secret often ends in a newline
        if not value:
            raise ConfigError(
                f"{name} is not set: it holds the {self.what} for this tunnel's api",
                hint=f"export {name} (in CI: from the secrets store); its value is never shown",
            )
        if not all(33 <= ord(char) < 127 for char in value):
            raise ConfigError(
                f"{name} holds spaces, control or non-ASCII characters: not a {self.what}",
                hint=f"set {name} to the value exactly as the vendor shows it (it is not shown here)",
            )
        return value

    what: ClassVar[str] = "API credentials"


def from_api(comment: str) -> bool:
    """The key was installed from a vendor's API (its comment is the mark `up` gives it)."""
    return comment.startswith((CONNECTION_MARK, GROUP_MARK))


def _env_name(value: str) -> str:
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(
            "must be the NAME of an environment variable (upper case, such as "
            "DBT_CLOUD_API_TOKEN), not the secret itself; the value is never shown"
        )
    return value


class DbtCloudApi(_Api):
    """dbt Cloud: the account and the connections whose SSH tunnel is this bastion."""

    account_id: PositiveInt
    connection_ids: list[PositiveInt] = Field(min_length=1)
    token_env: str = "DBT_CLOUD_API_TOKEN"
    what: ClassVar[str] = "dbt Cloud API token"

    @field_validator("token_env")
    @classmethod
    def _token_env(cls, value: str) -> str:
        return _env_name(value)

    @field_validator("connection_ids")
    @classmethod
    def _unique(cls, value: list[int]) -> list[int]:
        return list(dict.fromkeys(value))

    def base_url(self, regions: list[str]) -> str:
        """`url`, else the access URL of the region ("us": cloud.getdbt.com); other regions
        and cell accounts have their own, which the config must give."""
        if self.url:
            return self.url
        if not regions or regions[0] == "us":
            return DBT_CLOUD_DEFAULT_URL
        raise ConfigError(
            f"api.url is required for dbt Cloud region {regions[0]!r}: set it to your "
            "account's access URL followed by /api (Account settings shows it)",
            hint='for example url = "https://ab123.eu1.dbt.com/api"',
        )


class FivetranApi(_Api):
    """Fivetran: the group (destination) whose public key this tunnel user accepts."""

    group_id: str
    key_env: str = "FIVETRAN_API_KEY"
    secret_env: str = "FIVETRAN_API_SECRET"
    what: ClassVar[str] = "Fivetran API key and secret"

    @field_validator("group_id")
    @classmethod
    def _group(cls, value: str) -> str:
        if not _GROUP_ID.fullmatch(value):
            raise ValueError("must be a Fivetran group id (letters, digits and '_')")
        return value

    @field_validator("key_env", "secret_env")
    @classmethod
    def _names(cls, value: str) -> str:
        return _env_name(value)

    def base_url(self) -> str:
        return self.url or FIVETRAN_DEFAULT_URL


API_MODELS: dict[str, type[_Api]] = {"dbt_cloud": DbtCloudApi, "fivetran": FivetranApi}


def api_for(vendor: str, value: Any, where: str) -> DbtCloudApi | FivetranApi | None:
    """The `api` table of a tunnel of `vendor`, validated as that vendor's (ValueError
    naming `where` for a vendor without an API bastion reads)."""
    if value is None or isinstance(value, (DbtCloudApi, FivetranApi)):
        return value
    model = API_MODELS.get(vendor)
    if model is None:
        raise ValueError(
            f"{where}.api: bastion reads keys from dbt Cloud's and Fivetran's APIs only; "
            f"for {vendor}, remove the api table and list the key in {where}.public_keys"
        )
    try:
        found = model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "is required"
        elif first["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            message = f"is not a known key (known: {known})"
        raise ValueError(f"{where}.api.{path} {message}") from None
    assert isinstance(found, (DbtCloudApi, FivetranApi))
    return found


def api_url(value: str) -> str:
    """https, or plain http on a loopback address only (local stand-ins, proxies); no
    credentials, query or fragment in it."""
    rules.no_control_characters(value)
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL (such as https://cloud.getdbt.com/api)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("must not carry credentials, a query or a fragment")
    if parts.scheme == "http" and not rules.loopback_host(parts.hostname):
        raise ValueError("must use https (plain http is allowed on a loopback address only)")
    return value.rstrip("/")
