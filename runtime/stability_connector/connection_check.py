"""Test a connection: the connector's ``connection.test`` request (``GET /v1/user/account``),
sent like any run (client headers, key at send time, rate limiter, retry policy).

The outcome says which connection and base URL were tested, and either the account
(id and email; never the key) or what went wrong with what to change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .connection import DEFAULT_NAME, SANDBOX_NAME, Connection
from .definitions import ConnectorSpec
from .errors import (
    ApiError,
    AuthenticationError,
    ConnectorError,
    ContentModerationError,
    ExecutionError,
    NotFoundError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    TransportError,
)
from .request import render_spec
from .transport import Attempt, PreparedRequest, Sender


@dataclass
class ConnectionCheck:
    """What testing a connection found. ``ok``: the API accepted the key."""

    ok: bool
    connection: str
    base_url: str
    sandbox: bool
    request: str
    status: int | None = None
    account: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    hint: str | None = None
    attempts: list[Attempt] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def key_variable(connector: ConnectorSpec, name: str) -> str | None:
    """The environment variable holding the connection's key (None for the sandbox)."""
    if name == SANDBOX_NAME:
        return None
    named = connector.connection.named.get(name)
    return named.api_key_env if named is not None else connector.connection.api_key.env


def connection_test_request(connector: ConnectorSpec, base_url: str) -> PreparedRequest:
    """The connector's ``connection.test`` request, rendered (it takes no inputs)."""
    request = render_spec(
        connector.connection.test, {}, place="connector.yaml: connection.test", base_url=base_url
    )
    request.headers.setdefault("accept", "application/json")
    return request


def _hint(error: ConnectorError, connector: ConnectorSpec, conn: Connection) -> str:
    variable = key_variable(connector, conn.name)
    key_place = f"the environment variable {variable}" if variable else "the connection's key"
    named = connector.connection.named.get(conn.name)
    if conn.name == DEFAULT_NAME:
        base = "STABILITY_BASE_URL"
    elif named is not None and named.base_url_env:
        base = f"{named.base_url_env} (or the connection's base_url)"
    else:
        base = "the connection's base_url"
    if isinstance(error, AuthenticationError):
        return f"the API key was refused: check {key_place} (a key from platform.stability.ai)"
    if isinstance(error, PaymentRequiredError):
        return "the key works but the account has no credits: add credits to the account"
    if isinstance(error, ContentModerationError):
        return f"the key may not use this API: check the account, or use another key in {key_place}"
    if isinstance(error, NotFoundError):
        return f"{conn.base_url} does not answer like the Stability API: check {base}"
    if isinstance(error, RateLimitError):
        return "the key is rate limited: wait a minute, then test again"
    if isinstance(error, ServerError):
        return "a failure on Stability's side (or the proxy's): test again later"
    if isinstance(error, TransportError):
        return f"{conn.base_url} could not be reached: check the network, a proxy, or {base}"
    if isinstance(error, ApiError):
        return f"unexpected answer: check {base} and {key_place}"
    return "fix the connection settings named above"


async def check_connection(
    connector: ConnectorSpec,
    resolve: Callable[[], Connection],
    sender_for: Callable[[Connection], Sender],
    wanted: str | None = None,
) -> ConnectionCheck:
    """Send the connection test with the sender ``sender_for`` gives for the connection
    ``resolve`` finds (:meth:`Runtime.test_connection` passes its own); never raises
    for what the test finds: a refused key, an unreachable URL, a connection without
    a key."""
    spec = connector.connection.test
    try:
        conn = resolve()
    except ConnectorError as error:
        return ConnectionCheck(
            ok=False,
            connection=wanted or DEFAULT_NAME,
            base_url="",
            sandbox=False,
            request=f"{spec.method} {spec.path}",
            error=error.message,
            hint="set the key variable the message names, or pick another --connection",
        )
    check = ConnectionCheck(
        ok=False,
        connection=conn.name,
        base_url=conn.base_url,
        sandbox=conn.sandbox,
        request=f"{spec.method} {spec.path}",
    )
    log: list[Attempt] = []
    try:
        request = connection_test_request(connector, conn.base_url)
        check.request = f"{request.method} {request.path}"
        response = await sender_for(conn).send(request, log)
    except ConnectorError as error:
        check.attempts = list(log)
        if isinstance(error, ApiError):
            check.status = error.status
        elif isinstance(error, ExecutionError) and error.attempts:
            check.status = error.attempts[-1].status
        check.error = error.message
        check.hint = _hint(error, connector, conn)
        return check
    check.attempts = list(log)
    check.status = response.status_code
    check.ok = True
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        check.account = {k: body[k] for k in ("id", "email") if isinstance(body.get(k), str)}
    return check


__all__ = ["ConnectionCheck", "check_connection", "connection_test_request", "key_variable"]
