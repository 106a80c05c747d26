"""Fault injection: what goes wrong with a request, scripted or drawn at random.

A :class:`Fault` describes one failure: an HTTP status with the API's error body (and
optionally a ``Retry-After`` header), a connection cut before or after the response
starts, a body cut short, or extra latency. Faults come from a :class:`FaultPlan`:
first from a script (consumed one per matching request), then from random draws.

Text form (used by ``stability-connector sandbox --faults`` and ``POST /_sandbox/faults``)::

    spec    := item ("," item)*
    item    := "seed=" INT | fault [":" PROBABILITY]
    fault   := kind ("+" option)*
    kind    := STATUS          any 400..599, answered with the API's error body
             | "reset"         connection cut before any response byte
             | "reset-after"   connection cut after the status line and headers
             | "truncate"      headers announce the full body, half of it is sent, then cut
             | "latency=" SECONDS   only a delay, then the normal answer
             | "ok"            no fault (useful in scripts)
    option  := "retry-after=" SECONDS   add a Retry-After header (status faults)
             | "latency=" SECONDS       wait this long first
             | "charged"                run and charge the request, then fail it
             | "html"                   an HTML body, as a gateway in front of the API sends
             | "path=" PATTERN          only requests whose path matches (prefix or glob)

Examples: ``"503:0.2,429+retry-after=2:0.1,reset:0.05,seed=7"`` fails about a fifth of
requests with 503, a tenth with 429 carrying ``Retry-After: 2`` and one in twenty with a
reset, reproducibly. A probability left out means 1 (every request). The probabilities of
one spec must add up to at most 1; one uniform draw per request picks at most one fault.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Fault", "FaultPlan", "FaultSpecError", "parse_fault", "parse_fault_spec"]

ResetStage = Literal["before", "after"]


class FaultSpecError(ValueError):
    """A fault spec string that does not follow the grammar."""


@dataclass(frozen=True)
class Fault:
    """One injected failure. Combine fields: ``Fault(status=429, retry_after=2)``,
    ``Fault(reset="after")``, ``Fault(latency=3.0)``, ``Fault(truncate=True)``."""

    status: int | None = None
    retry_after: float | None = None
    reset: ResetStage | None = None
    truncate: bool = False
    latency: float = 0.0
    charged: bool = False
    html: bool = False
    path: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and not 400 <= self.status <= 599:
            raise FaultSpecError(f"fault status must be 400..599, got {self.status}")
        outcomes = (self.status is not None) + (self.reset is not None) + self.truncate
        if outcomes > 1:
            raise FaultSpecError("a fault is one of: a status, a reset, or a truncated body")
        if self.reset not in (None, "before", "after"):
            raise FaultSpecError(f"reset must be 'before' or 'after', got {self.reset!r}")
        if self.latency < 0 or (self.retry_after is not None and self.retry_after < 0):
            raise FaultSpecError("latency and retry-after must not be negative")

    @property
    def changes_outcome(self) -> bool:
        """Whether the answer differs from the normal one (beyond a delay)."""
        return self.status is not None or self.reset is not None or self.truncate

    def matches(self, path: str) -> bool:
        return path_matches(self.path, path)

    def describe(self) -> str:
        """The fault in the text grammar (round-trips through :func:`parse_fault`)."""
        if self.status is not None:
            kind = str(self.status)
        elif self.reset == "before":
            kind = "reset"
        elif self.reset == "after":
            kind = "reset-after"
        elif self.truncate:
            kind = "truncate"
        elif self.latency:
            return "+".join([f"latency={_num(self.latency)}", *self._options(latency=False)])
        else:
            kind = "ok"
        return "+".join([kind, *self._options(latency=True)])

    def _options(self, *, latency: bool) -> list[str]:
        options = []
        if self.retry_after is not None:
            options.append(f"retry-after={_num(self.retry_after)}")
        if latency and self.latency:
            options.append(f"latency={_num(self.latency)}")
        if self.charged:
            options.append("charged")
        if self.html:
            options.append("html")
        if self.path:
            options.append(f"path={self.path}")
        return options


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def path_matches(pattern: str | None, path: str) -> bool:
    """No pattern matches everything; a glob (``*?[``) is matched whole, else a prefix."""
    if not pattern:
        return True
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(path, pattern)
    return path.startswith(pattern)


def _seconds(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise FaultSpecError(f"{what} must be a number of seconds, got {text!r}") from None
    if value < 0:
        raise FaultSpecError(f"{what} must not be negative, got {text!r}")
    return value


def parse_fault(text: str) -> Fault | None:
    """One fault in the text grammar (without probability); ``"ok"`` gives None."""
    parts = [p.strip() for p in text.strip().split("+")]
    kind, options = parts[0].lower(), parts[1:]
    status: int | None = None
    reset: ResetStage | None = None
    truncate = False
    latency = 0.0
    if kind.isdigit():
        status = int(kind)
    elif kind == "reset":
        reset = "before"
    elif kind == "reset-after":
        reset = "after"
    elif kind == "truncate":
        truncate = True
    elif kind.startswith("latency="):
        latency = _seconds(kind.partition("=")[2], "latency")
    elif kind == "ok":
        pass
    else:
        raise FaultSpecError(
            f"unknown fault {kind!r}: use a status (400..599), reset, reset-after, "
            "truncate, latency=SECONDS or ok"
        )
    retry_after: float | None = None
    charged = html = False
    path: str | None = None
    for option in options:
        name, _, value = option.partition("=")
        name = name.lower()
        if name == "retry-after":
            retry_after = _seconds(value, "retry-after")
        elif name == "latency":
            latency = _seconds(value, "latency")
        elif name == "charged" and not value:
            charged = True
        elif name == "html" and not value:
            html = True
        elif name == "path" and value:
            path = value
        else:
            raise FaultSpecError(
                f"unknown fault option {option!r}: use retry-after=SECONDS, "
                "latency=SECONDS, charged, html or path=PATTERN"
            )
    fault = Fault(
        status=status,
        retry_after=retry_after,
        reset=reset,
        truncate=truncate,
        latency=latency,
        charged=charged,
        html=html,
        path=path,
    )
    if kind == "ok" and fault == Fault(path=path):
        return None
    return fault


def parse_fault_spec(spec: str) -> tuple[list[tuple[Fault, float]], int | None]:
    """A random-fault spec: the faults with their probabilities, and the seed if given."""
    faults: list[tuple[Fault, float]] = []
    seed: int | None = None
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.lower().startswith("seed="):
            try:
                seed = int(item.partition("=")[2])
            except ValueError:
                raise FaultSpecError(f"seed must be an integer, got {item!r}") from None
            continue
        text, sep, probability_text = item.rpartition(":")
        if not sep:
            text, probability_text = item, "1"
        try:
            probability = float(probability_text)
        except ValueError:
            raise FaultSpecError(f"probability must be a number, got {item!r}") from None
        if not 0 <= probability <= 1:
            raise FaultSpecError(f"probability must be between 0 and 1, got {item!r}")
        fault = parse_fault(text)
        if fault is not None:
            faults.append((fault, probability))
    if sum(p for _, p in faults) > 1 + 1e-9:
        raise FaultSpecError("the probabilities of a fault spec add up to more than 1")
    return faults, seed


@dataclass
class _Script:
    faults: deque[Fault | None]
    path: str | None


class FaultPlan:
    """Where each request's fault comes from: scripts first, then random draws.

    Thread-safe, because the sandbox's state may be read from a test thread while a
    server thread answers requests.
    """

    def __init__(
        self, random_faults: Sequence[tuple[Fault, float]] = (), seed: int | None = None
    ) -> None:
        self._lock = threading.Lock()
        self._scripts: list[_Script] = []
        self._random: list[tuple[Fault, float]] = []
        self._rng = random.Random(seed)
        self.set_random(random_faults, seed)

    @classmethod
    def from_spec(cls, spec: str | None) -> FaultPlan:
        if not spec:
            return cls()
        faults, seed = parse_fault_spec(spec)
        return cls(faults, seed)

    def set_random(self, faults: Sequence[tuple[Fault, float]], seed: int | None = None) -> None:
        total = sum(p for _, p in faults)
        if total > 1 + 1e-9:
            raise FaultSpecError("fault probabilities add up to more than 1")
        with self._lock:
            self._random = list(faults)
            self._rng = random.Random(seed)

    def script(self, faults: Iterable[Fault | None], path: str | None = None) -> None:
        """Queue faults consumed one per request whose path matches ``path``
        (None in the list = answer that request normally)."""
        with self._lock:
            self._scripts.append(_Script(deque(faults), path))

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._random = []

    @property
    def pending(self) -> int:
        """Scripted faults not yet consumed."""
        with self._lock:
            return sum(len(s.faults) for s in self._scripts)

    def next_for(self, path: str) -> Fault | None:
        """The fault for the next request to ``path`` (None: answer normally)."""
        with self._lock:
            for script in self._scripts:
                if script.faults and path_matches(script.path, path):
                    fault = script.faults.popleft()
                    self._scripts = [s for s in self._scripts if s.faults]
                    return fault
            if not self._random:
                return None
            draw = self._rng.random()
            cumulative = 0.0
            for fault, probability in self._random:
                cumulative += probability
                if draw < cumulative:
                    return fault if fault.matches(path) else None
            return None

    def describe(self) -> dict[str, object]:
        with self._lock:
            return {
                "scripted": [
                    {"path": s.path, "faults": [f.describe() if f else "ok" for f in s.faults]}
                    for s in self._scripts
                ],
                "random": [{"fault": f.describe(), "probability": p} for f, p in self._random],
            }
