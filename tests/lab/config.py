"""A bastion.toml pointing at a lab: the Redshift cluster `prod` on its moto, the lab host
as `bastion.address`, the lab warehouse as `warehouse.host`. Tests and the demo share it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab.lab import Lab


def bastion_toml(
    lab: Lab,
    name: str,
    *,
    extra_bastion: str = "",
    extra: str = "",
    admin_cidrs: list[str] | None = None,
    address: str | None = None,
) -> str:
    """The config text; `extra_bastion` lines go in [bastion], `extra` (whole tables) at the end.

    The image is the lab host's release where it is a named image (debian-11 is not). The
    admin comes from the operator's address and the host is reached at the lab's address
    unless `admin_cidrs` / `address` say otherwise (`address=""` leaves it to AWS).
    """
    ami = f'ami = "{lab.os}"\n' if lab.os in ("debian-13", "debian-12") else ""
    cidrs = [f"{lab.operator_address}/32"] if admin_cidrs is None else admin_cidrs
    where = lab.bastion_address if address is None else address
    address_line = f'address = "{where}"\n' if where else ""
    cidr_list = ", ".join(f'"{cidr}"' for cidr in cidrs)
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
admin_cidrs = [{cidr_list}]
{address_line}{extra_bastion}
{extra}"""


def lab_env(lab: Lab) -> dict[str, str]:
    """What `bastion` needs in its environment to use the lab: moto, and the db password."""
    return {**lab.aws_env(), "DBT_ENV_SECRET_PASSWORD": lab.db_password}
