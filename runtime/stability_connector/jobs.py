"""Asynchronous jobs: poll a result the way the API asks.

The API answers a poll with 202 while the job runs and 200 with the result, asks not to
be polled more than once every 10 seconds, keeps results for 24 hours and answers 404
for an unknown, expired or other key's job. Polls go through the ``Sender``, so each
one takes a rate-limit permit and is retried and logged like any request.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from .definitions import PollingSpec
from .errors import JobTimeoutError
from .transport import Attempt, PreparedRequest, Sender


async def wait_for_result(
    sender: Sender,
    result_path: str,
    accept: str | None,
    polling: PollingSpec,
    log: list[Attempt],
    started_at: float,
    on_poll: Callable[[int], None] | None = None,
    *,
    job_id: str | None = None,
) -> httpx.Response:
    """Poll ``result_path`` until the job is done; return the 200 response.

    ``started_at`` is when the job was created, on ``sender.clock``'s scale. The first
    poll is at least ``polling.first_poll_after`` after it, each next one at least
    ``polling.interval`` (plus up to ``polling.jitter``) after the previous answer.
    ``on_poll(n)`` is called after the n-th poll found the job still running. When the
    next poll would fall after the deadline, ``JobTimeoutError`` carries the job id so
    the result can be fetched later. A 404 is final (``NotFoundError``).
    """
    clock = sender.clock
    job = job_id or result_path.rstrip("/").rsplit("/", 1)[-1]
    # Past its retention a result is gone for good; polling longer cannot help.
    deadline = started_at + min(polling.deadline, polling.results_expire_after)
    headers = {"accept": accept} if accept else {}
    next_poll = started_at + polling.first_poll_after
    polls = 0
    while True:
        if next_poll > deadline:
            raise JobTimeoutError(
                f"job {job} did not finish within {polling.deadline:g} s "
                f"({polls} poll{'s' if polls != 1 else ''}); fetch its result later with "
                "fetch_result (results are kept for 24 hours)",
                job_id=job,
            )
        await clock.sleep(next_poll - clock.now())
        polls += 1
        request = PreparedRequest(method="GET", path=result_path, headers=dict(headers))
        # A failed poll is retried no sooner than a poll would be.
        response = await sender.send(request, log, kind="poll", min_wait=polling.interval)
        if response.status_code != 202:
            return response
        if on_poll is not None:
            on_poll(polls)
        next_poll = clock.now() + polling.interval + sender.rng.uniform(0.0, polling.jitter)
