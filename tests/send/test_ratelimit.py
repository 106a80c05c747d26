"""The rate limiter on a fake clock: exact window, first come first served, pauses,
and the SQLite store shared by limiters as two processes would share it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from stability_connector.clock import FakeClock, SystemClock
from stability_connector.connection import Secret
from stability_connector.definitions import RateLimitSpec
from stability_connector.ratelimit import (
    SHARED_FILE_NAME,
    RateLimiter,
    SqlitePermits,
    limiter_for,
)

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio


def max_in_any_window(times: list[float], window: float) -> int:
    """The most grants that fall in one half-open window [t, t + window)."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def grant_all(limiter: RateLimiter, clock: FakeClock, count: int) -> list[tuple[int, float]]:
    grants: list[tuple[int, float]] = []

    async def one(index: int) -> None:
        await limiter.acquire()
        grants.append((index, clock.now()))

    async with anyio.create_task_group() as tg:
        for index in range(count):
            tg.start_soon(one, index)
    return grants


async def test_300_concurrent_acquires_never_exceed_the_limit_and_waste_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(150, 10.0, clock)
    grants = await grant_all(limiter, clock, 300)
    times = [t for _, t in grants]
    assert len(times) == 300
    assert max_in_any_window(times, 10.0) == 150
    # Exactly two windows' worth: the second 150 start as soon as the first window ends.
    assert times.count(0.0) == 150
    assert max(times) == pytest.approx(limiter.window)
    assert limiter.window <= 10.0 * 1.03
    # First come, first served.
    assert [index for index, _ in grants] == list(range(300))


async def test_a_steady_stream_keeps_every_window_full_but_never_over() -> None:
    clock = FakeClock()
    limiter = RateLimiter(10, 2.0, clock)
    times = []
    for _ in range(95):
        await limiter.acquire()
        times.append(clock.now())
        clock.advance(0.05)
    assert max_in_any_window(times, 2.0) == 10
    # Close to the limit: 95 permits need a little under 9.5 windows.
    assert times[-1] < 9.5 * limiter.window


async def test_a_pause_holds_every_acquirer_until_it_ends() -> None:
    clock = FakeClock()
    limiter = RateLimiter(150, 10.0, clock)
    await limiter.acquire()
    limiter.pause(60.0)
    assert limiter.paused_for() == 60.0
    grants = await grant_all(limiter, clock, 5)
    assert all(t >= 60.0 for _, t in grants)
    # Only the head of the queue slept; the others followed it.
    assert clock.sleeps == [60.0]


async def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(150, 10.0, clock)
    limiter.pause(60.0)
    limiter.pause(5.0)
    assert limiter.paused_for() == 60.0


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 10.0, clock)
    await limiter.acquire()
    got: list[str] = []

    async def waiter(name: str) -> None:
        await limiter.acquire()
        got.append(name)

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(waiter, "cancelled")
            await anyio.sleep(0)
            scope.cancel()
        tg.start_soon(waiter, "next")
    assert "next" in got


async def test_limiter_for_shares_one_limiter_per_key() -> None:
    spec = RateLimitSpec()
    clock = FakeClock()
    one = limiter_for(Secret(TEST_KEY), spec, clock)
    assert limiter_for(Secret(TEST_KEY), spec, clock) is one
    assert limiter_for(Secret("another-key"), spec, clock) is not one
    assert limiter_for(Secret(TEST_KEY), spec, SystemClock()) is limiter_for(
        Secret(TEST_KEY), spec, SystemClock()
    )
    assert one.requests == 150 and one.per_seconds == 10.0 and one.penalty_seconds == 60.0


async def test_two_limiters_on_one_sqlite_file_share_the_window(tmp_path: Path) -> None:
    clock = FakeClock()
    fingerprint = Secret(TEST_KEY).fingerprint()
    store_a = SqlitePermits(tmp_path / SHARED_FILE_NAME, fingerprint)
    store_b = SqlitePermits(tmp_path / SHARED_FILE_NAME, fingerprint)
    a = RateLimiter(10, 2.0, clock, store=store_a)
    b = RateLimiter(10, 2.0, clock, store=store_b)
    grants: list[float] = []

    async def run(limiter: RateLimiter) -> None:
        for _ in range(30):
            await limiter.acquire()
            grants.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, a)
        tg.start_soon(run, b)
    assert len(grants) == 60
    assert max_in_any_window(grants, 2.0) == 10

    # A pause set through one is seen by the other.
    a.pause(60.0)
    assert b.paused_for() == pytest.approx(60.0)
    store_a.close()
    store_b.close()


async def test_the_shared_file_holds_the_fingerprint_never_the_key(tmp_path: Path) -> None:
    clock = FakeClock()
    limiter = limiter_for(Secret(TEST_KEY), RateLimitSpec(), clock, shared_dir=tmp_path)
    for _ in range(3):
        await limiter.acquire()
    limiter.pause(1.0)
    path = tmp_path / SHARED_FILE_NAME
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(FULL)")
        rows = db.execute("SELECT key FROM permits UNION SELECT key FROM pauses")
        keys = {row[0] for row in rows}
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    assert keys == {Secret(TEST_KEY).fingerprint()}
    assert mode == "wal"
    for file in tmp_path.iterdir():
        assert TEST_KEY.encode() not in file.read_bytes()


async def test_rows_from_another_boot_do_not_block(tmp_path: Path) -> None:
    clock = FakeClock(start=100.0)
    store = SqlitePermits(tmp_path / SHARED_FILE_NAME, "fp")
    # Permits stamped in the future of this clock come from an earlier boot.
    for _ in range(10):
        store.try_grant(lambda: 5000.0, 10, 2.0)
    limiter = RateLimiter(10, 2.0, clock, store=store)
    await limiter.acquire()
    assert clock.now() == 100.0
    store.close()
