"""`bastion iam-policy`: the least-privilege IAM policy for this config, as JSON on stdout."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from bastion.cli.common import ConfigOption, JsonOption, load_settings, run
from bastion.console import Console

AccountOption = Annotated[
    str | None,
    typer.Option(
        "--account",
        help="The 12-digit account the policy is for. Given, AWS is asked nothing and "
        "bastion.toml alone fills the policy in (set warehouse.security_group_id and "
        "bastion.vpc_id then).",
        show_default=False,
    ),
]


def command(
    account: AccountOption = None, config: ConfigOption = None, json_mode: JsonOption = False
) -> None:
    """Print the least-privilege IAM policy bastion needs for this config, as JSON on stdout.

    Filled in with the account, region, name, warehouse and database user. Mutating EC2 calls are allowed only on resources tagged bastion:name=<name> and managed-by=dbt-bastion (or created with those tags), and the one rule on the warehouse's security group. Without --account it asks AWS for the account of the current credentials (sts:GetCallerIdentity, which needs no permission) and reads the warehouse's VPC and security group the way `plan` does; what stays open (no VPC known, any Serverless workgroup) is said on stderr.

    Example:  bastion iam-policy > policy.json && aws iam create-policy --policy-name bastion-analytics --policy-document file://policy.json
    """

    def body(console: Console, document: dict[str, Any]) -> None:
        from bastion.aws.iam_policy import iam_policy

        result = iam_policy(load_settings(config), account=account)
        document["policy"] = result.document
        document["notices"] = list(result.notices)
        for notice in result.notices:
            console.warn(notice)
        console.plain(json.dumps(result.document, indent=2))

    run("iam-policy", json_mode, body)
