"""Counting AWS API calls: a small HTTP proxy on loopback in front of moto.

bastion's boto3 code honours AWS_ENDPOINT_URL, so pointing it at this proxy instead of moto
records every call it makes (service and operation) without touching bastion or moto. Only
loopback is involved: the proxy listens on 127.0.0.1 and forwards to the lab's moto there.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

READ_PREFIXES = ("Describe", "Get", "List", "Lookup", "Search", "Head", "Check")
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/(?P<service>[^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class AwsCall:
    """One API call as the proxy saw it."""

    service: str
    operation: str

    @property
    def mutating(self) -> bool:
        """Whether the call can change anything: every AWS read starts with a read verb."""
        return not self.operation.startswith(READ_PREFIXES)

    def __str__(self) -> str:
        return f"{self.service}:{self.operation}"


def identify(method: str, path: str, headers: dict[str, str], body: bytes) -> AwsCall:
    """The service and operation of a request, for the query, JSON and REST protocols."""
    lowered = {name.lower(): value for name, value in headers.items()}
    scope = _CREDENTIAL_SCOPE.search(lowered.get("authorization", ""))
    service = scope.group("service") if scope else "?"
    target = lowered.get("x-amz-target", "")
    if target:  # JSON protocol (SSM, ...): "AmazonSSM.GetParameter"
        return AwsCall(service, target.rsplit(".", 1)[-1])
    query = parse_qs(urlsplit(path).query)
    if "Action" in query:
        return AwsCall(service, query["Action"][0])
    if "x-www-form-urlencoded" in lowered.get("content-type", ""):  # query protocol (EC2, ...)
        action = parse_qs(body.decode(errors="replace")).get("Action")
        if action:
            return AwsCall(service, action[0])
    return AwsCall(service, f"{method} {urlsplit(path).path}")  # REST protocols


class AwsCallCounter:
    """`with AwsCallCounter(moto_endpoint) as counter:` point boto3 at `counter.endpoint`."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in {"127.0.0.1", "localhost"} or parts.port is None:
            raise ValueError(f"the proxy forwards to loopback only, not {upstream}")
        self._upstream = (parts.hostname, parts.port)
        self._lock = threading.Lock()
        self.calls: list[AwsCall] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()

    def taken(self) -> list[AwsCall]:
        """The calls recorded so far, and a fresh count from here on."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls

    def __enter__(self) -> AwsCallCounter:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record(self, call: AwsCall) -> None:
        with self._lock:
            self.calls.append(call)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        counter = self

        class Forward(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = dict(self.headers.items())
                counter._record(identify(self.command, self.path, headers, body))
                upstream = http.client.HTTPConnection(*counter._upstream, timeout=120)
                try:
                    upstream.putrequest(
                        self.command, self.path, skip_host=True, skip_accept_encoding=True
                    )
                    for name, value in self.headers.items():
                        if name.lower() not in _HOP_BY_HOP:
                            upstream.putheader(name, value)
                    upstream.putheader("Content-Length", str(len(body)))
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    payload = response.read()
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in _HOP_BY_HOP and name.lower() not in {
                            "server",
                            "date",
                        }:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the bench prints its own table."""

        return Forward


def summarize(calls: list[AwsCall]) -> str:
    """`ec2:DescribeInstances x2, ssm:GetParameter` in call order of first appearance."""
    counts = Counter(str(call) for call in calls)
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.items())
