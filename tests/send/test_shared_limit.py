"""Two OS processes sharing one API key share its rate limit through a SQLite file:
the sandbox, served by uvicorn on loopback with the limit lowered to 10 per 2 s,
journals every request; no 2-second window may hold more than 10 and none may get 429."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from stability_connector.ratelimit import default_margin
from stability_connector.sandbox import Sandbox, SandboxConfig, serve_in_thread

from .test_ratelimit import max_in_any_window

WORKER = Path(__file__).with_name("_shared_limit_worker.py")
RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
LIMIT, WINDOW, PER_PROCESS = 10, 2.0, 20


@pytest.mark.slow
def test_two_processes_never_exceed_the_shared_limit(tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig(rate_limit=LIMIT, rate_window=WINDOW, timeout_seconds=1.0))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(RUNTIME), os.environ.get("PYTHONPATH", "")]),
    }
    with serve_in_thread(sandbox) as server:
        args = [server.base_url, str(tmp_path), str(PER_PROCESS), str(LIMIT), str(WINDOW)]
        workers = [
            subprocess.Popen(
                [sys.executable, str(WORKER), name, *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name in ("first", "second")
        ]
        try:
            results = [worker.communicate(timeout=60) for worker in workers]
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
        journal = httpx.get(f"{server.base_url}/_sandbox/journal", timeout=10).json()["entries"]

    for worker, (_, stderr) in zip(workers, results, strict=True):
        assert worker.returncode == 0, stderr
    balance = [e for e in journal if e["path"] == "/v1/user/balance"]
    assert len(balance) == 2 * PER_PROCESS
    assert [e["status"] for e in balance] == [200] * len(balance)
    assert max_in_any_window([e["at"] for e in balance], WINDOW) <= LIMIT
    # The limit was used, not just respected: 40 requests at 10 per 2 s (plus the
    # limiter's margin) need a little over three windows (the first starts at once).
    span = balance[-1]["at"] - balance[0]["at"]
    assert span < (2 * PER_PROCESS / LIMIT - 1) * (WINDOW + default_margin(WINDOW)) * 1.2
    # Both processes sent all along, sharing each window rather than taking turns.
    senders = [e["headers"]["stability-client-user-id"] for e in balance]
    assert senders.count("first") == senders.count("second") == PER_PROCESS
    late = senders[len(senders) // 2 :]
    assert "first" in late and "second" in late
    # The shared file holds fingerprints only.
    for file in tmp_path.iterdir():
        assert b"sk-shared-between-processes" not in file.read_bytes()
