"""What is built once per machine and used by every lab: the hosts' root filesystems (one
per Debian release) and an initialised database cluster.

Building takes minutes (debootstrap) or a second (initdb); using it takes a fraction of a
second (an overlay over the root filesystem, a copy of the cluster). Each item
lives in CACHE_ROOT under a name that hashes its inputs, is built under a lock (two labs may
start at once) and appears by an atomic rename, so a half-built item is never used.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.lab.state import CACHE_ROOT, file_lock

SCRIPTS = Path(__file__).parent / "scripts"

# The releases a lab host can run, by the names `bastion.ami` gives them.
RELEASES: dict[str, str] = {"debian-13": "trixie", "debian-12": "bookworm", "debian-11": "bullseye"}
DEFAULT_OS = "debian-13"
MIRROR = "http://deb.debian.org/debian"
# What a Debian cloud image holds, plus what the tool installs (the lab host has no route
# out, so it cannot download): systemd as PID 1 with logind and dbus as on EC2, sshd and its
# sftp server, sudo, unattended-upgrades. No cloud-init: the lab host is ready when sshd
# listens, and `cloud-init status --wait` must not be found.
HOST_PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "curl",
    "dbus",
    "iproute2",
    "less",
    "libpam-systemd",
    "openssh-server",
    "openssh-sftp-server",
    "procps",
    "python3",
    "sudo",
    "systemd",
    "unattended-upgrades",
)
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
ROOTFS_FORMAT = "1"  # bump when rootfs_build.sh changes what a root filesystem holds


class LabBuildError(RuntimeError):
    """A cached item could not be built; the message ends with the build log's tail."""


def cached_directory(kind: str, inputs: bytes, build: Callable[[Path], None]) -> Path:
    """The cached directory for `inputs`, building it with `build(target)` if missing.

    `build` gets a path that does not exist yet and must create it.
    """
    final = CACHE_ROOT / f"{kind}-{hashlib.sha256(inputs).hexdigest()[:16]}"
    if final.is_dir():
        return final
    with file_lock(CACHE_ROOT / f"{kind}.lock"):
        if final.is_dir():  # built by another lab while we waited
            return final
        for leftover in CACHE_ROOT.glob(f"{kind}-*.building"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a killed build
        work = Path(tempfile.mkdtemp(dir=CACHE_ROOT, prefix=f"{kind}-", suffix=".building"))
        try:
            build(work / "result")
            (work / "result").rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return final


def os_root(os_name: str = DEFAULT_OS, packages: tuple[str, ...] = HOST_PACKAGES) -> Path:
    """The read-only root filesystem of a lab host running `os_name` (e.g. "debian-13").

    Built once per machine by debootstrap from Debian's registry (1-3 minutes, ~350 MB) and
    used as the lower layer of every host's overlay. Keyed by release, packages and format:
    a newer point release on the mirror does not rebuild it (remove the folder to refresh).
    """
    if os_name not in RELEASES:
        raise LabBuildError(f"no lab host for {os_name!r}; choose one of {', '.join(RELEASES)}")
    suite = RELEASES[os_name]
    inputs = "\n".join((ROOTFS_FORMAT, suite, MIRROR, *packages)).encode()
    return cached_directory(f"rootfs-{os_name}", inputs, lambda t: _build_root(t, suite, packages))


def _build_root(target: Path, suite: str, packages: tuple[str, ...]) -> None:
    if shutil.which("debootstrap") is None:
        raise LabBuildError(
            "the lab needs debootstrap to build its hosts (apt-get install debootstrap)"
        )
    log = target.parent / "build.log"
    script = [str(SCRIPTS / "rootfs_build.sh"), str(target), suite, MIRROR, ",".join(packages)]
    for _attempt in (1, 2):  # a mirror's hiccup fails debootstrap outright: once more, from scratch
        with log.open("w") as out:
            result = subprocess.run(["/bin/sh", *script], stdout=out, stderr=subprocess.STDOUT)
        if result.returncode == 0:
            return
        shutil.rmtree(target, ignore_errors=True)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    raise LabBuildError(f"building the {suite} root filesystem failed twice:\n{tail}")


def database_template() -> Path:
    """An `initdb`-ed cluster owned by postgres; a lab copies it (0.1 s, not 0.7 s).

    1 MB WAL segments keep the copy small (24 MB, not 40).
    """
    version = subprocess.run(
        [str(POSTGRES_BIN / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    inputs = f"{version}wal-segsize=1".encode()
    return cached_directory("pgdata", inputs, _build_database_template)


def _build_database_template(target: Path) -> None:
    shutil.chown(target.parent, "postgres")
    initdb = (
        f"{POSTGRES_BIN}/initdb -D {shlex.quote(str(target))} -U postgres -A trust"
        " -E UTF8 --locale=C.UTF-8 --wal-segsize=1 -N"
    )
    result = subprocess.run(["su", "postgres", "-c", initdb], capture_output=True, text=True)
    if result.returncode != 0:
        raise LabBuildError(f"initdb failed:\n{result.stdout}{result.stderr}")
