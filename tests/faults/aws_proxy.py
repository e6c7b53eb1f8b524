"""A tiny HTTP proxy in front of moto that answers chosen AWS actions with faults first.

Loopback only. For each action (`RunInstances`, ...) a queue of faults is served in order,
one per request of that action, then the proxy forwards as usual:

- `throttle`: 503 RequestLimitExceeded (EC2) / 400 Throttling, not forwarded;
- `unavailable`: 503 Unavailable, not forwarded;
- `lost`: forwarded to moto (the change is made) but the answer is replaced by a
  500 InternalError, as when a response is lost on its way back.

It also plays one AWS contract moto (5.x) lacks: RunInstances is idempotent by ClientToken
(a second call with the same token answers with the first call's instance), so concurrent
or retried launches are judged as AWS would judge them.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.lab.http_pass import Answer, pass_on, send_answer

FAULTS = {
    # kind: (status, code); EC2 names its throttling RequestLimitExceeded
    "throttle": (503, "RequestLimitExceeded"),
    "unavailable": (503, "Unavailable"),
    "lost": (500, "InternalError"),
}
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")


@dataclass
class FaultPlan:
    """Faults still to serve, by action; what was served; every action seen, in order; the
    ClientToken of every RunInstances request, in order."""

    pending: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    served: list[tuple[str, str]] = field(default_factory=list)
    seen: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    launches: dict[str, Answer] = field(default_factory=dict)
    launch_tokens: list[str] = field(default_factory=list)
    before: dict[str, Callable[[], None]] = field(default_factory=dict)  # run once, then forward
    launch_lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, action: str, *kinds: str) -> None:
        assert all(kind in FAULTS for kind in kinds), kinds
        with self.lock:
            self.pending[action].extend(kinds)

    def take(self, action: str) -> str | None:
        with self.lock:
            self.seen.append(action)
            queue = self.pending.get(action)
            if not queue:
                return None
            kind = queue.pop(0)
            self.served.append((action, kind))
            return kind

    def unserved(self) -> dict[str, list[str]]:
        with self.lock:
            return {action: list(kinds) for action, kinds in self.pending.items() if kinds}


def _error_body(service: str, code: str) -> bytes:
    message = f"fault injected by the test proxy: {code}"
    if service == "ec2":
        return (
            f"<?xml version='1.0' encoding='UTF-8'?><Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>fault</RequestID></Response>"
        ).encode()
    return (
        f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}"
        "</Message></Error><RequestId>fault</RequestId></ErrorResponse>"
    ).encode()


def _handler(upstream: str, plan: FaultPlan) -> type[BaseHTTPRequestHandler]:
    target = urllib.parse.urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _proxy(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            action = self._action(body)
            fault = plan.take(action) if action else None
            hook = plan.before.pop(action, None)
            if hook is not None:
                hook()
            if fault in ("throttle", "unavailable"):
                self._answer_fault(fault)
                return
            answer = self._launch(body) if action == "RunInstances" else pass_on(self, target, body)
            if fault == "lost":
                self._answer_fault(fault)
                return
            send_answer(self, answer)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _proxy

        def _action(self, body: bytes) -> str:
            amz_target = self.headers.get("X-Amz-Target", "")
            if amz_target:
                return amz_target.rsplit(".", 1)[-1]
            query = urllib.parse.urlsplit(self.path).query
            for source in (body.decode("utf-8", "replace"), query):
                values = urllib.parse.parse_qs(source).get("Action")
                if values:
                    return values[0]
            return ""

        def _launch(self, body: bytes) -> Answer:
            token = urllib.parse.parse_qs(body.decode()).get("ClientToken", [""])[0]
            with plan.lock:
                plan.launch_tokens.append(token)
            with plan.launch_lock:
                if token and token in plan.launches:
                    return plan.launches[token]
                answer = pass_on(self, target, body)
                if token and answer[0] == 200:
                    plan.launches[token] = answer
                return answer

        def _service(self) -> str:
            found = _SERVICE.search(self.headers.get("Authorization", ""))
            return found.group(1) if found else ""

        def _answer_fault(self, kind: str) -> None:
            status, code = FAULTS[kind]
            service = self._service()
            json_protocol = bool(self.headers.get("X-Amz-Target"))
            if kind == "throttle" and service != "ec2":
                status, code = 400, "ThrottlingException" if json_protocol else "Throttling"
            if json_protocol:
                message = f"fault injected by the test proxy: {code}"
                answer = json.dumps({"__type": code, "message": message}).encode()
                content_type = "application/x-amz-json-1.1"
            else:
                answer, content_type = _error_body(service, code), "text/xml"
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

    return Handler


@contextmanager
def fault_proxy(upstream: str, plan: FaultPlan) -> Iterator[str]:
    """http://127.0.0.1:<port> of a proxy to `upstream` serving `plan`'s faults."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(upstream, plan))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
