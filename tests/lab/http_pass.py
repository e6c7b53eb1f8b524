"""A request passed on to the lab's moto and its answer back: what the AWS fault proxy and
the Instance Connect Endpoint's stand-in do with every call they do not answer themselves."""

from __future__ import annotations

import http.client
import urllib.parse
from http.server import BaseHTTPRequestHandler

Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body
# set again for the answer as sent (its body is whole, its connection the handler's)
_HOP_HEADERS = ("transfer-encoding", "connection", "content-length")


def pass_on(
    handler: BaseHTTPRequestHandler, target: urllib.parse.SplitResult, body: bytes
) -> Answer:
    """The handler's request (its method, path and headers, `body`) sent to `target`."""
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
    try:
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "host"}
        headers["Host"] = target.netloc
        connection.request(handler.command, handler.path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def send_answer(handler: BaseHTTPRequestHandler, answer: Answer) -> None:
    """`answer` written back to the handler's client."""
    status, headers, body = answer
    handler.send_response(status)
    for name, value in headers:
        if name.lower() not in _HOP_HEADERS:
            handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
