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

from bastion.aws import apply_aws, destroy_aws, plan_aws, status_aws
from bastion.config import Settings
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


def test_every_operation_the_gateway_can_call_is_granted() -> None:
    """Static check: each `call`/`paginate`/`wait` of gateway.py, mapped to its API name."""
    source = (ROOT / "bastion" / "aws" / "gateway.py").read_text()
    session = boto3.Session(region_name="us-east-1")
    needed = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr not in {"call", "paginate"} or len(node.args) < 2:
            continue
        service, method = (str(a.value) for a in node.args[:2] if isinstance(a, ast.Constant))
        client = session.client(service)  # type: ignore[call-overload]
        needed.add(f"{service}:{client.meta.method_to_api_mapping[method]}")
    assert len(needed) > 25
    assert needed - granted() == set()
