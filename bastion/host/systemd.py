"""What systemd says about the units that run sshd, read from `systemctl`'s own output.

Options on sshd's command line beat sshd_config, and `sshd -T` does not show them (EC2
Instance Connect adds `-o AuthorizedKeysCommand ...` that way, with a unit drop-in). So the
command line is read from systemd: `systemctl show -p ExecStart` is what it will run (argv
joined by spaces: the quoting is lost), `systemctl cat` names the file each `ExecStart=` and
`Environment=` comes from. With socket activation the ports are the socket's (`systemctl
show -p Listen`), not sshd_config's. Pure parsers on text; the facts script gathers it.
"""

from __future__ import annotations

import contextlib
import re
import shlex
from dataclasses import dataclass

ETC_UNITS = "/etc/systemd/system"
# The tool's drop-ins sort after those packages ship (ec2-instance-connect.conf, addresses.conf)
DROPIN = "zz-dbt-bastion.conf"
GENERATED = "/run/systemd/generator"  # where generators write (and generator.early, .late)
ON = frozenset({"enabled", "enabled-runtime"})  # `systemctl is-enabled`: started at boot

# sshd's flags that take no argument, and those of them that set nothing sshd_config
# decides: -D (stay in the foreground), -i (inetd mode: one connection on stdin), -e (log
# to stderr): how the distributions' units run sshd.
_NO_ARGUMENT = frozenset("46DdeGiqTtV")
_KEPT = frozenset("Die")
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)\}")
_SAFE_PATH = re.compile(r"/[A-Za-z0-9._/+-]+")
# A unit name the tool puts in a path and a shell line: what systemd accepts, less escapes
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.@-]+\.(?:service|socket)")
_EXEC = re.compile(
    r"\{ path=(?P<path>.*?) ; argv\[\]=(?P<argv>.*?) ; "
    r"(?:ignore_errors=(?P<ignore>yes|no)|flags=(?P<flags>[^;]*)) ;"
)


# The `systemd` fact's shell: sshd's socket (its state, Listen=, files), the services it and
# the plain sshd service are (a template with Accept=yes), each one's ExecStart= and files,
# Ubuntu's port generator, and the environment files those units read.
FACT_COMMAND = (
    'SD_U="" SD_E=""; if [ -d /run/systemd/system ]; then echo "@@pid1 systemd";'
    " for s in ssh.socket sshd.socket; do"
    ' [ "$(systemctl show -p LoadState --value "$s" 2>/dev/null)" = loaded ] || continue;'
    ' echo "@@socket $s"; echo "IsEnabled=$(systemctl is-enabled "$s" 2>/dev/null)";'
    ' echo "IsActive=$(systemctl is-active "$s" 2>/dev/null)";'
    ' systemctl show -p Accept -p Triggers -p Listen "$s" 2>/dev/null;'
    ' echo "@@cat $s"; systemctl cat "$s" 2>/dev/null;'
    ' SD_U=$(systemctl show -p Triggers --value "$s" 2>/dev/null);'
    ' [ "$(systemctl show -p Accept --value "$s" 2>/dev/null)" != yes ] || SD_U="$SD_U ${s%.socket}@.service";'
    " break; done;"
    " for u in ssh.service sshd.service; do"
    ' [ "$(systemctl show -p LoadState --value "$u" 2>/dev/null)" = loaded ] || continue;'
    ' u=$(systemctl show -p Id --value "$u"); echo "@@service $u"; SD_U="$SD_U $u"; break; done;'
    " for u in $(printf '%s\\n' $SD_U | awk 'NF && !seen[$0]++'); do"
    ' echo "@@unit $u"; systemctl show -p ExecStart -p EnvironmentFiles "$u" 2>/dev/null;'
    ' echo "@@cat $u"; systemctl cat "$u" 2>/dev/null;'
    ' SD_E="$SD_E $(systemctl show -p EnvironmentFiles --value "$u" 2>/dev/null | cut -d" " -f1)";'
    " done;"
    " for g in /usr/lib/systemd/system-generators/sshd-socket-generator"
    ' /lib/systemd/system-generators/sshd-socket-generator; do [ -x "$g" ] &&'
    ' { echo "@@generator $g"; break; }; done; else echo "@@pid1 $(cat /proc/1/comm)"; fi;'
    " for f in $(printf '%s\\n' /etc/default/ssh /etc/sysconfig/sshd $SD_E | awk 'NF && !seen[$0]++');"
    ' do [ -f "$f" ] && { echo "@@env $f";'
    " grep -E '^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=' \"$f\"; }; done"
)


@dataclass(frozen=True)
class ExecCommand:
    """One ExecStart= command as systemd holds it."""

    path: str
    argv: tuple[str, ...]
    ignore_errors: bool = False

    @property
    def line(self) -> str:
        """As an `ExecStart=` value (`-` when its failure is ignored)."""
        words = [self.path, *self.argv[1:]]
        return ("-" if self.ignore_errors else "") + " ".join(words)


@dataclass(frozen=True)
class CommandLineOption:
    """An option on sshd's command line, and the file it comes from."""

    text: str
    source: str

    def __str__(self) -> str:
        return f"{self.text} ({self.source})"


@dataclass(frozen=True)
class UnitFile:
    """One file of a unit as `systemctl cat` shows it: (section, key, value) per setting."""

    path: str
    settings: tuple[tuple[str, str, str], ...] = ()

    def values(self, section: str, key: str) -> list[str]:
        return [v for s, k, v in self.settings if s == section and k == key]


@dataclass(frozen=True)
class SshdUnit:
    """The unit that runs sshd ("" where systemd is not PID 1) and what it runs."""

    name: str = ""
    command: ExecCommand | None = None
    options: tuple[CommandLineOption, ...] = ()
    files: tuple[str, ...] = ()  # its unit file, then its drop-ins, in systemd's order

    @property
    def per_connection(self) -> bool:
        """A template spawned per connection (`Accept=yes`): nothing runs between them."""
        return self.name.endswith("@.service")

    @property
    def dropin(self) -> str:
        return f"{ETC_UNITS}/{self.name}.d/{DROPIN}"

    def clean_command(self) -> ExecCommand | None:
        """The command without its options: the binary and the flags that set nothing (None
        when the binary's path is not one to write into a unit file)."""
        if self.command is None or not _SAFE_PATH.fullmatch(self.command.path):
            return None
        _, kept = split_options(list(self.command.argv[1:]))
        argv = (self.command.path, *kept)
        return ExecCommand(self.command.path, argv, self.command.ignore_errors)


@dataclass(frozen=True)
class SshSocket:
    """The socket unit that can start sshd (ssh.socket; sshd.socket on Amazon Linux)."""

    name: str = ""  # "" when no such unit is loaded
    enabled: str = ""  # `systemctl is-enabled`
    active: str = ""  # `systemctl is-active`
    accept: bool = False  # one sshd per connection (a template service) rather than one for all
    triggers: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()  # its Listen= ports, as systemd holds them
    files: tuple[str, ...] = ()
    listen_files: tuple[str, ...] = ()  # those of its files that set ListenStream=
    generator: str = ""  # Ubuntu's sshd-socket-generator, where the package ships it

    @property
    def in_use(self) -> bool:
        """The socket listens for sshd now, or will from the next boot."""
        return self.active == "active" or self.enabled in ON

    @property
    def service(self) -> str:
        """The service the socket starts: a template with `Accept=yes`."""
        if self.accept:
            return f"{self.name.removesuffix('.socket')}@.service"
        return next((t for t in self.triggers if t.endswith(".service")), "")

    @property
    def dropin(self) -> str:
        return f"{ETC_UNITS}/{self.name}.d/{DROPIN}"

    @property
    def ports_from_sshd_config(self) -> bool:
        """The generator writes ListenStream= from sshd_config's Port lines on daemon-reload;
        it decides only where no drop-in of an admin's (or the tool's) overrides it."""
        if not self.generator:
            return False
        unit_file = self.files[0] if self.files else ""
        return all(f == unit_file or f.startswith(GENERATED) for f in self.listen_files)


@dataclass(frozen=True)
class SystemdUnits:
    """What the `systemd` fact reads: PID 1, sshd's socket and the unit that runs sshd."""

    running: bool = False  # systemd is PID 1 ([ -d /run/systemd/system ])
    socket: SshSocket = SshSocket()
    sshd: SshdUnit = SshdUnit()


def parse_show(text: str) -> dict[str, list[str]]:
    """`systemctl show -p A -p B UNIT` -> {property: [values]} (Listen= and ExecStart= repeat)."""
    values: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[A-Za-z]+", key):
            values.setdefault(key, []).append(value)
    return values


def parse_exec(value: str) -> ExecCommand | None:
    """One `ExecStart=` value of `systemctl show`:
    `{ path=/usr/sbin/sshd ; argv[]=/usr/sbin/sshd -D $SSHD_OPTS ; ignore_errors=no ; ... }`."""
    match = _EXEC.search(value)
    if match is None:
        return None
    ignore = match["ignore"] == "yes" or "ignore-failure" in (match["flags"] or "")
    return ExecCommand(match["path"], tuple(match["argv"].split()), ignore)


def parse_unit_files(text: str) -> list[UnitFile]:
    """`systemctl cat UNIT`: each file starts with a `# /path` line after a blank one;
    continuation lines (a trailing backslash) are joined, comments left out."""
    files: list[tuple[str, list[tuple[str, str, str]]]] = []
    section, pending, blank = "", "", True
    for raw in text.splitlines():
        line = raw.strip()
        if blank and re.fullmatch(r"# /\S+", line):
            files.append((line[2:], []))
            section, pending = "", ""
            continue
        blank = not line
        if not files or (not pending and (not line or line[0] in "#;")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif "=" in line:
            key, _, value = line.partition("=")
            files[-1][1].append((section, key.strip(), value.strip()))
    return [UnitFile(path, tuple(settings)) for path, settings in files]


def split_options(words: list[str]) -> tuple[list[str], list[str]]:
    """sshd's arguments -> (the options that set something, the flags that set nothing).

    `systemctl show` loses the quoting, so the words after an option that do not start
    with `-` are its argument (`-o AuthorizedKeysCommand /path %u %f` stays one option).
    Variable references (`$SSHD_OPTS`) are neither: they are read where they are set.
    """
    options: list[str] = []
    kept: list[str] = []
    current = False  # the last option may take more words
    for word in words:
        if _VARIABLE.fullmatch(word):
            current = False
        elif re.fullmatch(r"-[46DdeGiqTtV]+", word):
            kept += [f"-{flag}" for flag in word[1:] if flag in _KEPT]
            others = "".join(flag for flag in word[1:] if flag not in _KEPT)
            if others:
                options.append(f"-{others}")
            current = False
        elif word.startswith("-") or not current:
            options.append(word)
            current = True
        else:
            options[-1] += f" {word}"
    return options, kept


def _effective_exec(files: list[UnitFile]) -> tuple[str, str]:
    """(ExecStart= value, its file) after every file in order (`ExecStart=` empties it)."""
    value, source = "", ""
    for unit_file in files:
        for entry in unit_file.values("Service", "ExecStart"):
            value, source = entry, unit_file.path if entry else ""
    return value, source


def _command_from_file(value: str) -> ExecCommand | None:
    """An `ExecStart=` line of a unit file (a template's: `systemctl show` cannot load one)."""
    prefix = re.match(r"[-@:+!]*", value)
    flags = prefix[0] if prefix else ""
    try:
        words = shlex.split(value[len(flags) :].replace("%%", "%"))
    except ValueError:
        words = value[len(flags) :].split()
    if not words:
        return None
    return ExecCommand(words[0], tuple(words), "-" in flags)


def _environment(
    files: list[UnitFile], environment_files: list[str], env: dict[str, list[str]]
) -> dict[str, tuple[str, str]]:
    """{variable: (value, where it is set)}: EnvironmentFile= beats Environment=, and a
    later file or line beats an earlier one, as systemd applies them."""
    found: dict[str, tuple[str, str]] = {}
    for unit_file in files:
        for entry in unit_file.values("Service", "Environment"):
            try:
                assignments = shlex.split(entry)
            except ValueError:
                assignments = entry.split()
            for assignment in assignments:
                name, sep, value = assignment.partition("=")
                if sep:
                    found[name] = (value, f"Environment={name} in {unit_file.path}")
    for path in environment_files:
        for line in env.get(path, []):
            name, sep, value = line.strip().removeprefix("export ").partition("=")
            if not sep or not re.fullmatch(r"[A-Za-z_]\w*", name):
                continue
            with contextlib.suppress(ValueError):  # unbalanced quotes: kept as written
                value = " ".join(shlex.split(value))
            found[name] = (value, f"{name} in {path}")
    return found


def _options(
    command: ExecCommand, source: str, variables: dict[str, tuple[str, str]]
) -> tuple[CommandLineOption, ...]:
    words = list(command.argv[1:])
    found = [CommandLineOption(text, source) for text in split_options(words)[0]]
    for word in words:
        match = _VARIABLE.fullmatch(word)
        if match is None:
            continue
        value, where = variables.get(match[1] or match[2], ("", ""))
        parts = value.split() if match[1] else [value] if value else []
        found += [CommandLineOption(text, where) for text in split_options(parts)[0]]
    return tuple(found)


def _blocks(text: str) -> list[tuple[str, str, list[str]]]:
    """The `systemd` fact's output: `@@kind argument` lines, each followed by its text."""
    blocks: list[tuple[str, str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("@@"):
            kind, _, argument = line[2:].partition(" ")
            blocks.append((kind, argument.strip(), []))
        elif blocks:
            blocks[-1][2].append(line)
    units = ("socket", "unit", "cat", "service")
    return [b for b in blocks if b[0] not in units or _UNIT_NAME.fullmatch(b[1])]


def _ports(listen: list[str]) -> tuple[int, ...]:
    """`Listen=[::]:22 (Stream)` -> 22; datagram and unix sockets are no sshd's."""
    ports = {int(m[1]) for v in listen if (m := re.search(r"(?:^|:)(\d+) \(Stream\)$", v))}
    return tuple(sorted(ports))


def parse_systemd(text: str) -> SystemdUnits:
    """The `systemd` fact: the socket, the unit that runs sshd, and what it runs."""
    blocks = _blocks(text)
    running = ("pid1", "systemd") in ((kind, argument) for kind, argument, _ in blocks)
    shown: dict[str, dict[str, list[str]]] = {}
    cats: dict[str, list[UnitFile]] = {}
    env: dict[str, list[str]] = {}
    socket_name = service = generator = ""
    for kind, argument, lines in blocks:
        if kind in ("socket", "unit"):
            shown[argument] = parse_show("\n".join(lines))
            socket_name = argument if kind == "socket" else socket_name
        elif kind == "cat":
            cats[argument] = parse_unit_files("\n".join(lines))
        elif kind == "service":
            service = argument
        elif kind == "generator":
            generator = argument
        elif kind == "env":
            env[argument] = lines
    socket = SshSocket()
    if socket_name:
        values, files = shown[socket_name], cats.get(socket_name, [])
        socket = SshSocket(
            name=socket_name,
            enabled=_first(values, "IsEnabled"),
            active=_first(values, "IsActive"),
            accept=_first(values, "Accept") == "yes",
            triggers=tuple(
                t for t in " ".join(values.get("Triggers", [])).split() if _UNIT_NAME.fullmatch(t)
            ),
            ports=_ports(values.get("Listen", [])),
            files=tuple(f.path for f in files),
            listen_files=tuple(f.path for f in files if f.values("Socket", "ListenStream")),
            generator=generator,
        )
    name = socket.service if socket.in_use else service
    return SystemdUnits(running, socket, _sshd_unit(name, shown, cats, env) if name else SshdUnit())


def _sshd_unit(
    name: str,
    shown: dict[str, dict[str, list[str]]],
    cats: dict[str, list[UnitFile]],
    env: dict[str, list[str]],
) -> SshdUnit:
    values, files = shown.get(name, {}), cats.get(name, [])
    value, source = _effective_exec(files)
    commands = [c for c in map(parse_exec, values.get("ExecStart", [])) if c is not None]
    command = commands[-1] if commands else _command_from_file(value) if value else None
    environment_files = [v.split(" (", 1)[0] for v in values.get("EnvironmentFiles", [])]
    if not environment_files:
        environment_files = [
            entry.lstrip("-") for f in files for entry in f.values("Service", "EnvironmentFile")
        ]
    variables = _environment(files, environment_files, env)
    source = source or (files[0].path if files else name)
    options = _options(command, source, variables) if command else ()
    return SshdUnit(name, command, options, tuple(f.path for f in files))


def _first(values: dict[str, list[str]], key: str) -> str:
    found = values.get(key, [])
    return found[0].strip() if found else ""
