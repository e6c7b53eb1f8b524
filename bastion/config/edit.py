"""The tunnel keys where the config keeps them: `public_keys` or `keys_file` of `[tunnel]`
(the one-tool form) or of the chosen user's `[tunnels.<user>]` table.

`keys add` and `keys remove` edit the user's files, which are committed and commented, so
an edit touches only the one array or line it must, is written atomically, and is undone
if the config no longer loads afterwards.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from bastion.config.keys import parse_public_key, read_keys_file
from bastion.config.settings import Settings, TunnelSettings, load
from bastion.errors import ConfigError, InputError

_ANY_HEADER = re.compile(r"^[ \t]*\[", re.MULTILINE)
_PUBLIC_KEYS = re.compile(r"^[ \t]*public_keys[ \t]*=[ \t]*", re.MULTILINE)


def read_argument(value: str) -> list[Any]:
    """KEY_OR_FILE: an existing file holds keys (one a line); anything else is one key."""

    path = Path(value).expanduser()
    if "\n" not in value and len(value) < 4096 and _is_file(path):
        keys = read_keys_file(path)
        if not keys:
            raise InputError(f"{path} holds no public key")
        return keys
    return [parse_public_key(value)]


def _is_file(path: Path) -> bool:
    """A key pasted on the command line is no path: its base64 between two `/` can be
    longer than a file name may be (ENAMETOOLONG), which is "not a file", not an error."""
    try:
        return path.is_file()
    except OSError:
        return False


def matches(key: Any, needle: str) -> bool:
    """FINGERPRINT_OR_COMMENT: `SHA256:…` with or without the prefix, or the exact comment."""
    bare = needle.removeprefix("SHA256:")
    return key.fingerprint == f"SHA256:{bare}" or (bool(key.comment) and key.comment == needle)


def add_keys(
    settings: Settings, keys: list[Any], tunnel: TunnelSettings | None = None
) -> list[Any]:
    """Add the keys the tunnel (the first, unless named) does not hold yet; returns those
    added (none when all were there)."""
    tunnel = tunnel or settings.first_tunnel
    present = {k.fingerprint for k in tunnel.configured_keys()}
    new = [
        k for k in dict((k.fingerprint, k) for k in keys).values() if k.fingerprint not in present
    ]
    if not new:
        return []
    if tunnel.keys_file is not None:
        path = tunnel.keys_file
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        _replace(settings, path, text + "".join(f"{k.openssh()}\n" for k in new))
    else:
        raw = _raw_public_keys(settings.source, tunnel)
        _replace(
            settings,
            settings.source,
            _with_public_keys(settings.source, tunnel, raw + [k.openssh() for k in new]),
        )
    return new


def remove_keys(
    settings: Settings, fingerprints: set[str], tunnel: TunnelSettings | None = None
) -> int:
    """Remove every key of the tunnel (the first, unless named) with one of these
    fingerprints; returns how many."""
    tunnel = tunnel or settings.first_tunnel
    removed = 0
    raw = _raw_public_keys(settings.source, tunnel)
    keep = []
    for index, entry in enumerate(raw):
        value = tunnel.public_keys[index] if index < len(tunnel.public_keys) else entry
        if parse_public_key(value).fingerprint in fingerprints:
            removed += 1
        else:
            keep.append(entry)
    if len(keep) != len(raw):
        _replace(settings, settings.source, _with_public_keys(settings.source, tunnel, keep))
    path = tunnel.keys_file
    if path is not None and path.exists():
        lines = path.read_text(encoding="utf-8").split("\n")
        kept_lines = []
        for line in lines:
            stripped = line.strip()
            if (
                stripped
                and not stripped.startswith("#")
                and parse_public_key(stripped).fingerprint in fingerprints
            ):
                removed += 1
                continue
            kept_lines.append(line)
        if len(kept_lines) != len(lines):
            _replace(settings, path, "\n".join(kept_lines))
    return removed


def _raw_public_keys(source: Path, tunnel: TunnelSettings) -> list[str]:
    """The array as written (with any ${VAR} unexpanded), so an edit keeps references."""
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    table = data.get("tunnel", {}) if _one_tool(tunnel) else data["tunnels"][tunnel.user]
    return [str(v) for v in table.get("public_keys", [])]


def _one_tool(tunnel: TunnelSettings) -> bool:
    return tunnel.where == "tunnel"


def _header(tunnel: TunnelSettings) -> re.Pattern[str]:
    """The line that opens the tunnel's table: `[tunnel]`, or `[tunnels.<user>]` (the user
    is a validated POSIX name, so it may be quoted but needs no escaping in TOML)."""
    if _one_tool(tunnel):
        name = r"tunnel"
    else:
        user = re.escape(tunnel.user)
        name = rf"tunnels[ \t]*\.[ \t]*(?:{user}|\"{user}\"|'{user}')"
    return re.compile(rf"^[ \t]*\[[ \t]*{name}[ \t]*\][ \t]*(#.*)?$", re.MULTILINE)


def _array_end(text: str, start: int, where: str) -> int:
    """Index just past the `]` closing the array that opens at text[start] (strings skipped)."""
    depth, index, quote = 0, start, ""
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "#":
            newline = text.find("\n", index)
            index = len(text) if newline < 0 else newline
            continue
        elif char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    raise ConfigError(f"{where}.public_keys: cannot find the end of the array to edit it")


def _render_array(values: list[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f"  {json.dumps(v)},\n" for v in values) + "]"


def _with_public_keys(source: Path, tunnel: TunnelSettings, values: list[str]) -> str:
    text = source.read_text(encoding="utf-8")
    header = _header(tunnel).search(text)
    array = _render_array(values)
    if header is None and _one_tool(tunnel):
        return text.rstrip("\n") + f"\n\n[tunnel]\npublic_keys = {array}\n"
    if header is None:
        raise ConfigError(
            f"cannot find the line [{tunnel.where}] in {source} to edit its public_keys (an "
            "inline or dotted table is not edited)",
            hint=f"write [{tunnel.where}] as a table of its own, or edit public_keys by hand",
        )
    following = _ANY_HEADER.search(text, header.end())
    end = following.start() if following else len(text)
    assignment = _PUBLIC_KEYS.search(text, header.end(), end)
    if assignment is None:
        return text[: header.end()] + f"\npublic_keys = {array}" + text[header.end() :]
    close = _array_end(text, assignment.end(), tunnel.where)
    return text[: assignment.end()] + array + text[close:]


def _replace(settings: Settings, path: Path, text: str) -> None:
    """Write atomically; if the config then fails to load, put the old text back."""

    old = path.read_text(encoding="utf-8") if path.exists() else None
    _write(path, text)
    try:
        load(settings.source)
    except ConfigError as exc:
        if old is None:
            path.unlink()
        else:
            _write(path, old)
        raise ConfigError(
            f"the edited config would not load, so it was left as it was: {exc.message}"
        ) from None


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(temporary, path.stat().st_mode & 0o777)
    os.replace(temporary, path)
