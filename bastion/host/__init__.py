"""The host half of bastion: facts, plan and apply over SSH with pinned host keys.

Names are loaded on first use, so commands that never touch a host do not pay for
Fabric, paramiko or boto3 at start-up. `Endpoint` is bastion.aws.discover's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import exports

if TYPE_CHECKING:
    from bastion.aws.discover import Endpoint
    from bastion.host.connection import (
        HostConnection,
        HostKeyPins,
        KnownHosts,
        connect,
        open_admin,
    )
    from bastion.host.facts import HostFacts
    from bastion.host.stage import (
        apply_host,
        install_verify_key,
        plan_host,
        remove_verify_key,
        status_host,
    )

_HOME = {
    "Endpoint": "bastion.aws.discover",
    "HostConnection": "bastion.host.connection",
    "HostKeyPins": "bastion.host.connection",
    "KnownHosts": "bastion.host.connection",
    "connect": "bastion.host.connection",
    "open_admin": "bastion.host.connection",
    "HostFacts": "bastion.host.facts",
    "apply_host": "bastion.host.stage",
    "install_verify_key": "bastion.host.stage",
    "plan_host": "bastion.host.stage",
    "remove_verify_key": "bastion.host.stage",
    "status_host": "bastion.host.stage",
}

__all__ = [
    "Endpoint",
    "HostConnection",
    "HostFacts",
    "HostKeyPins",
    "KnownHosts",
    "apply_host",
    "connect",
    "install_verify_key",
    "open_admin",
    "plan_host",
    "remove_verify_key",
    "status_host",
]


__getattr__ = exports(__name__, _HOME)
