"""What the runtime adds to a Generate Image call, and how long the catalog takes to load.

1. Node overhead: one ``generate_image`` run through ``Runtime.run`` (templates,
   normalization, validation, request rendering, the sender with its limiter and run
   log, response mapping, the file written and the base64 output) against the same
   multipart POST sent by raw httpx. Both go to one in-process sandbox over the same
   ``httpx.ASGITransport``, interleaved run by run so drift hits both alike. The
   sandbox's rate limit is lifted and its media cache serves identical requests, so
   what differs is the runtime's own work.
2. Catalog load time: a cold ``import stability_connector.catalog`` plus
   ``load_catalog()`` in a fresh interpreter, N times.

    .venv/bin/python bench/node_overhead.py [--runs 300] [--load-runs 15]

Prints figures only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import stability_connector  # noqa: F401
except ImportError:  # running from a checkout without an install
    sys.path.insert(0, str(ROOT / "runtime"))

import httpx  # noqa: E402

from stability_connector.catalog import load_catalog  # noqa: E402
from stability_connector.clock import FakeClock  # noqa: E402
from stability_connector.connection import Connection, Secret  # noqa: E402
from stability_connector.node import Runtime  # noqa: E402
from stability_connector.sandbox import SANDBOX_BASE_URL, Sandbox, SandboxConfig  # noqa: E402

KEY = "sk-bench"
INPUTS = {
    "prompt": "<<trigger.prompt>>",
    "aspect_ratio": "16:9 (Landscape)",
    "output_format": "PNG",
    "seed": "42",
}
CONTEXT = {"trigger": {"prompt": "a lighthouse at dusk"}}
# What the runtime sends for INPUTS, field for field.
FIELDS = {
    "prompt": "a lighthouse at dusk",
    "aspect_ratio": "16:9",
    "seed": "42",
    "output_format": "png",
}
HEADERS = {
    "authorization": f"Bearer {KEY}",
    "accept": "image/*",
    "stability-client-id": "stability-connector",
    "stability-client-version": "0.1.0",
}


async def node_overhead(runs: int) -> dict[str, float]:
    sandbox = Sandbox(SandboxConfig(rate_limit=10**9, credits=1e12, random_seed=1))
    transport = sandbox.transport()
    connection = Connection(name="bench", base_url=SANDBOX_BASE_URL, api_key=Secret(KEY))
    catalog = load_catalog()
    raw_client = httpx.AsyncClient(base_url=SANDBOX_BASE_URL, transport=transport)
    times: dict[str, list[float]] = {"runtime": [], "runtime_new_file": [], "raw": []}
    with tempfile.TemporaryDirectory() as out:
        async with Runtime(
            catalog,
            clock=FakeClock(),
            out_dir=Path(out),
            client_factory=lambda c: httpx.AsyncClient(base_url=c.base_url, transport=transport),
        ) as runtime:

            async def through_runtime() -> str:
                result = await runtime.run("generate_image", INPUTS, CONTEXT, connection=connection)
                assert result.outputs["image"] and result.outputs["seed"] == 42
                return str(result.outputs["file"])

            async def raw() -> None:
                # httpx sends urlencoded without files, so an empty file part keeps it multipart,
                # as the sandbox's own documentation shows.
                response = await raw_client.post(
                    "/v2beta/stable-image/generate/core",
                    headers=HEADERS,
                    data=FIELDS,
                    files={"none": ("", b"", "application/octet-stream")},
                )
                assert response.status_code == 200 and response.content

            for _ in range(10):  # warm both paths (imports, caches, the sandbox's media cache)
                await through_runtime()
                await raw()
            for _ in range(runs):
                start = time.perf_counter()
                file = await through_runtime()
                times["runtime"].append(time.perf_counter() - start)
                # The same result once its file is gone: the file is really written.
                os.unlink(file)
                start = time.perf_counter()
                await through_runtime()
                times["runtime_new_file"].append(time.perf_counter() - start)
                start = time.perf_counter()
                await raw()
                times["raw"].append(time.perf_counter() - start)
    await raw_client.aclose()
    return {
        f"{name}_{stat.__name__}": stat(values)
        for name, values in times.items()
        for stat in (statistics.median, statistics.fmean)
    }


_LOAD = """
import time
start = time.perf_counter()
from stability_connector.catalog import load_catalog
imported = time.perf_counter()
catalog = load_catalog()
done = time.perf_counter()
print(imported - start, done - imported, len(catalog.actions))
"""


def catalog_load(runs: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "runtime")}
    imports: list[float] = []
    loads: list[float] = []
    actions = 0
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", _LOAD], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        imports.append(float(out[0]))
        loads.append(float(out[1]))
        actions = int(out[2])
    return {
        "import_median": statistics.median(imports),
        "load_median": statistics.median(loads),
        "total_median": statistics.median(a + b for a, b in zip(imports, loads, strict=True)),
        "actions": actions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="runs of each kind (>= 200)")
    parser.add_argument("--load-runs", type=int, default=15, help="cold catalog loads")
    args = parser.parse_args()

    node = asyncio.run(node_overhead(args.runs))
    ms = 1000.0
    raw_median, raw_mean = node["raw_median"], node["raw_fmean"]
    print(f"## Node overhead ({args.runs} interleaved runs of each)")
    print("| path | median ms | mean ms | ratio to raw (median / mean) |")
    print("|---|---|---|---|")
    for name, label in (
        ("runtime", "Runtime.run generate_image (result file already written)"),
        ("runtime_new_file", "Runtime.run generate_image (result file written anew)"),
        ("raw", "raw httpx multipart POST"),
    ):
        median, mean = node[f"{name}_median"], node[f"{name}_fmean"]
        print(
            f"| {label} | {median * ms:.2f} | {mean * ms:.2f} | "
            f"{median / raw_median:.2f} / {mean / raw_mean:.2f} |"
        )

    load = catalog_load(args.load_runs)
    print(f"\n## Catalog load time ({args.load_runs} fresh interpreters, medians)")
    print(f"import stability_connector.catalog: {load['import_median'] * ms:.1f} ms")
    print(f"load_catalog() ({load['actions']:.0f} actions): {load['load_median'] * ms:.1f} ms")
    print(f"together: {load['total_median'] * ms:.1f} ms")


if __name__ == "__main__":
    main()
