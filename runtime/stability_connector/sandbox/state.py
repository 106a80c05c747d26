"""What the sandbox remembers: accounts (credits, rate-limit windows), asynchronous
jobs, and the journal of requests.

API keys are never stored: an account is found by the SHA-256 of its key and shown by
the first 8 hex digits of it (the key's *fingerprint*).
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .config import SandboxConfig
from .media import Media

if TYPE_CHECKING:
    from .jobfiles import JobFiles

__all__ = ["Account", "Job", "JournalEntry", "SandboxState", "fingerprint", "key_digest"]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def fingerprint(key: str) -> str:
    """How a key is shown anywhere: the first 8 hex digits of its SHA-256."""
    return key_digest(key)[:8]


@dataclass(frozen=True)
class JournalEntry:
    """One request the sandbox received, and what it answered.

    ``status`` is None when the connection was cut before a status line was sent.
    ``outcome`` is ``ok`` (2xx), ``error`` (an error status), ``reset-before``,
    ``reset-after`` or ``truncated``. Header values and fields never hold the API key
    (it is replaced by ``***``); ``key_fingerprint`` identifies the key instead.
    """

    seq: int
    at: float
    wall_time: float
    method: str
    path: str
    query: str
    operation: str | None
    headers: dict[str, str]
    fields: dict[str, str]
    files: dict[str, int]
    body_size: int
    status: int | None
    outcome: str
    key_fingerprint: str | None
    request_id: str
    error_name: str | None = None
    fault: str | None = None
    credits_charged: float = 0.0
    job_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Account:
    digest: str
    credits: float
    requests: deque[float] = field(default_factory=deque)
    timed_out_until: float = -math.inf

    @property
    def fingerprint(self) -> str:
        return self.digest[:8]


@dataclass
class Job:
    """An asynchronous generation. Its result is rendered (and charged) once, when it is
    first asked for after ``ready_at``, or charged when the clock passes ``ready_at``."""

    id: str
    owner: str
    operation: str
    family: str
    created: float
    ready_at: float
    expires_at: float
    price: float
    render: Callable[[], Media]
    charged: bool = False
    result: Media | None = None


@dataclass(frozen=True)
class Admission:
    allowed: bool
    retry_in: float = 0.0


class SandboxState:
    """Accounts, jobs and the journal, guarded by one lock (the state may be read from a
    test thread while a server thread answers requests)."""

    def __init__(self, config: SandboxConfig, files: JobFiles | None = None) -> None:
        self.config = config
        self.lock = threading.RLock()
        self.accounts: dict[str, Account] = {}
        self.jobs: dict[str, Job] = {}
        self.journal: list[JournalEntry] = []
        self._dropped = 0  # journal entries dropped beyond the limit
        self._allowed: dict[str, float] | None = None
        self._files = files  # where jobs are also kept, for other processes
        self.reset()

    def reset(self) -> None:
        """Back to the configured credits; no jobs, no journal, no rate-limit history."""
        with self.lock:
            self.accounts.clear()
            self.jobs.clear()
            self.journal.clear()
            self._dropped = 0
            keys = self.config.keys
            if keys is None:
                self._allowed = None
            elif hasattr(keys, "items"):
                self._allowed = {key_digest(k): float(v) for k, v in keys.items()}
            else:
                self._allowed = {key_digest(k): self.config.credits for k in keys}

    # --- accounts ------------------------------------------------------------------

    def account(self, key: str) -> Account | None:
        """The account of a key, or None when the sandbox does not accept the key."""
        if not key:
            return None
        digest = key_digest(key)
        with self.lock:
            account = self.accounts.get(digest)
            if account is not None:
                return account
            if self._allowed is None:
                credits = self.config.credits
            elif digest in self._allowed:
                credits = self._allowed[digest]
            else:
                return None
            account = self.accounts[digest] = Account(digest, credits)
            return account

    def admit(self, account: Account, now: float) -> Admission:
        """Count a request against the key's rate limit: more than ``rate_limit`` in
        ``rate_window`` seconds times the key out for ``timeout_seconds``."""
        config = self.config
        with self.lock:
            if now < account.timed_out_until:
                return Admission(False, account.timed_out_until - now)
            window = account.requests
            while window and window[0] <= now - config.rate_window:
                window.popleft()
            if len(window) >= config.rate_limit:
                account.timed_out_until = now + config.timeout_seconds
                window.clear()
                return Admission(False, config.timeout_seconds)
            window.append(now)
            return Admission(True)

    def available(self, account: Account, now: float) -> float:
        """Credits not yet spent nor promised to running jobs."""
        with self.lock:
            self.settle(now)
            held = sum(
                job.price
                for job in self.jobs.values()
                if job.owner == account.digest and not job.charged
            )
            return account.credits - held

    def charge(self, account: Account, credits: float) -> None:
        with self.lock:
            account.credits = round(account.credits - credits, 6)

    def refund(self, account: Account, credits: float) -> None:
        self.charge(account, -credits)

    def balance(self, key: str) -> float:
        account = self.account(key)
        if account is None:
            raise KeyError("the sandbox does not accept this key")
        with self.lock:
            self.settle(self.config.now())
            return account.credits

    def set_credits(self, key: str, credits: float) -> None:
        account = self.account(key)
        if account is None:
            raise KeyError("the sandbox does not accept this key")
        with self.lock:
            account.credits = float(credits)

    # --- jobs ----------------------------------------------------------------------

    def add_job(self, job: Job, now: float) -> None:
        with self.lock:
            self.jobs[job.id] = job
            if self._files is not None:
                self._files.save(job, now)

    def settle(self, now: float) -> None:
        """Charge every job whose result is ready; forget expired jobs."""
        with self.lock:
            for job_id, job in list(self.jobs.items()):
                if not job.charged and now >= job.ready_at:
                    job.charged = True
                    owner = self.accounts.get(job.owner)
                    if owner is not None:
                        owner.credits = round(owner.credits - job.price, 6)
                if now >= job.expires_at:
                    del self.jobs[job_id]

    def find_job(
        self, job_id: str, account: Account, families: tuple[str, ...], now: float
    ) -> Job | None:
        """A job of this key, served by a results call of these families, not expired."""
        with self.lock:
            self.settle(now)
            job = self.jobs.get(job_id)
            if job is None and self._files is not None:
                job = self._files.load(job_id, now)
                if job is not None:
                    self.jobs[job_id] = job
                    self.settle(now)
            if job is None or job.owner != account.digest or job.family not in families:
                return None
            return job

    # --- journal -------------------------------------------------------------------

    def record(self, entry_fields: dict[str, Any]) -> JournalEntry:
        with self.lock:
            entry = JournalEntry(seq=self._dropped + len(self.journal), **entry_fields)
            self.journal.append(entry)
            excess = len(self.journal) - self.config.journal_limit
            if excess > 0:
                del self.journal[:excess]
                self._dropped += excess
            return entry

    def journal_since(self, seq: int = 0) -> list[JournalEntry]:
        """Entries with sequence numbers from ``seq`` on (those still kept)."""
        with self.lock:
            return list(self.journal[max(0, seq - self._dropped) :])

    @property
    def journal_next(self) -> int:
        with self.lock:
            return self._dropped + len(self.journal)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            self.settle(self.config.now())
            return {
                "accounts": [
                    {
                        "key_fingerprint": a.fingerprint,
                        "credits": a.credits,
                        "timed_out": a.timed_out_until > self.config.now(),
                    }
                    for a in self.accounts.values()
                ],
                "jobs": len(self.jobs),
                "journal": len(self.journal),
            }
