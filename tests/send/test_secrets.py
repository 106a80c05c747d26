"""A recognisable key is sent on the wire and found nowhere else: not in exception
messages or reprs, not in tracebacks, not in any log record (DEBUG, httpx and httpcore
included), not in the run log."""

from __future__ import annotations

import logging
import traceback

import httpx
import pytest

from stability_connector.clock import FakeClock
from stability_connector.definitions import PollingSpec
from stability_connector.errors import ConnectorError
from stability_connector.jobs import wait_for_result
from stability_connector.ratelimit import RateLimiter
from stability_connector.retry import RetryPolicy
from stability_connector.sandbox import Fault, Sandbox, SandboxConfig
from stability_connector.transport import Attempt, PreparedRequest

from .conftest import TEST_KEY, SandboxRig, balance, generate, make_sender

pytestmark = pytest.mark.anyio


def everything_said(error: BaseException) -> str:
    """All an exception can show: message, repr, notes, dict form, full traceback."""
    parts = [str(error), repr(error), *getattr(error, "__notes__", [])]
    parts += traceback.format_exception(error)
    if isinstance(error, ConnectorError):
        parts.append(repr(error.to_dict()))
    for attempt in getattr(error, "attempts", ()):
        parts += [repr(attempt), repr(attempt.to_dict())]
    return "\n".join(parts)


async def test_the_key_appears_only_on_the_wire(
    rig: SandboxRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    said: list[str] = []
    log: list[Attempt] = []
    sender = rig.sender(RetryPolicy(max_attempts=2, retry_unknown_outcome=False))

    faults = [
        [Fault(status=500), Fault(status=503)],
        [Fault(status=400)],
        [Fault(status=429, retry_after=1), Fault(status=401)],
        [Fault(reset="before")],
        [Fault(reset="after")],
        [Fault(truncate=True)],
        [Fault(status=502, html=True)],
    ]
    for script in faults:
        rig.sandbox.script(script)
        with pytest.raises(ConnectorError) as caught:
            await sender.send(generate(), log)
        said.append(everything_said(caught.value))
    await sender.send(balance(), log)
    with pytest.raises(ConnectorError) as caught:
        await wait_for_result(sender, "/v2beta/results/" + "f" * 64, None, PollingSpec(), log, 0.0)
    said.append(everything_said(caught.value))

    # The sandbox did receive it (it journals the key's fingerprint, never the key).
    assert rig.sandbox.journal and all(e.key_fingerprint for e in rig.sandbox.journal)
    said += [repr(a) for a in log] + [repr(a.to_dict()) for a in log]
    said += [record.getMessage() for record in caplog.records]
    said += [repr(record.args) for record in caplog.records]
    said.append(caplog.text)
    text = "\n".join(said)
    assert "HTTP 500" in text and "RemoteProtocolError" in text  # things were said
    assert TEST_KEY not in text


async def test_a_server_echoing_the_key_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)

    def echo(request: httpx.Request) -> httpx.Response:
        token = request.headers["authorization"]
        return httpx.Response(
            400,
            json={
                "id": "e1",
                "name": "bad_request",
                "errors": [f"bad header {token}"],
                "message": f"you sent {token}",
            },
        )

    def echo_text(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, text=f"refused {request.headers['authorization']}")

    def raise_with_key(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot connect for {request.headers['authorization']}")

    said: list[str] = []
    for handler in (echo, echo_text, raise_with_key):
        log: list[Attempt] = []
        sender = make_sender(httpx.MockTransport(handler), policy=RetryPolicy(max_attempts=2))
        with pytest.raises(ConnectorError) as caught:
            await sender.send(PreparedRequest("GET", "/v1/user/account"), log)
        said.append(everything_said(caught.value))
        said += [repr(a) for a in log]
    said.append(caplog.text)
    text = "\n".join(said)
    assert "bad header" in text and "refused" in text and "cannot connect" in text
    assert TEST_KEY not in text


async def test_the_sandboxs_own_401_does_not_leak_the_key() -> None:
    clock = FakeClock()
    sandbox = Sandbox(SandboxConfig(keys=["the-only-accepted-key"], clock=clock.now))
    rig = SandboxRig(clock, sandbox, RateLimiter(150, 10.0, clock))
    with pytest.raises(ConnectorError) as caught:
        await rig.sender().send(generate(), [])
    assert caught.value.to_dict()["status"] == 401
    assert TEST_KEY not in everything_said(caught.value)
