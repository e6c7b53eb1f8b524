"""The lab's AWS: moto over HTTP on loopback, seeded like a real account.

The tool's boto3 code talks to it exactly as to AWS, pointed there by AWS_ENDPOINT_URL.
Usable without the network lab: unit tests of the AWS code need moto and nothing else.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from tests.lab.network import VPC_RANGE
from tests.lab.state import ProcessRef

REGION = "us-east-1"
# Debian's public parameters (Debian's own release numbers; `bastion.ami = "debian-13"`
# reads the first): the seeded account holds one registered image behind each.
DEBIAN_PARAMETERS = {
    f"/aws/service/debian/release/{release}/latest/{arch}": f"debian-{release}-{arch}"
    for release in ("13", "12")
    for arch in ("amd64", "arm64")
}
DEFAULT_IMAGE_PARAMETER = "/aws/service/debian/release/13/latest/amd64"
MOTO_SERVER = Path(__file__).with_name("moto_public.py")
CLUSTER_ID = "prod"
CLUSTER_PORT = 5439


class LabAwsError(RuntimeError):
    """moto did not start, or does not hold what the lab's account needs."""


def aws_env(endpoint: str) -> dict[str, str]:
    """Environment that points boto3 at `endpoint` and can never reach real AWS.

    Dummy credentials, no instance metadata, and empty config and credentials files, so no
    profile, SSO session or credential process of the machine's user is picked up.
    """
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MotoServer:
    """moto_server in a process of its own (moto_public.py: it accepts /aws/service/ names).

    Not a thread of this process: moto keeps its accounts in module globals, so servers in
    one process share (and reset) each other's resources. This one's account is its own.
    """

    endpoint: str
    process: ProcessRef | None
    popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def launch(cls, log: Path | None = None, *, detached: bool = False) -> MotoServer:
        """Start moto_server and return at once (see wait_ready()).

        A detached one gets a session of its own and outlives this process (`invoke
        lab.up`); any other ends with the thread that launched it, even on SIGKILL
        (setpriv --pdeathsig), so a killed test run leaves no moto behind.
        """
        port = free_port()
        guard = [] if detached else ["setpriv", "--pdeathsig", "KILL", "--"]
        # moto.server, able to hold AWS's public parameters (see moto_public.py)
        server = [sys.executable, "-P", str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)]
        out = log.open("ab") if log is not None else None
        try:
            popen = subprocess.Popen(
                [*guard, *server],
                stdin=subprocess.DEVNULL,
                stdout=out or subprocess.DEVNULL,
                stderr=out or subprocess.DEVNULL,
                start_new_session=detached,
            )
        finally:
            if out is not None:
                out.close()
        return cls(f"http://127.0.0.1:{port}", ProcessRef.of(popen.pid), popen)

    @classmethod
    def start(cls, log: Path | None = None, *, detached: bool = False) -> MotoServer:
        """launch() and wait_ready()."""
        server = cls.launch(log, detached=detached)
        server.wait_ready()
        return server

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            exited = self.popen is not None and self.popen.poll() is not None
            if exited or time.monotonic() > deadline:
                self.stop()
                raise LabAwsError(f"moto_server did not answer at {self.endpoint}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310
                return True
        except OSError:
            return False

    def reset(self) -> None:
        """Forget every resource (moto's own reset API), e.g. before seeding again."""
        url = f"{self.endpoint}/moto-api/reset"  # http://127.0.0.1:<port>, made above
        request = urllib.request.Request(url, method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=10):  # noqa: S310
            pass

    def stop(self) -> None:
        stop_moto_process(self.process)
        if self.popen is not None:
            self.popen.wait()


def stop_moto_process(process: ProcessRef | None) -> None:
    """SIGKILL: moto keeps nothing worth a clean exit, and its SIGTERM path takes ~1 s."""
    if process is not None:
        process.kill(signal.SIGKILL)
        process.wait_gone(5.0)


@dataclass(frozen=True)
class AwsAccount:
    """What the seeded account holds: a user's VPC with a private Redshift cluster."""

    vpc_id: str
    public_subnet_id: str
    private_subnet_id: str
    internet_gateway_id: str
    public_route_table_id: str
    warehouse_security_group_id: str
    cluster_subnet_group: str
    cluster_id: str
    cluster_endpoint: str
    cluster_port: int
    ami_id: str  # the image the default `bastion.ami` ("debian-13") resolves to, on amd64
    images: dict[str, str]  # Debian's public parameter -> the registered image it names


def seed_account(endpoint: str) -> AwsAccount:
    """Create what a user has before running `bastion`, through moto's HTTP API."""
    session = boto3.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )
    ec2 = session.client("ec2", endpoint_url=endpoint)
    redshift = session.client("redshift", endpoint_url=endpoint)
    ssm = session.client("ssm", endpoint_url=endpoint)

    # The VPC's private addresses are the lab range's slot 0, which no lab link serves: the
    # lab's unreachable route covers them, so nothing that dials one leaves the machine.
    vpc = ec2.create_vpc(CidrBlock=VPC_RANGE, TagSpecifications=_name("vpc", "analytics"))
    vpc_id = vpc["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    public = ec2.create_subnet(
        VpcId=vpc_id,
        CidrBlock="10.231.0.0/25",
        AvailabilityZone=f"{REGION}a",
        TagSpecifications=_name("subnet", "analytics-public-a"),
    )["Subnet"]["SubnetId"]
    private = ec2.create_subnet(
        VpcId=vpc_id,
        CidrBlock="10.231.0.128/25",
        AvailabilityZone=f"{REGION}a",
        TagSpecifications=_name("subnet", "analytics-private-a"),
    )["Subnet"]["SubnetId"]
    gateway = ec2.create_internet_gateway(
        TagSpecifications=_name("internet-gateway", "analytics-igw")
    )
    igw = gateway["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=igw, VpcId=vpc_id)
    table = ec2.create_route_table(
        VpcId=vpc_id, TagSpecifications=_name("route-table", "analytics-public")
    )["RouteTable"]["RouteTableId"]
    ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=igw)
    ec2.associate_route_table(RouteTableId=table, SubnetId=public)

    group = ec2.create_security_group(
        GroupName="redshift-prod",
        Description="Redshift prod cluster",
        VpcId=vpc_id,
        TagSpecifications=_name("security-group", "redshift-prod"),
    )["GroupId"]
    # A rule the user already has: the tool must leave it alone.
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {
                "IpProtocol": "tcp",
                "FromPort": CLUSTER_PORT,
                "ToPort": CLUSTER_PORT,
                "IpRanges": [{"CidrIp": VPC_RANGE, "Description": "VPC clients"}],
            }
        ],
    )
    redshift.create_cluster_subnet_group(
        ClusterSubnetGroupName="analytics-private",
        Description="private subnets",
        SubnetIds=[private],
    )
    cluster = redshift.create_cluster(
        ClusterIdentifier=CLUSTER_ID,
        NodeType="ra3.xlplus",
        MasterUsername="admin",
        MasterUserPassword="Lab-only-1",
        DBName="analytics",
        Port=CLUSTER_PORT,
        ClusterType="single-node",
        ClusterSubnetGroupName="analytics-private",
        VpcSecurityGroupIds=[group],
        PubliclyAccessible=False,
    )["Cluster"]
    images = publish_debian_images(ec2, ssm)
    return AwsAccount(
        vpc_id=vpc_id,
        public_subnet_id=public,
        private_subnet_id=private,
        internet_gateway_id=igw,
        public_route_table_id=table,
        warehouse_security_group_id=group,
        cluster_subnet_group="analytics-private",
        cluster_id=CLUSTER_ID,
        cluster_endpoint=cluster["Endpoint"]["Address"],
        cluster_port=CLUSTER_PORT,
        ami_id=images[DEFAULT_IMAGE_PARAMETER],
        images=images,
    )


def publish_debian_images(ec2: Any, ssm: Any) -> dict[str, str]:
    """Register an image for each of DEBIAN_PARAMETERS and publish the parameter naming it,
    as Debian does in every region; returns parameter -> image id.

    moto must accept PutParameter under /aws/service/ (moto_public.py): MotoServer starts it
    so, a test serving moto in its own process calls accept_public_parameters() first.
    """
    images = {}
    for parameter, name in DEBIAN_PARAMETERS.items():
        image = ec2.register_image(Name=f"{name}-lab", Description=f"the lab's {name}")
        try:
            ssm.put_parameter(
                Name=parameter, Value=image["ImageId"], Type="String", DataType="aws:ec2:image"
            )
        except ClientError as exc:
            raise LabAwsError(
                f"moto refused to publish {parameter} ({exc}): start it as MotoServer does, "
                "or call tests.lab.moto_public.accept_public_parameters() in its process"
            ) from None
        images[parameter] = image["ImageId"]
    return images


def _name(resource_type: str, name: str) -> list[Any]:
    return [{"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": name}]}]
