"""Sandbox-only routes under ``/_sandbox/``, for a process that shares the sandbox
without sharing its memory (benchmarks, several runner processes on one key).

=====================  ===============================================================
``GET  /_sandbox/journal?since=N``   journal entries from sequence number N:
                                     ``{"entries": [...], "next": M}``
``GET  /_sandbox/state``             settings, accounts (by key fingerprint), jobs, faults
``POST /_sandbox/reset``             credits back to the start; no jobs, journal or faults
``POST /_sandbox/faults``            ``{"spec": "503:0.2,seed=7"}`` sets random faults;
                                     ``{"script": ["503", null, "reset"], "path": "/v2beta/*"}``
                                     queues scripted ones; ``{}`` clears all
``POST /_sandbox/credits``           ``{"key": "...", "credits": 12.5}`` sets a balance
=====================  ===============================================================

These routes are not journaled, need no key, and take no part in rate limits or faults.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from .config import SandboxConfig
from .faults import FaultPlan, FaultSpecError, parse_fault, parse_fault_spec
from .replies import Reply, json_reply
from .state import SandboxState

__all__ = ["AdminRoutes"]


class AdminRoutes:
    def __init__(self, config: SandboxConfig, state: SandboxState, faults: FaultPlan) -> None:
        self.config = config
        self.state = state
        self.faults = faults

    def handle(self, method: str, path: str, query: str, body: bytes) -> Reply:
        route = path.rstrip("/").removeprefix("/_sandbox").lstrip("/")
        handlers = {
            ("GET", "journal"): self._journal,
            ("GET", "state"): self._state,
            ("POST", "reset"): self._reset,
            ("POST", "faults"): self._faults,
            ("POST", "credits"): self._credits,
        }
        handler = handlers.get((method, route))
        if handler is None:
            known = ", ".join(f"{m} /_sandbox/{r}" for m, r in handlers)
            return json_reply(404, {"error": f"no sandbox route {method} {path}; use {known}"})
        try:
            payload = json.loads(body) if body.strip() else {}
        except ValueError:
            return json_reply(400, {"error": "the body must be JSON"})
        if not isinstance(payload, dict):
            return json_reply(400, {"error": "the body must be a JSON object"})
        params = dict(urllib.parse.parse_qsl(query))
        try:
            return handler(payload, params)
        except (FaultSpecError, ValueError, KeyError, TypeError) as error:
            return json_reply(400, {"error": str(error).strip("'\"")})

    def _journal(self, payload: dict[str, Any], params: dict[str, str]) -> Reply:
        since = int(params.get("since", "0"))
        entries = [entry.to_dict() for entry in self.state.journal_since(since)]
        return json_reply(200, {"entries": entries, "next": self.state.journal_next})

    def _state(self, payload: dict[str, Any], params: dict[str, str]) -> Reply:
        c = self.config
        return json_reply(
            200,
            {
                "settings": {
                    "credits": c.credits,
                    "rate_limit": c.rate_limit,
                    "rate_window": c.rate_window,
                    "timeout_seconds": c.timeout_seconds,
                    "retry_after": c.retry_after,
                    "job_seconds": c.job_seconds,
                    "job_ttl": c.job_ttl,
                    "latency": c.latency,
                    "keys": "any" if c.keys is None else len(c.keys),
                },
                **self.state.snapshot(),
                "faults": self.faults.describe(),
            },
        )

    def _reset(self, payload: dict[str, Any], params: dict[str, str]) -> Reply:
        self.state.reset()
        self.faults.clear()
        return json_reply(200, {"reset": True})

    def _faults(self, payload: dict[str, Any], params: dict[str, str]) -> Reply:
        if not payload:
            self.faults.clear()
        if "spec" in payload:
            faults, seed = parse_fault_spec(str(payload["spec"] or ""))
            self.faults.set_random(faults, seed)
        if "script" in payload:
            items = payload["script"]
            if not isinstance(items, list):
                raise ValueError("script must be a list of fault strings or nulls")
            self.faults.script(
                [None if item is None else parse_fault(str(item)) for item in items],
                path=payload.get("path"),
            )
        return json_reply(200, {"faults": self.faults.describe()})

    def _credits(self, payload: dict[str, Any], params: dict[str, str]) -> Reply:
        self.state.set_credits(str(payload["key"]), float(payload["credits"]))
        return json_reply(200, {"credits": float(payload["credits"])})
