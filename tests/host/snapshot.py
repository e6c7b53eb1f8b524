"""What a run may have written on a lab host, hashed: a failed run must leave it unchanged."""

from __future__ import annotations

from typing import Any

from bastion.host.paths import STATE_DIR

# Accounts, sshd's files, the tunnel user's home, apt's settings, and the tool's own state.
WATCHED = (
    "/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/etc/subuid", "/etc/subgid",
    "/etc/ssh", "/home/dbtcloud", "/etc/apt/apt.conf.d", "/var/lib/dpkg/info",
)  # fmt: skip

_SCRIPT = f"""
for p in {" ".join(WATCHED)}; do
  if [ -e "$p" ] || [ -L "$p" ]; then
    find "$p" -printf '%y %m %u:%g %p\\n'
    find "$p" -type f -exec sha256sum {{}} +
  else echo "missing $p"; fi
done
# the state folder, but for its (empty) lock files: they stay, to keep runs exclusive
if [ -d {STATE_DIR} ]; then
  find {STATE_DIR} -mindepth 1 ! -name lock ! -name '*.lock' -printf '%y %m %u:%g %p\\n'
  find {STATE_DIR} -mindepth 1 -type f ! -name lock ! -name '*.lock' -exec sha256sum {{}} +
fi
"""


def host_snapshot(lab: Any) -> set[str]:
    """Every watched path with its type, mode and owner, and every file's sha256."""
    result = lab.host_exec(_SCRIPT)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.splitlines())


def differences(before: set[str], after: set[str]) -> str:
    """What changed, for an assertion message."""
    lines = [f"- {line}" for line in sorted(before - after)]
    lines += [f"+ {line}" for line in sorted(after - before)]
    return "\n".join(lines[:40])
