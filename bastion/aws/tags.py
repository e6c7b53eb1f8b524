"""The tags that let a fresh CI runner find everything this name created, with no local state."""

from __future__ import annotations

import hashlib
from typing import Any

MANAGED_BY = "dbt-bastion"
NAME_TAG = "bastion:name"
GENERATION_TAG = "bastion:generation"
AMI_TAG = "bastion:ami"
HOST_KEY_TAG = "bastion:host-key"
KEY_FINGERPRINT_TAG = "bastion:key-fingerprint"
SSH_PORT_TAG = "bastion:ssh-port"  # the port sshd is known to answer on (two-phase changes)
ROLE_TAG = "bastion:role"  # on what serves the bastion rather than being it
ENDPOINT_ROLE = "instance-connect"  # the Instance Connect Endpoint and its security group


def endpoint_group_name(name: str) -> str:
    return f"{resource_name(name)}-eice"


def resource_name(name: str) -> str:
    return f"bastion-{name}"


def common_tags(name: str) -> dict[str, str]:
    """SPEC's three tags, carried by every resource bastion creates."""
    return {"Name": resource_name(name), NAME_TAG: name, "managed-by": MANAGED_BY}


def ours(name: str) -> list[dict[str, Any]]:
    """EC2 filters matching the resources of this name, and only those bastion made."""
    return [
        {"Name": f"tag:{NAME_TAG}", "Values": [name]},
        {"Name": "tag:managed-by", "Values": [MANAGED_BY]},
    ]


def tag_map(resource: dict[str, Any]) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in resource.get("Tags") or []}


def client_token(name: str, generation: int) -> str:
    """RunInstances' idempotency token: the same name and generation is the same host.

    AWS keeps a token bound to its instance for a while after termination, so a
    replacement needs a new generation, not a new token scheme.
    """
    digest = hashlib.sha256(f"dbt-bastion/{name}/{generation}".encode()).hexdigest()
    return f"bastion-{digest[:40]}"
