"""`bastion up` killed right after the launch, and two `up` runs for one name at once.

Both run the real CLI as subprocesses (`python -m tests.faults.traced_cli`, the CLI with the
host apply script traced) against the lab's moto, host and warehouse.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.faults.aws_proxy import FaultPlan, fault_proxy
from tests.faults.traced_cli import TRACE
from tests.lab import Lab, bastion_toml, lab_env

pytestmark = [pytest.mark.lab, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]


def write_config(lab: Lab, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "bastion.toml"
    config.write_text(bastion_toml(lab, name), encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def env(pristine_host_after: Lab) -> dict[str, str]:
    lab = pristine_host_after
    return {
        **os.environ,
        **lab_env(lab),
        "PYTHONPATH": str(ROOT),
    }


def start_up(config: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.traced_cli", "up", "-c", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=config.parent,
    )  # fmt: skip


def finish(process: subprocess.Popen[str], timeout: float = 120) -> tuple[int, dict[str, Any], str]:
    out, err = process.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    return process.returncode, json.loads(lines[-1]) if lines else {}, err


def ec2(lab: Lab) -> Any:
    return boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("ec2", endpoint_url=lab.moto_endpoint)


def instances(lab: Lab, name: str) -> list[str]:
    reservations = ec2(lab).describe_instances(
        Filters=[{"Name": "tag:bastion:name", "Values": [name]}]
    )["Reservations"]
    return [
        i["InstanceId"]
        for r in reservations
        for i in r["Instances"]
        if i["State"]["Name"] != "terminated"
    ]


def addresses(lab: Lab, name: str) -> list[str]:
    found = ec2(lab).describe_addresses(Filters=[{"Name": "tag:bastion:name", "Values": [name]}])
    return [a["AllocationId"] for a in found["Addresses"]]


def groups(lab: Lab, name: str) -> list[str]:
    found = ec2(lab).describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [f"bastion-{name}"]}]
    )
    return [g["GroupId"] for g in found["SecurityGroups"]]


def wait_for_a_second_launch(plan: FaultPlan, deadline: float = 30) -> None:
    """Hold the first RunInstances until the other run sends its own (or `deadline` passes),
    so the two launches meet at AWS however the two processes happen to be scheduled."""
    give_up = time.monotonic() + deadline
    while plan.seen.count("RunInstances") < 2 and time.monotonic() < give_up:
        time.sleep(0.05)


@pytest.fixture
def fresh_host(pristine_host_after: Lab) -> Iterator[Lab]:
    pristine_host_after.restart_host()
    yield pristine_host_after


def test_up_killed_after_the_launch_adopts_the_instance(
    fresh_host: Lab, env: dict[str, str], tmp_path: Path
) -> None:
    lab, name = fresh_host, "faults-kill"
    config = write_config(lab, tmp_path, name)
    code, _, stderr = finish(start_up(config, {**env, "KILL_AFTER_LAUNCH": "1"}))
    assert code == -signal.SIGKILL, stderr
    launched = instances(lab, name)
    assert len(launched) == 1
    assert addresses(lab, name) == [], "killed after the Elastic IP: too late to be this test"

    code, document, stderr = finish(start_up(config, env))

    assert code == 0, stderr
    assert document["bastion"]["instance_id"] == launched[0], "the instance was adopted"
    assert not any(
        c["resource"] == "instance" and c["action"] == "create" for c in document["changes"]
    )
    assert document["verify"]["ok"] is True
    assert [hop["ok"] for hop in document["verify"]["hops"]] == [True] * 4
    assert instances(lab, name) == launched
    assert len(addresses(lab, name)) == 1
    assert len(groups(lab, name)) == 1


def test_two_ups_at_once_make_one_bastion_and_never_overlap_on_the_host(
    fresh_host: Lab, env: dict[str, str], tmp_path: Path
) -> None:
    lab, name = fresh_host, "faults-twice"
    # the two runs share the config folder, as two CI jobs of one repository would
    config = write_config(lab, tmp_path, name)
    plan = FaultPlan()
    plan.before["RunInstances"] = lambda: wait_for_a_second_launch(plan)
    with fault_proxy(lab.moto_endpoint, plan) as proxy:  # AWS's ClientToken contract
        both = {**env, "AWS_ENDPOINT_URL": proxy}
        first, second = start_up(config, both), start_up(config, both)
        results = [finish(first), finish(second)]
    assert plan.seen.count("RunInstances") >= 1
    assert len(plan.launch_tokens) == 2, "the two runs did not both launch: they never overlapped"
    assert len(set(plan.launch_tokens)) == 1, f"two launches, two tokens: {plan.launch_tokens}"

    assert len(instances(lab, name)) == 1
    assert len(addresses(lab, name)) == 1
    assert len(groups(lab, name)) == 1
    trace = [line.split() for line in lab.host_file(TRACE).splitlines()]
    spans: dict[str, list[float]] = {}
    for event, pid, at in trace:
        spans.setdefault(pid, []).append(float(at))
        assert (event == "start") == (len(spans[pid]) == 1), trace
    ordered = sorted(spans.values())
    for earlier, later in itertools.pairwise(ordered):
        assert len(earlier) == 2 and earlier[1] <= later[0], f"two runs overlapped: {trace}"
    codes = [code for code, _, _ in results]
    assert codes == [0, 0], [document.get("error") for _, document, _ in results]
    code, document, stderr = finish(start_up(config, env))
    assert code == 0, stderr
    assert document["changed"] is False
