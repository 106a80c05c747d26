"""The retry policy as data: validation, backoff with full jitter, Retry-After parsing."""

from __future__ import annotations

import random

import pytest

from stability_connector.definitions import RetrySpec
from stability_connector.errors import ConnectorError
from stability_connector.retry import (
    NEVER_RETRIED,
    RETRIED_STATUSES,
    RetryPolicy,
    RetryPolicyError,
    classify_status,
    parse_retry_after,
)


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 5])
def test_one_to_five_attempts_are_accepted(attempts: int) -> None:
    assert RetryPolicy(max_attempts=attempts).max_attempts == attempts


@pytest.mark.parametrize("attempts", [0, 6, -1, 10, True, 2.5])
def test_attempts_outside_one_to_five_are_refused_clearly(attempts: object) -> None:
    with pytest.raises(RetryPolicyError) as caught:
        RetryPolicy(max_attempts=attempts)  # type: ignore[arg-type]
    message = str(caught.value)
    assert "max_attempts" in message and "1 to 5" in message
    assert isinstance(caught.value, ConnectorError) and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("field", "value"),
    [("initial_delay", -1.0), ("max_delay", 0.5), ("multiplier", 0.5), ("deadline", 0.0)],
)
def test_other_fields_are_checked(field: str, value: float) -> None:
    with pytest.raises(RetryPolicyError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_policy_from_connector_spec() -> None:
    spec = RetrySpec(max_attempts=3, initial_delay=0.5, max_delay=8, multiplier=3, deadline=60)
    policy = RetryPolicy.from_spec(spec)
    assert policy == RetryPolicy(3, 0.5, 8.0, 3.0, 60.0, True)


def test_the_retry_tables_do_not_overlap() -> None:
    assert {408, 429, 500, 502, 503, 504} == RETRIED_STATUSES
    assert {400, 401, 402, 403, 404, 413, 422} == NEVER_RETRIED
    assert not RETRIED_STATUSES & NEVER_RETRIED


def test_backoff_cap_grows_exponentially_up_to_max_delay() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=30.0)
    assert [policy.backoff_cap(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert RetryPolicy(max_delay=30.0).backoff_cap(10_000) == 30.0  # no overflow


def test_full_jitter_spans_zero_to_the_cap() -> None:
    policy = RetryPolicy(initial_delay=1.0, multiplier=2.0, max_delay=30.0)
    rng = random.Random(1)
    for retry in range(1, 7):
        cap = policy.backoff_cap(retry)
        samples = [policy.delay(retry, rng) for _ in range(2000)]
        assert all(0.0 <= s <= cap for s in samples)
        # Full jitter, not "equal jitter" (cap/2 + random): waits near 0 and near the cap.
        assert min(samples) < 0.05 * cap and max(samples) > 0.95 * cap
        assert 0.45 * cap < sum(samples) / len(samples) < 0.55 * cap


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("7", now=0) == 7.0
    assert parse_retry_after(" 1.5 ", now=0) == 1.5
    assert parse_retry_after(None, now=0) is None
    for junk in ("soon", "-3", "nan", "inf", ""):
        assert parse_retry_after(junk, now=0) is None


def test_retry_after_as_an_http_date_uses_the_servers_date_header() -> None:
    date = "Wed, 21 Oct 2026 07:28:00 GMT"
    later = "Wed, 21 Oct 2026 07:30:00 GMT"
    assert parse_retry_after(later, date=date, now=0) == 120.0
    # Without a Date header: against the given Unix time.
    assert parse_retry_after(later, now=1792567800.0 - 30) == 30.0
    # A date in the past means "now".
    assert parse_retry_after(date, date=later, now=0) == 0.0


@pytest.mark.parametrize("paid", [False, True])
@pytest.mark.parametrize("unknown", [False, True])
def test_only_the_retry_table_is_ever_retried(paid: bool, unknown: bool) -> None:
    policy = RetryPolicy(retry_unknown_outcome=unknown)
    for status in range(100, 600):
        verdict = classify_status(status, paid=paid, policy=policy)
        if status not in RETRIED_STATUSES:
            assert not verdict.retry and not verdict.may_have_been_charged
        elif paid and status in (502, 504):
            assert verdict.retry == unknown and verdict.may_have_been_charged
        else:
            assert verdict.retry and not verdict.may_have_been_charged
