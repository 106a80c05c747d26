"""How many requests per second the sandbox serves on loopback, and its memory.

The sandbox runs as its own process (one uvicorn worker on 127.0.0.1, rate limit
lifted); a client with up to 200 concurrent connections sends a bounded number of
requests (or stops at a time limit) in two scenarios:

- ``generate``: SD 3.5 text-to-image, 1 megapixel PNG, a new seed per request, so
  every answer is rendered and encoded (no cache hits);
- ``balance``: ``GET /v1/user/balance``, the lightest call: the cost of the pipeline
  itself (authorization, rate limit, journal).

Every request must be answered: non-2xx answers and transport errors are counted.
Memory is the server process's peak resident size (VmHWM in /proc/PID/status).

    .venv/bin/python bench/sandbox_throughput.py [--requests 3000] [--concurrency 200]
        [--seconds 60] [--write]

``--write`` puts the figures into docs/benchmarks.md under "## Sandbox throughput".
Prints figures only; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Sandbox throughput"
KEY = "sk-bench-throughput"


@dataclass
class Outcome:
    scenario: str
    client: str
    sent: int = 0
    ok: int = 0
    non_2xx: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    received_bytes: int = 0
    elapsed: float = 0.0

    def answered(self, status: int, size: int, seconds: float) -> None:
        self.latencies.append(seconds)
        self.received_bytes += size
        if 200 <= status < 300:
            self.ok += 1
        else:
            self.non_2xx[status] = self.non_2xx.get(status, 0) + 1

    def error(self, name: str) -> None:
        self.errors[name] = self.errors.get(name, 0) + 1

    @property
    def rps(self) -> float:
        return self.sent / self.elapsed if self.elapsed else 0.0

    def percentile(self, share: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def memory_kib(pid: int, field_name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


def start_server(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "runtime"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "stability_connector.sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--rate-limit",
        "100000000",
        "--credits",
        "1e12",
        "--quiet",
    ]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/v1/engines/list",
                headers={"authorization": f"Bearer {KEY}"},
                timeout=1,
            )
            if response.status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
        if server.poll() is not None:
            break
    server.kill()
    raise SystemExit("the sandbox did not start")


GENERATE_FIELDS = {
    "prompt": "a lighthouse at dusk",
    "model": "sd3.5-large-turbo",
    "output_format": "png",
}
BOUNDARY = "sandboxbenchboundary"


def multipart(fields: dict[str, str]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\ncontent-disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\ncontent-disposition: form-data; name="none"; filename="none"\r\n\r\n\r\n'
    )
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


async def run_httpx(
    port: int, scenario: str, total: int, concurrency: int, seconds: float
) -> Outcome:
    """The load from one httpx.AsyncClient with ``concurrency`` connections."""
    outcome = Outcome(scenario, "httpx")
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds

    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        limits=limits,
        timeout=120,
        headers={"authorization": f"Bearer {KEY}"},
    ) as client:

        async def one(index: int) -> None:
            started = time.perf_counter()
            outcome.sent += 1
            try:
                if scenario == "generate":
                    response = await client.post(
                        "/v2beta/stable-image/generate/sd3",
                        headers={"accept": "image/*"},
                        files={"none": ""},
                        data={**GENERATE_FIELDS, "seed": str(index + 1)},
                    )
                else:
                    response = await client.get("/v1/user/balance")
            except httpx.HTTPError as error:
                outcome.error(type(error).__name__)
                return
            outcome.answered(
                response.status_code, len(response.content), time.perf_counter() - started
            )

        async def worker() -> None:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                await one(index)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        outcome.elapsed = time.perf_counter() - started
    return outcome


async def run_raw(
    port: int, scenario: str, total: int, concurrency: int, seconds: float
) -> Outcome:
    """The same load from plain asyncio sockets (HTTP/1.1 keep-alive). Their own cost
    is small, so the figure is the server's capacity rather than the client's."""
    outcome = Outcome(scenario, "sockets")
    counter = iter(range(total))
    deadline = time.perf_counter() + seconds
    auth = f"host: 127.0.0.1\r\nauthorization: Bearer {KEY}\r\n"

    def request(index: int) -> bytes:
        if scenario == "balance":
            return f"GET /v1/user/balance HTTP/1.1\r\n{auth}\r\n".encode()
        body = multipart({**GENERATE_FIELDS, "seed": str(index + 1)})
        head = (
            f"POST /v2beta/stable-image/generate/sd3 HTTP/1.1\r\n{auth}"
            f"accept: image/*\r\ncontent-type: multipart/form-data; boundary={BOUNDARY}"
            f"\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for index in counter:
                if time.perf_counter() > deadline:
                    return
                started = time.perf_counter()
                outcome.sent += 1
                try:
                    writer.write(request(index))
                    await writer.drain()
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = int(head.split(b" ", 2)[1])
                    length = next(
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    body = await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                    outcome.error(type(error).__name__)
                    return
                outcome.answered(status, len(body), time.perf_counter() - started)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    outcome.elapsed = time.perf_counter() - started
    return outcome


def describe(outcome: Outcome) -> str:
    problems = sum(outcome.non_2xx.values()) + sum(outcome.errors.values())
    return (
        f"| {outcome.scenario} | {outcome.client} | {outcome.sent} | {outcome.elapsed:.1f} s | "
        f"{outcome.rps:.0f} | {outcome.percentile(0.5) * 1000:.0f} ms | "
        f"{outcome.percentile(0.95) * 1000:.0f} ms | "
        f"{outcome.received_bytes / outcome.elapsed / 2**20:.1f} MiB/s | {problems} |"
    )


def section(
    outcomes: list[Outcome], peak_kib: int, start_kib: int, args: argparse.Namespace
) -> str:
    rows = "\n".join(describe(o) for o in outcomes)
    failures = [
        f"{o.scenario} ({o.client}): {o.non_2xx or ''} {o.errors or ''}".strip()
        for o in outcomes
        if o.non_2xx or o.errors
    ]
    return f"""{HEADING}

The sandbox as its own process (one uvicorn worker on 127.0.0.1, rate limit lifted),
under {args.concurrency} concurrent connections from a client in another process on the
same machine: an `httpx.AsyncClient`, then plain asyncio sockets. `generate` asks SD 3.5
for a new 1 megapixel PNG each time (a fresh seed, so nothing comes from the cache);
`balance` is the lightest call and shows what the request pipeline itself costs.
Rendering bounds `generate` whichever client sends; for `balance` one httpx client with
{args.concurrency} pooled connections is the bottleneck (its pool costs more per request
than the server), so the sockets row is the server's capacity.

| scenario | client | requests | time | requests/s | p50 | p95 | received | non-2xx or errors |
|---|---|---|---|---|---|---|---|---|
{rows}

Server memory: {start_kib / 1024:.0f} MiB resident after start, peak {peak_kib / 1024:.0f} MiB
(VmHWM) over both runs. {
        "All requests were answered." if not failures else "Failures: " + "; ".join(failures)
    }

Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.system()}.
Measured with:

    .venv/bin/python bench/sandbox_throughput.py --requests {args.requests} \\
        --concurrency {args.concurrency} --seconds {args.seconds:g} --write
"""


def write_section(text: str) -> None:
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    if HEADING in current:
        before, _, rest = current.partition(HEADING)
        following = rest.find("\n## ")
        after = rest[following + 1 :] if following >= 0 else ""
        updated = before + text + ("\n" + after if after else "")
    else:
        updated = current.rstrip("\n") + "\n\n" + text
    DOCS.write_text(updated, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--write", action="store_true", help=f"write the figures into {DOCS.relative_to(ROOT)}"
    )
    args = parser.parse_args()

    port = free_port()
    server = start_server(port)
    try:
        start_kib = memory_kib(server.pid, "VmRSS")
        outcomes = []
        for scenario in ("generate", "balance"):
            for run in (run_httpx, run_raw):
                outcome = asyncio.run(
                    run(port, scenario, args.requests, args.concurrency, args.seconds)
                )
                outcomes.append(outcome)
                print(
                    f"{scenario:>9} {outcome.client:>7}: {outcome.sent} requests in "
                    f"{outcome.elapsed:.1f} s = {outcome.rps:.0f}/s, "
                    f"p50 {outcome.percentile(0.5) * 1000:.0f} ms, "
                    f"p95 {outcome.percentile(0.95) * 1000:.0f} ms, ok {outcome.ok}, "
                    f"non-2xx {outcome.non_2xx or 0}, errors {outcome.errors or 0}"
                )
        peak_kib = memory_kib(server.pid, "VmHWM")
        alive = server.poll() is None
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    print(
        f"server memory: {start_kib / 1024:.0f} MiB after start, "
        f"peak {peak_kib / 1024:.0f} MiB; still up at the end: {alive}"
    )
    if args.write:
        write_section(section(outcomes, peak_kib, start_kib, args))
        print(f"wrote {DOCS.relative_to(ROOT)} ({HEADING})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
