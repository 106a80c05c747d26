"""The sandbox's settings: keys and credits, limits, timing, moderation, faults."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import platformdirs

from .faults import Fault

__all__ = ["DEFAULT_BLOCK_WORDS", "DEFAULT_FILTER_WORDS", "SandboxConfig", "default_jobs_dir"]

MIB = 1024 * 1024

#: A prompt containing one of these words is refused with 403 ``content_moderation``.
DEFAULT_BLOCK_WORDS: tuple[str, ...] = ("forbiddenword",)
#: A prompt containing one of these words succeeds with ``CONTENT_FILTERED`` and a blurred image.
DEFAULT_FILTER_WORDS: tuple[str, ...] = ("blurword",)

#: Where the built-in sandbox keeps its asynchronous jobs, if set.
JOBS_DIR_ENV = "STABILITY_SANDBOX_JOBS_DIR"


def default_jobs_dir(env: Mapping[str, str] = os.environ) -> Path:
    """``STABILITY_SANDBOX_JOBS_DIR`` if set, else ``sandbox-jobs`` in the user's data
    directory (beside the run store)."""
    if env.get(JOBS_DIR_ENV):
        return Path(env[JOBS_DIR_ENV]).expanduser()
    return Path(platformdirs.user_data_dir("stability-connector")) / "sandbox-jobs"


Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass
class SandboxConfig:
    """How the sandbox behaves. Every default is what the real API documents.

    ``keys=None`` accepts any non-empty bearer key and gives it ``credits``; a sequence
    accepts only those keys (each with ``credits``); a mapping gives each key its own
    balance. ``clock`` (seconds, monotonic) drives rate limits, job timing and expiry;
    ``sleep`` is awaited for latency — inject both to make tests deterministic.
    ``faults`` is a spec string (see :mod:`.faults`) or a list of (fault, probability).
    """

    credits: float = 1000.0
    keys: Sequence[str] | Mapping[str, float] | None = None
    rate_limit: int = 150
    rate_window: float = 10.0
    timeout_seconds: float = 60.0
    #: Add ``Retry-After`` (the seconds left of the timeout) to the sandbox's own 429s.
    #: The real API documents none, so this is off by default.
    retry_after: bool = False
    job_seconds: float = 20.0
    job_ttl: float = 24 * 3600.0
    #: Keep asynchronous jobs as files here, rendered when they start, so a sandbox in
    #: another process with the same folder serves their results (None: in memory).
    jobs_dir: Path | None = None
    latency: float = 0.0
    faults: str | Sequence[tuple[Fault, float]] | None = None
    fault_seed: int | None = None
    clock: Clock | None = None
    sleep: Sleep | None = None
    block_words: Sequence[str] = DEFAULT_BLOCK_WORDS
    filter_words: Sequence[str] = DEFAULT_FILTER_WORDS
    #: Request bodies above this size get 413 (Stable Audio takes more, see operations).
    max_body_bytes: int = 10 * MIB
    #: Seeds the sandbox's own randomness (ids, random seeds) for reproducible runs.
    random_seed: int | None = None
    #: Render media in worker threads so one slow render does not stall other requests.
    render_in_thread: bool = True
    #: Rendered media kept for identical requests (entries).
    media_cache_entries: int = 32
    #: Journal entries kept (the oldest are dropped beyond this; sequence numbers go on).
    journal_limit: int = 50_000

    def __post_init__(self) -> None:
        if self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1")
        if self.rate_window <= 0 or self.timeout_seconds < 0 or self.job_seconds < 0:
            raise ValueError("rate_window must be positive; timeouts and job_seconds not negative")
        if self.credits < 0:
            raise ValueError("credits must not be negative")

    def now(self) -> float:
        return (self.clock or time.monotonic)()

    async def pause(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.sleep is not None:
            await self.sleep(seconds)
        else:
            await anyio.sleep(seconds)
