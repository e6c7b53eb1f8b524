"""The peer: bastion's host job as an ansible-core playbook, run against the same lab host.

The playbook, its ansible.cfg and the authorized_keys template are in bench/peer/. Each
bench copies them into its work folder and adds what depends on the lab: the inventory
(address, admin key, pinned known_hosts), the variables, and templates/sshd_config.j2,
which is the sshd_config bastion rendered and installed on the host, so both tools converge
to the same bytes and a no-change run of either changes nothing the other wrote.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PEER_DIR = Path(__file__).resolve().parent / "peer"
_RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.MULTILINE)  # fmt: skip


@dataclass(frozen=True)
class PeerHost:
    """Where and as whom the playbook logs in, and what it should converge the host to."""

    address: str
    port: int
    admin_user: str
    admin_key: Path
    known_hosts: str
    tunnel_user: str
    permit_open: str
    tunnel_keys: list[str]


@dataclass(frozen=True)
class PeerRun:
    seconds: float
    returncode: int
    changed: int | None
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.changed is not None


def ansible_playbook() -> str | None:
    """ansible-playbook of this interpreter's environment (the venv), else of PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


class AnsiblePeer:
    """The playbook laid out in `folder`, ready to run again and again."""

    def __init__(self, folder: Path, host: PeerHost, sshd_config: str, authorized_keys: str,
                 passwd_entry: str) -> None:  # fmt: skip
        self.folder = folder
        self.executable = ansible_playbook()
        shutil.copytree(PEER_DIR, folder, dirs_exist_ok=True)
        (folder / "templates" / "sshd_config.j2").write_text(_as_template(sshd_config))
        (folder / "known_hosts").write_text(host.known_hosts)
        (folder / "control").mkdir(mode=0o700, exist_ok=True)
        fields = passwd_entry.strip().split(":")
        variables = {
            "tunnel_user": host.tunnel_user,
            "tunnel_comment": fields[4] if len(fields) == 7 else "",
            "tunnel_shell": fields[6] if len(fields) == 7 else "/usr/sbin/nologin",
            "authorized_keys_header": [
                line for line in authorized_keys.splitlines() if line.startswith("#")
            ],
            "permit_open": host.permit_open,
            "tunnel_keys": host.tunnel_keys,
        }
        (folder / "vars.json").write_text(json.dumps(variables, indent=1) + "\n")
        common_args = shlex.join([
            "-o", f"UserKnownHostsFile={folder / 'known_hosts'}", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none",
        ])  # fmt: skip
        (folder / "inventory.ini").write_text(
            "[bastion]\n"
            f"bastion ansible_host={host.address} ansible_port={host.port}"
            f" ansible_user={host.admin_user} ansible_ssh_private_key_file={host.admin_key}"
            f" ansible_ssh_common_args={shlex.quote(common_args)}\n"
        )

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "ANSIBLE_CONFIG": str(self.folder / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.folder / "home"),
            "ANSIBLE_LOCAL_TEMP": str(self.folder / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.folder / "control"),
            "ANSIBLE_NOCOLOR": "1",
        }

    def run(self, timeout: float = 300) -> PeerRun:
        """One `ansible-playbook` run, timed from start to exit."""
        if self.executable is None:
            raise FileNotFoundError("ansible-playbook (pip install ansible-core)")
        argv = [self.executable, "-i", str(self.folder / "inventory.ini"),
                "-e", f"@{self.folder / 'vars.json'}", str(self.folder / "playbook.yml")]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=self.environment(), cwd=self.folder)  # fmt: skip
        seconds = time.perf_counter() - started
        recap = _RECAP.search(done.stdout)
        changed = int(recap.group("changed")) if recap else None
        return PeerRun(seconds, done.returncode, changed, done.stdout + done.stderr)

    def close_master(self) -> None:
        """End the ControlPersist master ssh the runs left behind (ours, by its socket)."""
        for socket in (self.folder / "control").iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bastion"],
                           capture_output=True, timeout=10, check=False)  # fmt: skip


def _as_template(text: str) -> str:
    """bastion's file, verbatim; Jinja markers, if any, are kept literal."""
    if any(marker in text for marker in ("{{", "{%", "{#")):
        return "{% raw %}" + text + "{% endraw %}"
    return text
