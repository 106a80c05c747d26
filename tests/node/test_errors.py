"""How the API's errors reach the user: the exception of the tree, the API's own name,
message, request id and errors[], the retryable flag, and how many requests went out."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from stability_connector import errors
from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection, Secret
from stability_connector.node import Runtime
from stability_connector.sandbox import SANDBOX_BASE_URL, Fault, Sandbox, SandboxConfig

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio


async def failing(
    runtime: Runtime, connection: Connection, prompt: str = "a mug"
) -> errors.ApiError:
    with pytest.raises(errors.ApiError) as caught:
        await runtime.run("generate_image", {"prompt": prompt}, connection=connection)
    return caught.value


@pytest.mark.parametrize(
    ("status", "kind", "name", "retryable", "requests"),
    [
        (400, errors.InvalidRequestError, "bad_request", False, 1),
        (401, errors.AuthenticationError, "unauthorized", False, 1),
        (402, errors.PaymentRequiredError, "payment_required", False, 1),
        (403, errors.ContentModerationError, "content_moderation", False, 1),
        (413, errors.PayloadTooLargeError, "payload_too_large", False, 1),
        (422, errors.InvalidRequestError, "invalid_language", False, 1),
        (429, errors.RateLimitError, "rate_limit_exceeded", True, 5),
        (500, errors.ServerError, "internal_error", True, 5),
    ],
)
async def test_each_status_reaches_the_user_as_its_error(
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
    status: int,
    kind: type[errors.ApiError],
    name: str,
    retryable: bool,
    requests: int,
) -> None:
    sandbox.script([Fault(status=status)] * 5)
    error = await failing(runtime, connection)
    assert type(error) is kind
    assert error.status == status
    assert error.retryable is retryable
    assert error.details.name == name
    assert error.details.id is not None and error.details.id in str(error)
    said = error.details.message or "; ".join(error.details.errors)
    assert said and said in str(error)
    assert str(error).startswith(f"Stability API {status} {name}: ")
    assert str(error).endswith(kind.hint)
    # Never-retried statuses go out once; retried ones until the policy's 5 attempts.
    assert len(sandbox.journal) == requests
    assert [a.status for a in error.attempts] == [status] * requests
    shown = error.to_dict()
    assert shown["type"] == kind.__name__ and shown["status"] == status
    assert shown["name"] == name and shown["error_id"] == error.details.id
    # The body's error id (for support) and the request id every attempt shows.
    assert error.details.request_id == error.attempts[-1].request_id
    assert f"request id {error.details.request_id}" in str(error)
    assert shown["retryable"] is retryable


async def test_a_real_400_names_the_fields_the_api_refused(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    # Our validation would refuse this, so the generic request sends it as written.
    with pytest.raises(errors.InvalidRequestError) as caught:
        await runtime.run(
            "http_request",
            {
                "method": "POST",
                "path": "/v2beta/stable-image/generate/core",
                "encoding": "multipart",
                "body": {"aspect_ratio": "7:3"},
            },
            connection=connection,
        )
    error = caught.value
    assert error.details.errors, "the API's errors[] are kept"
    assert any("prompt" in e for e in error.details.errors)
    assert any("aspect_ratio" in e for e in error.details.errors)
    assert len(sandbox.journal) == 1


async def test_a_real_401_for_an_unknown_key(
    catalog: Catalog, clock: FakeClock, tmp_path: Path
) -> None:
    sandbox = Sandbox(SandboxConfig(clock=clock.now, keys=["sk-the-only-key"]))

    def client(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=sandbox.transport())

    wrong = Connection(name="test", base_url=SANDBOX_BASE_URL, api_key=Secret(TEST_KEY))
    async with Runtime(catalog, clock=clock, out_dir=tmp_path, client_factory=client) as runtime:
        error = await failing(runtime, wrong)
    assert isinstance(error, errors.AuthenticationError)
    assert TEST_KEY not in str(error) and TEST_KEY not in repr(error.to_dict())


async def test_a_real_402_when_the_credits_run_out(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    sandbox.set_credits(TEST_KEY, 2.0)  # Core costs 3
    error = await failing(runtime, connection)
    assert isinstance(error, errors.PaymentRequiredError)
    assert sandbox.balance(TEST_KEY) == 2.0


async def test_a_real_403_for_a_flagged_prompt(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    before = sandbox.balance(TEST_KEY)
    error = await failing(runtime, connection, prompt="a forbiddenword scene")
    assert isinstance(error, errors.ContentModerationError)
    assert "content moderation" in str(error)
    assert sandbox.balance(TEST_KEY) == before  # not charged


async def test_a_429_then_success_waits_and_recovers(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, clock: FakeClock
) -> None:
    sandbox.script([Fault(status=429), None])
    result = await runtime.run("generate_image", {"prompt": "a mug"}, connection=connection)
    assert [a.status for a in result.attempts] == [429, 200]
    wait = result.attempts[0].wait_before_next
    assert wait is not None and wait >= 60  # the key's documented timeout
    assert clock.now() >= 60
