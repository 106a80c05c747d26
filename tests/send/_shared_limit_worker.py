"""One of the processes of the cross-process rate-limit test:

    python _shared_limit_worker.py NAME BASE_URL SHARED_DIR COUNT REQUESTS WINDOW

sends COUNT balance requests to the sandbox at BASE_URL through the connector's Sender,
with a limit of REQUESTS per WINDOW seconds shared through SHARED_DIR. Exits non-zero if
any request failed."""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from stability_connector.clock import SystemClock
from stability_connector.connection import Connection, Secret
from stability_connector.definitions import RateLimitSpec, TimeoutsSpec
from stability_connector.ratelimit import limiter_for
from stability_connector.retry import RetryPolicy
from stability_connector.transport import Attempt, PreparedRequest, Sender, build_client

KEY = "sk-shared-between-processes"
TASKS = 5


async def main(
    name: str, base_url: str, shared_dir: Path, count: int, requests: int, window: float
) -> int:
    clock = SystemClock()
    connection = Connection(name="shared", base_url=base_url, api_key=Secret(KEY))
    limiter = limiter_for(
        connection.api_key,
        RateLimitSpec(requests=requests, per_seconds=window, penalty_seconds=1.0),
        clock,
        shared_dir,
    )
    failures: list[str] = []
    # Tells the processes apart in the sandbox's journal.
    headers = {"stability-client-user-id": name}
    async with build_client(connection, TimeoutsSpec()) as client:
        # One attempt only: a 429 must show up, not be retried away (and, with a short
        # penalty, fail the test quickly rather than stall it).
        sender = Sender(client, connection, RetryPolicy(max_attempts=1), limiter, clock, headers)

        async def worker(share: int) -> None:
            for _ in range(share):
                log: list[Attempt] = []
                try:
                    await sender.send(PreparedRequest("GET", "/v1/user/balance"), log)
                except Exception as error:
                    failures.append(str(error))

        async with anyio.create_task_group() as tg:
            for index in range(TASKS):
                tg.start_soon(worker, count // TASKS + (index < count % TASKS))
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    name, url, directory, count, requests, window = sys.argv[1:7]
    sys.exit(anyio.run(main, name, url, Path(directory), int(count), int(requests), float(window)))
