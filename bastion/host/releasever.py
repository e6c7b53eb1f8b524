"""Amazon Linux 2023's release-locked repositories: the host tracks `latest`.

Each AL2023 image is locked to its own release: dnf reads the repositories of the release
named by `$releasever`, which is `--releasever=`, else /etc/dnf/vars/releasever, else the
version of the installed `system-release` package (the image's). A fix published in a later
release is therefore never installed by `dnf upgrade` or dnf-automatic until the host moves
to that release ("Deterministic upgrades through versioned repositories", AL2023 User
Guide). A bastion must install security fixes as they come, so the tool writes `latest` to
/etc/dnf/vars/releasever; AWS's advice to pin a tested release suits fleets rolled out in
stages, not a lone host whose updates nobody rolls out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bastion.changes import Action

VARS_DIR = "/etc/dnf/vars"
RELEASEVER_FILE = f"{VARS_DIR}/releasever"
LATEST = "latest"
_RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")

# the facts script's snippet: the override file's first line, the image's release
FACT_COMMAND = (
    "if command -v dnf >/dev/null 2>&1; then echo '@@dnf';"
    f" [ -f {RELEASEVER_FILE} ] && {{ printf 'file '; head -n 1 {RELEASEVER_FILE}; echo; }};"
    " rpm -q --qf 'system-release %{VERSION}\\n' system-release 2>/dev/null; fi"
)


@dataclass(frozen=True)
class DnfRelease:
    """dnf's `$releasever` as the host has it ("" where dnf is not the package manager)."""

    dnf: bool = False
    override: str | None = None  # /etc/dnf/vars/releasever's value; None when there is no file
    image: str = ""  # the installed system-release package's version (2023.6.20241121)

    @property
    def current(self) -> str:
        return self.override or self.image

    @property
    def versioned(self) -> bool:
        """Repositories locked to a release: AL2023's system-release is date-stamped."""
        return bool(re.fullmatch(r"20\d\d\.\d+\.\d{8}", self.image))


def parse_releasever(text: str) -> DnfRelease:
    """The fact's output; a value that is not a plain release name is kept as "unreadable"."""
    lines = text.splitlines()
    if "@@dnf" not in lines:
        return DnfRelease()
    override: str | None = None
    image = ""
    for line in lines:
        key, _, value = line.partition(" ")
        value = value.strip()
        if key == "file":
            override = value if not value or _RELEASE.fullmatch(value) else "(unreadable)"
        elif key == "system-release" and _RELEASE.fullmatch(value):
            image = value
    return DnfRelease(True, override, image)


@dataclass(frozen=True)
class ReleaseChange:
    action: Action
    detail: str
    lines: tuple[str, ...]


def tracking_change(release: DnfRelease, put_file: str) -> ReleaseChange | None:
    """None unless the repositories are locked to a release other than `latest`;
    `put_file` is the plan's atomic write of the file (undone with the rest of a run)."""
    if not release.versioned or release.current == LATEST:
        return None
    found = release.override if release.override else f"unset: the image's {release.image}"
    detail = (
        f"{RELEASEVER_FILE}: {found} -> {LATEST} (Amazon Linux 2023 locks its repositories to "
        "the image's release, so dnf-automatic alone installs no fix published since; the "
        "host now tracks the latest release)"
    )
    action: Action = "create" if release.override is None else "update"
    return ReleaseChange(action, detail, (f"ensure_dir {VARS_DIR} 755 root", put_file))
