"""A bastion.toml pointing at a lab: the Redshift cluster `prod` on its moto, the lab host
as `bastion.address`, the lab warehouse as `warehouse.host`. Tests and the demo share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.lab import Lab


def bastion_toml(lab: Lab, name: str, *, extra_bastion: str = "", extra: str = "") -> str:
    """The config text; `extra_bastion` lines go in [bastion], `extra` (whole tables) at the end.

    The image is the lab host's release where it is a named image (debian-11 is not).
    """
    ami = f'ami = "{lab.os}"\n' if lab.os in ("debian-13", "debian-12") else ""
    return f"""\
name = "{name}"
[warehouse]
kind = "redshift"
redshift_cluster = "prod"
host = "{lab.warehouse_host}"
port = {lab.warehouse_port}
database = "{lab.db_name}"
user = "{lab.db_user}"
[bastion]
{ami}admin_user = "{lab.admin_user}"
admin_key = "{lab.admin_key}"
admin_cidrs = ["{lab.operator_address}/32"]
address = "{lab.bastion_address}"
{extra_bastion}
{extra}"""


def lab_env(lab: Lab) -> dict[str, str]:
    """What `bastion` needs in its environment to use the lab: moto, and the db password."""
    return {**lab.aws_env(), "DBT_ENV_SECRET_PASSWORD": lab.db_password}
