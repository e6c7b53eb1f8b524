"""The bastion host: a real Debian release booting its own systemd, in the bastion namespace.

`unshare --mount --pid --fork --uts --cgroup --kill-child` runs scripts/host_boot.sh, which
builds the host's root (an overlay of the release's cached root filesystem, upper on a
tmpfs), does cloud-init's first-boot work and execs the release's systemd as the host's
pid 1. Nothing done on the host reaches the machine, and a SIGKILL to unshare and pid 1
ends it all: the host's processes die with its pid namespace, its mounts with its mount
namespace.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.cache import SCRIPTS
from tests.lab.state import ProcessRef, children_of

HOSTNAME = "bastion"
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BOOT_TIMEOUT = 30.0
# The power switch: new mount, pid, uts and cgroup namespaces; SIGKILL to it and to the
# host's pid 1 ends the whole host.
UNSHARE = ("unshare", "--mount", "--pid", "--fork", "--uts", "--cgroup", "--propagation",
           "private", "--kill-child", "--")  # fmt: skip


class LabHostError(RuntimeError):
    """The host did not come up; the message ends with the tail of its boot log."""


@dataclass(frozen=True)
class HostKey:
    """One public host key as sshd offers it."""

    key_type: str
    blob: str

    @property
    def fingerprint(self) -> str:
        """As `ssh-keygen -lf` prints it: SHA256 of the key blob, unpadded base64."""
        digest = hashlib.sha256(base64.b64decode(self.blob)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")

    def known_hosts_line(self, address: str, port: int = 22) -> str:
        host = address if port == 22 else f"[{address}]:{port}"
        return f"{host} {self.key_type} {self.blob}"


@dataclass
class RunningHost:
    """A booted host: `unshare` (the power switch) and the host's pid 1 (the console)."""

    unshare: ProcessRef
    init: ProcessRef
    popen: subprocess.Popen[bytes] | None = None


def generate_admin_key(lab_dir: Path, admin_user: str) -> Path:
    """An ed25519 key pair for the admin; the private half never leaves the lab folder."""
    key = lab_dir / "admin_ed25519"
    comment = f"{admin_user}@bastion-lab"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    key.chmod(0o600)
    return key


def launch_host(
    *, netns: str, lab_dir: Path, rootfs: Path, admin_user: str, detached: bool
) -> subprocess.Popen[bytes]:
    """Power the host on; wait_for_host() tells when it has booted and sshd listens.

    A detached host (`invoke lab.up`) gets its own session, so it outlives the command.
    """
    boot = [str(SCRIPTS / "host_boot.sh"), str(lab_dir), str(rootfs), HOSTNAME, admin_user]
    with (lab_dir / "host-boot.log").open("ab") as log:
        return subprocess.Popen(
            ["ip", "netns", "exec", netns, *UNSHARE, "/bin/sh", *boot],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=detached,
        )


def wait_for_host(popen: subprocess.Popen[bytes], lab_dir: Path) -> RunningHost:
    """Wait until the host has booted (systemd's start-up done) and something listens on 22.

    On failure, power it off and raise with what the host's systemd says went wrong.
    """
    unshare = ProcessRef.of(popen.pid)
    deadline = time.monotonic() + BOOT_TIMEOUT
    init = None
    while unshare is not None and popen.poll() is None and time.monotonic() < deadline:
        init = _find_init(popen.pid)
        if init is not None and _listening(init, 22) and _booted(init):
            return RunningHost(unshare=unshare, init=init, popen=popen)
        time.sleep(0.05)
    detail = _boot_trouble(init) if init is not None and popen.poll() is None else ""
    stop_host(unshare, init)
    popen.wait()
    tail = "\n".join((lab_dir / "host-boot.log").read_text(errors="replace").splitlines()[-20:])
    raise LabHostError(
        f"the lab host did not boot with sshd listening within {BOOT_TIMEOUT:.0f} s:\n{tail}{detail}"
    )


def _booted(init: ProcessRef) -> bool:
    """Whether the host's systemd has finished starting up ("running" or "degraded")."""
    try:
        state = host_exec(init, "systemctl is-system-running", timeout=10).stdout.strip()
    except subprocess.TimeoutExpired:
        return False
    return state in ("running", "degraded")


def _boot_trouble(init: ProcessRef) -> str:
    """What the host's systemd reports: failed and still-starting units."""
    try:
        jobs = host_exec(
            init, "systemctl list-jobs --no-pager; systemctl --failed --no-pager", timeout=10
        )
    except subprocess.TimeoutExpired:
        return ""
    return f"\n{jobs.stdout}"


def _listening(init: ProcessRef, port: int) -> bool:
    """Whether a socket listens on `port` in the host's network namespace.

    Read from /proc rather than probed, so the probe leaves no line in sshd's log.
    """
    for table in ("tcp", "tcp6"):
        try:
            rows = Path(f"/proc/{init.pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            return False
        for fields in (row.split() for row in rows):  # local address is [1], state [3]
            if fields[3] == "0A" and fields[1].endswith(f":{port:04X}"):
                return True
    return False


def _find_init(unshare_pid: int) -> ProcessRef | None:
    """The host's pid 1, seen from here: the one child of unshare."""
    children = children_of(unshare_pid)
    return ProcessRef.of(children[0]) if len(children) == 1 else None


def stop_host(unshare: ProcessRef | None, init: ProcessRef | None, timeout: float = 5.0) -> None:
    """Power off: SIGKILL to unshare (it ignores SIGTERM) and to the host's pid 1.

    Waits until pid 1 is gone: by then the kernel has ended every process of the host.
    """
    for process in (unshare, init):
        if process is not None:
            process.kill()
    for process in (unshare, init):
        if process is not None and not process.wait_gone(timeout):
            raise LabHostError(f"host process {process.pid} survived SIGKILL")


def read_host_keys(init: ProcessRef) -> list[HostKey]:
    """The host's public keys, read through its pid 1's root (no round trip into it)."""
    keys = []
    for path in sorted(Path(f"/proc/{init.pid}/root/etc/ssh").glob("ssh_host_*_key.pub")):
        key_type, blob = path.read_text().split()[:2]
        keys.append(HostKey(key_type, blob))
    return keys


def read_host_file(init: ProcessRef, path: str) -> str:
    """A file of the host, e.g. /etc/ssh/sshd_config, read from outside."""
    return Path(f"/proc/{init.pid}/root/{path.lstrip('/')}").read_text(errors="replace")


def host_exec(
    init: ProcessRef, command: str, *, timeout: float = 60.0, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a shell command on the host as root: the lab's serial console.

    nsenter joins the host's mount, pid, uts and network namespaces and its chroot, with a
    clean environment, so the command sees exactly what a root shell on the host sees.
    """
    enter = ["nsenter", "-t", str(init.pid), "-m", "-p", "-u", "-n", "-r", "-w", "--"]
    clean_env = ["/usr/bin/env", "-i", f"PATH={HOST_PATH}", "HOME=/root", "LANG=C.UTF-8"]
    argv = [*enter, *clean_env, "/bin/sh", "-c", command]
    return subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
