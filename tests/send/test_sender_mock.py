"""The Sender against faults only a mock can make exactly: timeouts, resets, truncated
bodies, gateway errors, Retry-After dates. Counts what reached the "network"."""

from __future__ import annotations

import email.parser
import email.policy

import httpx
import pytest

from stability_connector.clock import FakeClock
from stability_connector.errors import (
    ApiError,
    InvalidRequestError,
    RateLimitError,
    ServerError,
    TransportError,
)
from stability_connector.retry import RetryPolicy
from stability_connector.transport import Attempt, PreparedRequest

from .conftest import CLIENT_HEADERS, TEST_KEY, make_sender, scripted

pytestmark = pytest.mark.anyio

PAID = PreparedRequest("POST", "/v2beta/stable-image/generate/core", multipart=True, paid=True)
FREE = PreparedRequest("GET", "/v1/user/balance")


def paid() -> PreparedRequest:
    return PreparedRequest(
        "POST", PAID.path, data={"prompt": "a lighthouse"}, multipart=True, paid=True
    )


@pytest.mark.parametrize("fault", [httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout])
async def test_nothing_sent_is_always_retried_and_never_marked_charged(
    fault: type[Exception],
) -> None:
    transport, seen = scripted(fault, fault, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=False))
    log: list[Attempt] = []
    response = await sender.send(paid(), log)
    assert response.status_code == 200
    assert len(seen) == 3
    assert [a.status for a in log] == [None, None, 200]
    assert not any(a.may_have_been_charged for a in log)
    assert log[0].error is not None and fault.__name__ in log[0].error


@pytest.mark.parametrize(
    "fault", [httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError]
)
async def test_paid_unknown_outcome_is_not_retried_when_the_policy_says_no(
    fault: type[Exception],
) -> None:
    transport, seen = scripted(fault, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=False))
    log: list[Attempt] = []
    with pytest.raises(TransportError) as caught:
        await sender.send(paid(), log)
    assert len(seen) == 1
    assert caught.value.may_have_been_charged
    assert "charged" in str(caught.value) and "retry_unknown_outcome" in str(caught.value)
    assert [a.may_have_been_charged for a in log] == [True]
    assert log[0].wait_before_next is None
    assert list(caught.value.attempts) == log


async def test_paid_unknown_outcome_is_retried_and_marked_when_allowed() -> None:
    transport, seen = scripted(httpx.ReadTimeout, httpx.RemoteProtocolError, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=True))
    log: list[Attempt] = []
    response = await sender.send(paid(), log)
    assert response.status_code == 200 and len(seen) == 3
    assert [a.may_have_been_charged for a in log] == [True, True, False]


async def test_a_free_request_is_retried_after_a_read_timeout_without_marking() -> None:
    transport, seen = scripted(httpx.ReadTimeout, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=False))
    log: list[Attempt] = []
    await sender.send(FREE, log)
    assert len(seen) == 2
    assert not any(a.may_have_been_charged for a in log)


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_on_a_paid_call_is_an_unknown_outcome(status: int) -> None:
    transport, seen = scripted(status, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=False))
    log: list[Attempt] = []
    with pytest.raises(ServerError):
        await sender.send(paid(), log)
    assert len(seen) == 1 and log[0].may_have_been_charged

    transport, seen = scripted(status, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=True))
    log = []
    await sender.send(paid(), log)
    assert len(seen) == 2 and [a.may_have_been_charged for a in log] == [True, False]


async def test_a_truncated_body_is_not_a_success() -> None:
    cut = (200, {"content-length": "1000", "content-type": "image/png"}, b"\x89PNG-half")
    transport, seen = scripted(cut, 200)
    sender = make_sender(transport, policy=RetryPolicy(retry_unknown_outcome=False))
    log: list[Attempt] = []
    with pytest.raises(TransportError) as caught:
        await sender.send(paid(), log)
    assert len(seen) == 1 and caught.value.may_have_been_charged
    assert log[0].error is not None and "cut short" in log[0].error

    transport, seen = scripted(cut, 200)
    log = []
    await make_sender(transport).send(FREE, log)
    assert len(seen) == 2


async def test_a_head_answer_announces_a_length_without_a_body() -> None:
    transport, seen = scripted((200, {"content-length": "1000"}, b""))
    response = await make_sender(transport).send(PreparedRequest("HEAD", "/v1/user/account"), [])
    assert response.status_code == 200 and len(seen) == 1


async def test_attempts_run_out_with_the_matching_error_and_every_attempt_logged() -> None:
    transport, seen = scripted(503)
    sender = make_sender(transport, policy=RetryPolicy(max_attempts=4))
    log: list[Attempt] = []
    with pytest.raises(ServerError) as caught:
        await sender.send(FREE, log)
    assert len(seen) == 4
    assert [a.number for a in log] == [1, 2, 3, 4]
    assert [a.status for a in log] == [503] * 4
    assert all(a.wait_before_next is not None for a in log[:3]) and log[3].wait_before_next is None
    assert caught.value.status == 503 and caught.value.details.id == "req-4"
    assert caught.value.attempts == tuple(log)
    assert sender.clock.sleeps == [a.wait_before_next for a in log[:3]]  # type: ignore[attr-defined]


async def test_waits_are_full_jitter_under_the_cap() -> None:
    transport, _ = scripted(500)
    policy = RetryPolicy(max_attempts=5, initial_delay=1.0, multiplier=2.0, max_delay=5.0)
    for seed in range(20):
        log: list[Attempt] = []
        with pytest.raises(ServerError):
            await make_sender(transport, policy=policy, seed=seed).send(FREE, log)
        waits = [a.wait_before_next for a in log[:4]]
        for retry, wait in enumerate(waits, start=1):
            assert wait is not None and 0.0 <= wait <= min(5.0, 2 ** (retry - 1))


async def test_retry_after_seconds_is_a_minimum() -> None:
    transport, seen = scripted((503, {"retry-after": "7"}), 200)
    clock = FakeClock()
    sender = make_sender(transport, clock=clock, policy=RetryPolicy(initial_delay=0.1))
    log: list[Attempt] = []
    await sender.send(FREE, log)
    assert len(seen) == 2
    assert clock.sleeps == [7.0] and log[0].wait_before_next == 7.0


async def test_retry_after_http_date_is_a_minimum() -> None:
    headers = {
        "date": "Wed, 21 Oct 2026 07:28:00 GMT",
        "retry-after": "Wed, 21 Oct 2026 07:28:12 GMT",
    }
    transport, _ = scripted((503, headers), 200)
    clock = FakeClock()
    await make_sender(transport, clock=clock, policy=RetryPolicy(initial_delay=0.1)).send(FREE, [])
    assert clock.sleeps == [12.0]


async def test_a_longer_backoff_wins_over_a_short_retry_after() -> None:
    transport, _ = scripted((503, {"retry-after": "0"}), 200)
    clock = FakeClock()
    policy = RetryPolicy(initial_delay=4.0, max_delay=4.0)
    await make_sender(transport, clock=clock, policy=policy, seed=3).send(FREE, [])
    assert len(clock.sleeps) == 1 and 0.0 <= clock.sleeps[0] <= 4.0


async def test_the_deadline_stops_retrying_before_a_wait_that_would_pass_it() -> None:
    transport, seen = scripted((503, {"retry-after": "30"}), 200)
    clock = FakeClock()
    sender = make_sender(transport, clock=clock, policy=RetryPolicy(deadline=20.0))
    log: list[Attempt] = []
    with pytest.raises(ServerError) as caught:
        await sender.send(FREE, log)
    assert len(seen) == 1 and clock.sleeps == []
    assert any("deadline" in note for note in caught.value.__notes__)


async def test_the_deadline_counts_the_time_already_spent() -> None:
    transport, seen = scripted(500)
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=5, initial_delay=10.0, max_delay=10.0, deadline=12.0)
    with pytest.raises(ServerError):
        await make_sender(transport, clock=clock, policy=policy, seed=1).send(FREE, [])
    assert sum(clock.sleeps) <= 12.0
    assert len(seen) == len(clock.sleeps) + 1


async def test_a_429_without_retry_after_pauses_the_key_for_the_penalty() -> None:
    transport, _ = scripted(429, 200)
    clock = FakeClock()
    sender = make_sender(transport, clock=clock, policy=RetryPolicy(initial_delay=0.1))
    log: list[Attempt] = []
    await sender.send(FREE, log)
    assert log[0].wait_before_next == 60.0 and clock.sleeps[0] == 60.0


async def test_v1_and_non_json_error_bodies_reach_the_error() -> None:
    v1 = (
        400,
        {"content-type": "application/json"},
        (b'{"id": "v1-id", "name": "bad_request", "message": "height must be a multiple of 64"}'),
    )
    transport, _ = scripted(v1)
    with pytest.raises(InvalidRequestError) as caught:
        await make_sender(transport).send(FREE, [])
    assert caught.value.details.message == "height must be a multiple of 64"
    assert caught.value.details.id == "v1-id" and "bad_request" in str(caught.value)

    html = (429, {"content-type": "text/html"}, b"<html>slow down</html>")
    transport, _ = scripted(html)
    with pytest.raises(RateLimitError) as rate:
        await make_sender(transport, policy=RetryPolicy(max_attempts=1)).send(FREE, [])
    assert "not the API's JSON" in str(rate.value)


async def test_other_statuses_are_not_retried() -> None:
    for status in (405, 409, 415, 301):
        transport, seen = scripted(status)
        with pytest.raises(ApiError):
            await make_sender(transport).send(FREE, [])
        assert len(seen) == 1


async def test_key_and_client_headers_on_every_attempt_and_nowhere_in_the_request_record() -> None:
    transport, seen = scripted(500, 500, 200)
    request = paid()
    log: list[Attempt] = []
    await make_sender(transport).send(request, log)
    assert len(seen) == 3
    for sent in seen:
        assert sent.headers["authorization"] == f"Bearer {TEST_KEY}"
        for name, value in CLIENT_HEADERS.items():
            assert sent.headers[name] == value
    assert "authorization" not in {k.lower() for k in request.headers}
    assert TEST_KEY not in repr(request) + repr(log)


async def test_multipart_without_files_is_still_multipart_on_the_wire() -> None:
    transport, seen = scripted(200)
    request = PreparedRequest(
        "POST", PAID.path, data={"prompt": 'a "quoted" lighthouse', "seed": "42"}, multipart=True
    )
    await make_sender(transport).send(request, [])
    sent = seen[0]
    content_type = sent.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    fields = _parse_form(content_type, sent.content)
    assert fields == {"prompt": ('a "quoted" lighthouse', None), "seed": ("42", None)}


async def test_multipart_with_files_carries_name_filename_and_type() -> None:
    transport, seen = scripted(200)
    png = b"\x89PNG\r\n\x1a\n-bytes"
    request = PreparedRequest(
        "POST",
        "/v2beta/stable-image/edit/erase",
        data={"output_format": "png"},
        files={"image": ("input.png", png, "image/png")},
        multipart=True,
    )
    await make_sender(transport).send(request, [])
    fields = _parse_form(seen[0].headers["content-type"], seen[0].content)
    assert fields["output_format"] == ("png", None)
    assert fields["image"] == (png, "input.png")


async def test_json_body_and_query_params() -> None:
    transport, seen = scripted(200)
    request = PreparedRequest(
        "POST",
        "/v1/generation/x/text-to-image",
        params={"a": "1"},
        json={"text_prompts": [{"text": "é"}]},
    )
    await make_sender(transport).send(request, [])
    assert seen[0].headers["content-type"] == "application/json"
    assert seen[0].url.params["a"] == "1"
    assert b'"text": "\xc3\xa9"' in seen[0].content


def _parse_form(content_type: str, body: bytes) -> dict[str, tuple[object, str | None]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    fields: dict[str, tuple[object, str | None]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True)
        value: object = payload if filename else payload.decode()
        fields[str(name).replace("%22", '"')] = (value, filename)
    return fields
