"""verify's own key: an ephemeral ed25519 key, the authorized_keys line that carries it (the
real keys' restrictions plus an expiry), and how it gets on the host and off again.

The line goes in the tunnel user's second keys file (never the managed authorized_keys),
written by an admin login; verifies running at the same time each keep their own line.
"""

from __future__ import annotations

import io
import re
import shlex
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bastion.config.rules import host_port
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import HostError
from bastion.host.connection import HostConnection, connect_admin
from bastion.host.paths import STATE_DIR, VERIFY_KEYS_NAME
from bastion.net import Dial

if TYPE_CHECKING:
    import paramiko


_OPENSSH_VERSION = re.compile(r"OpenSSH_(\d+)\.(\d+)")


class VerifyKeyHost(Protocol):
    """The admin side of verify: puts the ephemeral key in the second file and takes it out."""

    def install(self, line: str) -> None: ...

    def remove(self, line: str) -> None: ...

    def local_time(self, moment: datetime) -> str:
        """`moment` as YYYYMMDDHHMMSS in the host's own time zone (for OpenSSH < 9.1)."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class EphemeralKey:
    """A fresh ed25519 key that exists only for one verify run."""

    private: paramiko.PKey
    public_line: str
    comment: str

    @classmethod
    def generate(cls, name: str) -> EphemeralKey:
        import paramiko
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        ).decode("ascii")
        public = key.public_key().public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        comment = f"bastion-verify-{name}-{stamp}-{uuid.uuid4().hex[:8]}"
        private = paramiko.Ed25519Key.from_private_key(io.StringIO(pem))
        return cls(private, f"{public.decode('ascii')} {comment}", comment)


def openssh_version(banner: str) -> tuple[int, int] | None:
    match = _OPENSSH_VERSION.search(banner)
    return (int(match.group(1)), int(match.group(2))) if match else None


def expiry_time(
    expires: datetime, version: tuple[int, int] | None, host: VerifyKeyHost | None
) -> str:
    """expiry-time's value: UTC with 'Z' from OpenSSH 9.1 on, else the host's local time."""
    if version is not None and version >= (9, 1):
        return expires.astimezone(UTC).strftime("%Y%m%d%H%M%SZ")
    if host is None:
        raise ValueError("an OpenSSH older than 9.1 needs the host's local time")
    return host.local_time(expires)


def authorized_line(key: EphemeralKey, target: Endpoint, expiry: str) -> str:
    """The same restrictions the real tunnel keys carry, plus the expiry."""
    options = (
        f'restrict,port-forwarding,permitopen="{host_port(target.host, target.port)}",'
        f'expiry-time="{expiry}"'
    )
    return f"{options} {key.public_line}"


class AdminVerifyKeyHost:
    """Installs/removes the verify key through an admin login (opened lazily, reopened once).

    One login serves every tunnel user of a run (`user` is set before each); `close` ends it.
    """

    def __init__(
        self,
        settings: Settings,
        address: str,
        connection: HostConnection | None = None,
        *,
        via: tuple[int, Dial] | None = None,
        user: str = "",
    ) -> None:
        self._settings = settings
        self.user = user or settings.first_tunnel.user  # whose second keys file: set per tunnel
        self._address = address
        self._via = via  # through an Instance Connect Endpoint: its port and its tunnel
        self._conn: HostConnection | None = connection
        self._borrowed = connection  # `up` lends its open admin connection: never closed here

    def _connection(self, fresh: bool = False) -> HostConnection:
        if fresh and self._conn is not None:
            if self._conn is not self._borrowed:
                self._conn.close()
            self._conn = None
        if self._conn is None:
            if self._via is None:
                self._conn = connect_admin(self._settings, self._address)
            else:
                port, dial = self._via
                self._conn = connect_admin(self._settings, self._address, port=port, dial=dial)
        return self._conn

    def install(self, line: str) -> None:
        install_verify_key(self._connection(), self.user, line)

    def remove(self, line: str) -> None:
        try:  # only this run's line: a verify running at the same time keeps its own
            remove_verify_key(self._connection(), self.user, line)
        except Exception:
            try:
                remove_verify_key(self._connection(fresh=True), self.user, line)
            except Exception as exc:
                raise HostError(
                    f"could not remove verify's key from {self.user}'s "
                    f"authorized_keys.verify on {self._address}: {exc}",
                    hint="sshd refuses it by itself within minutes (expiry-time); delete the "
                    "line from the file by hand to tidy up",
                ) from None

    def local_time(self, moment: datetime) -> str:
        epoch = int(moment.timestamp())
        out = self._connection().run(f"date -d @{shlex.quote(str(epoch))} +%Y%m%d%H%M%S")
        text = str(getattr(out, "stdout", "")).strip()
        if len(text) != 14 or not text.isdigit():
            raise HostError("cannot read the host's local time for the verify key's expiry")
        return text

    def close(self) -> None:
        if self._conn is not None and self._conn is not self._borrowed:
            self._conn.close()
        self._conn = None


# Verifies may run at once (two CI jobs): each adds its own line and removes only its own.
# The folder is the tunnel user's: nothing in it is followed through a symbolic link, the
# temporary file is made by mktemp (never an existing name), and only verify's own lines
# are carried over from the file found there.
_VERIFY_LINE = (
    '^restrict,port-forwarding,permitopen="[^"]*",expiry-time="[0-9]+Z?"'
    " [a-z0-9-]+ [A-Za-z0-9+/]+=* bastion-verify-[A-Za-z0-9._:-]+$"
)
_LINK = "bastion-link: "
_VERIFY_FILE = (
    f"mkdir -p {STATE_DIR} && exec 8>{STATE_DIR}/verify.lock && flock -w 30 8 || exit 1\n"
    f'f="$home/.ssh/{VERIFY_KEYS_NAME}"\n'
    'for p in "$home" "$home/.ssh" "$f"; do\n'
    f'  [ ! -L "$p" ] || {{ echo "{_LINK}$p" >&2; exit 1; }}\n'
    "done\n"
    'ours() { [ -f "$f" ] && grep -E -- "$VERIFY_LINE" "$f"; }\n'
    'keep() { chmod 600 "$tmp" && chown "$1:$1" "$tmp" && mv -f "$tmp" "$f"; }\n'
    f"VERIFY_LINE={shlex.quote(_VERIFY_LINE)}\n"
)


def _refused_link(stderr: str, user: str) -> HostError | None:
    links = [line for line in stderr.splitlines() if line.startswith(_LINK)]
    if not links:
        return None
    path = links[-1][len(_LINK) :]
    return HostError(
        f"{path} is a symbolic link: verify does not read or write through links in the home "
        f"of {user}, where they could point anywhere",
        hint=f"remove the link on the host (sudo rm {path}) and run again",
    )


def install_verify_key(conn: HostConnection, user: str, line: str) -> None:
    """Add a line to the second keys file `verify` uses (never the managed authorized_keys).

    `line` is one full authorized_keys line (options + key) built by the caller; it must be
    a single line. The file is rewritten atomically, mode 600, owned by the tunnel user;
    lines of verifies running at the same time are kept.
    """
    if "\n" in line.strip() or not line.strip():
        raise HostError("the verify key must be one non-empty authorized_keys line")
    script = (
        'set -u\nhome=$(getent passwd "$1" | cut -d: -f6)\n'
        '[ -n "$home" ] || { echo "no-user" >&2; exit 1; }\n'
        + _VERIFY_FILE
        + '[ -d "$home/.ssh" ] || { echo "no-user" >&2; exit 1; }\n'
        'tmp=$(mktemp "$f.tmp.XXXXXX") || exit 1\n'
        '{ ours | grep -vxF -- "$2"; printf "%s\\n" "$2"; } > "$tmp" && keep "$1"'
        ' && echo written || { rm -f "$tmp"; exit 1; }\n'
    )
    result = conn.sudo_script(script, user, line.strip())
    if "written" not in result.stdout:
        refused = _refused_link(result.stderr or "", user)
        if refused is not None:
            raise refused
        raise HostError(
            f"cannot write the verify key for {user}: "
            f"{(result.stderr or '').strip()[:200]}",
            hint="run `bastion configure` first: it creates the tunnel user",
        )


def remove_verify_key(conn: HostConnection, user: str, line: str = "") -> None:
    """Remove `line` from the verify keys file, and the file once it is empty (all of it
    when no line is given); removing what is not there is not an error."""
    script = (
        'home=$(getent passwd "$1" | cut -d: -f6)\n[ -n "$home" ] || { echo removed; exit 0; }\n'
        + _VERIFY_FILE
        + '[ -d "$home/.ssh" ] || { echo removed; exit 0; }\n'
        'if [ -n "$2" ] && [ -f "$f" ]; then tmp=$(mktemp "$f.tmp.XXXXXX") || exit 1;'
        ' ours | grep -vxF -- "$2" > "$tmp";'
        ' if [ -s "$tmp" ]; then keep "$1"; else rm -f "$tmp" "$f"; fi;'
        ' else rm -f "$f"; fi && echo removed\n'
    )
    result = conn.sudo_script(script, user, line.strip())
    if "removed" not in result.stdout:
        refused = _refused_link(result.stderr or "", user)
        if refused is not None:
            raise refused
        raise HostError(f"cannot remove the verify key of {user}")
