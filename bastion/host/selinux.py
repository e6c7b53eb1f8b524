"""SELinux and sshd's port: where SELinux enforces its policy (Amazon Linux 2023 does by
default), sshd may bind only ports labelled `ssh_port_t` (22 in the policy), so a non-22
`ssh_port` is labelled with `semanage port` (policycoreutils-python-utils) before sshd is
asked to listen there, or refused before anything changes where that cannot be done.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bastion.errors import ConfigError

# the facts script's snippet: SELinux's mode, whether semanage is there, ssh_port_t's ports
FACT_COMMAND = (
    'if command -v getenforce >/dev/null 2>&1; then echo "mode $(getenforce 2>/dev/null)";'
    " if command -v semanage >/dev/null 2>&1; then echo semanage;"
    " semanage port -l 2>/dev/null | grep -E '^ssh_port_t[[:space:]]+tcp[[:space:]]'; fi;"
    " else echo 'mode absent'; fi"
)
PACKAGE = "policycoreutils-python-utils"


@dataclass(frozen=True)
class SeLinux:
    """SELinux as `getenforce` and `semanage port -l` report it ("" where it is absent)."""

    mode: str = ""  # enforcing | permissive | disabled | absent (no getenforce)
    semanage: bool = False
    ssh_ports: tuple[tuple[int, int], ...] = ()  # ssh_port_t's tcp ports, as (low, high)

    @property
    def enabled(self) -> bool:
        return self.mode in ("enforcing", "permissive")

    def labelled(self, port: int) -> bool:
        """22 is ssh_port_t in the policy itself (known without semanage to list it)."""
        return port == 22 or any(low <= port <= high for low, high in self.ssh_ports)


def parse_selinux(text: str) -> SeLinux:
    mode, semanage, ranges = "", False, []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["mode"]:
            mode = words[1].lower() if len(words) > 1 else ""
        elif words == ["semanage"]:
            semanage = True
        elif words[:2] == ["ssh_port_t", "tcp"]:
            for low, high in re.findall(r"(\d+)(?:-(\d+))?", " ".join(words[2:])):
                ranges.append((int(low), int(high or low)))
    return SeLinux(mode, semanage, tuple(ranges))


@dataclass(frozen=True)
class PortLabelChange:
    detail: str
    lines: tuple[str, ...]


def port_label_change(selinux: SeLinux, ports: tuple[int, ...], key: str) -> PortLabelChange | None:
    """The ports sshd is to listen on that SELinux does not let it bind yet; a refusal
    (ConfigError: nothing has changed) where SELinux enforces and semanage is missing."""
    missing = sorted({p for p in ports if not selinux.labelled(p)})
    if not selinux.enabled or not missing:
        return None
    named = ", ".join(map(str, missing))
    if not selinux.semanage:
        if selinux.mode != "enforcing":
            return None
        raise ConfigError(
            f"{key} {named}: SELinux enforces its policy on this host and the port is not "
            f"labelled ssh_port_t, so sshd could not listen there; semanage ({PACKAGE}) is "
            "not installed, so bastion cannot label it",
            hint=f"install {PACKAGE} on the host (sudo dnf install -y {PACKAGE}) and run "
            f"bastion again, or keep {key} = 22",
        )
    return PortLabelChange(
        f"SELinux ({selinux.mode}): tcp port {named} labelled ssh_port_t (semanage port), "
        "so sshd may listen there",
        tuple(f"label_ssh_port {port}" for port in missing),
    )
