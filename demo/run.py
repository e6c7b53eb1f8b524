"""The demo: the whole job end to end on a lab on this machine, in about a minute.

Starts the lab (moto seeded like a real account: a VPC with a public subnet and an
internet gateway, a Redshift cluster and its security group; a bastion host booting Debian
13, or the release `--os` names, under its own systemd; a PostgreSQL warehouse reachable
only through it) and loopback stand-ins for dbt Cloud's and Fivetran's APIs (as a user's
accounts would hold them: a dbt Cloud connection, a Fivetran group). Then the first day of
a data team with two tools on one bastion: `bastion up` saves the SSH tunnel in dbt Cloud,
installs the keys dbt Cloud generated and Fivetran holds, and verifies each tunnel user;
dbt Cloud logs in with the private half of its very key and reaches the warehouse; `up`
again changes nothing; someone saves the connection in dbt Cloud again (a new key pair)
and the next `up` rotates the key; `connection` prints what each vendor's form asks for;
`doctor` walks every link. The lab is torn down whatever happened.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.rule import Rule

HEADER = """\
# The demo's bastion.toml: a Redshift cluster discovered on the (emulated) AWS account,
# reached by two tools through one bastion, each fenced to its own published addresses.
# The lab's addresses stand in for what a real account would have:
#   bastion.address  - where the tool reaches the host (the lab's namespace, not the EIP)
#   warehouse.host   - the database as dbt Cloud names it (PermitOpen matches it literally)
"""

ACCOUNT, CONNECTION, GROUP = 70403, 678, "decent_dragon"  # the stand-ins' account
SECRETS = {  # the variables the config names; CI would take them from its secrets store
    "DBT_CLOUD_API_TOKEN": "dbtc_demo-token-not-a-real-one",
    "FIVETRAN_API_KEY": "demo-key",
    "FIVETRAN_API_SECRET": "demo-secret-not-a-real-one",
}


def tunnel_tables(dbt_url: str, fivetran_url: str) -> str:
    """dbt Cloud (region us) and Fivetran (Google Cloud us-east4), each with its key from its
    vendor's API: no key is pasted anywhere."""
    return (
        '[tunnels.dbtcloud]\nvendor = "dbt_cloud"\nregions = ["us"]\n'
        "[tunnels.dbtcloud.api]\n"
        f"account_id = {ACCOUNT}\nconnection_ids = [{CONNECTION}]\n"
        f'token_env = "DBT_CLOUD_API_TOKEN"\nurl = "{dbt_url}"   # the stand-in; default: cloud.getdbt.com\n\n'
        '[tunnels.fivetran]\nvendor = "fivetran"\nregions = ["gcp-us-east4"]\n'
        "[tunnels.fivetran.api]\n"
        f'group_id = "{GROUP}"\nkey_env = "FIVETRAN_API_KEY"\nsecret_env = "FIVETRAN_API_SECRET"\n'
        f'url = "{fivetran_url}"   # the stand-in; default: api.fivetran.com\n'
    )


def dbt_cloud_connects(lab: Any, private_pem: str) -> bool:
    """What dbt Cloud does: log in as dbtcloud with the private half of the key it
    generated, open a forward to the warehouse, and find PostgreSQL at the other end (its
    answer to an SSLRequest is one byte, S or N)."""
    import paramiko

    key = paramiko.Ed25519Key.from_private_key(io.StringIO(private_pem))
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507 - the lab's host
    try:
        client.connect(lab.bastion_address, lab.ssh_port, username="dbtcloud", pkey=key,
                       allow_agent=False, look_for_keys=False, timeout=10)  # fmt: skip
        transport = client.get_transport()
        assert transport is not None
        channel = transport.open_channel(
            "direct-tcpip", (lab.warehouse_host, lab.warehouse_port), ("127.0.0.1", 0), timeout=10
        )
        channel.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")  # SSLRequest
        answer = channel.recv(1)
        channel.close()
    except (paramiko.SSHException, OSError) as exc:
        console.print(f"  sshd refused the login ({type(exc).__name__}: {exc})")
        return False
    finally:
        client.close()
    console.print(f"  logged in as dbtcloud with dbt Cloud's key; PostgreSQL answered {answer!r}")
    return answer in (b"S", b"N")


console = Console(stderr=True, highlight=False)


def step(title: str) -> None:
    console.print(Rule(f"[bold]{title}", align="left"))


def bastion(*args: str, env: dict[str, str], cwd: Path) -> int:
    shown = " ".join(("bastion", *args))
    console.print(f"[bold cyan]$ {shown}[/]")
    started = time.perf_counter()
    code = subprocess.call([sys.executable, "-m", "bastion", *args], env=env, cwd=cwd)
    console.print(f"[dim]exit {code} in {time.perf_counter() - started:.1f} s[/]\n")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--os", default="", help="the release the host boots (default debian-13)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        console.print("[red]the demo's lab needs root (network namespaces)[/]")
        return 1
    repo = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(repo))
    from tests.lab import bastion_toml, lab_env, start_lab
    from tests.lab.vendor_apis import dbt_cloud, fivetran

    started = time.perf_counter()
    step("1. start the lab: AWS emulator, bastion host, warehouse, dbt Cloud and Fivetran")
    console.print(
        "  (the first start on a machine builds the host's Debian root filesystem: 1-3 min)"
    )
    codes: list[int] = []
    with contextlib.ExitStack() as stack:
        lab = start_lab("demo", with_aws=True, os_name=args.os)
        stack.callback(lambda: (step("9. tear the lab down"), lab.stop()))
        dbt = stack.enter_context(dbt_cloud(SECRETS["DBT_CLOUD_API_TOKEN"], ACCOUNT, [CONNECTION]))
        five = stack.enter_context(
            fivetran(SECRETS["FIVETRAN_API_KEY"], SECRETS["FIVETRAN_API_SECRET"], [GROUP])
        )
        console.print(
            f"  bastion host {lab.bastion_address} ({lab.os}, booted with its own systemd),"
            f" warehouse {lab.warehouse_host}:"
            f"{lab.warehouse_port} (PostgreSQL, reachable only through the bastion), "
            f"AWS API {lab.moto_endpoint}, dbt Cloud's API {dbt.url} (connection "
            f"{CONNECTION}, no SSH tunnel yet), Fivetran's API {five.url} (group {GROUP})\n"
        )
        workdir = Path(tempfile.mkdtemp(prefix="bastion-demo-"))
        config = bastion_toml(lab, "demo", extra=tunnel_tables(dbt.url, five.url))
        (workdir / "bastion.toml").write_text(HEADER + config)
        env = {**os.environ, **lab_env(lab), **SECRETS}
        env.pop("BASTION_CONFIG", None)
        console.print(f"  config: {workdir / 'bastion.toml'}\n")

        step("2. bastion up: AWS, dbt Cloud's SSH tunnel, the host with both tools' keys, verify")
        codes.append(bastion("up", env=env, cwd=workdir))
        step("3. dbt Cloud connects, with the private half of the key it generated")
        first = dbt.state.private_pem(CONNECTION) if dbt.state.active(CONNECTION) else ""
        codes.append(0 if first and dbt_cloud_connects(lab, first) else 1)
        step("4. bastion up again: nothing drifted, so nothing changes (nothing written anywhere)")
        codes.append(bastion("up", env=env, cwd=workdir))
        step("5. someone saves the connection in dbt Cloud again: a new key pair; bastion up")
        if first:
            dbt.state.resave(CONNECTION)
        codes.append(bastion("up", env=env, cwd=workdir))
        console.print("  dbt Cloud's new key:")
        codes.append(0 if dbt_cloud_connects(lab, dbt.state.private_pem(CONNECTION)) else 1)
        console.print("  the key it replaced (which must be refused now):")
        codes.append(1 if first and dbt_cloud_connects(lab, first) else 0)
        step("6. bastion keys list: each key, where it came from, its last login")
        codes.append(bastion("keys", "list", env=env, cwd=workdir))
        step("7. bastion connection: what dbt Cloud's and Fivetran's forms ask for")
        codes.append(bastion("connection", env=env, cwd=workdir))
        step("8. bastion doctor: every link of the path each tool uses")
        codes.append(bastion("doctor", env=env, cwd=workdir))
    ok = all(code == 0 for code in codes)
    verdict = "[green]demo ok[/]" if ok else f"[red]demo failed (exit codes {codes})[/]"
    console.print(f"{verdict} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
