"""What is built once per machine and copied into every lab: the host's package layer and
an initialised database cluster.

Building takes seconds to minutes (apt); copying takes a fraction of a second. Each item
lives in CACHE_ROOT under a name that hashes its inputs, is built under a lock (two labs may
start at once) and appears by an atomic rename, so a half-built item is never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.lab.state import CACHE_ROOT, file_lock

SCRIPTS = Path(__file__).parent / "scripts"

# What a Debian cloud image holds that this machine may lack, plus what the tool installs
# (it cannot download on the lab host: the host has no route out). No cloud-init: the lab
# host is ready when sshd listens, and `cloud-init status --wait` must not be found.
HOST_PACKAGES: tuple[str, ...] = (
    "ca-certificates",
    "curl",
    "iproute2",
    "less",
    "openssh-server",
    "openssh-sftp-server",
    "procps",
    "python3",
    "sudo",
    "unattended-upgrades",
)
POSTGRES_BIN = Path("/usr/lib/postgresql/15/bin")
LAYER_FORMAT = "1"  # bump when layer_build.sh changes what a layer holds


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


def package_layer(packages: tuple[str, ...] = HOST_PACKAGES) -> Path:
    """The overlay upper dir that turns this machine's `/` into the bastion host's disk.

    Keyed by the package list and this machine's dpkg status: when the machine's own
    packages change, a layer built on the old `/` would shadow them, so it is rebuilt.
    """
    status = Path("/var/lib/dpkg/status").read_bytes()
    inputs = "\n".join((LAYER_FORMAT, *packages)).encode() + b"\0" + status
    return cached_directory("layer", inputs, lambda target: _build_layer(target, packages))


def _build_layer(target: Path, packages: tuple[str, ...]) -> None:
    work = target.parent
    log = work / "build.log"
    private_mounts = ["unshare", "--mount", "--propagation", "private", "--"]
    script = [str(SCRIPTS / "layer_build.sh"), str(work), *packages]
    with log.open("w") as out:
        result = subprocess.run(
            [*private_mounts, "/bin/sh", *script], stdout=out, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise LabBuildError(f"building the host package layer failed:\n{tail}")
    _forget_origins(work / "layer")
    (work / "layer").rename(target)


def _forget_origins(layer: Path) -> None:
    """Drop the build overlay's bookkeeping xattrs (origin handles, impure marks, uuid).

    Whiteouts (0/0 character devices) and opaque marks are the layer's meaning and stay;
    origin handles describe the throw-away mount and are not needed by a new one.
    """
    for path in (layer, *layer.rglob("*")):
        for name in ("trusted.overlay.origin", "trusted.overlay.impure", "trusted.overlay.uuid"):
            with contextlib.suppress(OSError):
                os.removexattr(path, name, follow_symlinks=False)


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
