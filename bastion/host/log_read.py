"""Reading sshd's log on the host: one script, one remote command, as root.

journald where systemd runs (`journalctl -t sshd -t sshd-session`, the identifiers of
OpenSSH before and after 9.8's split), else /var/log/auth.log (Debian, Ubuntu) or
/var/log/secure (Amazon Linux, RHEL) and their rotated files. The same answer carries what
is needed to read the log: the host's clock and zone, whether sshd logs the forwards
(`LogVerbose`), and each tunnel user's authorized_keys (the keys' comments).
"""

from __future__ import annotations

import base64
import binascii
import gzip
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bastion.errors import HostError
from bastion.host.connection import HostConnection
from bastion.host.sshd_log import HOST_FILTER, parse_time

MARK = "@@bastion-log "

# $1 seconds back ("" for all the log keeps), $2 the grep pattern, then the tunnel users.
# A month of the log is megabytes of repetitive text: gzip (essential on Debian, Ubuntu and
# Amazon Linux) makes it a tenth for the wire.
SCRIPT = f"""\
set +e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SINCE=$1 PATTERN=$2
shift 2
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
answer() {{
echo "{MARK}now $(date -u +%Y-%m-%dT%H:%M:%S.%6NZ) $(date +%z)"
echo "{MARK}logverbose $("$SSHD" -T 2>/dev/null | grep -ci '^logverbose .*server_request_direct_tcpip')"
for u in "$@"; do
  h=$(getent passwd "$u" | cut -d: -f6)
  echo "{MARK}keys $u"
  [ -n "$h" ] && [ ! -L "$h" ] && [ ! -L "$h/.ssh" ] && [ ! -L "$h/.ssh/authorized_keys" ] \\
    && [ -f "$h/.ssh/authorized_keys" ] && base64 -w0 < "$h/.ssh/authorized_keys"
  echo
done
if [ -d /run/systemd/system ] && command -v journalctl >/dev/null; then
  echo "{MARK}source journald $(journalctl --no-pager -q --utc -o short-iso-precise 2>/dev/null | head -n 1 | cut -d' ' -f1)"
  echo "{MARK}log"
  journalctl --no-pager --utc -o short-iso-precise -t sshd -t sshd-session \\
    ${{SINCE:+"--since=-${{SINCE}}s"}} 2>/dev/null | grep -E -- "$PATTERN"
else
  files=$(ls -tr /var/log/auth.log* /var/log/secure* 2>/dev/null)
  if [ -z "$files" ]; then echo "{MARK}source none"; else
    echo "{MARK}source files"
    echo "{MARK}log"
    for f in $files; do
      if [ -n "$SINCE" ] && [ "$(( $(date +%s) - $(stat -c %Y "$f") ))" -gt "$SINCE" ]; then continue; fi
      case "$f" in *.gz) zcat -- "$f" ;; *) cat -- "$f" ;; esac | grep -E -- "$PATTERN"
    done
  fi
fi
echo "{MARK}end"
}}
if command -v gzip >/dev/null; then answer "$@" | gzip -1; else answer "$@"; fi
"""


@dataclass
class SshdLog:
    """The host's answer: its clock, where the log came from, its lines, the tunnel users'
    authorized_keys (None where there is none)."""

    now: datetime
    utc_offset: timedelta = timedelta(0)
    source: str = "journald"  # journald | files | none
    forwards_logged: bool = False
    begins: datetime | None = None  # journald's oldest entry: how far back the log goes
    authorized_keys: dict[str, str | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def login_filter(users: list[str]) -> str:
    """Only the tunnel users' logins (for `keys` and `doctor`: the last login of each key);
    user names are POSIX names, plain text in a regular expression."""
    return f"Accepted publickey for ({'|'.join(users)}) |Accepted key |^-- "


def read_sshd_log(
    conn: HostConnection, users: list[str], *, since_seconds: int | None, logins_only: bool = False
) -> SshdLog:
    """Run the script as root (one command) and parse its answer."""
    pattern = login_filter(users) if logins_only else HOST_FILTER
    since = "" if since_seconds is None else str(int(since_seconds))
    log = parse_answer(answer_text(conn, users, since, pattern))
    if log.source == "none":
        raise HostError(
            f"{conn.address} keeps no sshd log bastion can read: no journald, no "
            "/var/log/auth.log or /var/log/secure",
            hint="run sshd under systemd (journald), or have syslog write the auth facility",
        )
    return log


def answer_text(conn: HostConnection, users: list[str], since: str, pattern: str) -> str:
    """The script's answer as text (gunzipped), or HostError with what the host said."""
    status, raw, errors = conn.sudo_bytes(SCRIPT, since, pattern, *users, timeout=300)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raw = b""
    text = raw.decode("utf-8", "replace")
    if f"{MARK}end" not in text:
        detail = (errors.decode("utf-8", "replace") or text).strip()[:300]
        raise HostError(f"reading sshd's log on {conn.address} failed (exit {status}): {detail}")
    return text


def parse_answer(text: str) -> SshdLog:
    log = SshdLog(now=datetime.now().astimezone())
    lines = text.splitlines()
    index, user = 0, ""
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.startswith(MARK):
            continue
        word, _, rest = line[len(MARK) :].partition(" ")
        if word == "now":
            stamp, _, offset = rest.partition(" ")
            log.now = parse_time(re.sub(r"\.[^.]*\D[^.]*Z$", "Z", stamp))  # a date without %N
            log.utc_offset = _offset(offset)
        elif word == "logverbose":
            log.forwards_logged = rest.strip() not in ("", "0")
        elif word == "keys":
            user = rest.strip()
            encoded = lines[index] if index < len(lines) else ""
            index += 1
            log.authorized_keys[user] = _decode(encoded, user)
        elif word == "source":
            words = rest.split()
            log.source = words[0] if words else "none"
            if len(words) > 1 and words[1][:1].isdigit():
                log.begins = parse_time(words[1])
        elif word == "log":
            end = next((i for i in range(index, len(lines)) if lines[i] == f"{MARK}end"),
                       len(lines))  # fmt: skip
            log.lines = lines[index:end]
            index = end
    return log


def _offset(text: str) -> timedelta:
    """`date +%z`: +0100, -0530."""
    text = text.strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return timedelta(0)
    sign = 1 if text[0] == "+" else -1
    return sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:5]))


def _decode(encoded: str, user: str) -> str | None:
    if not encoded.strip():
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode("utf-8", "replace")
    except binascii.Error:
        raise HostError(f"the authorized_keys of {user} could not be read back") from None
