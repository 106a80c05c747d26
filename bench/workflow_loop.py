"""A 300-item workflow loop against the sandbox served on 127.0.0.1, limited to 150
requests per 10 s with 1 s of latency per generation, beside the loops users write by
hand (a plain ``asyncio.gather`` over httpx, and a sequential loop).

    .venv/bin/python bench/workflow_loop.py [--items 300] [--concurrency 32]

Each contender runs in its own process (so its peak memory is its own) against its own
sandbox (so no rate-limit state or 60 s lockout carries over), with the same request:
``generate_image`` (SD 3.5 Medium) at 1:1, a 1 MP PNG written to disk per item.

Figures, from the sandbox's journal:
- rate: the mean number of requests in every 10 s window that starts at a request and
  ends before the last one, as a fraction of the limit (150); the peak window too;
- 429s answered;
- peak memory (max RSS) of the workflow process for 50 and for 300 items.
The sequential loop runs for a time slice and is extrapolated (it is said in the output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "runtime"))

from stability_connector.sandbox import Sandbox, SandboxConfig, serve_in_thread  # noqa: E402

LIMIT, WINDOW = 150, 10.0
ACTION = "generate_image"


def workflow_document(concurrency: int) -> dict[str, Any]:
    return {
        "name": "bench_loop",
        "trigger": {"type": "object", "properties": {"products": {"type": "array"}}},
        "steps": [
            {
                "id": "shot",
                "action": ACTION,
                "for_each": "<<trigger.products>>",
                "concurrency": concurrency,
                "inputs": {
                    "prompt": "<<item.name>>, studio product photo",
                    "seed": "<<item.seed>>",
                    "aspect_ratio": "1:1",
                    "model": "sd3.5-medium",
                    "output_format": "png",
                },
            }
        ],
    }


def products(n: int) -> list[dict[str, str]]:
    """Every item is a distinct (prompt, seed) pair, so the sandbox renders a new 1 MP
    PNG for each, as the API would generate one."""
    return [{"name": f"product number {i}", "seed": str(1 + i)} for i in range(n)]


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM starts afresh at exec; ru_maxrss
    would carry the parent's peak over into the child on Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# --- contenders (each in a child process) ----------------------------------------------


async def run_workflow(args: argparse.Namespace) -> dict[str, Any]:
    from stability_connector.catalog import load_catalog
    from stability_connector.node import Runtime
    from stability_connector.workflows.runner import WorkflowRunner
    from stability_connector.workflows.spec import workflow_from_data
    from stability_connector.workflows.store import Store

    catalog = load_catalog()
    workflow = workflow_from_data(workflow_document(args.concurrency), catalog, "bench")
    work = Path(args.work)
    async with Runtime(catalog, out_dir=work / "files", shared_limit_dir=work / "ratelimit") as rt:
        with Store(work / "runs.sqlite3") as store:
            runner = WorkflowRunner(rt, store, default_retry=catalog.connector.retry)
            started = time.monotonic()
            outcome = await runner.start(workflow, {"products": products(args.items)})
            elapsed = time.monotonic() - started
            items = store.items(outcome.run_id)
    return {
        "status": outcome.status,
        "delivered": sum(i.status == "succeeded" for i in items),
        "elapsed": elapsed,
        "peak_rss_mib": peak_rss_mib(),
    }


def wire_request() -> Any:
    """The exact request the workflow sends for one item, from the runtime itself."""
    from stability_connector.catalog import load_catalog
    from stability_connector.node import Runtime

    runtime = Runtime(load_catalog())
    inputs = workflow_document(1)["steps"][0]["inputs"]
    _, _, request = runtime.prepare(ACTION, inputs, {"item": products(1)[0]})
    return request


async def run_gather(args: argparse.Namespace) -> dict[str, Any]:
    """What people write first: every request at once, no limiter, no retries."""
    import httpx

    request = wire_request()
    out = Path(args.work) / "files"
    out.mkdir(parents=True, exist_ok=True)
    headers = {"authorization": f"Bearer {args.key}", "accept": "image/*"}

    async def one(client: httpx.AsyncClient, i: int, item: dict[str, str]) -> int:
        data = {**(request.data or {}), "prompt": f"{item['name']}, studio product photo"}
        data["seed"] = item["seed"]
        response = await client.post(request.path, headers=headers, data=data, files={"none": ""})
        if response.status_code == 200:
            (out / f"{i}.png").write_bytes(response.content)
        return response.status_code

    started = time.monotonic()
    async with httpx.AsyncClient(base_url=args.base_url, timeout=120) as client:
        statuses = await asyncio.gather(
            *(one(client, i, p) for i, p in enumerate(products(args.items))),
            return_exceptions=True,
        )
    elapsed = time.monotonic() - started
    return {
        "delivered": sum(s == 200 for s in statuses),
        "elapsed": elapsed,
        "peak_rss_mib": peak_rss_mib(),
    }


async def run_sequential(args: argparse.Namespace) -> dict[str, Any]:
    """One request after the other, for a time slice; extrapolated to all items."""
    import httpx

    request = wire_request()
    out = Path(args.work) / "files"
    out.mkdir(parents=True, exist_ok=True)
    headers = {"authorization": f"Bearer {args.key}", "accept": "image/*"}
    done = 0
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=args.base_url, timeout=120) as client:
        for i, item in enumerate(products(args.items)):
            if time.monotonic() - started >= args.slice:
                break
            data = {**(request.data or {}), "prompt": f"{item['name']}, studio product photo"}
            data["seed"] = item["seed"]
            response = await client.post(
                request.path, headers=headers, data=data, files={"none": ""}
            )
            if response.status_code == 200:
                (out / f"{i}.png").write_bytes(response.content)
                done += 1
    elapsed = time.monotonic() - started
    return {
        "delivered": done,
        "elapsed": elapsed,
        "extrapolated_elapsed": elapsed / max(done, 1) * args.items,
        "peak_rss_mib": peak_rss_mib(),
    }


CHILDREN = {"workflow": run_workflow, "gather": run_gather, "sequential": run_sequential}


# --- the orchestrator --------------------------------------------------------------------


def window_figures(times: list[float]) -> tuple[float, int]:
    """(mean requests per full 10 s window / limit, the most in any 10 s window)."""
    times = sorted(times)
    if not times:
        return 0.0, 0
    counts, peak = [], 0
    j = 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + WINDOW:
            j += 1
        peak = max(peak, j - i)
        if start + WINDOW <= times[-1]:
            counts.append(j - i)
    mean = sum(counts) / len(counts) if counts else float(len(times))
    return mean / LIMIT, peak


def contend(name: str, items: int, args: argparse.Namespace) -> dict[str, Any]:
    config = SandboxConfig(
        credits=1e9, rate_limit=LIMIT, rate_window=WINDOW, latency=args.latency, random_seed=1
    )
    sandbox = Sandbox(config)
    key = f"sk-bench-{name}-{items}"
    with serve_in_thread(sandbox) as running, tempfile.TemporaryDirectory() as work:
        env = {
            **os.environ,
            "STABILITY_API_KEY": key,
            "STABILITY_BASE_URL": running.base_url,
            "PYTHONPATH": str(ROOT / "runtime"),
        }
        command = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--items",
            str(items),
            "--concurrency",
            str(args.concurrency),
            "--work",
            work,
            "--base-url",
            running.base_url,
            "--key",
            key,
            "--slice",
            str(args.slice),
        ]
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        journal = [e for e in sandbox.journal if e.path.startswith("/v2")]
    times = [e.at for e in journal if e.status != 429]
    result["requests"] = len(journal)
    result["429s"] = sum(e.status == 429 for e in journal)
    result["rate_fraction"], result["peak_window"] = window_figures(times)
    span = (max(times) - min(times)) if len(times) > 1 else 0.0
    result["requests_per_s"] = (len(times) - 1) / span if span else 0.0
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--small", type=int, default=50, help="items of the memory comparison")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--slice", type=float, default=20.0, help="sequential loop time slice")
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--work")
    parser.add_argument("--base-url")
    parser.add_argument("--key")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(CHILDREN[args.child](args))))
        return 0

    print(
        f"{args.items} items of {ACTION} (1:1, PNG), sandbox on 127.0.0.1: "
        f"{LIMIT} requests / {WINDOW:g} s, {args.latency:g} s latency; "
        f"workflow concurrency {args.concurrency}",
        flush=True,
    )
    rows = []
    for name, items in (
        ("workflow", args.items),
        ("workflow", args.small),
        ("gather", args.items),
        ("sequential", args.items),
    ):
        result = contend(name, items, args)
        rows.append((name, items, result))
        print(f"  {name} ×{items}: {json.dumps(result)}", flush=True)

    print()
    print(
        "| loop | items | delivered | wall time | req/s | rate (of limit) "
        "| peak 10 s window | 429s | peak RSS |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, items, r in rows:
        wall = f"{r['elapsed']:.1f} s"
        if "extrapolated_elapsed" in r:
            wall = (
                f"{r['extrapolated_elapsed']:.0f} s (extrapolated from "
                f"{r['delivered']} in {r['elapsed']:.0f} s)"
            )
        print(
            f"| {name} | {items} | {r['delivered']} | {wall} | {r['requests_per_s']:.1f} | "
            f"{r['rate_fraction']:.2f} | {r['peak_window']} | {r['429s']} "
            f"| {r['peak_rss_mib']:.0f} MiB |"
        )
    big = next(r for n, i, r in rows if n == "workflow" and i == args.items)
    small = next(r for n, i, r in rows if n == "workflow" and i == args.small)
    growth = big["peak_rss_mib"] / small["peak_rss_mib"] - 1
    print(
        f"\nworkflow peak memory, {args.items} vs {args.small} items: "
        f"{big['peak_rss_mib']:.0f} vs {small['peak_rss_mib']:.0f} MiB ({growth:+.1%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
