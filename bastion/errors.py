"""The tool's errors: each kind says why it exists and which exit code it earns.

Domain code raises these; the CLI turns them into SPEC's exit codes in one place.
"""

from __future__ import annotations

from typing import ClassVar


class BastionError(Exception):
    """Base of every error the tool reports to the user (never a traceback)."""

    kind: ClassVar[str] = "runtime"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message


class ConfigError(BastionError):
    """bastion.toml is missing, not TOML, or holds a value that breaks a rule."""

    kind = "config"
    exit_code = 4


class InputError(BastionError):
    """A command-line argument or pasted value is invalid; nothing was changed."""

    kind = "input"
    exit_code = 4


class AwsError(BastionError):
    """AWS refused or failed a call (permissions, missing resource, limits)."""

    kind = "aws"
    exit_code = 1


class SshError(BastionError):
    """The host could not be reached or logged in to, or its host key is wrong."""

    kind = "ssh"
    exit_code = 1


class HostError(BastionError):
    """A command on the host failed, or the host is in a state the tool refuses to change."""

    kind = "host"
    exit_code = 1


class VendorError(BastionError):
    """A vendor's API (dbt Cloud, Fivetran) refused the credentials or failed."""

    kind = "vendor"
    exit_code = 1


class VerifyError(BastionError):
    """The tunnel is broken: a verify hop or a doctor finding failed."""

    kind = "verify"
    exit_code = 3
