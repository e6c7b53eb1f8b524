"""sshd's systemd units as the plan wants them: no option on sshd's command line, the
socket (where one starts sshd) on the ports sshd_config names, and how sshd picks a change up.

Options on the command line are taken away by a drop-in of the tool's own in
/etc/systemd/system that resets `ExecStart=` to the binary and its -D/-i/-e flags, rather
than by deleting the drop-in (or editing the file) that adds them: a package upgrade puts its
own drop-ins and /etc/default/ssh back (and a conffile the admin edited stops unattended
upgrades of openssh-server), but never touches a file it does not own. The drop-in's name
sorts after the packages' (ec2-instance-connect.conf), so it is applied last; after the
restart the apply script checks that `systemctl show` reports the clean command.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass

from bastion.changes import Action
from bastion.errors import HostError
from bastion.host.facts import HostFacts

_COMMAND_LINE_DROPIN = """\
# Managed by dbt-bastion: sshd runs without options on its command line, which would beat
# sshd_config (and `sshd -T` does not show them); this resets what other drop-ins set.
[Service]
ExecStart=
ExecStart={command}
"""

_SOCKET_DROPIN = """\
# Managed by dbt-bastion: sshd is socket-activated, so the socket holds its ports (ssh_port).
[Socket]
ListenStream=
{listen}BindIPv6Only=both
"""


@dataclass(frozen=True)
class UnitChange:
    """A change to sshd's units: its shell lines, and what sshd needs to pick it up."""

    resource: str
    action: Action
    detail: str
    lines: tuple[str, ...] = ()
    units: tuple[str, ...] = ()  # unit files written: guarded by the rollback timer too
    socket: str = ""  # a socket unit whose ports change: restarted with sshd's service
    after: tuple[str, ...] = ()  # checks once sshd picked the change up
    restart: bool = False


def command_line_change(facts: HostFacts) -> UnitChange | None:
    """Options found on sshd's command line (each named with the file it comes from) go."""
    unit = facts.sshd_unit
    if not unit.options:
        return None
    found = "; ".join(map(str, unit.options))
    clean = unit.clean_command()
    if clean is None:
        raise HostError(
            f"{unit.name} runs sshd with options on its command line ({found}), but its "
            "binary's path is not one bastion writes into a unit file",
            hint=f"take the options off {unit.name} by hand, then run bastion again",
        )
    content = _COMMAND_LINE_DROPIN.format(command=clean.line)
    argv = "argv[]=" + " ".join(clean.argv) + " ;"
    check = (
        f"systemctl show -p ExecStart --value {unit.name} | grep -qF "
        f"{shlex.quote(argv)} || fail \"sshd's command line still "
        f"carries options after {unit.dropin}: a drop-in sorting after it sets ExecStart= "
        f'($(systemctl show -p DropInPaths --value {unit.name}))"'
    )
    return UnitChange(
        "sshd_command_line", "update",
        f"{unit.name} runs sshd with options that beat sshd_config: {found}; "
        f"{unit.dropin} resets ExecStart= to {clean.line}",
        (f"put_unit {unit.dropin} {_b64(content)}",),
        units=(unit.dropin,),
        after=() if unit.per_connection else (check,),
        restart=not unit.per_connection,
    )  # fmt: skip


def socket_change(facts: HostFacts, ports: tuple[int, ...]) -> UnitChange | None:
    """A socket-activated sshd listens where the socket does: its ports follow `ports`.

    Ubuntu's openssh-server ships sshd-socket-generator, which writes the socket's
    ListenStream= from sshd_config on daemon-reload; Debian's (12 and 13) ships none, and
    its README.Debian has the socket's ListenStream= reset in a drop-in, as done here.
    """
    socket = facts.ssh_socket
    wanted = tuple(sorted(set(ports)))
    if not facts.socket_activated or socket.ports == wanted:
        return None
    have = ", ".join(map(str, socket.ports)) or "nothing"
    want = ", ".join(map(str, wanted))
    listening = " ".join(map(str, wanted)) + " "
    check = (
        f'[ "$(systemctl show -p Listen --value {socket.name} | sed -n '
        "'s/^.*[]:]\\([0-9][0-9]*\\) (Stream)$/\\1/p' | sort -nu | tr '\\n' ' ')\" = "
        f'{shlex.quote(listening)} ] || fail "{socket.name} does not listen on {want} after '
        f"the change: $(systemctl show -p Listen --value {socket.name} | tr '\\n' ' ')\""
    )
    detail = f"{socket.name} listens on {have} -> {want}"
    if socket.ports_from_sshd_config and socket.dropin not in socket.files:
        detail += f" ({socket.generator} reads the Port lines of sshd_config)"
        return UnitChange("ssh_socket", "update", detail, socket=socket.name, after=(check,))
    listen = "".join(f"ListenStream={port}\n" for port in wanted)
    content = _SOCKET_DROPIN.format(listen=listen)
    return UnitChange(
        "ssh_socket", "update", f"{detail} ({socket.dropin})",
        (f"put_unit {socket.dropin} {_b64(content)}",),
        units=(socket.dropin,), socket=socket.name, after=(check,),
    )  # fmt: skip


def pickup(
    facts: HostFacts, *, restart: bool, units: bool, socket: str
) -> tuple[tuple[str, ...], str]:
    """The commands that make sshd pick the changes up, and the plan's words for them.

    Where systemd is not PID 1 it is a reload (or restart) of the service as before; with
    systemd, unit files changed mean a daemon-reload first; a socket whose ports change is
    restarted together with sshd's service (sessions stay: the units kill only the main
    process); a per-connection sshd (`Accept=yes`) reads its files at each connection.
    """
    unit = facts.sshd_unit
    service = unit.name or f"{facts.service}.service"
    if not facts.systemd:
        verb = "restart" if restart else "reload"
        return (f"systemctl {verb} {facts.service}",), f"{verb} {service}"
    commands: list[str] = []
    words: list[str] = []
    if units or socket:
        commands.append("systemctl daemon-reload")
        words.append("daemon-reload")
    if socket and not unit.per_connection:
        # one by one: restarted in one transaction, the socket may come back while sshd's
        # service still runs, and systemd refuses it ("service already active")
        commands += [f"systemctl stop {service}", f"systemctl restart {socket}",
                     f"systemctl start {service}"]  # fmt: skip
        words.append(f"restart {socket} and {service}")
    elif socket:
        commands.append(f"systemctl restart {socket}")
        words.append(f"restart {socket}")
    elif not unit.per_connection:
        # sshd reloads by re-executing itself, and a re-executed sshd started by a socket
        # binds the port itself, which the socket holds ("fatal: Cannot bind any address"
        # on Debian 13): a socket-activated sshd is restarted (sessions stay all the same)
        verb = "restart" if restart or facts.socket_activated else "reload"
        commands.append(f"systemctl {verb} {service}")
        words.append(f"{verb} {service}")
    if not commands:  # per connection: each new sshd reads sshd_config itself
        commands.append("systemctl daemon-reload")
        words.append("daemon-reload (each connection's sshd reads sshd_config)")
    return tuple(commands), ", ".join(words)


def run_all(commands: tuple[str, ...], redirect: str = "2>&1") -> str:
    """One shell line that runs the commands in turn, each with `redirect`."""
    return " && ".join(f"{command} {redirect}" for command in commands)


def _b64(content: str) -> str:
    return base64.b64encode(content.encode()).decode()
