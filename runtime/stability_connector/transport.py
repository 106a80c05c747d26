"""Send one prepared request: rate-limit permit, then httpx, retried per the policy.

This is the connector's only retry layer (httpx is built without transport retries).
Every attempt, successful or not, is appended to the caller's run log as an ``Attempt``
with its status, duration, error and the wait that followed it. The API key becomes the
authorization header here, at send time, and nowhere else.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from .clock import Clock
from .connection import Connection
from .definitions import TimeoutsSpec
from .errors import ApiError, ApiErrorDetails, TransportError, api_error_for
from .ratelimit import RateLimiter
from .retry import RetryPolicy, Verdict, classify_exception, classify_status, parse_retry_after

logger = logging.getLogger(__name__)

# Error bodies that are not the API's JSON are shown only as a short hint: they may
# hold personal data (prompts).
_EXCERPT_CHARS = 200


@dataclass
class PreparedRequest:
    """A request ready to send, without the key. ``multipart=True`` always sends
    multipart/form-data, even with no file (v2beta refuses anything else)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    json: Any | None = None
    data: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    multipart: bool = False
    # The API bills this call: its outcome matters when the response is lost.
    paid: bool = False


@dataclass
class Attempt:
    """One HTTP attempt, as the run log shows it."""

    number: int
    method: str
    path: str
    status: int | None
    duration: float
    error: str | None
    wait_before_next: float | None
    may_have_been_charged: bool
    request_id: str | None
    kind: str = "send"  # "send" | "poll"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sender:
    """Sends prepared requests for one connection through its limiter and policy."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        connection: Connection,
        policy: RetryPolicy,
        limiter: RateLimiter,
        clock: Clock,
        client_headers: Mapping[str, str],
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.connection = connection
        self.policy = policy
        self.limiter = limiter
        self.clock = clock
        self.client_headers = dict(client_headers)
        self.rng = rng if rng is not None else random.Random()

    async def send(
        self,
        request: PreparedRequest,
        log: list[Attempt],
        kind: str = "send",
        *,
        min_wait: float = 0.0,
        on_attempt: Callable[[Attempt], None] | None = None,
    ) -> httpx.Response:
        """Send until a 2xx response, a final answer, no attempts left or the deadline.

        Returns the 2xx response (body read). Raises the error of the tree for the last
        answer (``errors.api_error_for``), or ``TransportError`` when there was none;
        the exception's ``attempts`` holds this call's attempts (also in ``log``).
        ``min_wait`` is a floor for every wait between attempts (polls keep their
        spacing). ``on_attempt`` sees each attempt once it is complete.
        """
        policy = self.policy
        headers, content = self._encode(request)
        started = self.clock.now()
        first = len(log)
        for number in range(1, policy.max_attempts + 1):
            await self.limiter.acquire()
            attempt_started = self.clock.now()
            response: httpx.Response | None = None
            failure: httpx.HTTPError | None = None
            try:
                response = await self._send_once(request, headers, content)
            except httpx.HTTPError as exc:
                failure = exc
            duration = self.clock.now() - attempt_started

            if response is not None and response.is_success:
                attempt = self._record(log, number, request, kind, response, None, duration)
                _report(attempt, on_attempt)
                return response

            details: ApiErrorDetails | None = None
            if response is not None:
                verdict = classify_status(response.status_code, paid=request.paid, policy=policy)
                details = self._details(response)
                error_text = _status_text(details)
            else:
                assert failure is not None
                verdict = classify_exception(failure, paid=request.paid, policy=policy)
                error_text = self._redact(_describe(failure))
            attempt = self._record(
                log, number, request, kind, response, error_text, duration, verdict
            )

            wait = self._wait_before_retry(number, response, min_wait)
            give_up = self._give_up_reason(number, verdict, wait, started)
            if give_up is None:
                attempt.wait_before_next = wait
            _report(attempt, on_attempt)
            if give_up is not None:
                error = self._final_error(request, details, error_text, log[first:], give_up)
                raise error
            logger.info(
                "%s %s: attempt %d failed (%s); retrying in %.2f s",
                request.method,
                request.path,
                number,
                error_text,
                wait,
            )
            await self.clock.sleep(wait)
        raise AssertionError("unreachable: the last attempt always gives up")  # pragma: no cover

    # --- one attempt ---------------------------------------------------------------

    def _encode(self, request: PreparedRequest) -> tuple[dict[str, str], bytes | None]:
        """Headers (without the key) and body bytes, built once for every attempt.
        Names are lower-cased so a request's header replaces a client header."""
        headers = {k.lower(): v for k, v in self.client_headers.items()}
        headers.update((k.lower(), v) for k, v in request.headers.items())
        content: bytes | None = None
        if request.multipart or request.files:
            boundary = os.urandom(16).hex()
            content = encode_multipart(request.data or {}, request.files or {}, boundary)
            headers["content-type"] = f"multipart/form-data; boundary={boundary}"
        elif request.json is not None:
            content = jsonlib.dumps(request.json, ensure_ascii=False).encode("utf-8")
            headers["content-type"] = "application/json"
        elif request.data:
            content = str(httpx.QueryParams(request.data)).encode("ascii")
            headers["content-type"] = "application/x-www-form-urlencoded"
        return headers, content

    async def _send_once(
        self, request: PreparedRequest, headers: dict[str, str], content: bytes | None
    ) -> httpx.Response:
        # The key joins the headers only now, in a copy that lives for this attempt.
        auth = {self.connection.auth_header.lower(): f"Bearer {self.connection.api_key.reveal()}"}
        headers = headers | auth
        built = self.client.build_request(
            request.method,
            request.path,
            params=request.params or None,
            headers=headers,
            content=content,
        )
        response = await self.client.send(built)
        _check_complete(response)
        return response

    def _record(
        self,
        log: list[Attempt],
        number: int,
        request: PreparedRequest,
        kind: str,
        response: httpx.Response | None,
        error: str | None,
        duration: float,
        verdict: Verdict | None = None,
    ) -> Attempt:
        request_id = None
        if response is not None:
            request_id = response.headers.get("x-request-id") or _body_id(response)
        attempt = Attempt(
            number=number,
            method=request.method,
            path=request.path,
            status=response.status_code if response is not None else None,
            duration=duration,
            error=error,
            wait_before_next=None,
            may_have_been_charged=verdict.may_have_been_charged if verdict else False,
            request_id=request_id,
            kind=kind,
        )
        log.append(attempt)
        logger.debug(
            "%s %s attempt %d: %s in %.3f s",
            request.method,
            request.path,
            number,
            attempt.status if attempt.status is not None else error,
            duration,
        )
        return attempt

    # --- waiting and giving up -----------------------------------------------------

    def _wait_before_retry(
        self, number: int, response: httpx.Response | None, min_wait: float
    ) -> float:
        """Full-jitter backoff, raised to ``Retry-After`` and, after a 429, to the pause
        every sender on the key now observes."""
        wait = max(min_wait, self.policy.delay(number, self.rng))
        if response is None:
            return wait
        retry_after = parse_retry_after(
            response.headers.get("retry-after"),
            date=response.headers.get("date"),
            now=time.time(),
        )
        if retry_after is not None:
            wait = max(wait, retry_after)
        if response.status_code == 429:
            pause = retry_after if retry_after is not None else self.limiter.penalty_seconds
            self.limiter.pause(pause)
            wait = max(wait, pause)
        return wait

    def _give_up_reason(
        self, number: int, verdict: Verdict, wait: float, started: float
    ) -> str | None:
        policy = self.policy
        if verdict.held_back:
            return (
                "the request may have reached the API and been charged, so it was not sent "
                "again (the retry policy's retry_unknown_outcome is off)"
            )
        if not verdict.retry:
            return "final"
        if number >= policy.max_attempts:
            return f"gave up after {number} attempt{'s' if number != 1 else ''}"
        if self.clock.now() + wait - started > policy.deadline:
            return (
                f"gave up after {number} attempt{'s' if number != 1 else ''}: the next wait "
                f"({wait:.1f} s) would pass the retry deadline of {policy.deadline:g} s"
            )
        return None

    def _final_error(
        self,
        request: PreparedRequest,
        details: ApiErrorDetails | None,
        error_text: str,
        attempts: list[Attempt],
        give_up: str,
    ) -> ApiError | TransportError:
        charged = any(a.may_have_been_charged for a in attempts)
        error: ApiError | TransportError
        if details is not None:
            error = api_error_for(details)
            if give_up != "final":
                error.add_note(give_up)
        else:
            where = httpx.URL(self.connection.base_url).host
            message = f"{request.method} {request.path}: no response from {where} ({error_text})"
            if give_up != "final":
                message += f"; {give_up}"
            if charged and request.paid:
                message += (
                    ". The request may have been charged: check the account before sending it again"
                )
            error = TransportError(message, may_have_been_charged=charged)
        error.attempts = tuple(attempts)
        return error

    # --- reading answers -----------------------------------------------------------

    def _details(self, response: httpx.Response) -> ApiErrorDetails:
        """The API's own words: v2beta ``{id, name, errors[]}`` or v1 ``{id, name, message}``."""
        details = ApiErrorDetails(status=response.status_code)
        body = _json_or_none(response)
        if isinstance(body, dict):
            details.id = _text_or_none(body.get("id"))
            details.name = _text_or_none(body.get("name"))
            message = body.get("message")
            details.message = self._redact(message) if isinstance(message, str) else None
            errors = body.get("errors")
            if isinstance(errors, list):
                details.errors = [self._redact(str(e)) for e in errors]
        else:
            content_type = response.headers.get("content-type", "no content type")
            if "html" in content_type or not response.content:
                details.message = f"the answer was not the API's JSON ({content_type})"
            else:
                excerpt = response.text[:_EXCERPT_CHARS].strip()
                details.message = self._redact(excerpt) or None
        details.request_id = response.headers.get("x-request-id")
        return details

    def _redact(self, text: str) -> str:
        """Nothing the server sends back (or an exception says) may carry the key."""
        key = self.connection.api_key.reveal()
        return text.replace(key, "****") if key else text


class TruncatedBodyError(httpx.RemoteProtocolError):
    """The body ended before its announced Content-Length."""


def _check_complete(response: httpx.Response) -> None:
    """A body shorter than its Content-Length is a lost answer, not a success."""
    announced = response.headers.get("content-length")
    if announced is None or response.headers.get("content-encoding"):
        return
    if response.request.method == "HEAD" or response.status_code in (204, 304):
        return  # these answers announce a length but carry no body
    try:
        expected = int(announced)
    except ValueError:
        return
    got = len(response.content)
    if got < expected:
        raise TruncatedBodyError(
            f"the response body was cut short ({got} of {expected} bytes)",
            request=response.request,
        )


def _report(attempt: Attempt, on_attempt: Callable[[Attempt], None] | None) -> None:
    if on_attempt is not None:
        on_attempt(attempt)


def _describe(exc: httpx.HTTPError) -> str:
    detail = str(exc).strip()
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def _status_text(details: ApiErrorDetails) -> str:
    text = f"HTTP {details.status}"
    return f"{text} {details.name}" if details.name else text


def _json_or_none(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _body_id(response: httpx.Response) -> str | None:
    body = _json_or_none(response)
    return _text_or_none(body.get("id")) if isinstance(body, dict) else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def encode_multipart(
    data: Mapping[str, Any], files: Mapping[str, tuple[str, bytes, str]], boundary: str
) -> bytes:
    """A multipart/form-data body (RFC 7578). Written here rather than left to httpx,
    which sends an urlencoded body whenever there is no file."""

    def disposition(name: str, filename: str | None = None) -> str:
        text = f'Content-Disposition: form-data; name="{_quote(name)}"'
        return f'{text}; filename="{_quote(filename)}"' if filename is not None else text

    dash = f"--{boundary}\r\n".encode("ascii")
    chunks: list[bytes] = []
    for name, value in data.items():
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            chunks += [dash, f"{disposition(name)}\r\n\r\n".encode(), _form_value(item), b"\r\n"]
    for name, (filename, payload, content_type) in files.items():
        head = f"{disposition(name, filename)}\r\nContent-Type: {content_type}\r\n\r\n"
        chunks += [dash, head.encode(), payload, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks)


def _quote(text: str) -> str:
    # The HTML form encoding of names in a Content-Disposition header.
    return text.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _form_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    return str(value).encode("utf-8")


def build_client(connection: Connection, timeouts: TimeoutsSpec) -> httpx.AsyncClient:
    """The httpx client for a connection: explicit timeouts (a generation takes up to a
    minute), no redirects (the key must not follow one), no transport retries (the
    policy is the only retry layer). The sandbox connection runs the built-in sandbox
    in this process."""
    timeout = httpx.Timeout(
        connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
    )
    if connection.sandbox:
        from .sandbox import default_sandbox  # imported late: only the sandbox needs it

        return httpx.AsyncClient(
            base_url=connection.base_url,
            timeout=timeout,
            follow_redirects=False,
            transport=httpx.ASGITransport(app=default_sandbox().app),
        )
    return httpx.AsyncClient(base_url=connection.base_url, timeout=timeout, follow_redirects=False)
