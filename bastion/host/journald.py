"""sshd's log kept long enough for `bastion sessions` to answer: journald's storage on disk
and no time limit under 30 days.

journald keeps its journal in memory unless it is told to keep it on disk (`Storage=
persistent`, or `auto` with /var/log/journal present, which a reinstall or a cleanup can
take away), and deletes entries older than `MaxRetentionSec` when that is set. A drop-in of
the tool's says both, named to be read after the others (the last value read wins; one
named to sort after it still wins, and is named in a notice); the size limits
stay journald's (10% of the file system, at most 4 GiB: sshd's lines of a month are a
small part of it).
"""

from __future__ import annotations

import base64
import re
import shlex
from dataclasses import dataclass

RETENTION_DAYS = 30
DROPIN_DIR = "/etc/systemd/journald.conf.d"
DROPIN = f"{DROPIN_DIR}/zz-dbt-bastion.conf"

# the facts script's snippet: whether journald runs, its folder on disk, its settings
FACT_COMMAND = (
    "if [ -d /run/systemd/system ] && command -v journalctl >/dev/null; then echo '@@journald';"
    " [ -d /var/log/journal ] && echo '@@on-disk';"
    " systemd-analyze cat-config systemd/journald.conf 2>/dev/null"
    " || cat /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf 2>/dev/null; fi"
)

# `systemd-analyze cat-config` names each file it prints: "# /etc/systemd/journald.conf"
_FILE_HEADER = re.compile(r"# /\S+\.conf")

_UNITS = {
    "us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1,
    "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600,
    "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800,
    "week": 604800, "weeks": 604800, "M": 2629800, "month": 2629800, "months": 2629800,
    "y": 31557600, "year": 31557600, "years": 31557600,
}  # fmt: skip


@dataclass(frozen=True)
class Journald:
    """journald's settings as it reads them (the last value of each wins)."""

    running: bool = False
    on_disk_folder: bool = False  # /var/log/journal exists
    storage: str = "auto"
    max_retention: str = ""  # MaxRetentionSec as written ("" or 0: no time limit)
    # the file each value came from, where `systemd-analyze cat-config` names them ("" not)
    storage_file: str = ""
    retention_file: str = ""

    @property
    def retention_seconds(self) -> float:
        return timespan_seconds(self.max_retention)

    @property
    def keeps_long_enough(self) -> bool:
        limit = self.retention_seconds
        return self.storage == "persistent" and (limit == 0 or limit >= RETENTION_DAYS * 86400)


def timespan_seconds(text: str) -> float:
    """A systemd time span (`30day`, `1month`, `2w 3d`, a bare number: seconds) in seconds;
    0 for none, empty or unreadable (journald then keeps no time limit either)."""
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]*)", text.strip()):
        total += float(number) * _UNITS.get(unit or "s", _UNITS.get(unit.lower(), 0))
    return total


def parse_journald(text: str) -> Journald:
    """The fact's output: markers, then journald.conf and its drop-ins in the order read."""
    lines = text.splitlines()
    if "@@journald" not in lines:
        return Journald()
    values: dict[str, str] = {}
    files: dict[str, str] = {}
    section = path = ""
    for line in lines:
        stripped = line.strip()
        if _FILE_HEADER.fullmatch(stripped):  # cat-config's "# /etc/systemd/journald.conf"
            path, section = stripped[2:], ""
        elif stripped.startswith("[") and stripped.endswith("]"):
            section = stripped
        elif section == "[Journal]" and "=" in stripped and stripped[:1] not in "#;":
            key, _, value = stripped.partition("=")
            values[key.strip()] = value.strip()
            files[key.strip()] = path
    return Journald(
        running=True,
        on_disk_folder="@@on-disk" in lines,
        storage=values.get("Storage", "auto") or "auto",
        max_retention=values.get("MaxRetentionSec", ""),
        storage_file=files.get("Storage", ""),
        retention_file=files.get("MaxRetentionSec", ""),
    )


def read_after_ours(path: str) -> bool:
    """Whether journald reads the file at `path` after the tool's drop-in (its value wins):
    a drop-in whose name sorts after it, wherever it lies (/etc, /run, /usr/lib)."""
    name = path.rsplit("/", 1)[-1]
    return "/journald.conf.d/" in path and path != DROPIN and name > DROPIN.rsplit("/", 1)[-1]


def overridden(journald: Journald) -> str | None:
    """What a drop-in read after the tool's keeps short (its file and value), which the
    tool's drop-in cannot change: None when nothing is."""
    found = []
    if journald.storage != "persistent" and read_after_ours(journald.storage_file):
        found.append(f"Storage={journald.storage} in {journald.storage_file}")
    limit = journald.retention_seconds
    if limit and limit < RETENTION_DAYS * 86400 and read_after_ours(journald.retention_file):
        found.append(f"MaxRetentionSec={journald.max_retention} in {journald.retention_file}")
    return "; ".join(found) or None


@dataclass(frozen=True)
class RetentionChange:
    """The `log_retention` change: its detail and the apply script's lines."""

    action: str  # create | update
    detail: str
    lines: tuple[str, ...]


def dropin_content(journald: Journald) -> str:
    lines = [
        "# Managed by dbt-bastion: sshd's log (what `bastion sessions` reads) stays on disk",
        f"# for {RETENTION_DAYS} days at least; `bastion configure` writes this file again",
        "# whenever journald's settings no longer say so.",
        "[Journal]",
        "Storage=persistent",
    ]
    limit = journald.retention_seconds
    if limit and limit < RETENTION_DAYS * 86400:
        lines.append(f"MaxRetentionSec={RETENTION_DAYS}day")
    return "\n".join(lines) + "\n"


# journald as it will run: a drop-in read after the tool's could still say otherwise
_STORAGE_ON_DISK = (
    "[ \"$({ systemd-analyze cat-config systemd/journald.conf 2>/dev/null"
    " || cat /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf 2>/dev/null; }"
    " | sed -n 's/^[[:space:]]*Storage[[:space:]]*=[[:space:]]*//p' | tail -n 1)\" = persistent ]"
    f" || fail 'journald still does not keep its journal on disk after {DROPIN} was written:"
    " a drop-in read after it sets Storage'"
)


def retention_change(journald: Journald) -> RetentionChange | None:
    """None when journald keeps the log on disk with no time limit under 30 days (or where
    journald does not run: the caller notes it), or when only a drop-in read after the
    tool's keeps it shorter (no change of the tool's could: `overridden` says what)."""
    if not journald.running or journald.keeps_long_enough:
        return None
    if journald.storage != "persistent" and read_after_ours(journald.storage_file):
        return None  # a journal not kept on disk is kept no time: nothing of ours would help
    why = []
    if journald.storage != "persistent":
        where = "on disk only while /var/log/journal exists" if (
            journald.storage == "auto" and journald.on_disk_folder
        ) else "in memory: lost at each reboot"  # fmt: skip
        why.append(f"Storage={journald.storage} ({where}) -> persistent")
    limit = journald.retention_seconds
    if limit and limit < RETENTION_DAYS * 86400 and not read_after_ours(journald.retention_file):
        why.append(f"MaxRetentionSec={journald.max_retention} -> {RETENTION_DAYS}day")
    if not why:  # what keeps it short is read after the tool's drop-in: `overridden`
        return None
    content = base64.b64encode(dropin_content(journald).encode()).decode()
    path = shlex.quote(DROPIN)
    lines = (
        f"ensure_dir {DROPIN_DIR} 755 root",
        "journal 'systemctl restart systemd-journald >/dev/null 2>&1'",
        f"put {path} 644 root root {content}",
        "systemctl restart systemd-journald || fail 'restarting systemd-journald failed'",
        "journalctl --flush >/dev/null 2>&1 || true",
        _STORAGE_ON_DISK,
    )
    detail = (
        f"{DROPIN}: journald keeps sshd's log on disk for {RETENTION_DAYS} days at least ("
        + "; ".join(why) + ")"
    )
    return RetentionChange("update", detail, lines)
