"""The AWS half of bastion: discover the warehouse, plan, provision, destroy.

Import cost matters (`bastion --help`, and `configure`/`verify`, which often need only
`Endpoint`): names are loaded on first use, and nothing imports boto3 at module level;
sessions are made by the CLI and passed in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.lazy import exports

if TYPE_CHECKING:
    from bastion.aws.apply import (
        apply_aws,
        console_host_keys,
        plan_aws,
        record_host_key,
        status_aws,
    )
    from bastion.aws.destroy import destroy_aws
    from bastion.aws.discover import Endpoint, resolve_warehouse
    from bastion.aws.facts import AwsFacts
    from bastion.aws.session import make_session

_HOME = {
    "apply_aws": "bastion.aws.apply",
    "console_host_keys": "bastion.aws.apply",
    "plan_aws": "bastion.aws.apply",
    "record_host_key": "bastion.aws.apply",
    "status_aws": "bastion.aws.apply",
    "destroy_aws": "bastion.aws.destroy",
    "Endpoint": "bastion.aws.discover",
    "resolve_warehouse": "bastion.aws.discover",
    "AwsFacts": "bastion.aws.facts",
    "make_session": "bastion.aws.session",
}

__all__ = [
    "AwsFacts",
    "Endpoint",
    "apply_aws",
    "console_host_keys",
    "destroy_aws",
    "make_session",
    "plan_aws",
    "record_host_key",
    "resolve_warehouse",
    "status_aws",
]


__getattr__ = exports(__name__, _HOME)
