"""Doctor names each broken AWS link of a setup `provision` made (moto over HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bastion.doctor.diagnosis import Diagnosis
from bastion.pipeline import doctor
from tests.tunnel.aws_world import WAREHOUSE_PORT, AwsWorld

DBT_US = "52.45.144.63/32"


def diagnose(world: AwsWorld) -> Diagnosis:
    """Doctor with the host part pointed at loopback (no sshd there): only AWS links matter here."""
    settings = world.settings.model_copy(
        update={"bastion": world.settings.bastion.model_copy(update={"address": "127.0.0.1"})}
    )
    return doctor.diagnose(settings, run_verify=False)


def status_of(diagnosis: Diagnosis, link: str) -> str:
    found = [f for f in diagnosis.findings if f.link == link]
    assert found, f"no finding for {link}: {[f.link for f in diagnosis.findings]}"
    return found[0].status


def what(diagnosis: Diagnosis, link: str) -> str:
    return next(f.what for f in diagnosis.findings if f.link == link)


@pytest.mark.parametrize(
    "link", ["aws.instance", "aws.eip", "aws.ingress", "aws.route", "aws.nacl", "aws.warehouse"]
)
def test_a_provisioned_setup_has_every_aws_link_ok(aws_world: AwsWorld, link: str) -> None:
    assert status_of(diagnose(aws_world), link) == "ok"


def test_bastion_group_missing_a_dbt_cloud_address_fails(aws_world: AwsWorld) -> None:
    aws_world.ec2.revoke_security_group_ingress(
        GroupId=aws_world.facts.security_group_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                        "IpRanges": [{"CidrIp": DBT_US}]}],
    )  # fmt: skip
    diagnosis = diagnose(aws_world)
    assert status_of(diagnosis, "aws.ingress") == "fail"
    assert DBT_US in what(diagnosis, "aws.ingress")
    assert "Connection timed out" in what(diagnosis, "aws.ingress")


def test_subnet_without_internet_gateway_route_fails(aws_world: AwsWorld) -> None:
    tables = aws_world.ec2.describe_route_tables(
        Filters=[{"Name": "association.subnet-id", "Values": [aws_world.subnet_id]}]
    )["RouteTables"]
    aws_world.ec2.delete_route(
        RouteTableId=tables[0]["RouteTableId"], DestinationCidrBlock="0.0.0.0/0"
    )
    diagnosis = diagnose(aws_world)
    assert status_of(diagnosis, "aws.route") == "fail"
    assert "internet gateway" in what(diagnosis, "aws.route")


def test_network_acl_deny_before_allow_fails(aws_world: AwsWorld) -> None:
    acl = aws_world.ec2.describe_network_acls(
        Filters=[{"Name": "association.subnet-id", "Values": [aws_world.subnet_id]}]
    )["NetworkAcls"][0]["NetworkAclId"]
    aws_world.ec2.create_network_acl_entry(
        NetworkAclId=acl, RuleNumber=50, Protocol="6", RuleAction="deny", Egress=False,
        CidrBlock="52.45.0.0/16", PortRange={"From": 22, "To": 22},
    )  # fmt: skip
    diagnosis = diagnose(aws_world)
    assert status_of(diagnosis, "aws.nacl") == "fail"
    assert f"{DBT_US} in on tcp/22" in what(diagnosis, "aws.nacl")


def test_warehouse_group_not_admitting_the_bastion_fails(aws_world: AwsWorld) -> None:
    revoke_bastion_rule(aws_world)
    diagnosis = diagnose(aws_world)
    assert status_of(diagnosis, "aws.warehouse") == "fail"
    assert aws_world.facts.security_group_id in what(diagnosis, "aws.warehouse")


def revoke_bastion_rule(world: AwsWorld) -> None:
    """Remove the rule provision put on the warehouse group (from the bastion group)."""
    rules = world.ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [world.warehouse_group_id]}]
    )["SecurityGroupRules"]
    ours = [
        r["SecurityGroupRuleId"]
        for r in rules
        if r.get("ReferencedGroupInfo", {}).get("GroupId") == world.facts.security_group_id
        and r.get("FromPort") == WAREHOUSE_PORT
    ]
    assert ours, rules
    world.ec2.revoke_security_group_ingress(
        GroupId=world.warehouse_group_id, SecurityGroupRuleIds=ours
    )


def _load_balancer(world: AwsWorld, idle_seconds: int) -> None:
    ec2, elbv2 = world.ec2, world.session.client("elbv2")
    second = ec2.create_subnet(
        VpcId=world.vpc_id, CidrBlock="10.42.2.0/24", AvailabilityZone="us-east-1b"
    )["Subnet"]["SubnetId"]
    balancer = elbv2.create_load_balancer(
        Name="front",
        Subnets=[world.subnet_id, second],
        Type="application",
        Scheme="internet-facing",
    )["LoadBalancers"][0]["LoadBalancerArn"]
    group = elbv2.create_target_group(
        Name="ssh", Protocol="HTTP", Port=22, VpcId=world.vpc_id, TargetType="instance"
    )["TargetGroups"][0]["TargetGroupArn"]
    elbv2.register_targets(TargetGroupArn=group, Targets=[{"Id": world.facts.instance_id}])
    elbv2.create_listener(
        LoadBalancerArn=balancer, Protocol="HTTP", Port=22,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": group}],
    )  # fmt: skip
    elbv2.modify_load_balancer_attributes(
        LoadBalancerArn=balancer,
        Attributes=[{"Key": "idle_timeout.timeout_seconds", "Value": str(idle_seconds)}],
    )


def test_load_balancer_with_idle_timeout_under_30_s_fails(aws_world: AwsWorld) -> None:
    _load_balancer(aws_world, idle_seconds=20)
    diagnosis = diagnose(aws_world)
    assert status_of(diagnosis, "aws.lb") == "fail"
    assert "after 20 s" in what(diagnosis, "aws.lb")


def test_load_balancer_with_a_long_idle_timeout_is_ok(aws_world: AwsWorld) -> None:
    _load_balancer(aws_world, idle_seconds=400)
    assert status_of(diagnose(aws_world), "aws.lb") == "ok"


def test_doctor_cli_exits_3_and_names_the_broken_link_in_json(aws_world: AwsWorld) -> None:
    revoke_bastion_rule(aws_world)
    text = aws_world.config.read_text().replace("admin_cidrs", 'address = "127.0.0.1"\nadmin_cidrs')
    Path(aws_world.config).write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "bastion", "doctor", "-c", str(aws_world.config), "--json", "--skip-verify"],
        capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    document = json.loads(done.stdout)
    assert document["error"]["kind"] == "verify"
    failed = {f["link"] for f in document["doctor"]["findings"] if f["status"] == "fail"}
    assert "aws.warehouse" in failed
    assert "aws.warehouse" in document["doctor"]["explanation"]


def test_without_an_address_verify_and_connection_use_the_elastic_ip(aws_world: AwsWorld) -> None:
    from bastion.pipeline.connection_info import connection_fields
    from bastion.pipeline.locate import locate

    assert aws_world.settings.bastion.address == ""
    assert locate(aws_world.settings).address == aws_world.facts.public_ip
    assert connection_fields(aws_world.settings).tunnel_host == aws_world.facts.public_ip
