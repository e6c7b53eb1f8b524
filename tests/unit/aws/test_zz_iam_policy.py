"""docs/iam-policy.json grants every AWS operation bastion calls.

Runs last in this folder (file name), so CALLED_OPERATIONS holds every call the other
tests made; it also makes its own provision/plan/destroy cycle, so it can fail alone.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import boto3
import pytest

from bastion.aws.destroy import destroy_aws
from bastion.aws.stage import apply_aws, plan_aws, status_aws
from bastion.config.settings import Settings
from bastion.progress import NullProgress

from .conftest import CALLED_OPERATIONS, Recorder

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "docs" / "iam-policy.json"


def granted() -> set[str]:
    actions: set[str] = set()
    for statement in json.loads(POLICY.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def test_every_operation_called_in_a_full_cycle_is_granted(
    settings: Settings, session: boto3.Session, recorder: Recorder
) -> None:
    apply_aws(settings, session, NullProgress())
    plan_aws(settings, session)
    status_aws(settings, session)
    destroy_aws(settings, session, NullProgress())
    called = set(recorder.calls)
    assert {"ec2:RunInstances", "ec2:TerminateInstances", "redshift:DescribeClusters"} <= called
    assert called - granted() == set()


def test_every_operation_called_by_this_test_session_is_granted() -> None:
    if len(CALLED_OPERATIONS) < 10:
        pytest.skip("run with the rest of tests/unit/aws to collect their calls")
    assert CALLED_OPERATIONS - granted() == set()


def _iam_action(session: boto3.Session, service: str, method: str) -> str:
    """boto3 (service, method) -> IAM action; IAM's prefix is the signing name (elbv2 ->
    elasticloadbalancing)."""
    client = session.client(service)  # type: ignore[call-overload]
    prefix = client.meta.service_model.signing_name
    return f"{prefix}:{client.meta.method_to_api_mapping[method]}"


def _constant_calls(tree: ast.AST) -> list[tuple[str, str]]:
    """(service, method) of `gateway.call/paginate("svc", "method")` and
    `session.client("svc").method(...)` anywhere in a module."""
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        constants = [a.value for a in node.args[:2] if isinstance(a, ast.Constant)]
        if node.func.attr in {"call", "paginate"} and len(constants) == 2:
            found.append((str(constants[0]), str(constants[1])))
        inner = node.func.value
        if (
            isinstance(inner, ast.Call)
            and isinstance(inner.func, ast.Attribute)
            and inner.func.attr == "client"
            and inner.args
            and isinstance(inner.args[0], ast.Constant)
        ):
            found.append((str(inner.args[0].value), node.func.attr))
    return found


def test_every_operation_the_code_can_call_is_granted() -> None:
    """Static check over the whole package: gateway calls and direct client calls."""
    session = boto3.Session(region_name="us-east-1")
    needed = set()
    for path in sorted((ROOT / "bastion").rglob("*.py")):
        for service, method in _constant_calls(ast.parse(path.read_text())):
            needed.add(_iam_action(session, service, method))
    assert len(needed) > 25
    assert {"ec2:RunInstances", "ec2:DescribeInstances"} <= needed
    assert needed - granted() == set()
