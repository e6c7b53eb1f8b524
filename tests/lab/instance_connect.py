"""A loopback stand-in for EC2 Instance Connect Endpoints, beside moto (which lacks them).

Two servers on 127.0.0.1, made from the service's contract (the AWS CLI v2's open-tunnel and
the EC2 API reference), not from the tool's code:

- an EC2 API proxy in front of moto that answers `CreateInstanceConnectEndpoint`,
  `DescribeInstanceConnectEndpoints` and `DeleteInstanceConnectEndpoint` itself (EC2's query
  protocol, XML answers) and forwards every other call to moto. An endpoint gets a network
  interface in moto with the address the relay connects from (`source_address`), so the
  address sshd sees is the one DescribeNetworkInterfaces reports, as with
  `PreserveClientIp = false` on AWS. A new endpoint is `create-in-progress` until the next
  Describe; a deleted one `delete-in-progress` until the next.
- the `openTunnel` websocket: the SigV4 query signature is recomputed with botocore's signer
  from the test credentials, the expiry (60 s) and the parameters are checked (the endpoint
  exists and is ready, `remotePort` 22, `privateIpAddress` a running instance of the
  endpoint's VPC, `maxTunnelDuration` at most 3600), and a refusal is an HTTP status on the
  handshake with the service's kind of message (403 signature or IAM, 400 parameters). An
  accepted tunnel relays BINARY frames to `relay_to` (the lab host's port 22) from
  `source_address`; a TEXT frame from the client ends it; at `maxTunnelDuration` it is
  closed with code 1008 and a reason.

`lab_instance_connect(lab, host)` sets it up on a lab (the e2e tests and the bench).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hmac
import itertools
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

import boto3

from tests.lab.http_pass import pass_on, send_answer
from tests.lab.network import ip

if TYPE_CHECKING:
    from tests.lab.lab import Lab

SERVICE = "ec2-instance-connect"
MAX_TUNNEL_SECONDS = 3600
FRAME_BYTES = 65_000
_NS = "http://ec2.amazonaws.com/doc/2016-11-15/"


@dataclass
class Endpoint:
    endpoint_id: str
    subnet_id: str
    vpc_id: str
    groups: list[str]
    tags: list[tuple[str, str]]
    interface_id: str
    preserve_client_ip: bool
    client_token: str
    state: str = "create-in-progress"

    @property
    def dns_name(self) -> str:
        return f"{self.endpoint_id}.{self.endpoint_id[-8:]}.ec2-instance-connect-endpoint.us-east-1.amazonaws.com"


@dataclass
class Tunnel:
    """One openTunnel request as the stand-in judged it."""

    client: str
    params: dict[str, str]
    status: int  # 101 when the tunnel opened
    reason: str = ""


@dataclass
class InstanceConnectStandIn:
    moto: str  # moto's endpoint URL
    relay_to: tuple[str, int]  # where an accepted tunnel goes (the lab host's sshd)
    source_address: str | None  # the endpoint's address: the relay connects from here
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    denied_keys: set[str] = field(default_factory=set)  # valid keys IAM does not allow
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    tunnels: list[Tunnel] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    api_url: str = ""
    tunnel_url: str = ""

    def ec2(self) -> Any:
        return boto3.client(
            "ec2",
            region_name=self.region,
            endpoint_url=self.moto,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
        )

    def env(self) -> dict[str, str]:
        """What the tool's environment needs to use the stand-in (and moto behind it)."""
        return {
            "AWS_ENDPOINT_URL": self.api_url,
            "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT": self.tunnel_url,
        }

    # --- the EC2 API ------------------------------------------------------------------

    def create(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        subnet_id = _one(params, "SubnetId")
        token = _one(params, "ClientToken")
        with self.lock:
            for endpoint in self.endpoints.values():
                if token and endpoint.client_token == token:
                    return 200, _answer(
                        "CreateInstanceConnectEndpoint",
                        _endpoint_xml(endpoint, "instanceConnectEndpoint"),
                    )
        subnets = self.ec2().describe_subnets(
            Filters=[{"Name": "subnet-id", "Values": [subnet_id]}]
        )["Subnets"]
        if not subnets:
            return 400, _error(
                "InvalidSubnetID.NotFound", f"The subnet ID '{subnet_id}' does not exist"
            )
        vpc_id = subnets[0]["VpcId"]
        with self.lock:
            if any(
                e.vpc_id == vpc_id and e.state != "delete-complete" for e in self.endpoints.values()
            ):
                return 400, _error(
                    "InstanceConnectEndpointLimitExceeded",
                    "You've reached the limit of Instance Connect Endpoints per VPC",
                )
        groups = _numbered(params, "SecurityGroupId")
        interface = self.ec2().create_network_interface(
            SubnetId=subnet_id,
            Groups=groups,
            Description="EC2 Instance Connect Endpoint",
            **({"PrivateIpAddress": self.source_address} if self.source_address else {}),
        )["NetworkInterface"]
        endpoint = Endpoint(
            endpoint_id="eice-" + secrets.token_hex(9)[:17],
            subnet_id=subnet_id,
            vpc_id=vpc_id,
            groups=groups,
            tags=_tags(params),
            interface_id=interface["NetworkInterfaceId"],
            preserve_client_ip=_one(params, "PreserveClientIp").lower() == "true",
            client_token=token,
        )
        with self.lock:
            self.endpoints[endpoint.endpoint_id] = endpoint
        return 200, _answer(
            "CreateInstanceConnectEndpoint",
            _endpoint_xml(endpoint, "instanceConnectEndpoint")
            + f"<clientToken>{escape(token)}</clientToken>",
        )

    def describe(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        ids = _numbered(params, "InstanceConnectEndpointId")
        filters = _filters(params)
        found = []
        with self.lock:
            for endpoint in self.endpoints.values():
                if ids and endpoint.endpoint_id not in ids:
                    continue
                if not _matches(endpoint, filters):
                    continue
                found.append(_endpoint_xml(endpoint, "item"))
                # time passes between two looks: creation and deletion finish
                endpoint.state = {"create-in-progress": "create-complete",
                                  "delete-in-progress": "delete-complete"}.get(endpoint.state, endpoint.state)  # fmt: skip
            missing = [i for i in ids if i not in self.endpoints]
        if missing:
            return 400, _error(
                "InvalidInstanceConnectEndpointId.NotFound",
                f"The instance connect endpoint ID '{missing[0]}' does not exist",
            )
        body = "<instanceConnectEndpointSet>" + "".join(found) + "</instanceConnectEndpointSet>"
        return 200, _answer("DescribeInstanceConnectEndpoints", body)

    def delete(self, params: dict[str, list[str]]) -> tuple[int, bytes]:
        endpoint_id = _one(params, "InstanceConnectEndpointId")
        with self.lock:
            endpoint = self.endpoints.get(endpoint_id)
            if endpoint is None or endpoint.state == "delete-complete":
                return 400, _error(
                    "InvalidInstanceConnectEndpointId.NotFound",
                    f"The instance connect endpoint ID '{endpoint_id}' does not exist",
                )
            endpoint.state = "delete-in-progress"
        with contextlib.suppress(Exception):
            self.ec2().delete_network_interface(NetworkInterfaceId=endpoint.interface_id)
        return 200, _answer(
            "DeleteInstanceConnectEndpoint", _endpoint_xml(endpoint, "instanceConnectEndpoint")
        )

    # --- openTunnel -------------------------------------------------------------------

    def judge(self, host: str, path: str) -> tuple[int, str, dict[str, str]]:
        """(HTTP status, message, parameters) for a handshake; 101 when the tunnel may open."""
        parts = urllib.parse.urlsplit(path)
        if parts.path != "/openTunnel":
            return 404, "Not Found", {}
        pairs = parts.query.split("&") if parts.query else []
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        refused = self._check_signature(host, parts.path, pairs, params)
        if refused:
            return 403, refused, params
        access_key = params["X-Amz-Credential"].split("/")[0]
        if access_key in self.denied_keys:
            return (
                403,
                (
                    "AccessDeniedException: User is not authorized to perform: "
                    "ec2-instance-connect:OpenTunnel on resource: instance-connect-endpoint/"
                    f"{params.get('instanceConnectEndpointId', '')}"
                ),
                params,
            )
        return *self._check_parameters(params), params

    def _check_signature(
        self, host: str, path: str, pairs: list[str], params: dict[str, str]
    ) -> str:
        from botocore.auth import SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        needed = (
            "X-Amz-Algorithm",
            "X-Amz-Credential",
            "X-Amz-Date",
            "X-Amz-Expires",
            "X-Amz-SignedHeaders",
            "X-Amz-Signature",
        )
        if any(name not in params for name in needed):
            return "MissingAuthenticationToken: the request is not signed (SigV4 query parameters)"
        if params["X-Amz-Algorithm"] != "AWS4-HMAC-SHA256":
            return "IncompleteSignature: unsupported algorithm"
        scope = params["X-Amz-Credential"].split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            return "IncompleteSignature: malformed credential scope"
        access_key, _, region, service, _ = scope
        if access_key != self.access_key and access_key not in self.denied_keys:
            return (
                "UnrecognizedClientException: The security token included in the request is invalid"
            )
        if service != SERVICE or region != self.region:
            return f"SignatureDoesNotMatch: credential should be scoped to {self.region}/{SERVICE}"
        try:
            signed_at = dt.datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
                tzinfo=dt.UTC
            )
            expires = int(params["X-Amz-Expires"])
        except ValueError:
            return "IncompleteSignature: bad X-Amz-Date or X-Amz-Expires"
        now = dt.datetime.now(dt.UTC)
        if not (
            signed_at - dt.timedelta(minutes=5) <= now <= signed_at + dt.timedelta(seconds=expires)
        ):
            return "SignatureDoesNotMatch: Signature expired"
        unsigned = "&".join(p for p in pairs if not p.startswith("X-Amz-Signature="))
        request = AWSRequest(
            method="GET", url=f"http://{host}{path}?{unsigned}", headers={"host": host}
        )
        request.context["timestamp"] = params["X-Amz-Date"]
        secret = self.secret_key  # the denied keys share the secret: they differ only in IAM
        auth = SigV4QueryAuth(
            Credentials(access_key, secret, params.get("X-Amz-Security-Token")),
            service,
            region,
            expires=expires,
        )
        expected = auth.signature(
            auth.string_to_sign(request, auth.canonical_request(request)), request
        )
        if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
            return (
                "SignatureDoesNotMatch: The request signature we calculated does not match the "
                "signature you provided"
            )
        return ""

    def _check_parameters(self, params: dict[str, str]) -> tuple[int, str]:
        endpoint_id = params.get("instanceConnectEndpointId", "")
        with self.lock:
            endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None or endpoint.state in ("delete-in-progress", "delete-complete"):
            return 400, f"InvalidParameter: instance connect endpoint {endpoint_id} does not exist"
        if endpoint.state != "create-complete":
            return (
                400,
                f"InvalidParameter: instance connect endpoint {endpoint_id} is {endpoint.state}",
            )
        if params.get("remotePort") != "22":
            return 400, "InvalidParameter: remotePort must be 22 (or 3389)"
        duration = params.get("maxTunnelDuration", str(MAX_TUNNEL_SECONDS))
        if not duration.isdigit() or not 1 <= int(duration) <= MAX_TUNNEL_SECONDS:
            return (
                400,
                f"InvalidParameter: maxTunnelDuration must be 1 to {MAX_TUNNEL_SECONDS} seconds",
            )
        address = params.get("privateIpAddress", "")
        reservations = self.ec2().describe_instances(
            Filters=[
                {"Name": "private-ip-address", "Values": [address]},
                {"Name": "vpc-id", "Values": [endpoint.vpc_id]},
                {"Name": "instance-state-name", "Values": ["running"]},
            ]
        )["Reservations"]
        if not any(r["Instances"] for r in reservations):
            return 400, f"InvalidParameter: no running instance at {address} in {endpoint.vpc_id}"
        return 101, ""

    def relay(self, connection: Any, params: dict[str, str]) -> None:
        """The stream: BINARY frames <-> the lab host's port 22, until either side ends."""
        from websockets.exceptions import ConnectionClosed

        duration = int(params.get("maxTunnelDuration", MAX_TUNNEL_SECONDS))
        source = (self.source_address, 0) if self.source_address else None
        try:
            upstream = socket.create_connection(self.relay_to, timeout=10, source_address=source)
        except OSError as exc:
            connection.close(1011, f"cannot reach the instance: {exc}")
            return
        upstream.settimeout(None)
        done = threading.Event()

        def to_instance() -> None:
            try:
                while not done.is_set():
                    frame = connection.recv()
                    if isinstance(frame, str):
                        connection.close(1003, "text frames are not a stream")
                        break
                    upstream.sendall(frame)
            except (ConnectionClosed, OSError):
                pass
            finally:
                done.set()
                with contextlib.suppress(OSError):
                    upstream.shutdown(socket.SHUT_RDWR)

        reader = threading.Thread(target=to_instance, daemon=True)
        reader.start()
        timer = threading.Timer(
            duration, lambda: connection.close(1008, "the tunnel reached its maxTunnelDuration")
        )
        timer.daemon = True
        timer.start()
        try:
            while not done.is_set():
                data = upstream.recv(FRAME_BYTES)
                if not data:
                    break
                connection.send(data)
        except (ConnectionClosed, OSError):
            pass
        finally:
            done.set()
            timer.cancel()
            upstream.close()
            with contextlib.suppress(Exception):
                connection.close()
            reader.join(timeout=5)


def _api_handler(stand_in: InstanceConnectStandIn) -> type[BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(stand_in.moto)
    ours = {
        "CreateInstanceConnectEndpoint": stand_in.create,
        "DescribeInstanceConnectEndpoints": stand_in.describe,
        "DeleteInstanceConnectEndpoint": stand_in.delete,
    }

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            return

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            params = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            action = _one(params, "Action")
            if action in ours and not self.headers.get("X-Amz-Target"):
                status, answer = ours[action](params)
                send_answer(self, (status, [("Content-Type", "text/xml")], answer))
            else:
                send_answer(self, pass_on(self, target, body))

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve

    return Handler


@contextlib.contextmanager
def instance_connect_stand_in(
    moto: str,
    relay_to: tuple[str, int],
    source_address: str | None,
    access_key: str,
    secret_key: str,
    *,
    region: str = "us-east-1",
) -> Iterator[InstanceConnectStandIn]:
    """Both servers on 127.0.0.1 for as long as the block runs."""
    from websockets.http11 import Response
    from websockets.sync.server import serve

    stand_in = InstanceConnectStandIn(
        moto, relay_to, source_address, access_key, secret_key, region
    )
    api = ThreadingHTTPServer(("127.0.0.1", 0), _api_handler(stand_in))
    api.daemon_threads = True
    stand_in.api_url = f"http://127.0.0.1:{api.server_address[1]}"

    def process_request(connection: Any, request: Any) -> Response | None:
        host = request.headers.get("Host", "")
        status, message, params = stand_in.judge(host, request.path)
        client = f"{connection.remote_address[0]}"
        with stand_in.lock:
            stand_in.tunnels.append(Tunnel(client, params, status, message))
        if status == 101:
            connection.tunnel_params = params
            return None
        response: Response = connection.respond(status, message + "\n")
        return response

    def handler(connection: Any) -> None:
        stand_in.relay(connection, connection.tunnel_params)

    tunnels = serve(
        handler, "127.0.0.1", 0, process_request=process_request, compression=None, max_size=None
    )
    stand_in.tunnel_url = f"ws://127.0.0.1:{tunnels.socket.getsockname()[1]}"
    threads = [
        threading.Thread(target=api.serve_forever, daemon=True),
        threading.Thread(target=tunnels.serve_forever, daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        yield stand_in
    finally:
        tunnels.shutdown()
        api.shutdown()
        api.server_close()
        for thread in threads:
            thread.join(timeout=5)


@contextlib.contextmanager
def lab_instance_connect(lab: Lab, endpoint_host: int) -> Iterator[InstanceConnectStandIn]:
    """The stand-in on a lab: in front of its moto, relaying accepted tunnels to the lab
    host's port 22 from the operator's extra address 10.231.<slot>.<endpoint_host> (the
    endpoint's own: what sshd sees, and what DescribeNetworkInterfaces reports).

    The tool reaches the host at the instance's private address in moto's VPC, which only
    the endpoint may dial: meanwhile that VPC's range is an unreachable route, so a direct
    connection by mistake fails at once instead of leaving by the default route.
    """
    if lab.aws is None:
        raise RuntimeError("the Instance Connect stand-in needs a lab started with AWS")
    env = lab.aws_env()
    ec2 = boto3.client(
        "ec2",
        region_name=env["AWS_REGION"],
        endpoint_url=lab.moto_endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    (vpc,) = ec2.describe_vpcs(VpcIds=[lab.aws.vpc_id])["Vpcs"]
    with (
        unreachable_route(vpc["CidrBlock"]),
        lab.extra_operator_address(endpoint_host) as endpoint_address,
        instance_connect_stand_in(
            lab.moto_endpoint,
            (lab.bastion_address, lab.ssh_port),
            endpoint_address,
            env["AWS_ACCESS_KEY_ID"],
            env["AWS_SECRET_ACCESS_KEY"],
            region=env["AWS_REGION"],
        ) as stand_in,
    ):
        yield stand_in


@contextlib.contextmanager
def unreachable_route(network: str) -> Iterator[None]:
    """`network` unreachable from the root namespace while the block runs (left alone where
    a route for it exists already: another run guards it, or the machine uses it)."""
    if ip("route", "show", "exact", network).stdout.strip():
        yield
        return
    ip("route", "add", "unreachable", network)
    try:
        yield
    finally:
        ip("route", "del", "unreachable", network, check=False)


# --- EC2 query protocol ----------------------------------------------------------------


def _one(params: dict[str, list[str]], name: str) -> str:
    return params.get(name, [""])[0]


def _numbered(params: dict[str, list[str]], prefix: str) -> list[str]:
    found: list[str] = []
    for index in itertools.count(1):
        value = params.get(f"{prefix}.{index}")
        if value is None:
            return found
        found.append(value[0])
    return found


def _tags(params: dict[str, list[str]]) -> list[tuple[str, str]]:
    tags: list[tuple[str, str]] = []
    for spec in itertools.count(1):
        if f"TagSpecification.{spec}.ResourceType" not in params:
            return tags
        for index in itertools.count(1):
            key = params.get(f"TagSpecification.{spec}.Tag.{index}.Key")
            if key is None:
                break
            tags.append((key[0], _one(params, f"TagSpecification.{spec}.Tag.{index}.Value")))
    return tags


def _filters(params: dict[str, list[str]]) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for index in itertools.count(1):
        name = params.get(f"Filter.{index}.Name")
        if name is None:
            return found
        found.append((name[0], _numbered(params, f"Filter.{index}.Value")))
    return found


def _matches(endpoint: Endpoint, filters: list[tuple[str, list[str]]]) -> bool:
    tags = dict(endpoint.tags)
    for name, values in filters:
        if name.startswith("tag:"):
            have = tags.get(name[4:])
        else:
            have = {
                "instance-connect-endpoint-id": endpoint.endpoint_id,
                "state": endpoint.state,
                "vpc-id": endpoint.vpc_id,
                "subnet-id": endpoint.subnet_id,
            }.get(name)
        if have not in values:
            return False
    return True


def _endpoint_xml(endpoint: Endpoint, element: str) -> str:
    def items(values: list[str]) -> str:
        return "".join(f"<item>{escape(v)}</item>" for v in values)

    tags = "".join(
        f"<item><key>{escape(k)}</key><value>{escape(v)}</value></item>" for k, v in endpoint.tags
    )
    return (
        f"<{element}><ownerId>123456789012</ownerId>"
        f"<instanceConnectEndpointId>{endpoint.endpoint_id}</instanceConnectEndpointId>"
        f"<instanceConnectEndpointArn>arn:aws:ec2:us-east-1:123456789012:instance-connect-endpoint/{endpoint.endpoint_id}</instanceConnectEndpointArn>"
        f"<state>{endpoint.state}</state><stateMessage/>"
        f"<dnsName>{endpoint.dns_name}</dnsName><fipsDnsName/>"
        f"<networkInterfaceIdSet>{items([endpoint.interface_id])}</networkInterfaceIdSet>"
        f"<vpcId>{endpoint.vpc_id}</vpcId><subnetId>{endpoint.subnet_id}</subnetId>"
        f"<preserveClientIp>{str(endpoint.preserve_client_ip).lower()}</preserveClientIp>"
        f"<securityGroupIdSet>{items(endpoint.groups)}</securityGroupIdSet>"
        f"<tagSet>{tags}</tagSet></{element}>"
    )


def _answer(action: str, inner: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><{action}Response xmlns="{_NS}">'
        f"<requestId>{secrets.token_hex(8)}</requestId>{inner}</{action}Response>"
    ).encode()


def _error(code: str, message: str) -> bytes:
    return (
        f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
        f"<Message>{escape(message)}</Message></Error></Errors><RequestID>stand-in</RequestID></Response>"
    ).encode()
