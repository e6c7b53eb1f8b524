"""The AWS half of bastion: discover the warehouse, plan, provision, destroy.

Import cost matters (`bastion --help` must stay fast): nothing here imports boto3 at
module level; sessions are made by the CLI and passed in.
"""

from bastion.aws.apply import (
    apply_aws,
    confirm_ssh_port,
    console_host_keys,
    plan_aws,
    record_host_key,
    status_aws,
)
from bastion.aws.destroy import destroy_aws
from bastion.aws.discover import Endpoint, resolve_warehouse
from bastion.aws.facts import AwsFacts
from bastion.aws.session import make_session

__all__ = [
    "AwsFacts",
    "Endpoint",
    "apply_aws",
    "confirm_ssh_port",
    "console_host_keys",
    "destroy_aws",
    "make_session",
    "plan_aws",
    "record_host_key",
    "resolve_warehouse",
    "status_aws",
]
