"""A 300-item workflow loop against a sandbox on 127.0.0.1 that fails on purpose: 20 %
of requests get 503, 10 % get 429 with ``Retry-After``, 5 % have their connection reset.

    .venv/bin/python bench/workflow_chaos.py [--items 300] [--seed 11]

The workflow's retry policy (5 attempts, exponential backoff with full jitter) is the only
retry layer. Figures come from the run store (the run log): items delivered, attempts
per item, every failure by kind, the waits; and from the sandbox's journal (requests seen).
With 35 % of attempts failing, an item fails all 5 attempts with probability
0.35^5 ≈ 0.5 %; such an item pauses the run and ``runs retry`` completes it — the
script does that too and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "runtime"))

import os  # noqa: E402

from stability_connector.catalog import load_catalog  # noqa: E402
from stability_connector.sandbox import Sandbox, SandboxConfig, serve_in_thread  # noqa: E402

FAULTS = "503:0.2,429+retry-after=2:0.1,reset:0.05"


def workflow_document(concurrency: int) -> dict[str, object]:
    return {
        "name": "chaos",
        "trigger": {"type": "object", "properties": {"names": {"type": "array"}}},
        "retry": {"max_attempts": 5, "initial_delay": 0.5, "max_delay": 8.0},
        "steps": [
            {
                "id": "shot",
                "action": "generate_image",
                "for_each": "<<trigger.names>>",
                "concurrency": concurrency,
                "inputs": {
                    "prompt": "<<item>>",
                    "model": "sd3.5-medium",
                    "seed": "7",
                    "output_format": "png",
                },
            }
        ],
    }


async def run(args: argparse.Namespace, base_url: str, work: Path) -> dict[str, object]:
    from stability_connector.node import Runtime
    from stability_connector.workflows.runner import WorkflowRunner
    from stability_connector.workflows.spec import workflow_from_data
    from stability_connector.workflows.store import Store

    os.environ["STABILITY_API_KEY"] = "sk-chaos-bench"
    os.environ["STABILITY_BASE_URL"] = base_url
    catalog = load_catalog()
    workflow = workflow_from_data(workflow_document(args.concurrency), catalog, "chaos")
    # 16 distinct prompts: the sandbox renders each once (see workflow_loop.py).
    names = [f"chaos product {i % 16}" for i in range(args.items)]
    async with Runtime(catalog, out_dir=work / "files") as runtime:
        with Store(work / "runs.sqlite3") as store:
            runner = WorkflowRunner(runtime, store, default_retry=catalog.connector.retry)
            started = time.monotonic()
            outcome = await runner.start(workflow, {"names": names})
            first_status = outcome.status
            resumes = 0
            while outcome.status == "paused" and resumes < 3:
                resumes += 1
                outcome = await runner.resume(outcome.run_id, workflow)
            elapsed = time.monotonic() - started
            items = store.items(outcome.run_id)
            attempts = store.attempts(outcome.run_id)
    per_item = Counter(a["item_index"] for a in attempts)
    failures = Counter(
        str(a["status"]) if a["status"] is not None else "connection error"
        for a in attempts
        if a["status"] != 200
    )
    return {
        "first_status": first_status,
        "resumes": resumes,
        "final_status": outcome.status,
        "delivered": sum(i.status == "succeeded" for i in items),
        "elapsed": elapsed,
        "attempts": len(attempts),
        "max_attempts_per_item": max(per_item.values()),
        "items_by_attempts": dict(sorted(Counter(per_item.values()).items())),
        "failures_logged": dict(failures),
        "waits_logged": sum(1 for a in attempts if a["wait_before_next"] is not None),
        "may_have_been_charged": sum(1 for a in attempts if a["may_have_been_charged"]),
        "items_completed_by_runs_retry": sum(1 for i in items if i.sends > 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    config = SandboxConfig(
        credits=1e9, latency=args.latency, faults=FAULTS, fault_seed=args.seed, random_seed=1
    )
    sandbox = Sandbox(config)
    print(
        f"{args.items} items, sandbox faults {FAULTS} (seed {args.seed}), latency {args.latency} s"
    )
    with serve_in_thread(sandbox) as running, tempfile.TemporaryDirectory() as work:
        result = asyncio.run(run(args, running.base_url, Path(work)))
    journal = [e for e in sandbox.journal if "/generate/" in e.path]
    result["journal_requests"] = len(journal)
    result["journal_outcomes"] = dict(
        Counter(str(e.status) if e.status is not None else e.outcome for e in journal)
    )
    for key, value in result.items():
        print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
