"""One HTTP client for the vendors' APIs (httpx): TLS verified, timeouts on every call,
429 and 5xx retried with backoff honouring Retry-After, and the answers' failures turned
into the tool's own errors. Credentials go in headers only and never into a message.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from bastion.errors import InputError, VendorError

TIMEOUT = httpx.Timeout(20.0, connect=10.0)
ATTEMPTS = 4
MAX_WAIT = 30.0
_RETRIED = {429, 500, 502, 503, 504}


class VendorApi:
    """A vendor's API at `base` with fixed auth; `who` names the vendor and `credentials`
    the variables holding the secrets, for messages."""

    def __init__(
        self,
        base: str,
        *,
        who: str,
        credentials: str,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base = base.rstrip("/")
        self.who = who
        self.credentials = credentials
        self._sleep = sleep
        self._client = httpx.Client(
            headers={"Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=TIMEOUT,
            verify=True,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> VendorApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def call(
        self, method: str, path: str, *, what: str, json: Any = None, params: Any = None
    ) -> Any:
        """The decoded JSON answer of `method path`; `what` names the object for a 404."""
        url = f"{self.base}{path}"
        # A read is retried on any failure; a write only where the request cannot have
        # been acted on (no connection made, or 429: refused before it was read), so a
        # save is never made twice.
        safe = method == "GET"
        retried = _RETRIED if safe else {429}
        for attempt in range(1, ATTEMPTS + 1):
            try:
                answer = self._client.request(method, url, json=json, params=params)
            except httpx.TransportError as exc:
                unsent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout))
                if attempt == ATTEMPTS or not (safe or unsent):
                    raise VendorError(
                        f"{self.who}'s API at {self.base} did not answer {method} {path}: "
                        f"{type(exc).__name__}",
                        hint="check the api url and this machine's route to it"
                        + ("" if safe else "; run again: the next run reads what was saved"),
                    ) from None
                self._sleep(min(2.0**attempt, MAX_WAIT))
                continue
            if answer.status_code in retried and attempt < ATTEMPTS:
                self._sleep(retry_after(answer.headers.get("Retry-After"), attempt))
                continue
            return self._decode(answer, method, path, what)
        raise AssertionError("unreachable")

    def _decode(self, answer: httpx.Response, method: str, path: str, what: str) -> Any:
        status = answer.status_code
        if status in (401, 403):
            raise VendorError(
                f"{self.who}'s API refused the credentials ({status}) for {method} {path}",
                hint=f"check {self.credentials}: set, current, and allowed to "
                f"{'write' if method != 'GET' else 'read'} {what}",
            )
        if status == 404 and method != "GET":  # gone between the read and the write
            raise VendorError(
                f"{self.who} no longer has {what} (404 for {method} {path})",
                hint="it was deleted meanwhile; check the ids in the tunnel's api table and "
                "run again",
            )
        if status == 404:
            raise InputError(
                f"{self.who} has no {what} (404 for {method} {path})",
                hint="check the ids in the tunnel's api table",
            )
        if status >= 400:
            raise VendorError(
                f"{self.who}'s API answered {status} to {method} {path}: {_brief(answer)}",
                hint="try again later; if it persists, check the api settings",
            )
        try:
            return answer.json()
        except ValueError:
            raise VendorError(
                f"{self.who}'s API answered {method} {path} with something not JSON",
                hint="check that the api url points at the API (it ends in /api for dbt Cloud)",
            ) from None


def retry_after(header: str | None, attempt: int) -> float:
    """Seconds to wait: Retry-After (seconds or an HTTP date), else backoff; at most 30 s."""
    if header:
        text = header.strip()
        if text.isdigit():
            return min(float(text), MAX_WAIT)
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            when = None
        if when is not None:
            return min(max((when - datetime.now(UTC)).total_seconds(), 0.0), MAX_WAIT)
    return min(2.0**attempt, MAX_WAIT)


def _brief(answer: httpx.Response) -> str:
    """The vendor's own message, short, printable."""
    try:
        body = answer.json()
    except ValueError:
        return answer.reason_phrase
    status = body.get("status", {}) if isinstance(body, dict) else {}
    message = (status.get("user_message") if isinstance(status, dict) else None) or (
        body.get("message") if isinstance(body, dict) else None
    )
    text = str(message or answer.reason_phrase)
    return "".join(ch for ch in text if ch.isprintable())[:200]
