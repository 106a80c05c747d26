"""The :class:`Sandbox`: one emulated Stability API with its state, faults and journal."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx

from .app import SandboxApp
from .config import SandboxConfig
from .faults import Fault, FaultPlan, parse_fault_spec
from .jobfiles import JobFiles
from .state import JournalEntry, SandboxState

__all__ = ["SANDBOX_BASE_URL", "Sandbox"]

#: The base URL clients use in-process (``.invalid`` never resolves, so nothing leaks out).
SANDBOX_BASE_URL = "http://sandbox.stability.invalid"


class Sandbox:
    """An offline Stability API. Mount :attr:`app` anywhere ASGI runs, or use
    :meth:`client` / :meth:`transport` in-process; :func:`~.server.serve` puts it on
    loopback for other processes."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        files = JobFiles(self.config.jobs_dir) if self.config.jobs_dir is not None else None
        self.state = SandboxState(self.config, files)
        self.faults = FaultPlan()
        self._configure_faults()
        self.app = SandboxApp(self.config, self.state, self.faults)

    def _configure_faults(self) -> None:
        faults = self.config.faults
        if isinstance(faults, str):
            parsed, seed = parse_fault_spec(faults)
            self.faults.set_random(parsed, seed if seed is not None else self.config.fault_seed)
        elif faults:
            self.faults.set_random(list(faults), self.config.fault_seed)

    # --- clients -------------------------------------------------------------------

    def transport(self) -> httpx.ASGITransport:
        """An httpx transport that hands requests to the app in this process."""
        return httpx.ASGITransport(app=self.app)

    def client(self, api_key: str | None = "sk-sandbox", **kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` on :data:`SANDBOX_BASE_URL`, sending ``api_key`` as a
        bearer token (None: no authorization header)."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if api_key is not None:
            headers.setdefault("authorization", f"Bearer {api_key}")
        kwargs.setdefault("timeout", 60.0)
        return httpx.AsyncClient(
            base_url=SANDBOX_BASE_URL, transport=self.transport(), headers=headers, **kwargs
        )

    # --- state ---------------------------------------------------------------------

    @property
    def journal(self) -> list[JournalEntry]:
        """Every request received, oldest first (the live list)."""
        return self.state.journal

    def balance(self, key: str) -> float:
        """The credits left on ``key`` (jobs whose results are ready are charged)."""
        return self.state.balance(key)

    def set_credits(self, key: str, credits: float) -> None:
        self.state.set_credits(key, credits)

    def script(self, faults: Iterable[Fault | None], path: str | None = None) -> None:
        """Faults for the next requests, one each (None: answer that one normally);
        with ``path``, only requests whose path matches it (prefix or glob) use them."""
        self.faults.script(faults, path)

    def set_faults(self, spec: str | None) -> None:
        """Replace the random faults with a spec string (None or "" removes them)."""
        if not spec:
            self.faults.set_random([])
            return
        parsed, seed = parse_fault_spec(spec)
        self.faults.set_random(parsed, seed)

    def clear_faults(self) -> None:
        self.faults.clear()

    def reset(self) -> None:
        """Credits back to the configured amounts; no jobs, journal or faults."""
        self.state.reset()
        self.faults.clear()
