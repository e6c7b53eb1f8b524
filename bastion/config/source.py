"""Reading bastion.toml before validation: `${NAME}` from the environment, paths anchored to
the config's folder, and pydantic's errors turned into messages that name the key and the
rule without echoing a value that came from the environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bastion.errors import ConfigError

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
Loc = tuple[str | int, ...]


def interpolate(
    value: Any,
    environ: Mapping[str, str],
    loc: tuple[str | int, ...],
    from_env: set[tuple[str | int, ...]],
) -> Any:
    if isinstance(value, dict):
        return {k: interpolate(v, environ, (*loc, k), from_env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, (*loc, i), from_env) for i, v in enumerate(value)]
    if isinstance(value, str) and _ENV_REF.search(value):
        from_env.add(loc)
        if _integer_key(loc) and _ENV_REF.fullmatch(value):
            text = interpolate(value, environ, (), set())
            return int(text) if text.strip().isdigit() else text

        def substitute(match: re.Match[str]) -> str:
            var = match.group(1)
            if var not in environ:
                raise ConfigError(
                    f"{_dotted(loc)} refers to ${{{var}}}, but the environment variable {var} is not set",
                    hint=f"export {var}=… before running bastion, or write the value in the file",
                )
            return environ[var]

        return _ENV_REF.sub(substitute, value)
    return value


# A whole-value `${VAR}` in these keys is read as an integer; a TOML string is not.
_INTEGER_KEYS = {
    ("bastion", "ssh_port"),
    ("warehouse", "port"),
    ("tunnel", "client_alive_interval"),
    ("tunnel", "client_alive_count_max"),
}
_PATH_KEYS = (("bastion", "admin_key"), ("bastion", "known_hosts"), ("tunnel", "keys_file"))
_TUNNEL_INTEGERS = {"client_alive_interval", "client_alive_count_max"}


def _integer_key(loc: tuple[str | int, ...]) -> bool:
    """`[tunnels.<user>]` tables hold the same integer keys as `[tunnel]`."""
    if loc in _INTEGER_KEYS:
        return True
    return len(loc) == 3 and loc[0] == "tunnels" and loc[2] in _TUNNEL_INTEGERS


def resolve_paths(data: dict[str, Any], base: Path) -> None:
    tables = [(data.get(section), key) for section, key in _PATH_KEYS]
    tunnels = data.get("tunnels")
    if isinstance(tunnels, dict):
        tables += [(table, "keys_file") for table in tunnels.values()]
    for table, key in tables:
        if not isinstance(table, dict) or not isinstance(table.get(key), str):
            continue
        if table[key] == "":
            table.pop(key)
            continue
        path = Path(table[key]).expanduser()
        table[key] = path if path.is_absolute() else base / path


def anchor(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else base / path


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc: ValidationError, from_env: set[tuple[str | int, ...]]) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(
            p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-"))
        )
        key = _dotted(loc) or "config"
        kind = error["type"]
        if kind == "extra_forbidden":
            lines.append(f"{key} is not a known key: check its spelling against `bastion init`")
            continue
        if kind == "missing":
            lines.append(f"{key} is required")
            continue
        if kind == "value_error":
            message = str(error["ctx"]["error"])
        elif kind == "literal_error":
            message = f"must be one of {error['ctx']['expected']}"
        elif kind in {"list_type", "string_type", "dict_type", "model_type"}:
            message = (
                f"must be a {kind.split('_')[0].replace('dict', 'table').replace('model', 'table')}"
            )
        else:
            message = error["msg"][:1].lower() + error["msg"][1:]
        if message.startswith(("warehouse.", "bastion.", "tunnel.", "tunnels.", "dbt_cloud.", "set ")):
            lines.append(message)
            continue
        if message.startswith("["):
            index, _, message = message[1:].partition("] ")
            key, loc = f"{key}[{index}]", (*loc, int(index))
        echoed = _echo(error.get("input"), loc, from_env)
        lines.append(f"{key} {message}{echoed}")
    return "\n".join(lines)


def _echo(value: Any, loc: tuple[str | int, ...], from_env: set[tuple[str | int, ...]]) -> str:
    if any(loc[: len(env)] == env for env in from_env) or isinstance(value, (dict, list)):
        return ""
    if "public_keys" in loc:  # a private key pasted there must not be shown
        return ""
    if any(isinstance(part, str) and part.endswith("_env") for part in loc):
        return ""  # refused as a variable's NAME: it may be the secret itself
    return f" (got {value!r})" if value is not None else ""
