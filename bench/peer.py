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
from dataclasses import dataclass, replace
from pathlib import Path

from bench.measure import Timed, run_timed

PEER_DIR = Path(__file__).resolve().parent / "peer"
_RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


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


def ansible_playbook() -> str | None:
    """ansible-playbook of this interpreter's environment (the venv), else of PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.exists() else shutil.which("ansible-playbook")


class AnsiblePeer:
    """The playbook laid out in `folder`, ready to run again and again."""

    def __init__(
        self,
        folder: Path,
        host: PeerHost,
        sshd_config: str,
        authorized_keys: str,
        passwd_entry: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.folder = folder
        self._env = dict(os.environ if env is None else env)
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
        common_args = shlex.join(
            [
                "-o",
                f"UserKnownHostsFile={folder / 'known_hosts'}",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "IdentityAgent=none",
            ]
        )
        (folder / "inventory.ini").write_text(
            "[bastion]\n"
            f"bastion ansible_host={host.address} ansible_port={host.port}"
            f" ansible_user={host.admin_user} ansible_ssh_private_key_file={host.admin_key}"
            f" ansible_ssh_common_args={shlex.quote(common_args)}\n"
        )

    def environment(self) -> dict[str, str]:
        return {
            **self._env,
            "ANSIBLE_CONFIG": str(self.folder / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.folder / "home"),
            "ANSIBLE_LOCAL_TEMP": str(self.folder / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.folder / "control"),
            "ANSIBLE_NOCOLOR": "1",
        }

    def run(self, timeout: float = 300) -> Timed:
        """One `ansible-playbook` run, timed from start to exit."""
        if self.executable is None:
            raise FileNotFoundError("ansible-playbook (pip install ansible-core)")
        argv = [
            self.executable,
            "-i",
            str(self.folder / "inventory.ini"),
            "-e",
            f"@{self.folder / 'vars.json'}",
            str(self.folder / "playbook.yml"),
        ]
        done = run_timed(argv, self.environment(), self.folder, timeout)
        if done.returncode == 0 and _RECAP.search(done.stdout) is None:
            return replace(done, returncode=-1, stderr=done.stderr + "\nno PLAY RECAP line")
        return done

    @staticmethod
    def changed(done: Timed) -> str:
        """ "changed=N" from the PLAY RECAP when N > 0, else ""."""
        recap = _RECAP.search(done.stdout)
        if recap is None or recap.group("changed") == "0":
            return ""
        tasks = re.findall(r"^changed: \[[^\]]+\]", done.stdout, re.MULTILINE)
        return f"changed={recap.group('changed')} ({len(tasks)} task lines)"

    def check_first_run(self) -> list[str]:
        """Run once; notes if the peer does not find bastion's host already converged."""
        done = self.run()
        if done.returncode != 0:
            return [f"the playbook failed: {done.why()} {_tail(done.stdout)}"]
        if self.changed(done):
            return [f"first run after bastion configure: {self.changed(done)}"]
        return []

    def close_master(self) -> None:
        """End the ControlPersist master ssh the runs left behind (ours, by its socket)."""
        for socket in (self.folder / "control").iterdir():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "bastion"],
                capture_output=True,
                timeout=10,
                check=False,
            )


def _tail(text: str, lines: int = 6) -> str:
    return " / ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


def _as_template(text: str) -> str:
    """bastion's file, verbatim; Jinja markers, if any, are kept literal."""
    if any(marker in text for marker in ("{{", "{%", "{#")):
        return "{% raw %}" + text + "{% endraw %}"
    return text
