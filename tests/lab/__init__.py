"""The lab: an operator, a bastion host and a private warehouse on one machine, in network
namespaces, plus moto for AWS. `start_lab()` returns a `Lab`, the API tests code against.
"""

from tests.lab.aws import AwsAccount, MotoServer, aws_env, seed_account
from tests.lab.config import bastion_toml, lab_env
from tests.lab.lab import Lab, LabError, running_lab, start_lab, unavailable_reason

__all__ = [
    "AwsAccount",
    "Lab",
    "LabError",
    "MotoServer",
    "aws_env",
    "bastion_toml",
    "lab_env",
    "running_lab",
    "seed_account",
    "start_lab",
    "unavailable_reason",
]
