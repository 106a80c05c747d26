"""Time, injectable: the retry loop, the rate limiter and the job poller read the time
and sleep only through a ``Clock``, so tests and benchmarks run without waiting."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

import anyio


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (only differences mean anything)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


@dataclass(frozen=True)
class SystemClock:
    """The real time. ``time.monotonic`` is system-wide on Linux, macOS and Windows, so
    processes on one machine can compare its readings (the shared rate limiter relies
    on that). Every instance is equal, so limiters keyed by clock are shared."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))


@dataclass(eq=False)
class FakeClock:
    """Virtual time: ``sleep(s)`` records ``s`` and ends at once, with ``now()`` moved
    forward to ``s`` after the time the sleep began (never backwards).

    Before moving the time, a sleeper lets every task that is ready run at the current
    time, so sleeps that overlap end together (the time moves to the latest end, not the
    sum) - as they would in real time.
    """

    start: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._now = self.start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        wake_at = self._now + seconds
        await anyio.sleep(0)
        self._now = max(self._now, wake_at)
