"""What is retried, and how long to wait: the one retry layer of the connector.

The loop itself lives in ``transport.Sender.send`` (it also takes rate-limit permits and
writes the run log); this module holds the policy and the classification, as data and
pure functions, so they can be read in one sitting and tested without a network.
"""

from __future__ import annotations

import email.utils
import random
from dataclasses import dataclass

import httpx

from .definitions import RetrySpec
from .errors import ConnectorError

# Statuses the API documents as transient, and the ones that can never succeed by
# sending the same request again. Anything else that is not 2xx is not retried either.
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
NEVER_RETRIED = frozenset({400, 401, 402, 403, 404, 413, 422})

# A gateway error on a paid call may hide a generation that ran and was billed
# (the API documents only its own 500 as "failed, not charged").
UNKNOWN_OUTCOME_STATUSES = frozenset({502, 504})

MAX_ATTEMPTS_LIMIT = 5


class RetryPolicyError(ConnectorError, ValueError):
    """A retry policy value is out of range. Names the field and what is allowed."""


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried: ``max_attempts`` counts the first attempt (1..5),
    waits grow exponentially with full jitter up to ``max_delay``, and no wait may end
    after ``deadline`` seconds from the first attempt. ``Retry-After`` is a minimum.
    """

    max_attempts: int = 5
    initial_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0
    deadline: float = 600.0
    retry_unknown_outcome: bool = True

    def __post_init__(self) -> None:
        def refuse(name: str, value: object, allowed: str) -> RetryPolicyError:
            return RetryPolicyError(f"retry policy: {name} is {value!r}; allowed: {allowed}")

        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or not 1 <= self.max_attempts <= MAX_ATTEMPTS_LIMIT
        ):
            raise refuse(
                "max_attempts",
                self.max_attempts,
                f"a whole number from 1 to {MAX_ATTEMPTS_LIMIT} "
                "(total attempts, the first included)",
            )
        if not self.initial_delay >= 0:
            raise refuse("initial_delay", self.initial_delay, "0 seconds or more")
        if not self.max_delay >= self.initial_delay:
            raise refuse(
                "max_delay", self.max_delay, f"at least initial_delay ({self.initial_delay})"
            )
        if not self.multiplier >= 1:
            raise refuse("multiplier", self.multiplier, "1 or more")
        if not self.deadline > 0:
            raise refuse("deadline", self.deadline, "more than 0 seconds")

    @classmethod
    def from_spec(cls, spec: RetrySpec) -> RetryPolicy:
        return cls(
            max_attempts=spec.max_attempts,
            initial_delay=spec.initial_delay,
            max_delay=spec.max_delay,
            multiplier=spec.multiplier,
            deadline=spec.deadline,
            retry_unknown_outcome=spec.retry_unknown_outcome,
        )

    def backoff_cap(self, retry_number: int) -> float:
        """The upper bound of the wait before retry ``retry_number`` (1 = the first retry)."""
        exponent = max(0, retry_number - 1)
        # Compare in the exponent's terms first: multiplier**exponent can overflow.
        cap = self.initial_delay
        for _ in range(exponent):
            cap *= self.multiplier
            if cap >= self.max_delay:
                return self.max_delay
        return min(self.max_delay, cap)

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Full jitter: uniform(0, min(max_delay, initial_delay * multiplier**(n-1)))."""
        return rng.uniform(0.0, self.backoff_cap(retry_number))


#: For calls a person waits on (a dropdown's live options, a connection test): one
#: quick retry, then the answer, instead of the workflow's minutes of backoff.
INTERACTIVE_POLICY = RetryPolicy(max_attempts=2, initial_delay=0.5, max_delay=2.0, deadline=10.0)


@dataclass(frozen=True)
class Verdict:
    """What one attempt's result means for the loop."""

    retry: bool
    # The request may have reached the API and run: a paid call may have been billed.
    may_have_been_charged: bool = False
    # Retrying was possible but the policy forbids it for an unknown outcome.
    held_back: bool = False


def classify_status(status: int, *, paid: bool, policy: RetryPolicy) -> Verdict:
    """A response that is not 2xx: retry or not."""
    if status not in RETRIED_STATUSES:
        return Verdict(retry=False)
    if paid and status in UNKNOWN_OUTCOME_STATUSES:
        return _unknown_outcome(policy)
    return Verdict(retry=True)


def classify_exception(exc: httpx.HTTPError, *, paid: bool, policy: RetryPolicy) -> Verdict:
    """No response. Connect-phase failures sent nothing and are always safe to repeat;
    once the request may have been sent, a paid call's outcome is unknown."""
    if is_not_sent(exc):
        return Verdict(retry=True)
    if not isinstance(exc, httpx.TransportError) or isinstance(
        exc, httpx.UnsupportedProtocol | httpx.LocalProtocolError
    ):
        # A problem with the request itself (bad URL, bad header): repeating cannot help.
        return Verdict(retry=False)
    if paid:
        return _unknown_outcome(policy)
    return Verdict(retry=True)


def is_not_sent(exc: BaseException) -> bool:
    """Failures that happen before any byte of the request leaves."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _unknown_outcome(policy: RetryPolicy) -> Verdict:
    if policy.retry_unknown_outcome:
        return Verdict(retry=True, may_have_been_charged=True)
    return Verdict(retry=False, may_have_been_charged=True, held_back=True)


def parse_retry_after(value: str | None, *, date: str | None = None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date.

    An HTTP-date is measured against the response's own ``Date`` header when there is
    one (the server's clock, so skew between the machines does not matter), else
    against ``now`` (Unix time). Unparseable values are ignored.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        # RFC 9110 says whole seconds; fractions are accepted, negatives and nan are not.
        seconds = float(text)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < float("inf") else None
    try:
        when = email.utils.parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    reference = now
    if date:
        try:
            reference = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            reference = now
    return max(0.0, when - reference)
