"""How a running lab is described to a person: addresses, key paths, and the environment
that points `bastion` at it. Nothing secret is shown but the lab's own throw-away database
password, which `bastion verify` reads from DBT_ENV_SECRET_PASSWORD.
"""

from __future__ import annotations

import shlex

from tests.lab.lab import Lab
from tests.lab.network import Topology
from tests.lab.state import LabState


def lab_environment(lab: Lab) -> dict[str, str]:
    """Variables for a shell that runs `bastion` against the lab.

    bastion.toml can refer to the BASTION_LAB_* ones as ${NAME}.
    """
    env = lab.aws_env() if lab.moto_endpoint else {}
    return {
        **env,
        "DBT_ENV_SECRET_PASSWORD": lab.db_password,
        "BASTION_LAB_RUN_ID": lab.run_id,
        "BASTION_LAB_ADDRESS": lab.bastion_address,
        "BASTION_LAB_ADMIN_CIDR": f"{lab.operator_address}/32",
        "BASTION_LAB_ADMIN_KEY": str(lab.admin_key),
        "BASTION_LAB_WAREHOUSE_HOST": lab.warehouse_host,
        "BASTION_LAB_WAREHOUSE_PORT": str(lab.warehouse_port),
    }


def describe(lab: Lab) -> str:
    """Shell-readable text: facts as comments, then `export` lines (eval-able as a whole)."""
    lines = [
        f"# bastion lab {lab.name} is up (stop it with: invoke lab.down --run-id {lab.run_id})",
        f"#   bastion host   {lab.admin_user}@{lab.bastion_address}:{lab.ssh_port} ({lab.os})"
        f"  (you are {lab.operator_address})",
        f"#   admin key      {lab.admin_key}",
        *(f"#   host key       {fingerprint}" for fingerprint in lab.host_key_fingerprints),
        f"#   warehouse      {lab.warehouse_host}:{lab.warehouse_port}"
        f"  database {lab.db_name}, user {lab.db_user} (reachable only through the bastion)",
    ]
    if lab.moto_endpoint:
        lines.append(f"#   AWS (moto)     {lab.moto_endpoint}")
    if lab.aws is not None:
        lines.append(f"#   Redshift       cluster {lab.aws.cluster_id} in {lab.aws.vpc_id}")
    lines += [f"export {name}={shlex.quote(value)}" for name, value in lab_environment(lab).items()]
    return "\n".join(lines)


def describe_state(state: LabState) -> str:
    """One line about a lab known only from its state file."""
    topo = Topology(state.name, state.slot)
    owner = state.owner.pid if state.owner else "?"
    kind = "detached (lab.up)" if state.detached else f"owned by pid {owner}"
    alive = "alive" if state.owner_alive() else "STALE"
    aws = f", moto {state.moto_endpoint}" if state.moto_endpoint else ""
    return (
        f"{state.name}  {alive}, {kind}: bastion {topo.bastion_address}, "
        f"warehouse {topo.warehouse_address}{aws}"
    )
