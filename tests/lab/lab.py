"""A lab: an operator, a bastion host and a warehouse on this machine, plus moto.

`start_lab()` returns a `Lab`, the API the tests and the demo code against: where the host
and the warehouse are, the admin key, the host's keys, the database login and the AWS
endpoint. `Lab.stop()` takes everything away again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.lab import aws, network
from tests.lab.aws import AwsAccount, MotoServer
from tests.lab.cache import DEFAULT_OS, POSTGRES_BIN, RELEASES, os_root
from tests.lab.host import (
    RunningHost,
    generate_admin_key,
    launch_host,
    read_host_file,
    read_host_keys,
    stop_host,
    wait_for_host,
)
from tests.lab.host import host_exec as _host_exec
from tests.lab.network import SLOTS, Topology
from tests.lab.state import PREFIX_PATTERN, LabState, ProcessRef, all_states, labs_lock
from tests.lab.teardown import cleanup_stale, teardown
from tests.lab.warehouse import DB_NAME, DB_USER, Warehouse

ADMIN_USER = "admin"  # as on Debian's cloud images
LAB_OS_ENV = "BASTION_LAB_OS"  # the release a lab host runs unless told
PROVEN_OSES = ("debian-13", "debian-12")  # the releases CI proves the tool on


class LabError(RuntimeError):
    """The lab cannot run here, or could not start."""


@dataclass
class Lab:
    """A running lab. Fields are what the tool is configured with; methods act on the lab."""

    run_id: str
    prefix: str
    dir: Path
    bastion_address: str
    operator_address: str
    admin_key: Path
    warehouse_host: str
    _state: LabState = field(repr=False)
    _warehouse: Warehouse = field(repr=False)
    _rootfs: Path = field(repr=False)
    os: str = DEFAULT_OS  # the release the host runs: debian-13, debian-12 or debian-11
    db_password: str = field(default="", repr=False)
    host_key_fingerprints: list[str] = field(default_factory=list)
    known_hosts_lines: list[str] = field(default_factory=list)
    moto_endpoint: str = ""  # empty when started with with_aws=False
    aws: AwsAccount | None = None
    ssh_port: int = 22
    admin_user: str = ADMIN_USER
    warehouse_port: int = 5432
    db_name: str = DB_NAME
    db_user: str = DB_USER
    _host: RunningHost | None = field(repr=False, default=None)
    _moto: MotoServer | None = field(repr=False, default=None)

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def state(self) -> LabState:
        """What the lab's state file records (processes, slot): what teardown works from."""
        return self._state

    @property
    def known_hosts_line(self) -> str:
        """The ed25519 line, for code that pins a single key."""
        return next(line for line in self.known_hosts_lines if " ssh-ed25519 " in line)

    def known_hosts(self) -> str:
        """A known_hosts file's text with every key of the host."""
        return "".join(f"{line}\n" for line in self.known_hosts_lines)

    def aws_env(self) -> dict[str, str]:
        """Environment for `bastion` (or boto3) to use this lab's moto, never real AWS."""
        if not self.moto_endpoint:
            raise LabError("this lab was started without AWS (with_aws=False)")
        return aws.aws_env(self.moto_endpoint)

    def host_exec(
        self, cmd: str, *, timeout: float = 60.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a shell command on the host as root, from outside (the serial console)."""
        if self._host is None:
            raise LabError("the lab host is not running")
        return _host_exec(self._host.init, cmd, timeout=timeout, input=input)

    def host_file(self, path: str) -> str:
        """A file on the host, e.g. `/var/log/sshd.log`, read without entering it."""
        if self._host is None:
            raise LabError("the lab host is not running")
        return read_host_file(self._host.init, path)

    def sshd_log(self) -> str:
        """What sshd logged since the host booted (journald), one message a line."""
        command = "journalctl --no-pager -q -o cat -t sshd -t sshd-session -t sshd-auth"
        return self.host_exec(command).stdout

    def restart_host(self) -> None:
        """A pristine host: its disk as built, new host keys; the admin key stays."""
        if self._host is not None:
            stop_host(self._host.unshare, self._host.init)
            if self._host.popen is not None:
                self._host.popen.wait()
            self._host = None
        self._host_ready(self._launch_host())

    @contextlib.contextmanager
    def extra_operator_address(self, host: int) -> Iterator[str]:
        """`with lab.extra_operator_address(9) as extra:` another address of the operator (10.231.N.9),
        for connections from a second source (bind to it: `ssh -b`, socket.bind)."""
        topo = Topology(self._state.name, self._state.slot)
        address = network.add_operator_address(topo, host)
        try:
            yield address
        finally:
            network.remove_operator_address(topo, address)

    def stop_database(self) -> None:
        """Stop PostgreSQL (fast shutdown), e.g. to see how the tool reports an outage."""
        self._warehouse.stop()
        self._state.postmaster = None
        self._state.save()

    def start_database(self) -> None:
        """Start PostgreSQL again, with the data it had."""
        self._state.postmaster = self._warehouse.start(detached=self._state.detached)
        self._state.save()

    def database_superuser(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A superuser session on the warehouse, for tests that add roles or data."""
        return self._warehouse.superuser()

    def stop(self) -> None:
        """Tear the lab down; safe to call again."""
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        host, self._host = self._host, None
        try:
            teardown(self._state)
        finally:
            if host is not None and host.popen is not None:
                host.popen.wait()  # reap unshare: no zombie of ours is left behind

    def _launch_host(self) -> subprocess.Popen[bytes]:
        topo = Topology(self._state.name, self._state.slot)
        popen = launch_host(
            netns=topo.bastion_ns,
            lab_dir=self.dir,
            rootfs=self._rootfs,
            admin_user=self.admin_user,
            detached=self._state.detached,
        )
        self._state.host = ProcessRef.of(popen.pid)
        self._state.save()
        return popen

    def _host_ready(self, popen: subprocess.Popen[bytes]) -> None:
        self._host = wait_for_host(popen, self.dir)
        self._state.host, self._state.host_init = self._host.unshare, self._host.init
        self._state.save()
        keys = read_host_keys(self._host.init)
        self.host_key_fingerprints = [key.fingerprint for key in keys]
        self.known_hosts_lines = [
            key.known_hosts_line(self.bastion_address, self.ssh_port) for key in keys
        ]


def unavailable_reason() -> str | None:
    """Why the lab cannot run on this machine at all (tests skip), or None when it can.

    A missing package is not a reason to skip: start_lab() fails and says what to install.
    """
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces, mounts)"
    if shutil.which("ip") is None:
        return "the lab needs iproute2 (`ip netns`)"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode != 0:
        return "`ip netns` does not work here"
    return None


def _missing_prerequisite() -> str | None:
    for tool in ("unshare", "nsenter", "ssh-keygen", "su"):
        if shutil.which(tool) is None:
            return f"the lab needs `{tool}` on PATH (util-linux, openssh-client)"
    if shutil.which("debootstrap") is None:
        return "the lab needs debootstrap to build its hosts (apt-get install debootstrap)"
    if not (POSTGRES_BIN / "initdb").exists():
        return f"the lab needs PostgreSQL 15 in {POSTGRES_BIN} (apt-get install postgresql)"
    return None


def proven_oses() -> tuple[str, ...]:
    """The releases each host and e2e test runs on: Debian 13 and 12, or $BASTION_LAB_OS."""
    chosen = os.environ.get(LAB_OS_ENV)
    return (chosen,) if chosen else PROVEN_OSES


def default_os() -> str:
    """The release lab hosts run unless told: $BASTION_LAB_OS, else Debian 13."""
    return os.environ.get(LAB_OS_ENV) or DEFAULT_OS


def start_lab(
    prefix: str = "bl", with_aws: bool = True, *, detached: bool = False, os_name: str = ""
) -> Lab:
    """Start a lab whose host runs `os_name` (default: default_os()); on any failure, remove
    what was made and raise.

    `detached` labs outlive this process (`invoke lab.up`): their host and moto run in
    sessions of their own, and they count as alive while their host runs.
    """
    os_name = os_name or default_os()
    reason = unavailable_reason() or _missing_prerequisite()
    if reason is not None:
        raise LabError(reason)
    if os_name not in RELEASES:
        raise LabError(f"no lab host for {os_name!r}; choose one of {', '.join(RELEASES)}")
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise LabError(f"lab prefix must match {PREFIX_PATTERN.pattern}: {prefix!r}")
    with labs_lock():
        network.ensure_safety_route()  # first: no lab address may ever leave the machine
        cleanup_stale(prefix)
        state = _allocate(prefix, detached)
    try:
        return _bring_up(state, with_aws, os_name)
    except BaseException:
        teardown(state)
        raise


def _allocate(prefix: str, detached: bool) -> LabState:
    """A run id and a free slot, recorded before anything is created (labs lock held)."""
    used = {state.slot for state in all_states()}
    slot = next((s for s in SLOTS if s not in used), None)
    if slot is None:
        raise LabError("all 254 lab slots are taken")
    state = LabState(
        prefix=prefix,
        run_id=secrets.token_hex(3),
        slot=slot,
        detached=detached,
        owner=ProcessRef.of(os.getpid()),
    )
    state.save()
    return state


def _bring_up(state: LabState, with_aws: bool, os_name: str) -> Lab:
    """Network, warehouse and host in turn; moto starts and is seeded meanwhile."""
    topo = Topology(state.name, state.slot)
    moto = None
    if with_aws:  # launched from this thread: a non-detached moto ends with it
        moto = MotoServer.launch(state.dir / "moto.log", detached=state.detached)
        state.moto, state.moto_endpoint = moto.process, moto.endpoint
        state.save()
    with ThreadPoolExecutor(max_workers=1) as pool:
        seeded = pool.submit(_seed, moto) if moto is not None else None
        try:
            rootfs = os_root(os_name)  # built once per machine (debootstrap), then cached
            network.create_network(topo)
            lab = Lab(
                run_id=state.run_id,
                prefix=state.prefix,
                dir=state.dir,
                bastion_address=topo.bastion_address,
                operator_address=topo.operator_address,
                admin_key=generate_admin_key(state.dir, ADMIN_USER),
                warehouse_host=topo.warehouse_address,
                _state=state,
                _rootfs=rootfs,
                os=os_name,
                _warehouse=Warehouse(
                    netns=topo.warehouse_ns,
                    folder=state.dir / "warehouse",
                    address=topo.warehouse_address,
                    client_network=topo.inner_network,
                ),
            )
            booting = lab._launch_host()  # boots while the warehouse starts
            lab._warehouse.create()
            lab.start_database()
            lab.db_password = lab._warehouse.create_login()
            lab._host_ready(booting)
            if moto is not None and seeded is not None:
                lab.aws, lab._moto, lab.moto_endpoint = seeded.result(), moto, moto.endpoint
        except BaseException:
            if moto is not None:
                moto.stop()  # the seeding thread then fails fast instead of waiting
            raise
    return lab


def _seed(moto: MotoServer) -> AwsAccount:
    moto.wait_ready()
    return aws.seed_account(moto.endpoint)


@contextlib.contextmanager
def running_lab(prefix: str = "bl", with_aws: bool = True, os_name: str = "") -> Iterator[Lab]:
    """`with running_lab() as lab:` starts a lab and always stops it."""
    lab = start_lab(prefix, with_aws, os_name=os_name)
    try:
        yield lab
    finally:
        lab.stop()
