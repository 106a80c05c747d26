"""Progress of a run: a live bar on a terminal, plain lines otherwise (logs, CI, pipes).

Both show, per step: items done, failed, remaining, the rate, and the time left.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn


class ProgressSink(Protocol):
    def step_started(self, step_id: str, *, total: int, done: int, loop: bool) -> None: ...
    def item_done(self, step_id: str, *, ok: bool) -> None: ...
    def step_finished(self, step_id: str) -> None: ...
    def run_paused(self, run_id: str, step_id: str, error: dict[str, Any]) -> None: ...
    def run_finished(self, run_id: str) -> None: ...


class NullProgress:
    def step_started(self, step_id: str, *, total: int, done: int, loop: bool) -> None:
        pass

    def item_done(self, step_id: str, *, ok: bool) -> None:
        pass

    def step_finished(self, step_id: str) -> None:
        pass

    def run_paused(self, run_id: str, step_id: str, error: dict[str, Any]) -> None:
        pass

    def run_finished(self, run_id: str) -> None:
        pass


@dataclass
class StepCount:
    """The figures both displays show, from counts and a clock."""

    total: int
    done: int = 0
    failed: int = 0
    started_at: float = 0.0
    finished_now: int = 0  # items finished by this process (the rate's numerator)

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed)

    def rate(self, now: float) -> float | None:
        elapsed = now - self.started_at
        return self.finished_now / elapsed if elapsed > 0 and self.finished_now else None

    def time_left(self, now: float) -> float | None:
        rate = self.rate(now)
        return self.remaining / rate if rate else None

    def line(self, step_id: str, now: float) -> str:
        rate = self.rate(now)
        left = self.time_left(now)
        parts = [
            f"{step_id}: {self.done}/{self.total} done",
            f"{self.failed} failed",
            f"{self.remaining} remaining",
            f"{rate:.1f}/s" if rate else "-/s",
            f"~{_duration(left)} left" if left is not None else "time left unknown",
        ]
        return ", ".join(parts)


def _duration(value: float) -> str:
    seconds = round(value)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


@dataclass
class LineProgress:
    """Plain lines: at each step's start and end, and about every 5% (or every
    ``every_seconds``) of a loop, whichever comes first."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    now: Callable[[], float] = time.monotonic
    every_seconds: float = 10.0
    counts: dict[str, StepCount] = field(default_factory=dict)
    _last: dict[str, tuple[float, int]] = field(default_factory=dict)

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def step_started(self, step_id: str, *, total: int, done: int, loop: bool) -> None:
        self.counts[step_id] = StepCount(total=total, done=done, started_at=self.now())
        self._last[step_id] = (self.now(), done)
        what = f"{total} items ({done} already done)" if loop else "1 node"
        self._print(f"{step_id}: started, {what}")

    def item_done(self, step_id: str, *, ok: bool) -> None:
        count = self.counts[step_id]
        if ok:
            count.done += 1
        else:
            count.failed += 1
        count.finished_now += 1
        last_at, last_n = self._last[step_id]
        finished = count.done + count.failed
        step = max(1, count.total // 20)
        if finished - last_n >= step or self.now() - last_at >= self.every_seconds:
            self._last[step_id] = (self.now(), finished)
            if count.remaining:
                self._print(count.line(step_id, self.now()))

    def step_finished(self, step_id: str) -> None:
        self._print(self.counts[step_id].line(step_id, self.now()))

    # The outcome itself is the command's report (on standard output); repeating it
    # here printed every outcome twice where both streams go to one log.
    def run_paused(self, run_id: str, step_id: str, error: dict[str, Any]) -> None:
        pass

    def run_finished(self, run_id: str) -> None:
        pass


class RichProgress:
    """A live bar per step on a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bars = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[remaining]} left"),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta {task.fields[eta]}"),
            console=self.console,
            transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.counts: dict[str, StepCount] = {}

    def _refresh(self, step_id: str) -> None:
        count = self.counts[step_id]
        now = time.monotonic()
        rate = count.rate(now)
        left = count.time_left(now)
        self.bars.update(
            self.tasks[step_id],
            completed=count.done + count.failed,
            failed=count.failed,
            remaining=count.remaining,
            rate=f"{rate:.1f}/s" if rate else "-/s",
            eta=_duration(left) if left is not None else "?",
        )

    def step_started(self, step_id: str, *, total: int, done: int, loop: bool) -> None:
        if not self.tasks:
            self.bars.start()
        self.counts[step_id] = StepCount(total=total, done=done, started_at=time.monotonic())
        self.tasks[step_id] = self.bars.add_task(
            step_id, total=total, failed=0, remaining=total - done, rate="-/s", eta="?"
        )
        self._refresh(step_id)

    def item_done(self, step_id: str, *, ok: bool) -> None:
        count = self.counts[step_id]
        if ok:
            count.done += 1
        else:
            count.failed += 1
        count.finished_now += 1
        self._refresh(step_id)

    def step_finished(self, step_id: str) -> None:
        self._refresh(step_id)

    def _stop(self) -> None:
        if self.tasks:
            self.bars.stop()

    def run_paused(self, run_id: str, step_id: str, error: dict[str, Any]) -> None:
        self._stop()

    def run_finished(self, run_id: str) -> None:
        self._stop()


def progress_for(stream: TextIO | None = None) -> ProgressSink:
    """Rich bars when the stream is a terminal, plain lines when it is not."""
    stream = stream or sys.stderr
    if stream.isatty():
        return RichProgress(Console(file=stream))
    return LineProgress(stream=stream)
