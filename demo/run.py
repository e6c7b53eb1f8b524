"""The demo: the whole job end to end on a lab on this machine, in about a minute.

Starts the lab (moto seeded like a real account: a VPC with a public subnet and an
internet gateway, a Redshift cluster and its security group; a bastion host booting Debian
13, or the release `--os` names, under its own systemd; a PostgreSQL warehouse reachable
only through it), writes a demo bastion.toml, runs `bastion up`, runs it again to show
that nothing changes, runs `bastion doctor`, and tears the lab down, whatever happened.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule

HEADER = """\
# The demo's bastion.toml: a Redshift cluster discovered on the (emulated) AWS account.
# The lab's addresses stand in for what a real account would have:
#   bastion.address  - where the tool reaches the host (the lab's namespace, not the EIP)
#   warehouse.host   - the database as dbt Cloud names it (PermitOpen matches it literally)
"""

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

    started = time.perf_counter()
    step("1. start the lab: AWS emulator, bastion host, warehouse")
    console.print(
        "  (the first start on a machine builds the host's Debian root filesystem: 1-3 min)"
    )
    lab = start_lab("demo", with_aws=True, os_name=args.os)
    codes: list[int] = []
    try:
        console.print(
            f"  bastion host {lab.bastion_address} ({lab.os}, booted with its own systemd),"
            f" warehouse {lab.warehouse_host}:"
            f"{lab.warehouse_port} (PostgreSQL, reachable only through the bastion), "
            f"AWS API {lab.moto_endpoint}\n"
        )
        workdir = Path(tempfile.mkdtemp(prefix="bastion-demo-"))
        (workdir / "bastion.toml").write_text(HEADER + bastion_toml(lab, "demo"))
        env = {**os.environ, **lab_env(lab)}
        env.pop("BASTION_CONFIG", None)
        console.print(f"  config: {workdir / 'bastion.toml'}\n")

        step("2. bastion up: provision, configure, verify")
        codes.append(bastion("up", env=env, cwd=workdir))
        step("3. bastion up again: nothing drifted, so nothing changes")
        codes.append(bastion("up", env=env, cwd=workdir))
        step("4. bastion doctor: every link of the path dbt Cloud uses")
        codes.append(bastion("doctor", env=env, cwd=workdir))
    finally:
        step("5. tear the lab down")
        lab.stop()
    ok = all(code == 0 for code in codes)
    verdict = "[green]demo ok[/]" if ok else f"[red]demo failed (exit codes {codes})[/]"
    console.print(f"{verdict} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
