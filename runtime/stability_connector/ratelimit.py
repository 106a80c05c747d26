"""One rate limiter per API key: every request of every run takes a permit first.

Stability allows 150 requests in any 10 seconds per key and locks a key out for 60 s
after a 429, so the limiter must be exact rather than roughly right. It is a sliding
window log: a permit is granted only when fewer than ``requests`` permits were granted
in the last ``per_seconds`` (plus a small margin for the time a request spends on the
way). A token bucket of the same rate would let up to twice the limit through in one
window (burst plus refill).

Waiters queue in arrival order; only the head of the queue checks the window and sleeps
until the oldest permit leaves it, so the waiters neither race nor spin.

Permits live in a ``PermitStore``: in memory for one process, or a SQLite file in a
shared directory so that processes on one machine sharing a key share the window (and
the pause after a 429). The file holds the key's sha256 fingerprint, never the key.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import anyio
import anyio.lowlevel

from .clock import Clock
from .connection import Secret
from .definitions import RateLimitSpec

SHARED_FILE_NAME = "ratelimit.sqlite3"


def default_margin(per_seconds: float) -> float:
    """Extra window length that absorbs the spread between granting a permit and the
    request being counted by the API (event-loop lag, a busy machine, the network):
    2 %, at least a quarter of a second (lags of 50-150 ms were measured on a busy
    two-core machine). At 150 per 10 s the achieved rate is still 97.5 % of the limit,
    and a 429 would cost a 60 s lockout."""
    return max(0.25, 0.02 * per_seconds)


class PermitStore(Protocol):
    """Where granted permits and the pause are kept. ``try_grant`` is atomic."""

    def try_grant(self, clock: Callable[[], float], requests: int, window: float) -> float:
        """Grant a permit now (returns 0) or say how long to wait before asking again.

        ``clock`` is read once the store is locked: a time read before waiting for the
        lock could be older than a permit another process granted meanwhile."""
        ...

    def pause(self, now: float, seconds: float) -> None:
        """No permit for anyone until ``now + seconds`` (a longer pause already set stays)."""
        ...

    def paused_until(self) -> float: ...


class MemoryPermits:
    """Permits of one process. A thread lock, never held across an await, makes it
    safe for event loops in several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._granted: deque[float] = deque()
        self._paused_until = float("-inf")

    def try_grant(self, clock: Callable[[], float], requests: int, window: float) -> float:
        with self._lock:
            now = clock()
            if now < self._paused_until:
                return self._paused_until - now
            granted = self._granted
            # One expression for "has left the window" and "when it leaves", so rounding
            # cannot make them disagree.
            while granted and granted[0] + window <= now:
                granted.popleft()
            if len(granted) >= requests:
                return _at_least_a_tick(granted[-requests] + window - now)
            granted.append(now)
            return 0.0

    def pause(self, now: float, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, now + seconds)

    def paused_until(self) -> float:
        with self._lock:
            return self._paused_until


def _at_least_a_tick(wait: float) -> float:
    # A wait so small that now + wait == now would make the waiter spin.
    return max(wait, 1e-6)


class SqlitePermits:
    """Permits shared by the processes of one machine through a SQLite file (WAL mode;
    every grant is one ``BEGIN IMMEDIATE`` transaction, so two processes never both
    take the last permit of a window).

    Times are the clock's (``time.monotonic`` is system-wide). A row is also stamped
    with the wall time, so rows left by an earlier boot (whose monotonic times mean
    nothing now) are recognised and dropped.
    """

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self._key = fingerprint
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
        self._db = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        _set_wal(self._db)
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS permits ("
                " key TEXT NOT NULL, granted_at REAL NOT NULL, wall REAL NOT NULL)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS permits_by_key ON permits (key, granted_at)"
            )
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS pauses ("
                " key TEXT PRIMARY KEY, until REAL NOT NULL, wall_until REAL NOT NULL)"
            )

    def _transaction(self) -> _Immediate:
        return _Immediate(self._db, self._lock)

    def try_grant(self, clock: Callable[[], float], requests: int, window: float) -> float:
        with self._transaction():
            now, wall = clock(), time.time()
            db = self._db
            # Forget permits that left the window, and any from the future (another boot).
            db.execute(
                "DELETE FROM permits WHERE key = ? AND (granted_at + ? <= ? OR granted_at > ?)",
                (self._key, window, now, now),
            )
            paused = self._read_pause(wall)
            if now < paused:
                return paused - now
            rows = db.execute(
                "SELECT granted_at FROM permits WHERE key = ? ORDER BY granted_at DESC LIMIT ?",
                (self._key, requests),
            ).fetchall()
            if len(rows) >= requests:
                return _at_least_a_tick(float(rows[-1][0]) + window - now)
            db.execute(
                "INSERT INTO permits (key, granted_at, wall) VALUES (?, ?, ?)",
                (self._key, now, wall),
            )
            return 0.0

    def _read_pause(self, wall: float) -> float:
        row = self._db.execute(
            "SELECT until, wall_until FROM pauses WHERE key = ?", (self._key,)
        ).fetchone()
        if row is None or wall >= float(row[1]):
            return float("-inf")
        return float(row[0])

    def pause(self, now: float, seconds: float) -> None:
        # The wall-clock end keeps a pause from outliving a reboot (see the class doc).
        wall_until = time.time() + seconds + 1.0
        with self._transaction():
            self._db.execute(
                "INSERT INTO pauses (key, until, wall_until) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET"
                " until = max(until, excluded.until),"
                " wall_until = max(wall_until, excluded.wall_until)",
                (self._key, now + seconds, wall_until),
            )

    def paused_until(self) -> float:
        with self._transaction():
            return self._read_pause(time.time())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _set_wal(db: sqlite3.Connection) -> None:
    """Switch the file to WAL. Two processes opening a new file at once can get "database
    is locked" here without the busy timeout being used, so it is retried for a while."""
    for attempt in range(100):
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == 99:
                raise
            time.sleep(0.05)


class _Immediate:
    """``with``: one write transaction (BEGIN IMMEDIATE takes the file's write lock at
    once, so the read-check-insert of a grant cannot interleave with another process)."""

    def __init__(self, db: sqlite3.Connection, lock: threading.Lock) -> None:
        self._db = db
        self._lock = lock

    def __enter__(self) -> None:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
        finally:
            self._lock.release()


class _Waiter:
    __slots__ = ("turn",)

    def __init__(self) -> None:
        self.turn = anyio.Event()


class RateLimiter:
    """At most ``requests`` permits in any ``per_seconds`` window, first come first served.

    Shared by every sender in the process for one key (see ``limiter_for``). Each thread
    (event loop) has its own queue; the window itself is in the store, shared by all.
    """

    def __init__(
        self,
        requests: int,
        per_seconds: float,
        clock: Clock,
        *,
        penalty_seconds: float = 60.0,
        store: PermitStore | None = None,
        margin: float | None = None,
    ) -> None:
        if requests < 1 or per_seconds <= 0:
            raise ValueError(
                "a rate limit needs at least 1 request per a positive number of seconds"
            )
        self.requests = requests
        self.per_seconds = per_seconds
        self.penalty_seconds = penalty_seconds
        self.window = per_seconds + (default_margin(per_seconds) if margin is None else margin)
        self.clock = clock
        self.store: PermitStore = store if store is not None else MemoryPermits()
        self._queues = threading.local()

    def _queue(self) -> deque[_Waiter]:
        queue: deque[_Waiter] | None = getattr(self._queues, "queue", None)
        if queue is None:
            queue = deque()
            self._queues.queue = queue
        return queue

    async def acquire(self) -> None:
        """Wait for a permit. Cancelling a waiter gives its place to the next one."""
        queue = self._queue()
        if not queue:
            # Acquire is always a checkpoint, as a wait would be; it comes before the
            # grant, never between the grant and the send, so the other tasks' work
            # (tens of them, each handling a response) cannot delay a granted request.
            await anyio.lowlevel.checkpoint()
            if not queue and self.store.try_grant(self.clock.now, self.requests, self.window) <= 0:
                return
        me = _Waiter()
        queue.append(me)
        if len(queue) == 1:
            me.turn.set()
        try:
            await me.turn.wait()
            while (wait := self.store.try_grant(self.clock.now, self.requests, self.window)) > 0:
                await self.clock.sleep(wait)
        finally:
            head = queue[0] is me
            queue.remove(me)
            if head and queue:
                queue[0].turn.set()

    def pause(self, seconds: float) -> None:
        """After a 429: no permit for anyone on this key for ``seconds``."""
        self.store.pause(self.clock.now(), max(0.0, seconds))

    def paused_for(self) -> float:
        """Seconds left of the current pause (0 when not paused)."""
        return max(0.0, self.store.paused_until() - self.clock.now())


_LIMITERS: dict[tuple[object, ...], RateLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def limiter_for(
    key: Secret, spec: RateLimitSpec, clock: Clock, shared_dir: Path | None = None
) -> RateLimiter:
    """The process's limiter for this key (created on first use). With ``shared_dir``,
    processes on this machine sharing the key share its window through a SQLite file
    there."""
    fingerprint = key.fingerprint()
    shared = shared_dir.resolve() if shared_dir is not None else None
    cache_key = (fingerprint, spec.requests, spec.per_seconds, spec.penalty_seconds, clock, shared)
    with _LIMITERS_LOCK:
        limiter = _LIMITERS.get(cache_key)
        if limiter is None:
            store: PermitStore | None = None
            if shared is not None:
                store = SqlitePermits(shared / SHARED_FILE_NAME, fingerprint)
            limiter = RateLimiter(
                spec.requests,
                spec.per_seconds,
                clock,
                penalty_seconds=spec.penalty_seconds,
                store=store,
            )
            _LIMITERS[cache_key] = limiter
        return limiter
