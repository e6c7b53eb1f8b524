"""What moto cannot show: Redshift Serverless, ClientToken reuse, AWS errors, console host keys.

botocore's Stubber answers for AWS here; throttling goes through botocore's real retry
loop (Stubber answers before it), so that test injects the throttled HTTP responses.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.stub import ANY, Stubber

from bastion.aws import tags as t
from bastion.aws.apply import Runner
from bastion.aws.discover import discover_warehouse, resolve_warehouse
from bastion.aws.facts import AwsFacts
from bastion.aws.gateway import AwsGateway
from bastion.aws.plan import Step, plan_steps
from bastion.aws.stage import host_key_fingerprints
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import AwsError
from bastion.progress import NullProgress

from .test_planner import desired_for

FINGERPRINT = "SHA256:" + "A" * 43

NOW = 1_800_000_000  # the clock the planner is given (seconds since the epoch)


def make_settings(**warehouse: Any) -> Settings:
    return Settings.model_validate(
        {
            "name": "analytics",
            "warehouse": warehouse,
            "bastion": {"admin_cidrs": ["198.51.100.7/32"]},
        }
    )


@pytest.fixture
def gateway() -> AwsGateway:
    return AwsGateway(boto3.Session(region_name="us-east-1"), waiter_delay=0.01)


@pytest.fixture
def stub(gateway: AwsGateway) -> Iterator[Any]:
    stubs: dict[str, Stubber] = {}

    def for_service(service: str) -> Stubber:
        if service not in stubs:
            stubs[service] = Stubber(gateway.client(service))
            stubs[service].activate()
        return stubs[service]

    yield for_service
    for stubber in stubs.values():
        stubber.assert_no_pending_responses()
        stubber.deactivate()


WORKGROUP: dict[str, Any] = {
    "workgroupName": "wg-1",
    "status": "AVAILABLE",
    "securityGroupIds": ["sg-0123456789abcdef0"],
    "subnetIds": ["subnet-0123456789abcdef0"],
    "endpoint": {
        "address": "wg.123456789012.us-east-1.redshift-serverless.amazonaws.com",
        "port": 5439,
    },
}


def test_serverless_workgroup_gives_endpoint_vpc_and_group(gateway: AwsGateway, stub: Any) -> None:
    endpoint = {**WORKGROUP["endpoint"], "vpcEndpoints": [{"vpcId": "vpc-0123456789abcdef0"}]}
    stub("redshift-serverless").add_response(
        "get_workgroup",
        {"workgroup": {**WORKGROUP, "endpoint": endpoint}},
        {"workgroupName": "wg-1"},
    )
    found = discover_warehouse(make_settings(kind="redshift-serverless", workgroup="wg-1"), gateway)
    assert found.endpoint == Endpoint(WORKGROUP["endpoint"]["address"], 5439)
    assert found.vpc_id == "vpc-0123456789abcdef0"
    assert found.security_group_id == "sg-0123456789abcdef0"


def test_serverless_vpc_comes_from_its_subnets_when_no_vpc_endpoint(
    gateway: AwsGateway, stub: Any
) -> None:
    stub("redshift-serverless").add_response(
        "get_workgroup", {"workgroup": WORKGROUP}, {"workgroupName": "wg-1"}
    )
    stub("ec2").add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": "subnet-0123456789abcdef0", "VpcId": "vpc-0fedcba987654321f"}]},
        {"Filters": [{"Name": "subnet-id", "Values": ["subnet-0123456789abcdef0"]}]},
    )
    found = discover_warehouse(make_settings(kind="redshift-serverless", workgroup="wg-1"), gateway)
    assert found.vpc_id == "vpc-0fedcba987654321f"


def test_config_overrides_win_over_discovery(gateway: AwsGateway, stub: Any) -> None:
    stub("redshift-serverless").add_response(
        "get_workgroup", {"workgroup": WORKGROUP}, {"workgroupName": "wg-1"}
    )
    stub("ec2").add_response(
        "describe_subnets",
        {"Subnets": [{"SubnetId": "subnet-0123456789abcdef0", "VpcId": "vpc-0fedcba987654321f"}]},
    )
    settings = make_settings(
        kind="redshift-serverless", workgroup="wg-1", host="wh.internal", port=5440,
        security_group_id="sg-0aaaaaaaaaaaaaaaa",
    )  # fmt: skip
    found = discover_warehouse(settings, gateway)
    assert found.endpoint == Endpoint("wh.internal", 5440)
    assert found.security_group_id == "sg-0aaaaaaaaaaaaaaaa"


def test_alloydb_endpoint_comes_from_config_without_aws() -> None:
    settings = make_settings(kind="alloydb", host="10.1.2.3")
    assert resolve_warehouse(settings, None) == Endpoint("10.1.2.3", 5432)


def test_missing_permission_is_named(gateway: AwsGateway, stub: Any) -> None:
    stub("redshift-serverless").add_client_error(
        "get_workgroup", service_error_code="AccessDeniedException", http_status_code=403
    )
    with pytest.raises(AwsError) as error:
        discover_warehouse(make_settings(kind="redshift-serverless", workgroup="wg-1"), gateway)
    assert "redshift-serverless:GetWorkgroup" in error.value.message
    assert error.value.exit_code == 1


def test_unauthorized_ec2_operation_is_named(gateway: AwsGateway, stub: Any) -> None:
    stub("ec2").add_client_error("run_instances", service_error_code="UnauthorizedOperation")
    with pytest.raises(AwsError, match=r"ec2:RunInstances"):
        gateway.run_instance({"ImageId": "ami-12345678", "InstanceType": "t3.micro"})


def test_missing_resource_is_named(gateway: AwsGateway, stub: Any) -> None:
    stub("redshift").add_client_error("describe_clusters", service_error_code="ClusterNotFound")
    with pytest.raises(AwsError, match=r"Redshift cluster 'prod' not found"):
        discover_warehouse(make_settings(kind="redshift", redshift_cluster="prod"), gateway)


def _launch_step(generation: int) -> Step:
    facts = AwsFacts(warehouse=Endpoint("wh", 5439), security_group_id="sg-0123456789abcdef0",
                     generation=generation, key_pair="bastion-analytics",
                     key_fingerprint=desired_for().admin_key_fingerprint)  # fmt: skip
    return next(s for s in plan_steps(desired_for(), facts, now=NOW) if s.op == "run_instance")


def _expect_launch(stub: Any, token: str, instance_id: str) -> None:
    stub("ec2").add_response(
        "describe_images",
        {"Images": [{"ImageId": "ami-12345678", "RootDeviceName": "/dev/xvda"}]},
        {"ImageIds": ["ami-12345678"]},
    )
    stub("ec2").add_response(
        "run_instances",
        {"Instances": [{"InstanceId": instance_id, "State": {"Name": "pending", "Code": 0}}]},
        {**{k: ANY for k in ("ImageId", "InstanceType", "KeyName", "SubnetId", "SecurityGroupIds",
                             "MetadataOptions", "BlockDeviceMappings", "TagSpecifications")},
         "MinCount": 1, "MaxCount": 1, "ClientToken": token},
    )  # fmt: skip
    stub("ec2").add_response(
        "describe_instances",
        {
            "Reservations": [
                {
                    "Instances": [
                        {"InstanceId": instance_id, "State": {"Name": "running", "Code": 16}}
                    ]
                }
            ]
        },
        {"InstanceIds": [instance_id]},
    )


def test_a_retried_launch_sends_the_same_client_token(gateway: AwsGateway, stub: Any) -> None:
    token = t.client_token("analytics", 7)
    _expect_launch(stub, token, "i-0123456789abcdef0")
    _expect_launch(
        stub, token, "i-0123456789abcdef0"
    )  # AWS answers a reused token with the same host
    first, second = Runner(gateway, NullProgress()), Runner(gateway, NullProgress())
    first.run([_launch_step(7)])
    second.run([_launch_step(7)])
    assert first.ids["instance"] == second.ids["instance"] == "i-0123456789abcdef0"


def test_a_token_still_bound_to_a_terminated_host_is_reported(
    gateway: AwsGateway, stub: Any
) -> None:
    stub("ec2").add_response("describe_images", {"Images": [{"ImageId": "ami-12345678"}]})
    stub("ec2").add_response(
        "run_instances",
        {
            "Instances": [
                {"InstanceId": "i-0dead0000000000000", "State": {"Name": "terminated", "Code": 48}}
            ]
        },
    )
    with pytest.raises(AwsError, match="--replace"):
        Runner(gateway, NullProgress()).run([_launch_step(3)])


def test_tokens_differ_by_name_and_generation() -> None:
    tokens = {t.client_token(n, g) for n in ("a", "b") for g in (1, 2)}
    assert len(tokens) == 4
    assert all(len(token) <= 64 for token in tokens)
    assert t.client_token("a", 1) == t.client_token("a", 1)


def test_console_host_keys_reads_cloud_init_fingerprints(gateway: AwsGateway, stub: Any) -> None:
    console = "\n".join([
        "[   10.0] cloud-init[1234]: ...",
        "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
        f"256 {FINGERPRINT} root@ip-10-0-0-1 (ED25519)",
        "256 SHA256:" + "B" * 43 + " root@ip-10-0-0-1 (ECDSA)",
        "-----END SSH HOST KEY FINGERPRINTS-----",
        "SHA256:" + "C" * 43 + " printed elsewhere",
    ])  # fmt: skip
    encoded = base64.b64encode(console.encode()).decode()
    stub("ec2").add_response(
        "get_console_output", {"InstanceId": "i-1", "Output": encoded},
        {"InstanceId": "i-1", "Latest": True},
    )  # fmt: skip
    output = gateway.console_output("i-1")
    assert host_key_fingerprints(output) == [FINGERPRINT, "SHA256:" + "B" * 43]


def test_console_without_fingerprints_gives_none() -> None:
    assert host_key_fingerprints("booting\nSHA256:" + "C" * 43 + " not in the block\n") == []


def _throttled(times: int) -> tuple[list[int], Any]:
    """A before-send hook: EC2's RequestLimitExceeded for the first `times` attempts."""
    attempts: list[int] = []
    body = (
        b"<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
        b"<Message>Request limit exceeded.</Message></Error></Errors>"
        b"<RequestID>1</RequestID></Response>"
    )

    class Raw:
        def stream(self, **_: Any) -> Iterator[bytes]:
            yield body

    def hook(request: Any, **_: Any) -> AWSResponse | None:
        attempts.append(1)
        if len(attempts) <= times:
            return AWSResponse(request.url, 503, HTTPHeaders(), Raw())
        return None

    return attempts, hook


def test_throttling_is_retried_by_botocore(world: Any) -> None:
    gateway = AwsGateway(boto3.Session(region_name="us-east-1"))
    attempts, hook = _throttled(2)
    gateway.client("ec2").meta.events.register("before-send.ec2.DescribeSecurityGroups", hook)
    groups = gateway.describe_security_groups(
        [{"Name": "group-id", "Values": [world.warehouse_group]}]
    )
    assert [g["GroupId"] for g in groups] == [world.warehouse_group]
    assert len(attempts) == 3


def test_throttling_beyond_the_retry_budget_is_an_aws_error(world: Any) -> None:
    gateway = AwsGateway(boto3.Session(region_name="us-east-1"), max_attempts=2)
    attempts, hook = _throttled(10)
    gateway.client("ec2").meta.events.register("before-send.ec2.DescribeSecurityGroups", hook)
    with pytest.raises(AwsError, match="RequestLimitExceeded"):
        gateway.describe_security_groups([])
    assert len(attempts) == 2


def test_a_failure_midway_names_the_changes_already_made(gateway: AwsGateway, stub: Any) -> None:
    facts = AwsFacts(warehouse=Endpoint("wh", 5439))
    steps = plan_steps(desired_for(), facts, now=NOW)
    assert [s.op for s in steps[:2]] == ["create_security_group", "authorize_ingress"]
    stub("ec2").add_response("create_security_group", {"GroupId": "sg-0123456789abcdef0"})
    stub("ec2").add_client_error(
        "authorize_security_group_ingress", service_error_code="UnauthorizedOperation"
    )
    with pytest.raises(AwsError) as error:
        Runner(gateway, NullProgress()).run(steps[:2])
    assert "ec2:AuthorizeSecurityGroupIngress" in error.value.message
    assert "already changed: + aws/security_group" in error.value.message


@pytest.mark.parametrize(("variable", "mode"), [(None, "standard"), ("adaptive", "adaptive")])
def test_retry_mode_is_standard_unless_aws_retry_mode_says_adaptive(
    variable: str | None, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if variable is None:
        monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    else:
        monkeypatch.setenv("AWS_RETRY_MODE", variable)
    gateway = AwsGateway(boto3.Session(region_name="us-east-1"))
    assert gateway.retry_mode == mode
    assert gateway.client("ec2").meta.config.retries["mode"] == mode
