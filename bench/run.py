"""`invoke bench`: bastion's commands on one lab, medians over repeated runs, beside Ansible.

Starts a lab (tests/lab), writes two bastion.toml files for it in a temporary folder (the
host as provider "existing", and the whole thing as provider "aws" against the lab's moto),
runs the real `bastion` console script again and again, and prints a table of medians with
the targets of issue 7. Commands not in this checkout yet show "n/a (command missing)".
Only loopback and the lab's namespaces are ever contacted. Needs root (the lab does).

    python -m bench.run [--runs 5] [--strict] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.awscount import AwsCall, AwsCallCounter, summarize
from bench.measure import (
    MISSING,
    Bastion,
    Row,
    Target,
    Timed,
    at_least,
    at_most,
    exactly,
    table,
)
from bench.peer import AnsiblePeer, PeerHost
from bench.sshlog import SshActivity, SshLogWindow

if TYPE_CHECKING:
    from tests.lab import Lab

PASSWORD_ENV = "BENCH_DB_PASSWORD"
NAME = "bench"


def say(message: str) -> None:
    """Progress on stderr; the table alone goes to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Workspace:
    """The bench's temporary folder: configs, known_hosts, the tunnel key, the peer."""

    folder: Path
    lab: Lab

    @property
    def existing_config(self) -> Path:
        return self.folder / "existing" / "bastion.toml"

    @property
    def aws_config(self) -> Path:
        return self.folder / "aws" / "bastion.toml"

    def tunnel_public_key(self) -> str:
        key = self.folder / "dbt_cloud_ed25519"
        if not key.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "dbt-cloud-bench",
                            "-f", str(key)], check=True, capture_output=True)  # fmt: skip
        return key.with_suffix(".pub").read_text().strip()

    def write_configs(self) -> None:
        lab = self.lab
        known = "".join(f"{line}\n" for line in lab.known_hosts_lines)
        common_bastion = (
            f'address = "{lab.bastion_address}"\n'
            f"ssh_port = {lab.ssh_port}\n"
            f'admin_user = "{lab.admin_user}"\n'
            f'admin_key = "{lab.admin_key}"\n'
            f'admin_cidrs = ["{lab.operator_address}/32"]\n'
            'known_hosts = "known_hosts"\n'
        )
        tunnel = (
            f'[tunnel]\nuser = "dbtcloud"\npublic_keys = [{json.dumps(self.tunnel_public_key())}]\n'
        )
        warehouse = (
            f'host = "{lab.warehouse_host}"\n'
            f"port = {lab.warehouse_port}\n"
            f'database = "{lab.db_name}"\n'
            f'user = "{lab.db_user}"\n'
            f'password_env = "{PASSWORD_ENV}"\n'
        )
        head = f'name = "{NAME}"\n\n[aws]\nregion = "us-east-1"\n\n'
        existing = (
            head + '[warehouse]\nkind = "postgres"\n' + warehouse
            + '\n[bastion]\nprovider = "existing"\n' + common_bastion + "\n" + tunnel
        )  # fmt: skip
        aws = (
            head + '[warehouse]\nkind = "redshift"\nredshift_cluster = "prod"\n' + warehouse
            + '\n[bastion]\nprovider = "aws"\n' + common_bastion + "\n" + tunnel
        )  # fmt: skip
        for path, text, hosts in ((self.existing_config, existing, known),
                                  (self.aws_config, aws, "")):  # fmt: skip
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            (path.parent / "known_hosts").write_text(hosts)


@dataclass
class Bench:
    """One bench run on one lab."""

    lab: Lab
    space: Workspace
    bastion: Bastion
    runs: int
    rows: list[Row] = field(default_factory=list)

    # --- helpers -------------------------------------------------------------------------

    def log_window(self) -> SshLogWindow:
        return SshLogWindow(self.lab.host_file)

    def missing(self, name: str, command: str) -> bool:
        if self.bastion.has(command):
            return False
        self.rows.append(Row(name, absent=MISSING))
        return True

    def repeat(self, runs: int, once: Callable[[], Timed]) -> tuple[list[float], Timed | None]:
        """Time `once` `runs` times; stop at the first failure and return it."""
        values: list[float] = []
        for _ in range(runs):
            done = once()
            if done.returncode != 0:
                return values, done
            values.append(done.seconds)
        return values, None

    def add_timed(self, name: str, values: list[float], failure: Timed | None,
                  goal: Target) -> None:  # fmt: skip
        if failure is not None and not values:
            self.rows.append(Row(name, absent=f"failed (exit {failure.returncode})", target=goal,
                                 note=failure.why()))  # fmt: skip
            return
        note = f"a run failed after {len(values)} good ones: {failure.why()}" if failure else ""
        self.rows.append(Row.of(name, values, target=goal, note=note))

    # --- the rows ------------------------------------------------------------------------

    def help_row(self) -> None:
        say("bastion --help")
        self.bastion.run("--help")  # warm the page cache and .pyc files once
        values, failure = self.repeat(self.runs, lambda: self.bastion.run("--help"))
        self.add_timed("bastion --help", values, failure, goal=at_most(0.3, "s"))

    def converge_existing(self) -> Timed | None:
        """`bastion configure` until it reports success (the host is pristine at first)."""
        config = str(self.space.existing_config)
        last = None
        for _ in range(3):  # sshd's SIGHUP re-exec can refuse the confirming login once
            last = self.bastion.run("configure", "-c", config, "--json")
            if last.returncode == 0:
                return None
            say(f"configure did not converge: {last.why()}")
        return last

    def configure_and_peer(self) -> None:
        """No-change `configure` and the no-change playbook, interleaved on one host."""
        names = ("no-change configure", "ssh connections / no-change configure",
                 "remote commands / no-change configure")  # fmt: skip
        if self.missing(names[0], "configure"):
            self.rows += [Row(names[1], unit="", absent=MISSING),
                          Row(names[2], unit="", absent=MISSING)]  # fmt: skip
            self.peer_only()
            return
        say("bastion configure (converging the pristine lab host)")
        failure = self.converge_existing()
        if failure is not None:
            self.rows.append(Row(names[0], absent="failed (could not converge)",
                                 target=at_most(0.35, "s"), note=failure.why()))  # fmt: skip
            self.peer_only()
            return
        peer = self.make_peer()
        configure: list[float] = []
        connections: list[float] = []
        commands: list[float] = []
        playbook: list[float] = []
        peer_ssh: list[SshActivity] = []
        notes: list[str] = []
        peer_note = ""
        if peer is not None:
            first = peer.run()  # opens the ControlPersist master: the runs below reuse it
            if not first.ok:
                peer_note = f"playbook failed: {_tail(first.output)}"
                peer = None
            elif first.changed:
                peer_note = f"first run changed={first.changed}: the peer is not byte-identical"
        say(f"no-change configure and ansible-playbook, {self.runs} rounds")
        for _ in range(self.runs):
            with self.log_window() as window:
                done = self.bastion.run("configure", "-c", str(self.space.existing_config),
                                        "--json")  # fmt: skip
            if done.returncode != 0:
                notes.append(done.why())
                break
            document = done.document or {}
            if document.get("changed"):
                notes.append(f"a 'no-change' configure changed: {document.get('changes')}")
            configure.append(done.seconds)
            connections.append(window.activity.connections)
            commands.append(window.activity.sessions)
            if peer is not None:
                with self.log_window() as window:
                    run = peer.run()
                if not run.ok:
                    peer_note = f"playbook failed: {_tail(run.output)}"
                    peer = None
                    continue
                if run.changed:
                    peer_note = f"a no-change playbook run reported changed={run.changed}"
                playbook.append(run.seconds)
                peer_ssh.append(window.activity)
        if peer is not None:
            peer.close_master()
        self.rows.append(Row.of(names[0], configure, target=at_most(0.35, "s"),
                                note="; ".join(dict.fromkeys(notes))))  # fmt: skip
        self.rows.append(Row.of(names[1], connections, unit="", target=exactly(1)))
        self.rows.append(Row.of(names[2], commands, unit="", target=at_most(2)))
        self.peer_rows(playbook, configure, peer_ssh, peer_note)

    def make_peer(self) -> AnsiblePeer | None:
        lab = self.lab
        host_file: Callable[[str], str] = lab.host_file
        try:
            passwd = next(line for line in host_file("/etc/passwd").splitlines()
                          if line.startswith("dbtcloud:"))  # fmt: skip
            keys_text = host_file("/home/dbtcloud/.ssh/authorized_keys")
            sshd_config = host_file("/etc/ssh/sshd_config")
        except (OSError, StopIteration) as exc:
            say(f"peer: cannot read bastion's files from the host: {exc}")
            return None
        host = PeerHost(
            address=lab.bastion_address,
            port=lab.ssh_port,
            admin_user=lab.admin_user,
            admin_key=lab.admin_key,
            known_hosts="".join(f"{line}\n" for line in lab.known_hosts_lines),
            tunnel_user="dbtcloud",
            permit_open=f"{lab.warehouse_host}:{lab.warehouse_port}",
            tunnel_keys=[self.space.tunnel_public_key()],
        )
        peer = AnsiblePeer(self.space.folder / "peer", host, sshd_config, keys_text, passwd)
        if peer.executable is None:
            say("peer: ansible-playbook not found (pip install ansible-core)")
            return None
        return peer

    def peer_only(self) -> None:
        self.peer_rows([], [], [], "needs a host converged by `bastion configure`")

    def peer_rows(self, playbook: list[float], configure: list[float],
                  peer_ssh: list[SshActivity], note: str) -> None:  # fmt: skip
        name = "ansible-playbook no-change (peer)"
        if playbook:
            self.rows.append(Row.of(name, playbook, note=note))
        else:
            self.rows.append(Row(name, absent="n/a", note=note))
        if peer_ssh:
            self.rows.append(Row.of("ssh connections / no-change playbook",
                                    [a.connections for a in peer_ssh], unit=""))  # fmt: skip
            self.rows.append(Row.of("remote commands / no-change playbook",
                                    [a.sessions for a in peer_ssh], unit=""))  # fmt: skip
        ratio = "ratio playbook / configure"
        if playbook and configure:
            ratios = [p / c for p, c in zip(playbook, configure, strict=False)]
            self.rows.append(Row.of(ratio, ratios, unit="x", target=at_least(5, "x"),
                                    note="per round: playbook time / configure time"))  # fmt: skip
        else:
            self.rows.append(Row(ratio, unit="x", absent="n/a", target=at_least(5, "x")))

    def verify_row(self) -> None:
        name = "verify"
        if self.missing(name, "verify"):
            return
        say(f"bastion verify, {self.runs} runs")
        config = str(self.space.existing_config)
        values, failure = self.repeat(self.runs, lambda: self.bastion.run("verify", "-c", config))
        self.add_timed(name, values, failure, goal=at_most(1.0, "s"))

    # --- provider "aws": up ----------------------------------------------------------------

    def up_rows(self) -> None:
        names = ("first up from nothing", "no-change up (with verify)",
                 "aws calls / no-change up", "aws mutating calls / no-change up",
                 "ssh connections / no-change up", "remote commands / no-change up")  # fmt: skip
        if not self.bastion.has("up"):
            self.rows += [Row(name, unit="" if "/" in name else "s", absent=MISSING)
                          for name in names]  # fmt: skip
            return
        endpoint = self.lab.moto_endpoint
        config = str(self.space.aws_config)
        say(f"first bastion up from nothing (fresh moto and host each time), {self.runs} runs")
        first: list[float] = []
        failure: Timed | None = None
        for _ in range(self.runs):
            self.fresh_world(endpoint)
            done = self.bastion.run("up", "-c", config, "--json", timeout=600)
            if done.returncode != 0:
                failure = done
                break
            first.append(done.seconds)
        self.add_timed(names[0], first, failure, goal=at_most(10, "s"))
        if not first:
            self.rows += [Row(name, unit="" if "/" in name else "s", absent="n/a (first up failed)")
                          for name in names[1:]]  # fmt: skip
            return
        say(f"no-change bastion up, {self.runs} runs")
        values, failure = self.repeat(
            self.runs, lambda: self.bastion.run("up", "-c", config, "--json", timeout=600)
        )
        self.add_timed(names[1], values, failure, goal=at_most(1.5, "s"))
        say("no-change bastion up once more, through the AWS call counter")
        with AwsCallCounter(endpoint) as counter, self.log_window() as window:
            counted = self.bastion.run("up", "-c", config, "--json",
                                       env={"AWS_ENDPOINT_URL": counter.endpoint}, timeout=600)  # fmt: skip
            calls = counter.taken()
        self.aws_count_rows(names, counted, calls, window.activity)

    def aws_count_rows(self, names: tuple[str, ...], counted: Timed, calls: list[AwsCall],
                       ssh: SshActivity) -> None:  # fmt: skip
        if counted.returncode != 0:
            self.rows += [Row(name, unit="", absent="failed", note=counted.why())
                          for name in names[2:]]  # fmt: skip
            return
        mutating = [call for call in calls if call.mutating]
        changed = (counted.document or {}).get("changed")
        self.rows.append(Row.of(names[2], [len(calls)], unit="", note=summarize(calls)))
        self.rows.append(Row.of(names[3], [len(mutating)], unit="", target=exactly(0),
                                note=summarize(mutating) + (" (the run reported changes)"
                                                            if changed else "")))  # fmt: skip
        self.rows.append(Row.of(names[4], [ssh.connections], unit=""))
        self.rows.append(Row.of(names[5], [ssh.sessions], unit=""))

    def fresh_world(self, endpoint: str) -> None:
        """moto as a new account (reset, seeded again) and a pristine lab host."""
        from tests.lab.aws import seed_account

        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the lab's moto, loopback
            pass
        seed_account(endpoint)
        self.lab.restart_host()
        (self.space.aws_config.parent / "known_hosts").write_text("")  # a fresh CI runner


def _tail(text: str, lines: int = 4) -> str:
    return " / ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure (median)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--skip-up", action="store_true", help="leave out the provider=aws rows")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from tests.lab import start_lab

    started = time.perf_counter()
    say("starting the lab")
    lab = start_lab("bnch")
    try:
        with tempfile.TemporaryDirectory(prefix="bastion-bench-") as folder:
            space = Workspace(Path(folder), lab)
            space.write_configs()
            env = {**os.environ, **lab.aws_env(), PASSWORD_ENV: lab.db_password,
                   "NO_COLOR": "1"}  # fmt: skip
            env.pop("BASTION_CONFIG", None)
            bench = Bench(lab, space, Bastion(env, Path(folder)), args.runs)
            bench.help_row()
            bench.configure_and_peer()
            bench.verify_row()
            if args.skip_up:
                bench.rows.append(Row("first up from nothing", absent="skipped (--skip-up)"))
            else:
                bench.up_rows()
    finally:
        lab.stop()
    print(table(bench.rows))
    print(f"\n{args.runs} runs per figure; bench took {time.perf_counter() - started:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps([row.to_dict() for row in bench.rows], indent=1) + "\n")
    missed = [row.name for row in bench.rows if row.verdict == "FAIL"]
    if missed:
        say(f"targets missed: {', '.join(missed)}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
