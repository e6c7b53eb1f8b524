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
import codecs
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bastion.errors import HostError
from bastion.host.connection import HostConnection, Streamed
from bastion.host.sshd_log import FIELDS, HOST_FILTER, PART, VERIFY_KEY_FOUND, parse_time

MARK = "@@bastion-log "
# `journalctl --utc --list-boots`: "-1 4aeb...b4 Sat 2026-10-31 15:46:46 UTC Mon ..." (a dash
# between the two times in systemd 247)
_BOOT_LINE = re.compile(r"\b[0-9a-f]{32}\s+\w+ (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC")
END = f"{MARK}end"

# $1 seconds back ("" for all the log keeps), $2 the grep pattern, $3 "halves" or "fields"
# (journald's fields where every entry has them; "halves": with $1, two halves of the time
# read at once) or "short" (journalctl's short format), then the tunnel users.
# A month of the log is megabytes of repetitive text: gzip (essential on Debian, Ubuntu and
# Amazon Linux) makes it a tenth for the wire.
SCRIPT = f"""\
set +e
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export LC_ALL=C
SINCE=$1 PATTERN=$2 FORMAT=$3
shift 3
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
# journald's fields, an entry a line; the first line passes unfiltered, so that the order of
# the fields is read from a line of a whole entry (a line after a shift shows it)
fields() {{
  journalctl --no-pager -q -o cat --output-fields={FIELDS} -t sshd -t sshd-session "$@" 2>/dev/null \\
    | paste - - - | {{ IFS= read -r first && printf '%s\\n' "$first"; grep -E -- "$PATTERN"; }}
}}
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
  # when each boot began: pids restart at each, and a session open at a reboot ended then
  journalctl --no-pager --utc --list-boots 2>/dev/null | sed 's/^/{MARK}boot /'
  # Every entry of sshd's that came through syslog (as sshd logs) has the three fields: read
  # just those (journalctl's short formats read every field of an entry, three times the
  # work). An entry of sshd's from another way in (its stderr) has no stamp of its own, and a
  # journalctl that prints the message whatever --output-fields says cannot give them: then
  # the short format, which gives every entry one.
  probe=$(journalctl --no-pager -q -n 1 -o cat --output-fields=_TRANSPORT -t sshd -t sshd-session 2>/dev/null)
  if [ "$FORMAT" != short ] && case "$probe" in ""|syslog) true ;; *) false ;; esac \\
      && other=$(journalctl --no-pager -q -n 1 -o cat --output-fields=_TRANSPORT -t sshd -t sshd-session \\
      _TRANSPORT=stdout _TRANSPORT=journal ${{SINCE:+"--since=-${{SINCE}}s"}} 2>/dev/null) && [ -z "$other" ]; then
    echo "{MARK}fields"
    echo "{MARK}log"
    if [ "$FORMAT" = halves ] && [ -n "$SINCE" ] && tmp=$(mktemp); then
      # two halves of the time read at once (a bastion has two cpus): the older streams as
      # it is read, the newer waits in a file and follows. journalctl's --until stops at the
      # first later entry: entries after a clock stepped back across the middle are in
      # neither half, so the last logins that `keys remove` trusts are read straight
      trap 'rm -f "$tmp"' EXIT
      trap 'rm -f "$tmp"; exit 1' HUP INT PIPE TERM
      start=$(( $(date +%s) - SINCE )); middle=$(( start + SINCE / 2 ))
      fields "--since=@$middle" > "$tmp" &
      newer=$!
      fields "--since=@$start" "--until=@$(( middle - 1 )).999999"
      wait "$newer"
      status=$?
      echo "{PART}"
      # grep's 1 is "no line matched"; more is an error (the file could not be written): the
      # newer half is read again, straight out
      if [ "$status" -le 1 ]; then cat -- "$tmp"; else fields "--since=@$middle"; fi
    else
      fields ${{SINCE:+"--since=-${{SINCE}}s"}}
    fi
  else
    echo "{MARK}log"
    journalctl --no-pager --utc -o short-iso-precise -t sshd -t sshd-session \\
      ${{SINCE:+"--since=-${{SINCE}}s"}} 2>/dev/null | grep -E -- "$PATTERN"
  fi
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
    authorized_keys (None where there is none).

    From `read_sshd_log`, `lines` is read from the host as it is iterated (once, before the
    connection closes): a month of the log is made into sessions while the host is still
    reading its journal."""

    now: datetime
    utc_offset: timedelta = timedelta(0)
    source: str = "journald"  # journald | files | none
    forwards_logged: bool = False
    begins: datetime | None = None  # journald's oldest entry: how far back the log goes
    fields: bool = False  # lines of journald's fields joined by tabs (sshd_log.FIELDS)
    boots: list[datetime] = field(default_factory=list)  # when each boot's first entry was written
    authorized_keys: dict[str, str | None] = field(default_factory=dict)
    lines: Iterable[str] = field(default_factory=list)


def login_filter(users: list[str]) -> str:
    """Only the tunnel users' logins (for `keys` and `doctor`: the last login of each key);
    user names are POSIX names, plain text in a regular expression."""
    return f"Accepted publickey for ({'|'.join(users)}) |{VERIFY_KEY_FOUND}|^-- "


def read_sshd_log(
    conn: HostConnection,
    users: list[str],
    *,
    since_seconds: int | None,
    logins_only: bool = False,
    short: bool = False,
    waiting: Callable[[], object] | None = None,
) -> SshdLog:
    """Run the script as root (one command) and read its answer up to the log's lines,
    which are read as `lines` is iterated (no lines where the host keeps no log:
    `require_log`). `short`: journalctl's short format even where
    journald's fields would do (after sshd_log.FieldsMisaligned). `waiting` is called when
    the command is sent, as the host starts reading its journal (see bastion.prefetch)."""
    pattern = login_filter(users) if logins_only else HOST_FILTER
    since = "" if since_seconds is None else str(int(since_seconds))
    answer = _Answer(conn)
    # the sessions' report in two halves at once; the last logins (logins_only) straight
    form = "short" if short else "fields" if logins_only else "halves"
    lines = answer.lines(SCRIPT, since, pattern, form, *users, sent=waiting)
    return parse_lines(lines, missing_end=answer.failed)


def require_log(log: SshdLog, address: str) -> None:
    """HostError where the host keeps no sshd log bastion can read (`source` none: its
    authorized_keys were still read)."""
    if log.source == "none":
        raise HostError(
            f"{address} keeps no sshd log bastion can read: no journald, no "
            "/var/log/auth.log or /var/log/secure",
            hint="run sshd under systemd (journald), or have syslog write the auth facility",
        )


class _Answer:
    """The script's answer as it arrives: gunzipped, decoded, split into lines."""

    def __init__(self, conn: HostConnection) -> None:
        self.conn = conn
        self.streamed: Streamed | None = None
        self.opening = ""  # the answer's first characters, for an error message

    def lines(
        self,
        script: str,
        *args: str,
        timeout: float = 300,
        sent: Callable[[], object] | None = None,
    ) -> Iterator[str]:
        self.streamed = self.conn.sudo_stream(script, *args, timeout=timeout, sent=sent)
        return answer_lines(self.streamed.chunks(), self._keep_opening)

    def _keep_opening(self, text: str) -> None:
        if len(self.opening) < 300:
            self.opening += text[: 300 - len(self.opening)]

    def failed(self) -> None:
        """The answer ended without its end mark: HostError with what the host said."""
        status, errors = (
            (-1, b"") if self.streamed is None else (self.streamed.status, self.streamed.errors)
        )
        detail = (errors.decode("utf-8", "replace") or self.opening).strip()[:300]
        raise HostError(
            f"reading sshd's log on {self.conn.address} failed (exit {status}): {detail}"
        )


def answer_lines(
    chunks: Iterable[bytes], seen: Callable[[str], None] | None = None
) -> Iterator[str]:
    """The answer's bytes as lines, cut at each "\\n" only (`split_lines` of the whole): gunzipped
    when the host had gzip, UTF-8 with replacement; a gzip stream that breaks ends the lines.
    (Not `str.splitlines`: a message with another line break in it, \\x1c or U+2028, would
    become two lines, the second one's stamp and pid of the message's choosing.)"""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    inflate: zlib._Decompress | None = None
    head: bytes | None = b""
    tail = ""
    for chunk in chunks:
        if head is not None:  # the first two bytes say whether it is gzip
            head += chunk
            if len(head) < 2:
                continue
            chunk, head = head, None
            inflate = zlib.decompressobj(wbits=31) if chunk[:2] == b"\x1f\x8b" else None
        if inflate is not None:
            try:
                data = inflate.decompress(chunk)
                while inflate.eof and inflate.unused_data:  # gzip's several members
                    rest, inflate = inflate.unused_data, zlib.decompressobj(wbits=31)
                    data += inflate.decompress(rest)
            except zlib.error:
                return
        else:
            data = chunk
        text = tail + decoder.decode(data)
        if seen is not None:
            seen(text)
        cut = text.rfind("\n") + 1  # "\n" ends a line whatever follows it
        tail = text[cut:]
        if cut:
            yield from text[: cut - 1].split("\n")
    if head:
        tail += decoder.decode(head)
    yield from split_lines(tail + decoder.decode(b"", final=True))


def split_lines(text: str) -> list[str]:
    """`text` cut at each "\\n" (a last line without one counts; no empty line after it)."""
    return text.removesuffix("\n").split("\n") if text else []


def parse_answer(text: str) -> SshdLog:
    """The script's whole answer, as text."""
    log = parse_lines(iter(split_lines(text)))
    log.lines = list(log.lines)
    return log


def parse_lines(answer: Iterator[str], missing_end: Callable[[], None] | None = None) -> SshdLog:
    """The answer's head, read here; the log's lines are left in `answer` for `lines`.
    `missing_end` is called where the answer ends without its end mark."""
    log = SshdLog(now=datetime.now().astimezone())
    for line in answer:
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
            log.authorized_keys[user] = _decode(next(answer, ""), user)
        elif word == "source":
            words = rest.split()
            log.source = words[0] if words else "none"
            if len(words) > 1 and words[1][:1].isdigit():
                log.begins = parse_time(words[1])
        elif word == "boot":
            match = _BOOT_LINE.search(rest)
            if match is not None:
                log.boots.append(datetime.fromisoformat(f"{match[1]}T{match[2]}+00:00"))
        elif word == "fields":
            log.fields = True
        elif word == "log":
            log.lines = _log_lines(answer, missing_end)
            return log
        elif word == "end":
            return log
    if missing_end is not None:
        missing_end()
    return log


def _log_lines(answer: Iterator[str], missing_end: Callable[[], None] | None) -> Iterator[str]:
    for line in answer:
        if line == END:
            return
        yield line
    if missing_end is not None:
        missing_end()


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
