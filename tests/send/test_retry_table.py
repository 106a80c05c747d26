"""Every row of the retry table against the sandbox: the number of requests the
sandbox received (its journal) is the number of times a paid call could be billed."""

from __future__ import annotations

import anyio
import pytest

from stability_connector.clock import FakeClock
from stability_connector.errors import (
    ApiError,
    AuthenticationError,
    ContentModerationError,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    PaymentRequiredError,
    RateLimitError,
    ServerError,
    TransportError,
)
from stability_connector.retry import RetryPolicy
from stability_connector.sandbox import Fault
from stability_connector.transport import Attempt

from .conftest import BALANCE, CORE, SandboxRig, balance, generate

pytestmark = pytest.mark.anyio

ATTEMPTS = 3


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (408, ServerError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
async def test_retried_statuses_use_every_attempt(
    rig: SandboxRig, status: int, error: type[ApiError]
) -> None:
    rig.sandbox.script([Fault(status=status)] * ATTEMPTS)
    log: list[Attempt] = []
    with pytest.raises(error) as caught:
        await rig.sender(RetryPolicy(max_attempts=ATTEMPTS)).send(balance(), log)
    assert len(rig.received(BALANCE)) == ATTEMPTS
    assert [a.status for a in log] == [status] * ATTEMPTS
    assert caught.value.status == status
    assert caught.value.details.id is not None  # the API's own error id reaches the user


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_a_retried_status_then_success_sends_twice(rig: SandboxRig, status: int) -> None:
    rig.sandbox.script([Fault(status=status), None])
    log: list[Attempt] = []
    response = await rig.sender().send(generate(), log)
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert len(rig.received(CORE)) == 2
    assert [a.status for a in log] == [status, 200]
    # A gateway error on a paid call may hide a billed generation; the log says so.
    assert log[0].may_have_been_charged == (status in (502, 504))


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, InvalidRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, ContentModerationError),
        (404, NotFoundError),
        (413, PayloadTooLargeError),
        (422, InvalidRequestError),
    ],
)
async def test_never_retried_statuses_are_sent_once(
    rig: SandboxRig, status: int, error: type[ApiError]
) -> None:
    rig.sandbox.script([Fault(status=status), None])
    log: list[Attempt] = []
    with pytest.raises(error) as caught:
        await rig.sender().send(generate(), log)
    assert len(rig.received(CORE)) == 1
    assert len(log) == 1 and log[0].wait_before_next is None
    assert caught.value.details.name and caught.value.details.errors


async def test_real_refusals_are_sent_once(rig: SandboxRig) -> None:
    """Not injected: the sandbox's own 400 (a bad field), 401 (no key known) and 403."""
    bad = generate()
    assert bad.data is not None
    bad.data["aspect_ratio"] = "4:3"
    with pytest.raises(InvalidRequestError) as caught:
        await rig.sender().send(bad, [])
    assert "aspect_ratio" in str(caught.value)
    with pytest.raises(ContentModerationError):
        await rig.sender().send(generate("a forbiddenword"), [])
    assert len(rig.received(CORE)) == 2


async def test_success_is_sent_once(rig: SandboxRig) -> None:
    log: list[Attempt] = []
    response = await rig.sender().send(generate(), log)
    assert response.status_code == 200 and response.content[:2] == b"\xff\xd8"
    assert len(rig.received(CORE)) == 1
    assert log[0].status == 200 and log[0].request_id == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "fault", [Fault(reset="before"), Fault(reset="after"), Fault(truncate=True)]
)
@pytest.mark.parametrize("allowed", [False, True])
async def test_paid_unknown_outcomes_follow_the_policy(
    rig: SandboxRig, fault: Fault, allowed: bool
) -> None:
    rig.sandbox.script([fault, None])
    log: list[Attempt] = []
    policy = RetryPolicy(retry_unknown_outcome=allowed)
    if allowed:
        await rig.sender(policy).send(generate(), log)
        assert len(rig.received(CORE)) == 2
        assert [a.may_have_been_charged for a in log] == [True, False]
    else:
        with pytest.raises(TransportError) as caught:
            await rig.sender(policy).send(generate(), log)
        assert len(rig.received(CORE)) == 1
        assert caught.value.may_have_been_charged and log[0].may_have_been_charged


@pytest.mark.parametrize(
    "fault", [Fault(reset="before"), Fault(reset="after"), Fault(truncate=True)]
)
async def test_free_requests_are_retried_after_a_lost_answer(rig: SandboxRig, fault: Fault) -> None:
    rig.sandbox.script([fault, fault, None])
    log: list[Attempt] = []
    response = await rig.sender(RetryPolicy(retry_unknown_outcome=False)).send(balance(), log)
    assert response.json()["credits"] > 0
    assert len(rig.received(BALANCE)) == 3
    assert not any(a.may_have_been_charged for a in log)


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5])
async def test_max_attempts_is_the_total_number_of_requests(rig: SandboxRig, attempts: int) -> None:
    rig.sandbox.script([Fault(status=503)] * 5)
    with pytest.raises(ServerError):
        await rig.sender(RetryPolicy(max_attempts=attempts)).send(balance(), [])
    assert len(rig.received(BALANCE)) == attempts


async def test_retry_after_from_the_sandbox_is_a_minimum(rig: SandboxRig) -> None:
    rig.sandbox.script([Fault(status=503, retry_after=9), Fault(status=429, retry_after=4), None])
    log: list[Attempt] = []
    await rig.sender(RetryPolicy(initial_delay=0.01, max_delay=0.02)).send(balance(), log)
    assert [a.wait_before_next for a in log] == [9.0, 4.0, None]
    journal = rig.received(BALANCE)
    assert journal[1].at - journal[0].at >= 9.0
    assert journal[2].at - journal[1].at >= 4.0


async def test_a_429_pauses_every_sender_on_the_key(rig: SandboxRig) -> None:
    """Two concurrent senders share a limiter: after one of them gets a 429 (no
    Retry-After, so the 60 s penalty), neither sends anything for 60 s."""
    rig.sandbox.script([Fault(status=429), None, None, None])
    # The first sender waits out its own retry on a clock of its own, so that only the
    # limiter's pause (on the shared clock) can hold the second sender back.
    first, second = rig.sender(clock=FakeClock()), rig.sender()
    logs: dict[str, list[Attempt]] = {"first": [], "second": []}

    async def first_sender() -> None:
        await first.send(balance(), logs["first"])

    async def second_sender() -> None:
        # Starts as soon as the 429 has been answered, while the first one waits.
        while not rig.received():
            await anyio.sleep(0)
        await second.send(balance(), logs["second"])
        await second.send(balance(), logs["second"])

    async with anyio.create_task_group() as tg:
        tg.start_soon(first_sender)
        tg.start_soon(second_sender)

    journal = rig.received(BALANCE)
    assert [e.status for e in journal] == [429, 200, 200, 200]
    paused_at = journal[0].at
    assert all(e.at >= paused_at + 60.0 for e in journal[1:])
    # The second sender never saw the 429 itself: the shared pause kept it back.
    assert [a.status for a in logs["second"]] == [200, 200]
    assert logs["first"][0].wait_before_next == 60.0


async def test_client_headers_and_key_reach_the_sandbox_but_not_its_journal(
    rig: SandboxRig,
) -> None:
    rig.sandbox.script([Fault(status=500), None])
    await rig.sender().send(generate(), [])
    for entry in rig.received(CORE):
        assert entry.headers["stability-client-id"] == "stability-connector"
        assert entry.headers["stability-client-version"] == "0.1.0"
        assert entry.headers["content-type"].startswith("multipart/form-data; boundary=")
        assert entry.key_fingerprint is not None
        assert entry.fields["prompt"] == "a lighthouse at dusk"
