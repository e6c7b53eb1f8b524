"""Counting SSH connections and remote commands from the lab host's sshd log (journald).

The hardened sshd_config sets `LogLevel VERBOSE`, so sshd writes one `Connection from`
line per TCP connection that reaches it and one `Starting session:` line per session
channel a client opens (each `exec` of a remote command, a shell or a subsystem). A run is
measured by reading the log before and after it and counting lines in what was appended.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

CONNECTION = re.compile(r"^Connection from (?P<source>\S+) port \d+ on ", re.MULTILINE)
SESSION = re.compile(
    r"^Starting session: (?P<kind>[\w-]+) .*?for (?P<user>\S+) from ", re.MULTILINE
)
AUTHENTICATED = re.compile(r"^Accepted publickey for (?P<user>\S+) from ", re.MULTILINE)


@dataclass(frozen=True)
class SshActivity:
    """What one run cost on the host's sshd: connections, logins, and sessions (commands)."""

    connections: int
    logins: int
    sessions: int

    @classmethod
    def parse(cls, text: str) -> SshActivity:
        return cls(
            connections=len(CONNECTION.findall(text)),
            logins=len(AUTHENTICATED.findall(text)),
            sessions=len(SESSION.findall(text)),
        )


class SshLogWindow:
    """The part of sshd's log written while a `with` block ran."""

    def __init__(self, read_log: Callable[[], str], settle: float = 0.2) -> None:
        self._read_log = read_log
        self._settle = settle  # sshd's children log through journald: let their lines land
        self._start = 0
        self.text = ""

    def __enter__(self) -> SshLogWindow:
        self._start = len(self._read_log())
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(self._settle)
        self.text = self._read_log()[self._start :]

    @property
    def activity(self) -> SshActivity:
        return SshActivity.parse(self.text)
