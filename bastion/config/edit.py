"""The tunnel keys where the config keeps them (`tunnel.public_keys` or `tunnel.keys_file`).

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
from bastion.config.settings import Settings, load
from bastion.errors import ConfigError, InputError

_TUNNEL_HEADER = re.compile(r"^[ \t]*\[tunnel\][ \t]*(#.*)?$", re.MULTILINE)
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


def add_keys(settings: Settings, keys: list[Any]) -> list[Any]:
    """Add the keys not configured yet; returns those added (none when all were there)."""
    present = {k.fingerprint for k in settings.first_tunnel.configured_keys()}
    new = [
        k for k in dict((k.fingerprint, k) for k in keys).values() if k.fingerprint not in present
    ]
    if not new:
        return []
    if settings.first_tunnel.keys_file is not None:
        path = settings.first_tunnel.keys_file
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        _replace(settings, path, text + "".join(f"{k.openssh()}\n" for k in new))
    else:
        raw = _raw_public_keys(settings.source)
        _replace(
            settings,
            settings.source,
            _with_public_keys(settings.source, raw + [k.openssh() for k in new]),
        )
    return new


def remove_keys(settings: Settings, fingerprints: set[str]) -> int:
    """Remove every configured key with one of these fingerprints; returns how many."""

    removed = 0
    raw = _raw_public_keys(settings.source)
    keep = []
    for index, entry in enumerate(raw):
        value = (
            settings.first_tunnel.public_keys[index]
            if index < len(settings.first_tunnel.public_keys)
            else entry
        )
        if parse_public_key(value).fingerprint in fingerprints:
            removed += 1
        else:
            keep.append(entry)
    if len(keep) != len(raw):
        _replace(settings, settings.source, _with_public_keys(settings.source, keep))
    path = settings.first_tunnel.keys_file
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


def _raw_public_keys(source: Path) -> list[str]:
    """The array as written (with any ${VAR} unexpanded), so an edit keeps references."""
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    value = data.get("tunnel", {}).get("public_keys", [])
    return [str(v) for v in value]


def _array_end(text: str, start: int) -> int:
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
    raise ConfigError("tunnel.public_keys: cannot find the end of the array to edit it")


def _render_array(values: list[str]) -> str:
    if not values:
        return "[]"
    return "[\n" + "".join(f"  {json.dumps(v)},\n" for v in values) + "]"


def _with_public_keys(source: Path, values: list[str]) -> str:
    text = source.read_text(encoding="utf-8")
    header = _TUNNEL_HEADER.search(text)
    array = _render_array(values)
    if header is None:
        return text.rstrip("\n") + f"\n\n[tunnel]\npublic_keys = {array}\n"
    following = _ANY_HEADER.search(text, header.end())
    end = following.start() if following else len(text)
    assignment = _PUBLIC_KEYS.search(text, header.end(), end)
    if assignment is None:
        return text[: header.end()] + f"\npublic_keys = {array}" + text[header.end() :]
    close = _array_end(text, assignment.end())
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
