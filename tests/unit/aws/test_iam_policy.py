"""docs/iam-policy.json grants every AWS operation bastion calls.

Two checks, each on its own: a lifecycle run made here against moto with every call
recorded (what boto3 really sends, waiters and paginators included), and a static read of
the package for every operation the code names, whether or not a run reaches it.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import boto3
import pytest

import bastion.aws.session
from bastion.aws.stage import console_host_keys, plan_aws, record_host_key, status_aws
from bastion.config.settings import load

from .conftest import ConfigWriter, Recorder, World, run_cli

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "docs" / "iam-policy.json"


def granted() -> set[str]:
    actions: set[str] = set()
    for statement in json.loads(POLICY.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions |= {listed} if isinstance(listed, str) else set(listed)
    return actions


def _stop_the_instance_and_swap_its_group(world: World) -> None:
    """Drift made by hand (this client is not recorded): the next provision starts the
    instance and puts its own group back."""
    filters: Any = [{"Name": "tag:bastion:name", "Values": ["analytics"]},
                    {"Name": "instance-state-name", "Values": ["running"]}]  # fmt: skip
    (reservation,) = world.ec2.describe_instances(Filters=filters)["Reservations"]
    (instance,) = reservation["Instances"]
    world.ec2.modify_instance_attribute(
        InstanceId=instance["InstanceId"], Groups=[world.warehouse_group]
    )
    world.ec2.stop_instances(InstanceIds=[instance["InstanceId"]])


@pytest.fixture
def lifecycle_calls(
    capsys: pytest.CaptureFixture[str], write_config: ConfigWriter, world: World, recorder: Recorder
) -> set[str]:
    """Every operation of provision, plan, status, a host-key record, a drift repair and
    destroy, made as the other tests in this folder make them (no host, no verify)."""
    config = write_config()
    settings = load(config)
    session = recorder.attach(bastion.aws.session.make_session(settings))

    code, document = run_cli(capsys, "provision", "-c", str(config))
    assert code == 0, document["error"]
    plan_aws(settings, session)
    facts = status_aws(settings, session)
    record_host_key(session, facts, "SHA256:" + "h" * 43)
    console_host_keys(session, facts.instance_id or "")
    _stop_the_instance_and_swap_its_group(world)
    code, document = run_cli(capsys, "provision", "-c", str(config))
    assert code == 0, document["error"]
    code, document = run_cli(capsys, "destroy", "--yes", "-c", str(config))
    assert code == 0, document["error"]
    return set(recorder.calls)


def test_every_operation_of_a_lifecycle_run_is_granted(lifecycle_calls: set[str]) -> None:
    reached = {
        "ec2:RunInstances", "ec2:StartInstances", "ec2:ModifyInstanceAttribute",
        "ec2:GetConsoleOutput", "ec2:TerminateInstances", "redshift:DescribeClusters",
    }  # fmt: skip
    assert reached <= lifecycle_calls, "the run stopped short of create, repair or destroy"
    assert lifecycle_calls - granted() == set()


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
