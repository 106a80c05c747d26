"""Real processes against a sandbox served by uvicorn on 127.0.0.1: a runner killed
with SIGKILL in the middle of a loop and resumed, and two runner processes sharing one
API key. What was sent is read from the sandbox's journal."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stability_connector.catalog import find_catalog_root
from stability_connector.sandbox import RunningSandbox, Sandbox, SandboxConfig, serve_in_thread
from stability_connector.workflows.store import Store

pytestmark = pytest.mark.slow

ROOT = find_catalog_root()
KEY = "sk-workflow-processes-0123456789"


@pytest.fixture
def served() -> Iterator[RunningSandbox]:
    sandbox = Sandbox(SandboxConfig(credits=1e6, latency=0.25, random_seed=3))
    with serve_in_thread(sandbox) as running:
        yield running


def cli(served: RunningSandbox, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "stability_connector.cli", *map(str, args)]


def env_for(served: RunningSandbox) -> dict[str, str]:
    return {
        **os.environ,
        "STABILITY_API_KEY": KEY,
        "STABILITY_BASE_URL": served.base_url,
        "PYTHONPATH": str(ROOT / "runtime"),
    }


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    text = yaml.safe_dump(data, sort_keys=False) if name.endswith(".yaml") else json.dumps(data)
    path.write_text(text, encoding="utf-8")
    return path


def item_states(db: Path) -> dict[int, str]:
    """The loop items' states; none while the runner has yet to create its tables."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT item_index, status FROM items WHERE step_id='shot'").fetchall()
    except sqlite3.OperationalError as error:
        if "no such table" not in str(error):
            raise
        rows = []
    finally:
        conn.close()
    return dict(rows)


def test_kill_9_mid_loop_then_retry_sends_no_succeeded_item_again(
    served: RunningSandbox, tmp_path: Path
) -> None:
    names = [f"item {i:02d}" for i in range(30)]
    workflow = write(
        tmp_path,
        "flow.yaml",
        {
            "name": "killed",
            "trigger": {"type": "object", "properties": {"names": {"type": "array"}}},
            "steps": [
                {
                    "id": "shot",
                    "action": "generate_image",
                    "for_each": "<<trigger.names>>",
                    "concurrency": 3,
                    "inputs": {"prompt": "<<item>>", "model": "sd3.5-medium"},
                }
            ],
        },
    )
    trigger = write(tmp_path, "trigger.json", {"names": names})
    db = tmp_path / "runs.sqlite3"
    process = subprocess.Popen(
        cli(served, "workflow", "run", workflow, "--trigger", trigger, "--db", db, "--quiet"),
        env=env_for(served),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # Wait (by state, not by time) until a few items succeeded, then kill hard.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if db.exists() and Counter(item_states(db).values())["succeeded"] >= 6:
                break
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL

    states = item_states(db)
    done_before = {i for i, s in states.items() if s == "succeeded"}
    in_flight = {i for i, s in states.items() if s == "running"}
    assert 6 <= len(done_before) < len(names)
    assert len(in_flight) <= 3
    with Store(db) as store:
        (run,) = store.runs()
        assert run.shown_status == "interrupted"

    retried = subprocess.run(
        cli(served, "runs", "retry", run.id, "--db", db, "--quiet"),
        env=env_for(served),
        capture_output=True,
        text=True,
        check=False,
    )
    assert retried.returncode == 0, retried.stderr

    sent = Counter(e.fields["prompt"] for e in served.sandbox.journal if "/generate/" in e.path)
    for i, name in enumerate(names):
        if i in done_before:
            assert sent[name] == 1, f"{name} succeeded before the kill and was sent again"
        elif i in in_flight:
            assert 1 <= sent[name] <= 2  # its first send's fate was unknown: sent again
        else:
            assert sent[name] == 1  # never started before the kill
    with Store(db) as store:
        assert store.run(run.id).status == "succeeded"
        assert all(i.status == "succeeded" for i in store.items(run.id))
        warnings = [e for e in store.events(run.id) if e["level"] == "warning"]
        assert {e["item"] for e in warnings} == in_flight


def test_two_runner_processes_on_one_key_stay_under_the_rate_limit(
    served: RunningSandbox, tmp_path: Path
) -> None:
    workflow = write(
        tmp_path,
        "balance.yaml",
        {
            "name": "balances",
            "trigger": {"type": "object", "properties": {"n": {"type": "array"}}},
            "steps": [
                {
                    "id": "check",
                    "action": "account_balance",
                    "for_each": "<<trigger.n>>",
                    "concurrency": 25,
                }
            ],
        },
    )
    trigger = write(tmp_path, "trigger.json", {"n": list(range(100))})
    db = tmp_path / "runs.sqlite3"
    Store(db).close()  # created once, so both processes find it ready
    processes = [
        subprocess.Popen(
            cli(served, "workflow", "run", workflow, "--trigger", trigger, "--db", db, "--quiet"),
            env=env_for(served),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:
        assert process.wait(timeout=180) == 0, process.stderr.read() if process.stderr else ""

    journal = [e for e in served.sandbox.journal if e.path == "/v1/user/balance"]
    assert len(journal) == 200
    assert [e.status for e in journal if e.status != 200] == []  # no 429
    times = sorted(e.at for e in journal)
    busiest = max(sum(1 for t in times[i:] if t < start + 10.0) for i, start in enumerate(times))
    assert busiest <= 150
