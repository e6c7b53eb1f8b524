"""Discovery against moto: each warehouse kind gives endpoint, VPC and group; subnets are public."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from bastion.aws.discover import choose_public_subnet, discover_warehouse
from bastion.aws.gateway import AwsGateway
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import AwsError

from .conftest import REGION, World


def make_settings(**warehouse: Any) -> Settings:
    return Settings.model_validate(
        {
            "name": "analytics",
            "warehouse": warehouse,
            "bastion": {"admin_cidrs": ["198.51.100.7/32"]},
        }
    )


@pytest.fixture
def gateway(world: World) -> AwsGateway:
    return AwsGateway(boto3.Session(region_name=REGION))


@pytest.fixture
def rds(world: World) -> Any:
    client = boto3.Session(region_name=REGION).client("rds")
    client.create_db_subnet_group(
        DBSubnetGroupName="db-subnets",
        DBSubnetGroupDescription="private",
        SubnetIds=[world.private_subnet],
    )
    return client


def test_redshift_cluster_gives_endpoint_vpc_and_group(gateway: AwsGateway, world: World) -> None:
    found = discover_warehouse(make_settings(kind="redshift", redshift_cluster="prod"), gateway)
    assert found.endpoint.port == 5439
    assert found.endpoint.host.startswith("prod.")
    assert (found.vpc_id, found.security_group_id) == (world.vpc_id, world.warehouse_group)


def test_rds_instance_gives_endpoint_vpc_and_group(
    gateway: AwsGateway, world: World, rds: Any
) -> None:
    rds.create_db_instance(
        DBInstanceIdentifier="db-1", DBInstanceClass="db.t3.micro", Engine="postgres",
        MasterUsername="admin", MasterUserPassword="Password1", AllocatedStorage=20,
        DBSubnetGroupName="db-subnets", VpcSecurityGroupIds=[world.warehouse_group],
    )  # fmt: skip
    found = discover_warehouse(make_settings(kind="postgres", rds_instance="db-1"), gateway)
    assert found.endpoint.port == 5432
    assert found.endpoint.host.startswith("db-1.")
    assert (found.vpc_id, found.security_group_id) == (world.vpc_id, world.warehouse_group)


def test_aurora_cluster_gives_its_writer_endpoint(
    gateway: AwsGateway, world: World, rds: Any
) -> None:
    rds.create_db_cluster(
        DBClusterIdentifier="aurora-1", Engine="aurora-postgresql", MasterUsername="admin",
        MasterUserPassword="Password1", DBSubnetGroupName="db-subnets",
        VpcSecurityGroupIds=[world.warehouse_group],
    )  # fmt: skip
    cluster = rds.describe_db_clusters(DBClusterIdentifier="aurora-1")["DBClusters"][0]
    found = discover_warehouse(make_settings(kind="postgres", rds_cluster="aurora-1"), gateway)
    assert found.endpoint == Endpoint(cluster["Endpoint"], cluster["Port"])
    assert "-ro-" not in found.endpoint.host
    assert (found.vpc_id, found.security_group_id) == (world.vpc_id, world.warehouse_group)


def test_a_missing_cluster_is_named(gateway: AwsGateway) -> None:
    with pytest.raises(AwsError, match="Redshift cluster 'nope' not found"):
        discover_warehouse(make_settings(kind="redshift", redshift_cluster="nope"), gateway)


def test_the_public_subnet_is_chosen_by_zone_then_id(gateway: AwsGateway, world: World) -> None:
    assert choose_public_subnet(gateway, world.vpc_id) == world.expected_subnet


def test_a_subnet_on_the_main_route_table_counts_when_main_is_public(gateway: AwsGateway) -> None:
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    igw = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc)
    main = ec2.describe_route_tables(
        Filters=[
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "association.main", "Values": ["true"]},
        ]
    )["RouteTables"][0]["RouteTableId"]
    ec2.create_route(RouteTableId=main, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    assert choose_public_subnet(gateway, vpc) == subnet


def test_a_vpc_without_a_public_subnet_says_what_to_do(gateway: AwsGateway) -> None:
    ec2 = boto3.Session(region_name=REGION).client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")
    with pytest.raises(AwsError) as error:
        choose_public_subnet(gateway, vpc)
    assert "no public subnet" in error.value.message
    assert "bastion.subnet_id" in error.value.hint


class _ReportsEndpoint:
    """A gateway whose Redshift cluster reports `address` as its endpoint."""

    def __init__(self, address: str) -> None:
        self.address = address

    def redshift_cluster(self, identifier: str) -> dict[str, object]:
        return {"Endpoint": {"Address": self.address, "Port": 5439}, "VpcId": "vpc-0a1b2c3d",
                "VpcSecurityGroups": [{"VpcSecurityGroupId": "sg-0a1b2c3d", "Status": "active"}]}  # fmt: skip


@pytest.mark.parametrize(
    "address",
    ["prod.abc.us-east-1.redshift.amazonaws.com\n", "db\nPermitOpen any", "db;id", "db\x00"],
)
def test_an_endpoint_aws_reports_meets_the_rules_of_warehouse_host(
    tmp_path: Path, address: str
) -> None:
    """It reaches PermitOpen and authorized_keys as warehouse.host would: checked the same."""
    from bastion.config.settings import load

    config = tmp_path / "bastion.toml"
    config.write_text(
        'name = "analytics"\n[warehouse]\nredshift_cluster = "prod"\n'
        '[bastion]\nadmin_cidrs = ["198.51.100.7/32"]\n'
    )
    settings = load(config)
    with pytest.raises(AwsError, match="warehouse.host"):
        discover_warehouse(settings, _ReportsEndpoint(address))  # type: ignore[arg-type]
    plain = "prod.abc.us-east-1.redshift.amazonaws.com"
    found = discover_warehouse(settings, _ReportsEndpoint(plain))  # type: ignore[arg-type]
    assert found.endpoint == Endpoint(plain, 5439)
