"""One typed wrapper around every boto3 call bastion makes (the Chalice `awsclient` idea).

Everything else talks to AWS through `AwsGateway`, so retries, paginators, waiters and
the translation of AWS errors into messages an operator can act on live in one place, and
the IAM policy (`bastion iam-policy`) can be checked against the calls made here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from bastion.errors import AwsError

if TYPE_CHECKING:
    import boto3
    from botocore.exceptions import ClientError

RetryMode = Literal["standard", "adaptive"]
Filters = list[dict[str, Any]]

# Error codes AWS uses when the caller lacks an IAM permission.
_ACCESS_DENIED = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess"}
)
_NOT_FOUND_HINT = "check the name in bastion.toml and that aws.region is the warehouse's region"


class AwsGateway:
    """The AWS API as bastion uses it: session injected, errors translated to AwsError."""

    def __init__(
        self,
        session: boto3.Session,
        *,
        retry_mode: RetryMode | None = None,
        max_attempts: int = 8,
        waiter_delay: float = 5.0,
    ) -> None:
        import os

        from botocore.config import Config

        if retry_mode is None:
            # boto3's own variable picks "adaptive" (client-side rate limiting) for busy accounts.
            wanted = os.environ.get("AWS_RETRY_MODE", "standard")
            retry_mode = "adaptive" if wanted == "adaptive" else "standard"
        self.retry_mode: RetryMode = retry_mode
        self.session = session
        self.waiter_delay = waiter_delay
        self._config = Config(
            retries={"mode": retry_mode, "total_max_attempts": max_attempts},
            user_agent_extra="dbt-bastion",
        )
        self._clients: dict[str, Any] = {}

    @property
    def region(self) -> str:
        return str(self.session.region_name)

    def client(self, service: str) -> Any:
        """The one client per service of this gateway (tests attach Stubbers here)."""
        if service not in self._clients:
            self._clients[service] = self.session.client(service, config=self._config)  # type: ignore[call-overload]
        return self._clients[service]

    def call(self, service: str, method: str, *, what: str = "", **params: Any) -> dict[str, Any]:
        """Make one API call; any failure becomes an AwsError that says what to do."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(service)
        try:
            response: dict[str, Any] = getattr(client, method)(**params)
        except ClientError as exc:
            raise translate(exc, service, _operation(client, method), what) from None
        except BotoCoreError as exc:
            raise AwsError(
                f"AWS {service} call {_operation(client, method)} failed: {exc}",
                hint="check credentials (aws.profile, AWS_* variables), aws.region and the network",
            ) from None
        return response

    def paginate(
        self, service: str, method: str, key: str, *, what: str = "", **params: Any
    ) -> list[dict[str, Any]]:
        """Every item under `key` across all pages of a paginated call."""
        from botocore.exceptions import BotoCoreError, ClientError

        client = self.client(service)
        items: list[dict[str, Any]] = []
        try:
            for page in client.get_paginator(method).paginate(**params):
                items.extend(page.get(key, []))
        except ClientError as exc:
            raise translate(exc, service, _operation(client, method), what) from None
        except BotoCoreError as exc:
            raise AwsError(
                f"AWS {service} call {_operation(client, method)} failed: {exc}"
            ) from None
        return items

    def wait(self, service: str, waiter: str, *, max_wait: float, **params: Any) -> None:
        """Wait with botocore's waiter, polling every `waiter_delay` seconds up to `max_wait`."""
        from botocore.exceptions import ClientError, WaiterError

        delay = max(self.waiter_delay, 0.01)
        config = {"Delay": delay, "MaxAttempts": max(1, int(max_wait / delay))}
        try:
            self.client(service).get_waiter(waiter).wait(WaiterConfig=config, **params)
        except WaiterError as exc:
            last = exc.last_response or {}
            if "Error" in last:
                code = last["Error"].get("Code", "")
                if code in _ACCESS_DENIED:
                    raise AwsError(
                        f"AWS refused the {waiter} wait: missing IAM permission",
                        hint="allow the Describe* actions `bastion iam-policy` prints",
                    ) from None
            raise AwsError(
                f"gave up waiting for {waiter.replace('_', ' ')} after {max_wait:.0f}s",
                hint="look at the instance in the EC2 console; re-running bastion picks up where it stopped",
            ) from None
        except ClientError as exc:  # pragma: no cover - waiters raise WaiterError
            raise translate(exc, service, waiter, "") from None

    # --- EC2 --------------------------------------------------------------------------

    def vpc_has_ipv6(self, vpc_id: str) -> bool:
        """Dual-stack: a new group there also gets AWS's default `::/0` egress rule."""
        vpcs = self.call("ec2", "describe_vpcs", what=f"VPC {vpc_id}", VpcIds=[vpc_id])["Vpcs"]
        blocks = vpcs[0].get("Ipv6CidrBlockAssociationSet", []) if vpcs else []
        return any(b.get("Ipv6CidrBlockState", {}).get("State") == "associated" for b in blocks)

    def describe_subnets(self, filters: Filters) -> list[dict[str, Any]]:
        return self.paginate("ec2", "describe_subnets", "Subnets", Filters=filters)

    def describe_route_tables(self, vpc_id: str) -> list[dict[str, Any]]:
        return self.paginate(
            "ec2",
            "describe_route_tables",
            "RouteTables",
            Filters=[{"Name": "vpc-id", "Values": [vpc_id]}],
        )

    def describe_security_groups(self, filters: Filters) -> list[dict[str, Any]]:
        return self.paginate("ec2", "describe_security_groups", "SecurityGroups", Filters=filters)

    def security_group(self, group_id: str) -> dict[str, Any] | None:
        groups = self.describe_security_groups([{"Name": "group-id", "Values": [group_id]}])
        return groups[0] if groups else None

    def create_security_group(
        self, name: str, description: str, vpc_id: str, tags: dict[str, str]
    ) -> str:
        response = self.call(
            "ec2",
            "create_security_group",
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=[_tag_spec("security-group", tags)],
        )
        return str(response["GroupId"])

    def delete_security_group(self, group_id: str) -> None:
        self.call(
            "ec2", "delete_security_group", what=f"security group {group_id}", GroupId=group_id
        )

    def authorize_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2",
            "authorize_security_group_ingress",
            what=f"security group {group_id}",
            GroupId=group_id,
            IpPermissions=permissions,
        )

    def revoke_ingress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2",
            "revoke_security_group_ingress",
            what=f"security group {group_id}",
            GroupId=group_id,
            IpPermissions=permissions,
        )

    def update_ingress_descriptions(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2",
            "update_security_group_rule_descriptions_ingress",
            GroupId=group_id,
            IpPermissions=permissions,
        )

    def authorize_egress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2", "authorize_security_group_egress", GroupId=group_id, IpPermissions=permissions
        )

    def revoke_egress(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2", "revoke_security_group_egress", GroupId=group_id, IpPermissions=permissions
        )

    def update_egress_descriptions(self, group_id: str, permissions: list[dict[str, Any]]) -> None:
        self.call(
            "ec2",
            "update_security_group_rule_descriptions_egress",
            GroupId=group_id,
            IpPermissions=permissions,
        )

    def create_tags(self, resource_id: str, tags: dict[str, str]) -> None:
        self.call(
            "ec2",
            "create_tags",
            Resources=[resource_id],
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )

    def describe_key_pairs(self, name: str) -> list[dict[str, Any]]:
        response = self.call(
            "ec2", "describe_key_pairs", Filters=[{"Name": "key-name", "Values": [name]}]
        )
        return list(response.get("KeyPairs", []))

    def import_key_pair(self, name: str, public_key: str, tags: dict[str, str]) -> None:
        self.call(
            "ec2",
            "import_key_pair",
            KeyName=name,
            PublicKeyMaterial=public_key.encode(),
            TagSpecifications=[_tag_spec("key-pair", tags)],
        )

    def delete_key_pair(self, name: str) -> None:
        self.call("ec2", "delete_key_pair", KeyName=name)

    def describe_image(self, image_id: str) -> dict[str, Any]:
        images = self.call("ec2", "describe_images", what=f"AMI {image_id}", ImageIds=[image_id])
        if not images.get("Images"):
            raise AwsError(
                f"AMI {image_id} not found in {self.region}",
                hint="set bastion.ami to a named image (debian-13), an AMI id of this region "
                "or an ssm:/ parameter",
            )
        return dict(images["Images"][0])

    def run_instance(self, params: dict[str, Any]) -> dict[str, Any]:
        """RunInstances for exactly one host; params carry the idempotency ClientToken."""
        response = self.call("ec2", "run_instances", MinCount=1, MaxCount=1, **params)
        return dict(response["Instances"][0])

    def describe_instances(self, filters: Filters) -> list[dict[str, Any]]:
        reservations = self.paginate("ec2", "describe_instances", "Reservations", Filters=filters)
        return [instance for r in reservations for instance in r.get("Instances", [])]

    def set_instance_groups(self, instance_id: str, group_id: str) -> None:
        self.call("ec2", "modify_instance_attribute", InstanceId=instance_id, Groups=[group_id])

    def start_instance(self, instance_id: str) -> None:
        self.call("ec2", "start_instances", InstanceIds=[instance_id])

    def terminate_instance(self, instance_id: str) -> None:
        self.call(
            "ec2", "terminate_instances", what=f"instance {instance_id}", InstanceIds=[instance_id]
        )

    def console_output(self, instance_id: str) -> str:
        response = self.call("ec2", "get_console_output", InstanceId=instance_id, Latest=True)
        return str(response.get("Output") or "")

    def describe_addresses(self, filters: Filters) -> list[dict[str, Any]]:
        return list(self.call("ec2", "describe_addresses", Filters=filters).get("Addresses", []))

    def allocate_address(self, tags: dict[str, str]) -> dict[str, Any]:
        return self.call(
            "ec2",
            "allocate_address",
            Domain="vpc",
            TagSpecifications=[_tag_spec("elastic-ip", tags)],
        )

    def associate_address(self, allocation_id: str, instance_id: str) -> str:
        response = self.call(
            "ec2",
            "associate_address",
            AllocationId=allocation_id,
            InstanceId=instance_id,
            AllowReassociation=True,
        )
        return str(response.get("AssociationId", ""))

    def disassociate_address(self, association_id: str) -> None:
        self.call("ec2", "disassociate_address", AssociationId=association_id)

    def release_address(self, allocation_id: str, *, missing_ok: bool = False) -> None:
        """Release an address; `missing_ok` when a concurrent run may have released it."""
        try:
            self.call("ec2", "release_address", AllocationId=allocation_id)
        except AwsError as exc:
            if not (missing_ok and "NotFound" in exc.message):
                raise

    def network_acls_of_subnet(self, subnet_id: str) -> list[dict[str, Any]]:
        response = self.call(
            "ec2",
            "describe_network_acls",
            what="network ACLs",
            Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}],
        )
        return list(response.get("NetworkAcls", []))

    # --- EC2 Instance Connect Endpoint (admin_access = "eice") ---------------------------

    def describe_instance_connect_endpoints(
        self, filters: Filters | None = None, endpoint_ids: list[str] | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if filters:
            params["Filters"] = filters
        if endpoint_ids:
            params["InstanceConnectEndpointIds"] = endpoint_ids
        response = self.call(
            "ec2", "describe_instance_connect_endpoints", what="Instance Connect Endpoint", **params
        )
        return list(response.get("InstanceConnectEndpoints", []))

    def create_instance_connect_endpoint(
        self, subnet_id: str, group_id: str, tags: dict[str, str], client_token: str
    ) -> dict[str, Any]:
        """PreserveClientIp off: sshd sees the endpoint's own address, the one AllowUsers names."""
        response = self.call(
            "ec2",
            "create_instance_connect_endpoint",
            SubnetId=subnet_id,
            SecurityGroupIds=[group_id],
            PreserveClientIp=False,
            ClientToken=client_token,
            TagSpecifications=[_tag_spec("instance-connect-endpoint", tags)],
        )
        return dict(response["InstanceConnectEndpoint"])

    def delete_instance_connect_endpoint(self, endpoint_id: str) -> None:
        self.call(
            "ec2",
            "delete_instance_connect_endpoint",
            what=f"Instance Connect Endpoint {endpoint_id}",
            InstanceConnectEndpointId=endpoint_id,
        )

    def network_interface_addresses(self, interface_ids: list[str]) -> list[str]:
        """The private addresses of these interfaces (an endpoint's: its source address)."""
        if not interface_ids:
            return []
        response = self.call(
            "ec2",
            "describe_network_interfaces",
            what="the endpoint's network interface",
            NetworkInterfaceIds=interface_ids,
        )
        return sorted(
            str(i["PrivateIpAddress"])
            for i in response.get("NetworkInterfaces", [])
            if i.get("PrivateIpAddress")
        )

    # --- Elastic Load Balancing (doctor: an idle timeout in front of the bastion) -------

    def load_balancers(self) -> list[dict[str, Any]]:
        return self.paginate("elbv2", "describe_load_balancers", "LoadBalancers")

    def target_groups(self, balancer_arn: str) -> list[dict[str, Any]]:
        response = self.call("elbv2", "describe_target_groups", LoadBalancerArn=balancer_arn)
        return list(response.get("TargetGroups", []))

    def target_health(self, group_arn: str) -> list[dict[str, Any]]:
        response = self.call("elbv2", "describe_target_health", TargetGroupArn=group_arn)
        return list(response.get("TargetHealthDescriptions", []))

    def load_balancer_attributes(self, balancer_arn: str) -> dict[str, str]:
        response = self.call(
            "elbv2", "describe_load_balancer_attributes", LoadBalancerArn=balancer_arn
        )
        return {a["Key"]: a.get("Value") for a in response.get("Attributes", [])}

    def listeners(self, balancer_arn: str) -> list[dict[str, Any]]:
        response = self.call("elbv2", "describe_listeners", LoadBalancerArn=balancer_arn)
        return list(response.get("Listeners", []))

    def listener_attributes(self, listener_arn: str) -> dict[str, str]:
        response = self.call("elbv2", "describe_listener_attributes", ListenerArn=listener_arn)
        return {a["Key"]: a.get("Value") for a in response.get("Attributes", [])}

    # --- STS --------------------------------------------------------------------------

    def account_id(self) -> str:
        """The account these credentials belong to (GetCallerIdentity needs no permission)."""
        return str(self.call("sts", "get_caller_identity", what="the caller's account")["Account"])

    # --- SSM, Redshift, RDS -----------------------------------------------------------

    def ssm_parameter(self, name: str) -> str:
        response = self.call("ssm", "get_parameter", what=f"SSM parameter {name}", Name=name)
        return str(response["Parameter"]["Value"])

    def redshift_cluster(self, identifier: str) -> dict[str, Any]:
        response = self.call(
            "redshift",
            "describe_clusters",
            what=f"Redshift cluster {identifier!r}",
            ClusterIdentifier=identifier,
        )
        return dict(response["Clusters"][0])

    def redshift_subnet_group(self, name: str) -> dict[str, Any]:
        response = self.call(
            "redshift",
            "describe_cluster_subnet_groups",
            what=f"Redshift subnet group {name!r}",
            ClusterSubnetGroupName=name,
        )
        return dict(response["ClusterSubnetGroups"][0])

    def serverless_workgroup(self, name: str) -> dict[str, Any]:
        response = self.call(
            "redshift-serverless",
            "get_workgroup",
            what=f"Redshift Serverless workgroup {name!r}",
            workgroupName=name,
        )
        return dict(response["workgroup"])

    def cluster_credentials(self, cluster: str, user: str, database: str) -> dict[str, Any]:
        """Temporary credentials (15 minutes) for one user of one database of a cluster."""
        return self.call(
            "redshift",
            "get_cluster_credentials",
            what=f"Redshift cluster {cluster!r}",
            DbUser=user,
            DbName=database,
            ClusterIdentifier=cluster,
            DurationSeconds=900,
            AutoCreate=False,
        )

    def serverless_credentials(self, workgroup: str, database: str) -> dict[str, Any]:
        """Temporary credentials (15 minutes) for the caller in a Serverless workgroup."""
        return self.call(
            "redshift-serverless",
            "get_credentials",
            what=f"Redshift Serverless workgroup {workgroup!r}",
            workgroupName=workgroup,
            dbName=database,
            durationSeconds=900,
        )

    def rds_instance(self, identifier: str) -> dict[str, Any]:
        response = self.call(
            "rds",
            "describe_db_instances",
            what=f"RDS instance {identifier!r}",
            DBInstanceIdentifier=identifier,
        )
        return dict(response["DBInstances"][0])

    def rds_cluster(self, identifier: str) -> dict[str, Any]:
        response = self.call(
            "rds",
            "describe_db_clusters",
            what=f"RDS cluster {identifier!r}",
            DBClusterIdentifier=identifier,
        )
        return dict(response["DBClusters"][0])

    def rds_subnet_group(self, name: str) -> dict[str, Any]:
        response = self.call(
            "rds",
            "describe_db_subnet_groups",
            what=f"DB subnet group {name!r}",
            DBSubnetGroupName=name,
        )
        return dict(response["DBSubnetGroups"][0])


class AlreadyExists(AwsError):
    """AWS has it already: a retry whose first answer was lost, or a concurrent run made it."""


class AlreadyGone(AwsError):
    """The rule to revoke is not there (any more): a lost answer, or a concurrent run."""


def translate(exc: ClientError, service: str, operation: str, what: str) -> AwsError:
    """An AwsError naming the missing IAM permission or the missing resource."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    message = str(error.get("Message", "")).strip()
    action = f"{service}:{operation}"
    if code in _ACCESS_DENIED:
        return AwsError(
            f"AWS denied {action}: the credentials lack the IAM permission {action}",
            hint=f"grant {action} (`bastion iam-policy` prints every permission bastion needs)",
        )
    if code.endswith(".Duplicate"):
        return AlreadyExists(f"{action} failed: {code}: {message}")
    if code == "InvalidPermission.NotFound":
        return AlreadyGone(f"{action} failed: {code}: {message}")
    if "NotFound" in code or code == "ResourceNotFoundException":
        subject = what or f"the resource named in {operation}"
        return AwsError(f"{subject} not found ({code}): {message}", hint=_NOT_FOUND_HINT)
    if code in {
        "AuthFailure",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "ExpiredToken",
    }:
        return AwsError(
            f"AWS rejected the credentials ({code}) on {action}",
            hint="refresh the credentials of aws.profile or the AWS_* variables",
        )
    return AwsError(f"{action} failed: {code}: {message}")


def _operation(client: Any, method: str) -> str:
    return str(client.meta.method_to_api_mapping.get(method, method))


def _tag_spec(resource_type: str, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "ResourceType": resource_type,
        "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
    }
