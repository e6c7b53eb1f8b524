"""The least a paramiko-based tool can do for a no-change `configure`, and nothing more.

    python -m bench.floor_probe ADDRESS PORT USER KEY KNOWN_HOSTS SCRIPT_FILE ARG...

Imports paramiko, logs in with KEY over a TCP_NODELAY socket (the host key checked against KNOWN_HOSTS), runs
SCRIPT_FILE (bastion's own facts script) once with `sudo -n sh -c`, reads its whole output
and exits: no CLI parsing, no config validation, no templates, no plan. Like the `bastion`
program it runs without the cycle collector and skips the interpreter's teardown, so the
difference to `bastion configure` is bastion's own work. The bench times
this beside `bastion configure`, so the table shows how much of configure's time is
Python, paramiko and the host's own login cost, which no tool on this stack avoids.
"""

from __future__ import annotations

import gc
import os
import shlex
import socket
import sys


def main(argv: list[str]) -> int:
    address, port, user, key, known_hosts, script_file, *args = argv
    import paramiko

    client = paramiko.SSHClient()
    client.load_host_keys(known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = socket.create_connection((address, int(port)), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as bastion.net does
    client.connect(
        address,
        sock=sock,
        port=int(port),
        username=user,
        pkey=paramiko.PKey.from_path(key),
        allow_agent=False,
        look_for_keys=False,
        timeout=10,
    )
    with open(script_file, encoding="utf-8") as handle:
        script = handle.read()
    command = f"sudo -n sh -c {shlex.quote(script)} sh {' '.join(map(shlex.quote, args))}"
    _, stdout, _ = client.exec_command(command, timeout=30)
    output = stdout.read()
    status = stdout.channel.recv_exit_status()
    client.close()
    if status != 0 or b"@@bastion-fact end" not in output:
        print(f"floor probe: the facts script exited {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    gc.disable()
    status = main(sys.argv[1:])
    sys.stderr.flush()
    os._exit(status)
