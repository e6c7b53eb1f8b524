"""Where the warehouse lives: endpoint, VPC and security group, and a public subnet beside it.

The bastion must sit in the warehouse's VPC and be admitted by the warehouse's group, so
both are read from the warehouse itself (Redshift cluster, Serverless workgroup, RDS
instance, Aurora cluster); config values override what is discovered.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.aws.gateway import AwsGateway
from bastion.config import rules
from bastion.config.settings import Settings
from bastion.endpoint import Endpoint
from bastion.errors import AwsError, ConfigError

if TYPE_CHECKING:
    import boto3


@dataclass(frozen=True)
class WarehouseLocation:
    """What discovery found, after config overrides."""

    endpoint: Endpoint
    vpc_id: str | None
    security_group_id: str | None


def discover_warehouse(settings: Settings, gateway: AwsGateway | None) -> WarehouseLocation:
    """The warehouse's endpoint, VPC and group: from AWS by kind, config values winning."""
    warehouse = settings.warehouse
    found = _from_aws(settings, gateway) if gateway is not None else None
    host = warehouse.host or (found.endpoint.host if found else "")
    if not host:
        raise ConfigError(
            f"warehouse.host is required for kind = {warehouse.kind} without an AWS identifier",
            hint="set warehouse.host, or warehouse.redshift_cluster / workgroup / rds_instance / rds_cluster",
        )
    port = warehouse.port or (found.endpoint.port if found else 0) or warehouse.effective_port
    return WarehouseLocation(
        endpoint=_checked(Endpoint(host, port)),
        vpc_id=settings.bastion.vpc_id or (found.vpc_id if found else None),
        security_group_id=warehouse.security_group_id
        or (found.security_group_id if found else None),
    )


def _checked(endpoint: Endpoint) -> Endpoint:
    """An endpoint AWS reported goes into PermitOpen and authorized_keys: the same rules as
    warehouse.host and warehouse.port, or the run stops before anything changes."""
    try:
        return Endpoint(rules.hostname(endpoint.host), rules.port(endpoint.port))
    except ValueError as exc:
        raise AwsError(
            f"AWS reported a warehouse endpoint that is not a plain host and port: {exc}",
            hint="set warehouse.host and warehouse.port to the name and port dbt Cloud uses",
        ) from None


def resolve_warehouse(settings: Settings, session: boto3.Session | None) -> Endpoint:
    """The database endpoint; config host/port win, alloydb and `existing` need no AWS."""
    configured = settings.warehouse.configured_endpoint()
    if configured is not None:
        return configured
    if session is None or not settings.warehouse.discoverable:
        return discover_warehouse(settings, None).endpoint

    return discover_warehouse(settings, AwsGateway(session)).endpoint


def _from_aws(settings: Settings, gateway: AwsGateway) -> WarehouseLocation | None:
    w = settings.warehouse
    if w.kind == "redshift" and w.redshift_cluster:
        return _redshift(gateway, w.redshift_cluster)
    if w.kind == "redshift-serverless" and w.workgroup:
        return _serverless(gateway, w.workgroup)
    if w.kind == "postgres" and w.rds_instance:
        return _rds_instance(gateway, w.rds_instance)
    if w.kind == "postgres" and w.rds_cluster:
        return _rds_cluster(gateway, w.rds_cluster)
    return None


def _redshift(gateway: AwsGateway, identifier: str) -> WarehouseLocation:
    cluster = gateway.redshift_cluster(identifier)
    endpoint = cluster.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise AwsError(
            f"Redshift cluster {identifier!r} has no endpoint yet (status {cluster.get('ClusterStatus')})",
            hint="wait until the cluster is available, then run bastion again",
        )
    vpc_id = cluster.get("VpcId")
    if not vpc_id and cluster.get("ClusterSubnetGroupName"):
        vpc_id = gateway.redshift_subnet_group(cluster["ClusterSubnetGroupName"]).get("VpcId")
    groups = [
        g["VpcSecurityGroupId"]
        for g in cluster.get("VpcSecurityGroups", [])
        if g.get("Status", "active") == "active"
    ]
    return WarehouseLocation(
        Endpoint(endpoint["Address"], int(endpoint.get("Port") or 5439)),
        vpc_id or None,
        groups[0] if groups else None,
    )


def _serverless(gateway: AwsGateway, name: str) -> WarehouseLocation:
    workgroup = gateway.serverless_workgroup(name)
    endpoint = workgroup.get("endpoint") or {}
    if not endpoint.get("address"):
        raise AwsError(
            f"Redshift Serverless workgroup {name!r} has no endpoint yet (status {workgroup.get('status')})",
            hint="wait until the workgroup is available, then run bastion again",
        )
    vpc_id = next((e["vpcId"] for e in endpoint.get("vpcEndpoints", []) if e.get("vpcId")), None)
    if vpc_id is None and workgroup.get("subnetIds"):
        subnets = gateway.describe_subnets(
            [{"Name": "subnet-id", "Values": list(workgroup["subnetIds"])}]
        )
        vpc_id = subnets[0]["VpcId"] if subnets else None
    groups = list(workgroup.get("securityGroupIds", []))
    return WarehouseLocation(
        Endpoint(endpoint["address"], int(endpoint.get("port") or 5439)),
        vpc_id,
        groups[0] if groups else None,
    )


def _rds_groups(resource: dict[str, Any]) -> str | None:
    groups = [
        g["VpcSecurityGroupId"]
        for g in resource.get("VpcSecurityGroups", [])
        if g.get("Status", "active") == "active"
    ]
    return groups[0] if groups else None


def _rds_instance(gateway: AwsGateway, identifier: str) -> WarehouseLocation:
    instance = gateway.rds_instance(identifier)
    endpoint = instance.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise AwsError(
            f"RDS instance {identifier!r} has no endpoint yet (status {instance.get('DBInstanceStatus')})",
            hint="wait until the instance is available, then run bastion again",
        )
    vpc_id = (instance.get("DBSubnetGroup") or {}).get("VpcId")
    return WarehouseLocation(
        Endpoint(endpoint["Address"], int(endpoint.get("Port") or 5432)),
        vpc_id,
        _rds_groups(instance),
    )


def _rds_cluster(gateway: AwsGateway, identifier: str) -> WarehouseLocation:
    """An Aurora cluster: its writer endpoint, which follows failovers."""
    cluster = gateway.rds_cluster(identifier)
    if not cluster.get("Endpoint"):
        raise AwsError(
            f"RDS cluster {identifier!r} has no writer endpoint yet (status {cluster.get('Status')})",
            hint="wait until the cluster is available, then run bastion again",
        )
    vpc_id = None
    if cluster.get("DBSubnetGroup"):
        vpc_id = gateway.rds_subnet_group(cluster["DBSubnetGroup"]).get("VpcId")
    return WarehouseLocation(
        Endpoint(cluster["Endpoint"], int(cluster.get("Port") or 5432)),
        vpc_id,
        _rds_groups(cluster),
    )


def choose_public_subnet(gateway: AwsGateway, vpc_id: str, subnet_id: str = "") -> str:
    """The configured subnet, else the first public subnet of the VPC by (zone, id).

    Public means its route table (its own, else the VPC's main table) sends 0.0.0.0/0 to
    an internet gateway. The order is fixed so every run picks the same subnet.
    """
    if subnet_id:
        subnets = gateway.describe_subnets([{"Name": "subnet-id", "Values": [subnet_id]}])
        if not subnets:
            raise AwsError(f"bastion.subnet_id {subnet_id} not found in {gateway.region}")
        if subnets[0]["VpcId"] != vpc_id:
            raise ConfigError(
                f"bastion.subnet_id {subnet_id} is in {subnets[0]['VpcId']}, not the warehouse VPC {vpc_id}",
                hint="choose a public subnet of the warehouse VPC",
            )
        return subnet_id
    subnets = gateway.describe_subnets([{"Name": "vpc-id", "Values": [vpc_id]}])
    tables = gateway.describe_route_tables(vpc_id)
    public = [s for s in subnets if routes_to_internet(route_table_of(tables, s["SubnetId"]))]
    if not public:
        raise AwsError(
            f"VPC {vpc_id} has no public subnet (no route 0.0.0.0/0 to an internet gateway)",
            hint="set bastion.subnet_id to a public subnet of this VPC, or add an internet "
            "gateway route to one of its subnets' route tables",
        )
    public.sort(key=lambda s: (s.get("AvailabilityZone", ""), s["SubnetId"]))
    return str(public[0]["SubnetId"])


def route_table_of(tables: list[dict[str, Any]], subnet_id: str) -> dict[str, Any] | None:
    """The subnet's route table: its own association, else the VPC's main table."""
    for table in tables:
        if any(a.get("SubnetId") == subnet_id for a in table.get("Associations", [])):
            return table
    return next((t for t in tables if any(a.get("Main") for a in t.get("Associations", []))), None)


def routes_to_internet(table: dict[str, Any] | None) -> bool:
    """Public: the table sends 0.0.0.0/0 to an internet gateway."""
    if table is None:
        return False
    return any(
        route.get("DestinationCidrBlock") == "0.0.0.0/0"
        and str(route.get("GatewayId", "")).startswith("igw-")
        and route.get("State", "active") == "active"
        for route in table.get("Routes", [])
    )
