"""A month of sshd's log on the lab host, for the `sessions --since 30d` row.

journald stamps each entry with the time it receives it, so entries of past days cannot be
sent to it (`logger`, `systemd-cat`). They are written as journal files instead: the
entries in journald's export format, each with its own `__REALTIME_TIMESTAMP`, go through
`systemd-journal-remote --output=FILE -` (package systemd-journal-remote, on the machine that
runs the bench), and the files are put in the host's /var/log/journal/<machine-id>/, where
journalctl reads it with the host's own journal files.

The month is dbt Cloud as it connects: a run every 5 minutes from the "us" region's
addresses, each session three forwards to the warehouse (the message texts of OpenSSH 10.0,
as recorded in tests/host/recorded/sessions), the key rotated on day 20, sometimes two runs
at once, a refused key a few times a day; and cron's lines every minute beside them, as
journalctl must skip them too.
"""

from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.lab import Lab

JOURNAL_REMOTE = ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
ADDRESSES = ("52.45.144.63", "54.81.134.249", "52.22.161.231")  # dbt Cloud us (bastion ips)
KEYS = ("SHA256:" + "a" * 42 + "E", "SHA256:" + "b" * 42 + "E")  # before / after rotation
USER = "dbtcloud"


def journal_remote() -> str | None:
    return next((path for path in JOURNAL_REMOTE if Path(path).exists()), None)


@dataclass
class Month:
    """What was written: sessions and entries."""

    sessions: int = 0
    entries: int = 0


def _entry(stamp: float, pid: int, message: str, identifier: str = "sshd-session", *,
           child: bool = False) -> str:
    """One entry with the fields journald gives a syslog message of sshd-session on Debian 13
    (as `journalctl -o export -t sshd-session` shows on the lab host): journalctl reads them
    all for its short formats, so an entry with fewer would make the month cheaper to read
    than a real one."""
    usec = int(stamp * 1_000_000)
    comm, exe = ("cron", "/usr/sbin/cron") if identifier == "CRON" else (
        "sshd-session", "/usr/lib/openssh/sshd-session")  # fmt: skip
    uid, unit = ("1001", "session-c1.scope") if child else ("0", "ssh.service")  # the user's child
    cmdline = "/usr/sbin/cron -f" if identifier == "CRON" else f"{comm}: {USER}{'@notty' if child else ' [priv]'}"
    slice_ = "user-1001.slice" if child else "system.slice"
    return (
        f"__REALTIME_TIMESTAMP={usec}\n__MONOTONIC_TIMESTAMP={usec}\n"
        f"_BOOT_ID=0123456789abcdef0123456789abcdef\nPRIORITY=6\n_UID={uid}\n_GID={uid}\n"
        f"_SYSTEMD_SLICE={slice_}\n_MACHINE_ID=078af491c9a64a4e891a586f13208d9f\n"
        f"_HOSTNAME=bastion\n_RUNTIME_SCOPE=system\n_TRANSPORT=syslog\nSYSLOG_FACILITY=4\n"
        f"SYSLOG_IDENTIFIER={identifier}\n_COMM={comm}\n_EXE={exe}\n"
        f"_CMDLINE={cmdline}\n_CAP_EFFECTIVE={'0' if child else '1ffffffffff'}\n"
        f"SYSLOG_PID={pid}\nSYSLOG_TIMESTAMP={time.strftime('%b %d %H:%M:%S', time.gmtime(stamp))} \n"
        f"MESSAGE={message}\n_PID={pid}\n_SYSTEMD_CGROUP=/{slice_}/{unit}\n_SYSTEMD_UNIT={unit}\n"
        f"_SOURCE_REALTIME_TIMESTAMP={usec - 80}\n\n"
    )


def _session(start: float, pid: int, key: str, address: str, warehouse: str, rng: random.Random
             ) -> Iterator[tuple[float, str]]:  # fmt: skip
    port, child = rng.randrange(32768, 60999), pid + 8
    host, _, wport = warehouse.rpartition(":")
    found = f"Accepted key ED25519 {key} found at /home/{USER}/.ssh/authorized_keys:2"
    yield start, _entry(start, pid, f'Connection from {address} port {port} on 10.0.0.2 port 22 rdomain ""')
    yield start + 0.07, _entry(start + 0.07, pid, found)
    yield start + 0.075, _entry(start + 0.075, pid,
                                f"Postponed publickey for {USER} from {address} port {port} ssh2 [preauth]")
    yield start + 0.08, _entry(start + 0.08, pid, found)
    yield start + 0.09, _entry(start + 0.09, pid,
                               f"Accepted publickey for {USER} from {address} port {port} ssh2: ED25519 {key}")
    yield start + 0.1, _entry(start + 0.1, pid,
                              f"pam_unix(sshd:session): session opened for user {USER}(uid=1001) by {USER}(uid=0)")
    yield start + 0.13, _entry(start + 0.13, pid, "pam_env(sshd:session): Unable to open env file: /etc/default/locale")
    yield start + 0.14, _entry(start + 0.14, pid, f"User child is on pid {child}")
    at = start + 0.2
    for _ in range(3):
        at += rng.uniform(0.5, 20)
        yield at, _entry(at, child, child=True, message=(
            f"debug1: serverloop.c:server_request_direct_tcpip():424 (bin=sshd-session, pid={child}):"
            f" originator 127.0.0.1 port {rng.randrange(32768, 60999)}, target {host} port {wport}"))
    end = at + rng.uniform(1, 60)
    yield end, _entry(end, child, child=True, message=f"Received disconnect from {address} port {port}:11: disconnected by user")
    yield end + 0.001, _entry(end + 0.001, child, child=True, message=f"Disconnected from user {USER} {address} port {port}")
    yield end + 0.003, _entry(end + 0.003, pid, f"pam_unix(sshd:session): session closed for user {USER}")


def _refused(start: float, pid: int, address: str, rng: random.Random) -> Iterator[tuple[float, str]]:
    port = rng.randrange(32768, 60999)
    key = "SHA256:" + "c" * 42 + "E"
    yield start, _entry(start, pid, f'Connection from {address} port {port} on 10.0.0.2 port 22 rdomain ""')
    yield start + 0.07, _entry(start + 0.07, pid,
                               f"Failed publickey for {USER} from {address} port {port} ssh2: ED25519 {key}")
    yield start + 0.1, _entry(start + 0.1, pid,
                              f"Connection closed by authenticating user {USER} {address} port {port} [preauth]")


def month_entries(warehouse: str, *, days: int = 30, every: float = 300, seed: int = 17) -> tuple[Month, list[str]]:
    """The month's entries, oldest first, ending an hour ago."""
    rng = random.Random(seed)
    end = time.time() - 3600
    start = end - days * 86400
    timed: list[tuple[float, str]] = []
    month = Month()
    pid = 1000
    moment = start
    while moment < end:
        runs = 2 if rng.random() < 0.1 else 1  # sometimes two jobs at once: interleaved
        for run in range(runs):
            key = KEYS[0] if moment < start + 20 * 86400 else KEYS[1]
            timed.extend(_session(moment + run * 3.1, pid, key, rng.choice(ADDRESSES), warehouse, rng))
            month.sessions += 1
            pid += 17
        if rng.random() < 0.01:
            timed.extend(_refused(moment + 7, pid, "192.0.2.44", rng))
            pid += 17
        moment += every
    minute = start
    while minute < end:
        timed.append((minute, _entry(minute, 900, "(root) CMD (command -v debian-sa1 > /dev/null)", "CRON")))
        minute += 60
    timed.sort(key=lambda item: item[0])
    month.entries = len(timed)
    return month, [text for _, text in timed]


def write_month(lab: Lab, warehouse: str) -> Month:
    """Write the month into the host's journal folder (see the module's docstring)."""
    program = journal_remote()
    if program is None:
        raise FileNotFoundError("systemd-journal-remote (apt-get install systemd-journal-remote)")
    month, entries = month_entries(warehouse)
    machine_id = lab.host_exec("cat /etc/machine-id").stdout.strip()
    assert lab.state.host_init is not None
    folder = Path(f"/proc/{lab.state.host_init.pid}/root/var/log/journal/{machine_id}")
    with tempfile.TemporaryDirectory(prefix="bastion-bench-month-") as tmp:
        output = Path(tmp) / "month.journal"
        subprocess.run([program, f"--output={output}", "-"], input="".join(entries), text=True,
                       check=True, capture_output=True, timeout=600)  # fmt: skip
        # journald's own limits rotate the file as it fills (a month of real entries is
        # several files too): every one goes in, in place of an earlier run's
        for earlier in folder.glob("bench-month*.journal"):
            earlier.unlink()
        for index, part in enumerate(sorted(Path(tmp).glob("month*.journal"))):
            shutil.copyfile(part, folder / f"bench-month-{index}.journal")
    return month
