"""`invoke bench`: bastion's commands on one lab, medians over repeated runs, beside Ansible.

Starts a lab (tests/lab), writes three bastion.toml files for it in a temporary folder (the
host as provider "existing", the whole thing as provider "aws" against the lab's moto, and
the same with admin_access = "eice" through the Instance Connect Endpoint's stand-in),
runs the real `bastion` console script again and again, and prints a table of medians with
the targets of issue 7. Commands not in this checkout yet show "n/a (command missing)".
Only loopback and the lab's namespaces are ever contacted. Needs root (the lab does).

    python -m bench.run [--runs 5] [--strict] [--json results.json] [--skip-up]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from bench.awscount import AwsCall, AwsCallCounter, summarize
from bench.measure import (
    MISSING,
    Bastion,
    Row,
    Series,
    Timed,
    at_least,
    at_most,
    bastion_changed,
    exactly,
    run_timed,
    table,
)
from bench.peer import AnsiblePeer, PeerHost
from bench.sshlog import SshLogWindow
from bench.workspace import TUNNEL_USER, Workspace, child_environment

if TYPE_CHECKING:
    from tests.lab import Lab

HELP = at_most(0.3, "s")
CONFIGURE = at_most(0.35, "s")
RATIO = at_least(5, "x")
VERIFY = at_most(1.0, "s")
UP_NO_CHANGE = at_most(1.5, "s")
UP_FIRST = at_most(10, "s")
SESSIONS_MONTH = at_most(2.0, "s")
PEER_REFERENCE = 1.7  # seconds: the playbook's no-change run on the machines issue 7 names
CHECKOUT = Path(__file__).resolve().parent.parent
FLOOR_PARAMIKO = "floor: python + paramiko, login + facts"
ENDPOINT_HOST = 20  # the stand-in's endpoint relays from 10.231.<slot>.20: what sshd sees


def say(message: str) -> None:
    """Progress on stderr; the table alone goes to stdout."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Bench:
    """One bench run on one lab."""

    lab: Lab
    space: Workspace
    bastion: Bastion
    runs: int
    rows: list[Row] = field(default_factory=list)

    def log_window(self) -> SshLogWindow:
        return SshLogWindow(self.lab.sshd_log)

    def missing(self, command: str, *names: str) -> bool:
        """Rows of "n/a (command missing)" when this checkout has no `bastion <command>`."""
        if self.bastion.has(command):
            return False
        self.rows += [Row(name, unit="" if "/" in name else "s", absent=MISSING) for name in names]
        return True

    def series(
        self,
        runs: int,
        once: Callable[[], Timed],
        *,
        count_ssh: bool = False,
        changed: Callable[[Timed], str] | None = None,
    ) -> Series:
        """`once` timed `runs` times; stops at the first failure.

        `changed` says what a run that should have changed nothing changed ("" if nothing).
        """
        series = Series()
        for _ in range(runs):
            with self.log_window() as window:
                done = once()
            if done.returncode != 0:
                series.failure = done
                break
            if changed is not None and changed(done):
                series.notes.append(f"a no-change run changed {changed(done)}")
            series.runs.append(done)
            if count_ssh:
                series.ssh.append(window.activity)
        return series

    # --- --help, configure and the peer, verify -----------------------------------------

    def help_row(self) -> None:
        say("bastion --help")
        self.bastion.run("--help")  # warm the page cache and the bytecode cache once
        self.rows.append(
            self.series(self.runs, lambda: self.bastion.run("--help")).row("bastion --help", HELP)
        )

    def converge(self) -> Timed | None:
        """`bastion configure` until it succeeds on the pristine lab host; the failure if not."""
        last = None
        for _ in range(3):  # sshd's SIGHUP re-exec can refuse the confirming login once
            last = self.bastion.run("configure", "-c", str(self.space.existing_config), "--json")
            if last.returncode == 0:
                return None
            say(f"configure did not converge: {last.why()}")
        return last

    def configure_and_peer(self) -> None:
        """No-change `configure` and the no-change playbook, in alternating rounds."""
        name = "no-change configure"
        if self.missing(
            "configure", name, f"ssh connections / {name}", f"remote commands / {name}"
        ):
            self.peer_rows(Series(), Series(), Series(), "needs a host bastion configured")
            return
        say("bastion configure (converging the pristine lab host)")
        failure = self.converge()
        if failure is not None:
            self.rows.append(Series(failure=failure).row(name, CONFIGURE))
            self.peer_rows(Series(), Series(), Series(), "needs a host bastion configured")
            return
        peer = self.make_peer()
        configure, warm, cold = Series(), Series(), Series()
        config = str(self.space.existing_config)
        if peer is not None:
            warm.notes += peer.check_first_run()  # also opens the ControlPersist master
        floor = self.floor_commands()
        floors = {floor_name: Series() for floor_name, _, _ in floor}
        say(
            f"no-change configure, ansible-playbook and the same read without bastion, "
            f"{self.runs} rounds"
        )
        for _ in range(self.runs):
            configure.extend(
                self.series(
                    1,
                    lambda: self.bastion.run("configure", "-c", config, "--json"),
                    count_ssh=True,
                    changed=bastion_changed,
                )
            )
            for floor_name, argv, _ in floor:
                probe = partial(run_timed, argv, self.bastion.env, CHECKOUT, 60)
                floors[floor_name].extend(self.series(1, probe))
            if peer is not None and not warm.failure:
                warm.extend(self.series(1, peer.run, count_ssh=True, changed=peer.changed))
        if peer is not None:
            say(f"ansible-playbook without a ControlPersist master, {self.runs} runs")
            for _ in range(self.runs):
                peer.close_master()
                cold.extend(self.series(1, peer.run, count_ssh=True, changed=peer.changed))
            peer.close_master()
        self.rows.append(configure.row(name, CONFIGURE))
        self.rows += configure.count_rows("configure", name)
        self.floor_rows(configure, floors, {floor_name: note for floor_name, _, note in floor})
        self.peer_rows(configure, warm, cold, "")

    def floor_commands(self) -> list[tuple[str, list[str], str]]:
        """The same read without bastion: paramiko alone, and OpenSSH's client.

        Both log in as the admin and run bastion's facts script once, as a no-change
        configure does; neither parses a CLI, validates a config or renders a template.
        """
        from bastion.config.settings import load
        from bastion.host.desired import tunnel_addresses
        from bastion.host.fact_sections import facts_script

        lab = self.lab
        script = self.space.folder / "facts.sh"
        script.write_text(facts_script())
        known_hosts = str(self.space.existing_config.parent / "known_hosts")
        settings = load(self.space.existing_config, environ=self.bastion.env)
        # the arguments configure passes: the client's address as sshd reports it, the
        # tunnel and admin users, an address of dbt Cloud's, and "wait for cloud-init"
        addresses = tunnel_addresses(settings)
        args = [f"{lab.operator_address} 50000 {lab.bastion_address} {lab.ssh_port}",
                " ".join(f"{user}={address}" for user, address in addresses.items()),
                settings.bastion.admin_user, addresses[settings.first_tunnel.user], "1"]  # fmt: skip
        probe = [sys.executable, "-m", "bench.floor_probe", lab.bastion_address,
                 str(lab.ssh_port), lab.admin_user, str(lab.admin_key), known_hosts,
                 str(script), *args]  # fmt: skip
        remote = " ".join(
            shlex.quote(a) for a in ["sudo", "-n", "sh", "-c", facts_script(), "sh", *args]
        )
        openssh = ["ssh", "-F", "/dev/null", "-i", str(lab.admin_key), "-o", "IdentitiesOnly=yes",
                   "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts}",
                   "-o", "StrictHostKeyChecking=yes", "-o", "KexAlgorithms=curve25519-sha256",
                   "-p", str(lab.ssh_port), f"{lab.admin_user}@{lab.bastion_address}", remote]  # fmt: skip
        return [
            (FLOOR_PARAMIKO, probe,
             "bench/floor_probe.py: import paramiko, log in, run the facts script, exit"),
            ("floor: openssh client, login + facts", openssh,
             "ssh(1) with curve25519 (the kex paramiko negotiates with OpenSSH 9.2)"),
        ]  # fmt: skip

    def floor_rows(
        self, configure: Series, floors: dict[str, Series], notes: dict[str, str]
    ) -> None:
        for name, series in floors.items():
            row = series.row(name, None)
            row.note = "; ".join(filter(None, [notes[name], row.note]))
            self.rows.append(row)
        paramiko = floors.get(FLOOR_PARAMIKO)
        if paramiko is not None and paramiko.runs and configure.runs:
            own = [c - f for c, f in zip(configure.seconds, paramiko.seconds, strict=False)]
            self.rows.append(
                Row.of(
                    "configure - paramiko floor (bastion's own)",
                    own,
                    note="median of each round's difference: CLI, config, plan, output",
                )
            )

    def make_peer(self) -> AnsiblePeer | None:
        """The playbook, laid out with what bastion installed on the host as its templates."""
        lab = self.lab
        try:
            passwd = next(
                line
                for line in lab.host_file("/etc/passwd").splitlines()
                if line.startswith(f"{TUNNEL_USER}:")
            )
            keys_text = lab.host_file(f"/home/{TUNNEL_USER}/.ssh/authorized_keys")
            sshd_config = lab.host_file("/etc/ssh/sshd_config")
        except (OSError, StopIteration) as exc:
            say(f"peer: cannot read bastion's files from the host: {exc!r}")
            return None
        host = PeerHost(
            address=lab.bastion_address,
            port=lab.ssh_port,
            admin_user=lab.admin_user,
            admin_key=lab.admin_key,
            known_hosts="".join(f"{line}\n" for line in lab.known_hosts_lines),
            tunnel_user=TUNNEL_USER,
            permit_open=f"{lab.warehouse_host}:{lab.warehouse_port}",
            tunnel_keys=[self.space.tunnel_public_key()],
        )
        peer = AnsiblePeer(
            self.space.folder / "peer", host, sshd_config, keys_text, passwd, env=self.bastion.env
        )
        if peer.executable is None:
            say("peer: ansible-playbook not found (pip install ansible-core)")
            return None
        return peer

    def peer_rows(self, configure: Series, warm: Series, cold: Series, why: str) -> None:
        name = "ansible-playbook no-change, warm"
        if warm.runs:
            self.rows.append(warm.row(name, None))
            self.rows += warm.count_rows("playbook", "no-change playbook, warm")
        else:
            self.rows.append(Row(name, absent="n/a", note=why or "; ".join(warm.notes)))
        if cold.runs:
            self.rows.append(cold.row("ansible-playbook no-change, cold", None))
            self.rows += cold.count_rows("playbook", "no-change playbook, cold")
        ratio = "ratio playbook (warm) / configure"
        if warm.runs and configure.runs:
            per_round = [p / c for p, c in zip(warm.seconds, configure.seconds, strict=False)]
            playbook = statistics.median(warm.seconds)
            row = Row.of(
                ratio,
                per_round,
                unit="x",
                target=RATIO,
                note=(
                    "median of each round's playbook time / configure time. configure's 0.35 s "
                    f"is {PEER_REFERENCE} s / 5 (issue 7's playbook figure); this machine ran "
                    f"the playbook in {playbook:.2f} s ({playbook / PEER_REFERENCE:.2f}x that), "
                    f"where 5x faster is {playbook / 5:.2f} s"
                ),
            )
            self.rows.append(row)
        else:
            self.rows.append(Row(ratio, unit="x", absent="n/a", target=RATIO))

    def verify_row(self) -> None:
        if self.missing("verify", "verify"):
            return
        say(f"bastion verify, {self.runs} runs")
        config = str(self.space.existing_config)
        series = self.series(
            self.runs, lambda: self.bastion.run("verify", "-c", config), count_ssh=True
        )
        self.rows.append(series.row("verify", VERIFY))
        self.rows += series.count_rows("verify", "verify")

    # --- sessions over a month of sshd's log ---------------------------------------------

    def sessions_row(self) -> None:
        """`sessions --since 30d` once a month of dbt Cloud's sessions is in the host's
        journal (bench.month: journal files written by systemd-journal-remote with past
        timestamps, read by the host's journalctl beside its own)."""
        name = "sessions --since 30d (a month of logs)"
        if self.missing("sessions", name, f"ssh connections / {name}", f"remote commands / {name}"):
            return
        from bench.month import journal_remote, write_month

        if journal_remote() is None:
            self.rows.append(Row(name, absent="n/a (apt-get install systemd-journal-remote)",
                                 target=SESSIONS_MONTH))  # fmt: skip
            return
        say("writing a month of sshd's log into the lab host's journal")
        month = write_month(self.lab, f"{self.lab.warehouse_host}:{self.lab.warehouse_port}")
        config = str(self.space.existing_config)
        say(f"bastion sessions --since 30d, {self.runs} runs")
        series = self.series(
            self.runs,
            lambda: self.bastion.run("sessions", "--since", "30d", "--json", "-c", config),
            count_ssh=True,
        )
        row = series.row(name, SESSIONS_MONTH)
        row.note = "; ".join(n for n in (row.note, f"{month.sessions} sessions, {month.entries} "
                                         "journal entries") if n)  # fmt: skip
        self.rows.append(row)
        self.rows += series.count_rows("sessions", name)

    # --- admin_access = "eice": configure through the Instance Connect Endpoint -----------

    def instance_connect_row(self) -> None:
        """No-change `configure` with every admin login through the endpoint's stand-in
        (tests/lab/instance_connect.py): provider "aws", so AWS is read first (through the
        stand-in's EC2 proxy to moto), then one openTunnel websocket carries the SSH login.
        Set up by one untimed `up` on a pristine host: the rows above left AllowUsers
        admitting the operator's address, not the endpoint's."""
        name = "no-change configure over the endpoint's stand-in"
        if self.missing(
            "configure", name, f"ssh connections / {name}", f"remote commands / {name}"
        ):
            return
        from tests.lab.instance_connect import lab_instance_connect

        config = str(self.space.eice_config)
        say('bastion up with admin_access = "eice" (a pristine lab host, the stand-in\'s endpoint)')
        self.lab.restart_host()
        with lab_instance_connect(self.lab, ENDPOINT_HOST) as stand_in:
            env = stand_in.env()
            made = self.bastion.run("up", "-c", config, "--json", env=env, timeout=600)
            if made.returncode != 0:
                self.rows.append(Series(failure=made).row(name, None))
                return
            say(f"no-change configure over the endpoint's stand-in, {self.runs} runs")
            series = self.series(
                self.runs,
                lambda: self.bastion.run("configure", "-c", config, "--json", env=env),
                count_ssh=True,
                changed=bastion_changed,
            )
            tunnels = len(stand_in.tunnels)
        row = series.row(name, None)
        note = (
            "provider aws: AWS read through the stand-in's EC2 proxy to moto, then the SSH "
            f"login over one openTunnel websocket ({tunnels} tunnels opened in all, the "
            "untimed up's included)"
        )
        row.note = "; ".join(n for n in (note, row.note) if n)
        self.rows.append(row)
        self.rows += series.count_rows("configure", name)

    # --- provider "aws": up --------------------------------------------------------------

    def up_rows(self) -> None:
        names = (
            "first up from nothing",
            "no-change up (with verify)",
            "aws calls / no-change up",
            "aws mutating calls / no-change up",
        )
        if self.missing("up", *names):
            return
        endpoint = self.lab.moto_endpoint
        config = str(self.space.aws_config)
        say(
            f"first bastion up from nothing (fresh moto account and host each run), "
            f"{self.runs} runs"
        )
        first = Series()
        for _ in range(self.runs):
            self.fresh_world(endpoint)
            first.extend(
                self.series(1, lambda: self.bastion.run("up", "-c", config, "--json", timeout=600))
            )
            if first.failure is not None:
                break
        self.rows.append(first.row(names[0], UP_FIRST))
        if not first.runs:
            self.rows += [
                Row(name, unit="" if "/" in name else "s", absent="n/a (first up failed)")
                for name in names[1:]
            ]
            return
        say(f"no-change bastion up, {self.runs} runs")
        again = self.series(
            self.runs,
            lambda: self.bastion.run("up", "-c", config, "--json", timeout=600),
            count_ssh=True,
            changed=bastion_changed,
        )
        self.rows.append(again.row(names[1], UP_NO_CHANGE))
        self.rows += again.count_rows("up", "no-change up")
        say("no-change bastion up once more, through the AWS call counter")
        with AwsCallCounter(endpoint) as counter:
            counted = self.bastion.run(
                "up",
                "-c",
                config,
                "--json",
                timeout=600,
                env={"AWS_ENDPOINT_URL": counter.endpoint},
            )
            calls = counter.taken()
        self.aws_count_rows(names[2:], counted, calls)

    def aws_count_rows(self, names: tuple[str, ...], counted: Timed, calls: list[AwsCall]) -> None:
        if counted.returncode != 0:
            self.rows += [Row(name, unit="", absent="failed", note=counted.why()) for name in names]
            return
        mutating = [call for call in calls if call.mutating]
        changed = " (this run reported changes)" if (counted.document or {}).get("changed") else ""
        self.rows.append(Row.of(names[0], [len(calls)], unit="", note=summarize(calls)))
        self.rows.append(
            Row.of(
                names[1],
                [len(mutating)],
                unit="",
                target=exactly(0),
                note=(summarize(mutating) + changed).strip(),
            )
        )

    def fresh_world(self, endpoint: str) -> None:
        """moto as a new account (reset, seeded again) and a pristine lab host."""
        from tests.lab.aws import seed_account

        request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the lab's moto, loopback
            pass
        seed_account(endpoint)
        self.lab.restart_host()
        (self.space.aws_config.parent / "known_hosts").write_text("")  # a fresh CI runner


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="repetitions per figure (median)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    parser.add_argument("--skip-up", action="store_true", help="leave out the provider=aws rows")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    from tests.lab import start_lab

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    say("starting the lab")
    lab = start_lab("bnch")
    try:
        with tempfile.TemporaryDirectory(prefix="bastion-bench-") as folder:
            space = Workspace(Path(folder), lab)
            space.write_configs()
            bench = Bench(
                lab, space, Bastion(child_environment(lab, Path(folder)), Path(folder)), args.runs
            )
            bench.help_row()
            bench.configure_and_peer()
            bench.verify_row()
            bench.sessions_row()
            bench.instance_connect_row()  # before up's rows: they reset moto's account
            if args.skip_up:
                bench.rows.append(Row("first up from nothing", absent="skipped (--skip-up)"))
            else:
                bench.up_rows()
    finally:
        lab.stop()
    print(table(bench.rows))
    print(
        f"\n{args.runs} runs per figure; wall medians, cpu = median user+sys seconds; "
        f"load average {load_before:.1f} at start, {os.getloadavg()[0]:.1f} at end "
        f"({os.cpu_count()} cpus); bench took {time.perf_counter() - started:.0f} s"
    )
    if args.json is not None:
        args.json.write_text(json.dumps([row.to_dict() for row in bench.rows], indent=1) + "\n")
    sys.stdout.flush()
    missed = [row.name for row in bench.rows if row.verdict == "FAIL"]
    if missed:
        say(f"targets missed: {', '.join(missed)}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
