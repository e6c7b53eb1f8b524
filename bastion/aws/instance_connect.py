"""The admin path through an EC2 Instance Connect Endpoint (`admin_access = "eice"`).

The endpoint opens a TCP stream to port 22 of an instance in its VPC for any principal IAM
allows `ec2-instance-connect:OpenTunnel`: a websocket to `wss://<DnsName>/openTunnel`,
presigned with SigV4 query parameters for the service `ec2-instance-connect`, the stream in
BINARY frames. SSH then runs over it as over a socket, so no address of the runner is ever
named in the security group. `AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT` replaces the
`wss://<DnsName>` base, as `AWS_ENDPOINT_URL` does for the APIs (plain `ws://` only on a
loopback address: emulators and tests).

The presigned URL carries a signature: it is never printed, whole or in part.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from bastion.config.rules import loopback_host
from bastion.errors import AwsError, BastionError, ConfigError, SshError

if TYPE_CHECKING:
    import boto3

TUNNEL_PORT = 22  # the only SSH port an endpoint reaches (3389 is RDP's)
MAX_TUNNEL_SECONDS = 3600  # the service's limit for one connection
PRESIGN_SECONDS = 60
FRAME_BYTES = 65_000  # at most this much per BINARY frame, as the AWS CLI sends
ENDPOINT_ENV = "AWS_ENDPOINT_URL_EC2_INSTANCE_CONNECT"
READY_STATE = "create-complete"

IAM_HINT = (
    "grant ec2-instance-connect:OpenTunnel on the endpoint, with the conditions "
    "ec2-instance-connect:remotePort = 22, ec2-instance-connect:privateIpAddress = the "
    "instance's private address and ec2-instance-connect:maxTunnelDuration <= 3600 "
    "(`bastion iam-policy` prints the statement)"
)


@dataclass(frozen=True)
class InstanceConnectEndpoint:
    """An endpoint as DescribeInstanceConnectEndpoints shows it."""

    endpoint_id: str
    dns_name: str = ""
    state: str = ""
    subnet_id: str = ""
    vpc_id: str = ""
    security_group_ids: tuple[str, ...] = ()
    network_interface_ids: tuple[str, ...] = ()
    preserve_client_ip: bool = False

    @classmethod
    def from_aws(cls, found: Mapping[str, Any]) -> InstanceConnectEndpoint:
        return cls(
            endpoint_id=str(found["InstanceConnectEndpointId"]),
            dns_name=str(found.get("DnsName") or ""),
            state=str(found.get("State") or ""),
            subnet_id=str(found.get("SubnetId") or ""),
            vpc_id=str(found.get("VpcId") or ""),
            security_group_ids=tuple(sorted(found.get("SecurityGroupIds") or [])),
            network_interface_ids=tuple(sorted(found.get("NetworkInterfaceIds") or [])),
            preserve_client_ip=bool(found.get("PreserveClientIp")),
        )

    @property
    def ready(self) -> bool:
        return self.state == READY_STATE


def tunnel_base(endpoint: InstanceConnectEndpoint, environ: Mapping[str, str]) -> str:
    """`wss://<DnsName>`, or the override; refuses anything that would leave TLS off."""
    override = environ.get(ENDPOINT_ENV, "").strip().rstrip("/")
    if not override:
        if not endpoint.dns_name or not _plain_host(endpoint.dns_name):
            raise AwsError(
                f"the Instance Connect Endpoint {endpoint.endpoint_id} reports no usable DNS name "
                f"(state {endpoint.state or 'unknown'})",
                hint="wait until it is create-complete and re-run",
            )
        return f"wss://{endpoint.dns_name}"
    parts = urlsplit(override)
    if parts.scheme == "wss" and parts.hostname and not parts.path:
        return override
    if parts.scheme == "ws" and parts.hostname and not parts.path and loopback_host(parts.hostname):
        return override
    raise ConfigError(
        f"{ENDPOINT_ENV} must be wss://HOST[:PORT] (plain ws:// only on a loopback address)",
        hint=f"fix or unset {ENDPOINT_ENV}; the endpoint's own wss://<DnsName> is used without it",
    )


def presigned_url(
    session: boto3.Session,
    endpoint: InstanceConnectEndpoint,
    private_ip: str,
    *,
    port: int = TUNNEL_PORT,
    max_duration: int = MAX_TUNNEL_SECONDS,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The openTunnel URL, signed by botocore's own signer, valid for 60 s."""
    from botocore.signers import RequestSigner

    base = tunnel_base(endpoint, os.environ if environ is None else environ)
    core = session._session  # botocore's session under boto3's
    model = core.get_service_model("ec2-instance-connect")
    credentials = session.get_credentials()
    if credentials is None:
        raise AwsError(
            "no AWS credentials to sign the Instance Connect tunnel with",
            hint="set aws.profile or the AWS_* variables (in CI: the OIDC role's credentials)",
        )
    signer = RequestSigner(
        model.service_id,
        session.region_name,
        model.signing_name,
        model.signature_version,
        credentials,
        core.get_component("event_emitter"),
    )
    query = urlencode(
        {
            "instanceConnectEndpointId": endpoint.endpoint_id,
            "remotePort": port,
            "privateIpAddress": private_ip,
            "maxTunnelDuration": max_duration,
        }
    )
    request = {
        "url": f"{base}/openTunnel?{query}",
        "body": {},
        "headers": {"host": urlsplit(base).netloc},
        "method": "GET",
        "query_string": "",
        "url_path": "/",
        "context": {},
    }
    return str(
        signer.generate_presigned_url(
            request, operation_name="openTunnel", expires_in=PRESIGN_SECONDS
        )
    )


class WebSocketStream:
    """A websocket carrying a TCP stream, with the socket calls paramiko makes on its `sock`."""

    def __init__(
        self,
        connection: Any,
        peer: tuple[str, int],
        endpoint_id: str,
        opened: contextlib.ExitStack | None = None,
    ) -> None:
        self._ws = connection
        self._opened = opened or contextlib.ExitStack()
        self._peer = peer
        self._endpoint_id = endpoint_id
        self._buffer = bytearray()
        self._timeout: float | None = None
        self.closed = False

    @property
    def _closed(self) -> bool:
        """What paramiko's Transport.close() reads of its socket while its thread winds down."""
        return self.closed

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def gettimeout(self) -> float | None:
        return self._timeout

    def getpeername(self) -> tuple[str, int]:
        return self._peer

    def setsockopt(self, *args: Any) -> None:
        """No TCP options to set: the endpoint's side owns the TCP connection."""

    def send(self, data: bytes) -> int:
        from websockets.exceptions import ConnectionClosed

        view = memoryview(data)
        try:
            for start in range(0, len(view), FRAME_BYTES):
                self._ws.send(bytes(view[start : start + FRAME_BYTES]))
        except ConnectionClosed as exc:
            raise OSError(self._closed_reason(exc)) from None
        return len(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def recv(self, size: int) -> bytes:
        from websockets.exceptions import ConnectionClosed, ConnectionClosedOK

        if not self._buffer:
            try:  # TimeoutError (socket.timeout) passes on: paramiko polls with it
                frame = self._ws.recv(timeout=self._timeout)
            except ConnectionClosedOK:
                return b""
            except ConnectionClosed as exc:
                raise OSError(self._closed_reason(exc)) from None
            if isinstance(frame, str):
                self.close()
                raise OSError(
                    f"the Instance Connect Endpoint {self._endpoint_id} sent a text frame (an "
                    "error, not the stream): the tunnel was closed"
                )
            self._buffer += frame
        chunk = bytes(self._buffer[:size])
        del self._buffer[:size]
        return chunk

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):  # a broken websocket has nothing to report
                self._ws.close()
            with contextlib.suppress(Exception):
                self._opened.close()

    def _closed_reason(self, exc: Any) -> str:
        received = getattr(exc, "rcvd", None)
        code = getattr(received, "code", None)
        reason = getattr(received, "reason", "") or "no reason given"
        limit = (
            f"; one tunnel lasts at most {MAX_TUNNEL_SECONDS // 60} minutes (maxTunnelDuration "
            f"{MAX_TUNNEL_SECONDS}): re-run to open a new one"
        )
        return (
            f"the Instance Connect Endpoint {self._endpoint_id} closed the tunnel "
            f"(code {code}: {reason[:200]}){limit}"
        )


Dialer = Callable[[str, int, float], WebSocketStream]


def dialer(
    session: boto3.Session,
    endpoint: InstanceConnectEndpoint,
    *,
    environ: Mapping[str, str] | None = None,
) -> Dialer:
    """`dial(private_ip, port, timeout)`: a new tunnel through `endpoint` (one per SSH login)."""

    def dial(private_ip: str, port: int, timeout: float) -> WebSocketStream:
        return open_tunnel(
            session, endpoint, private_ip, port=port, timeout=timeout, environ=environ
        )

    return dial


def open_tunnel(
    session: boto3.Session,
    endpoint: InstanceConnectEndpoint,
    private_ip: str,
    *,
    port: int = TUNNEL_PORT,
    timeout: float = 10.0,
    environ: Mapping[str, str] | None = None,
) -> WebSocketStream:
    """Open one websocket tunnel; a refusal becomes an error that says what to fix."""
    from websockets.exceptions import InvalidHandshake, InvalidStatus
    from websockets.sync.client import connect

    if not endpoint.ready:
        raise SshError(
            f"the Instance Connect Endpoint {endpoint.endpoint_id} is not ready "
            f"(state {endpoint.state or 'unknown'})",
            hint="an endpoint takes minutes to create: wait until it is create-complete "
            "(`bastion status`) and re-run",
        )
    url = presigned_url(session, endpoint, private_ip, port=port, environ=environ)
    where = f"{private_ip}:{port} through {endpoint.endpoint_id}"
    opened = contextlib.ExitStack()  # the connection as its context manager, closed with it
    try:
        connection = opened.enter_context(
            connect(
                url,
                open_timeout=timeout,
                close_timeout=2,
                compression=None,
                max_size=None,
                user_agent_header="dbt-bastion",
            )
        )
    except InvalidStatus as exc:
        raise _refused(exc.response, where) from None
    except (OSError, InvalidHandshake) as exc:
        host = urlsplit(url).hostname
        raise OSError(
            f"cannot reach the Instance Connect Endpoint at {host} for {where}: "
            f"{exc or type(exc).__name__}"
        ) from None
    return WebSocketStream(connection, (private_ip, port), endpoint.endpoint_id, opened)


def _refused(response: Any, where: str) -> BastionError:
    """The service's refusal of the handshake: its status and message, and what to fix."""
    status = int(getattr(response, "status_code", 0) or 0)
    body = bytes(getattr(response, "body", b"") or b"").decode("utf-8", "replace")
    message = " ".join(body.split())[:300] or "no message"
    if status in (401, 403):
        return AwsError(
            f"the Instance Connect Endpoint refused the tunnel to {where} (HTTP {status}: "
            f"{message}): ec2-instance-connect:OpenTunnel denied or the request's signature "
            "not accepted",
            hint=f"{IAM_HINT}; check the clock and that the credentials are current",
        )
    if status == 400:
        return AwsError(
            f"the Instance Connect Endpoint refused the tunnel's parameters for {where} "
            f"(HTTP 400: {message})",
            hint=f"an endpoint reaches port {TUNNEL_PORT} of an instance in its VPC only, for "
            f"at most {MAX_TUNNEL_SECONDS} s per tunnel",
        )
    return AwsError(
        f"the Instance Connect Endpoint did not open the tunnel to {where} (HTTP {status}: "
        f"{message})",
        hint="the endpoint may not be ready yet, or at its 20 concurrent tunnels: wait and re-run",
    )


def _plain_host(name: str) -> bool:
    labels = name.split(".")
    return all(label and label.replace("-", "").isalnum() for label in labels)
