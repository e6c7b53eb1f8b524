"""A user's AWS account in moto (over HTTP), provisioned by bastion's own code, ready to break.

Doctor's AWS links are tested against a setup `provision` made, so a test that breaks one
link starts from a state where every link was ok (the control test proves that).
"""

from __future__ import annotations

import socket
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

WAREHOUSE_PORT = 5439


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class AwsWorld:
    """The seeded VPC and what provision created in it."""

    config: Path
    settings: Any
    session: boto3.Session
    vpc_id: str
    subnet_id: str
    warehouse_group_id: str
    facts: Any

    @property
    def ec2(self) -> Any:
        return self.session.client("ec2")


def seed_vpc(ec2: Any) -> tuple[str, str, str]:
    """A VPC with a public subnet (route to an IGW) and the warehouse's security group."""
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24", AvailabilityZone="us-east-1a")[
        "Subnet"
    ]["SubnetId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    table = ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=subnet)
    group = ec2.create_security_group(
        GroupName="warehouse", Description="the warehouse", VpcId=vpc
    )["GroupId"]
    return vpc, subnet, group


def write_config(path: Path, *, vpc: str, subnet: str, group: str, admin_key: Path) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""
            name = "doc"
            [aws]
            region = "us-east-1"
            [warehouse]
            kind = "postgres"
            host = "10.42.1.50"
            port = {WAREHOUSE_PORT}
            security_group_id = "{group}"
            database = "analytics"
            [bastion]
            vpc_id = "{vpc}"
            subnet_id = "{subnet}"
            ami = "ami-12c6146b"
            admin_user = "admin"
            admin_key = "{admin_key}"
            admin_cidrs = ["198.51.100.7/32"]
            [dbt_cloud]
            regions = ["us"]
            """
        )
    )
    return path


def make_admin_key(folder: Path) -> Path:
    key = folder / "admin_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return key


def provision(folder: Path) -> AwsWorld:
    """Seed the VPC, write a config, run bastion's own provisioning against moto."""
    from bastion.aws.stage import apply_aws, status_aws
    from bastion.config.settings import load
    from bastion.progress import NullProgress

    session = boto3.Session(region_name="us-east-1")
    vpc, subnet, group = seed_vpc(session.client("ec2"))
    config = write_config(
        folder / "bastion.toml", vpc=vpc, subnet=subnet, group=group,
        admin_key=make_admin_key(folder),
    )  # fmt: skip
    settings = load(config)
    apply_aws(settings, session, NullProgress(), probe=lambda host, port, timeout: True)
    return AwsWorld(config, settings, session, vpc, subnet, group, status_aws(settings, session))
