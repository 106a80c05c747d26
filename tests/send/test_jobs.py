"""Polling an asynchronous job in the sandbox: the cadence the API asks for, the
deadline, 404 as final, and polls that take permits and retries like any request."""

from __future__ import annotations

import itertools

import pytest

from stability_connector.definitions import PollingSpec
from stability_connector.errors import JobTimeoutError, NotFoundError
from stability_connector.jobs import wait_for_result
from stability_connector.retry import RetryPolicy
from stability_connector.sandbox import Fault
from stability_connector.transport import Attempt, PreparedRequest, Sender

from .conftest import SandboxRig

pytestmark = pytest.mark.anyio

START = "/v2beta/audio/stable-audio/text-to-audio"


async def start_job(sender: Sender, log: list[Attempt]) -> str:
    request = PreparedRequest(
        "POST",
        START,
        data={"prompt": "waves on a pebble beach", "duration": "5"},
        multipart=True,
        paid=True,
    )
    response = await sender.send(request, log)
    assert response.status_code == 202
    job_id: str = response.json()["id"]
    return job_id


def polls(rig: SandboxRig) -> list[float]:
    return [e.at for e in rig.sandbox.journal if e.path.startswith("/v2beta/audio/results/")]


async def test_first_poll_after_ten_seconds_then_every_ten_plus_jitter(rig: SandboxRig) -> None:
    rig.sandbox.config.job_seconds = 45.0
    sender = rig.sender()
    log: list[Attempt] = []
    job = await start_job(sender, log)
    started = rig.clock.now()
    seen: list[int] = []
    response = await wait_for_result(
        sender, f"/v2beta/audio/results/{job}", "audio/*", PollingSpec(), log, started, seen.append
    )
    assert response.status_code == 200 and response.headers["content-type"] == "audio/mpeg"
    times = polls(rig)
    assert times[0] - started >= 10.0
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(10.0 <= gap <= 12.0 for gap in gaps)  # interval, plus jitter up to 2 s
    assert len(set(gaps)) > 1  # jittered, not a fixed beat
    # 202 until the job is done at 45 s; each still-running poll was reported.
    assert seen == list(range(1, len(times)))
    assert [a.kind for a in log] == ["send"] + ["poll"] * len(times)
    assert [a.status for a in log[1:]] == [202] * (len(times) - 1) + [200]


async def test_a_done_job_is_fetched_by_the_first_poll(rig: SandboxRig) -> None:
    rig.sandbox.config.job_seconds = 5.0
    sender = rig.sender()
    job = await start_job(sender, [])
    started = rig.clock.now()
    response = await wait_for_result(
        sender, f"/v2beta/audio/results/{job}", None, PollingSpec(), [], started
    )
    assert response.status_code == 200
    assert len(polls(rig)) == 1 and polls(rig)[0] - started >= 10.0


async def test_the_deadline_gives_the_job_id_back(rig: SandboxRig) -> None:
    rig.sandbox.config.job_seconds = 1000.0
    sender = rig.sender()
    job = await start_job(sender, [])
    started = rig.clock.now()
    with pytest.raises(JobTimeoutError) as caught:
        await wait_for_result(
            sender,
            f"/v2beta/audio/results/{job}",
            "audio/*",
            PollingSpec(deadline=60.0),
            [],
            started,
        )
    assert caught.value.job_id == job
    assert job in str(caught.value)
    times = polls(rig)
    assert 3 <= len(times) <= 5 and all(t - started <= 60.0 for t in times)


async def test_404_is_final(rig: SandboxRig) -> None:
    sender = rig.sender()
    log: list[Attempt] = []
    with pytest.raises(NotFoundError):
        await wait_for_result(
            sender,
            "/v2beta/audio/results/" + "0" * 64,
            None,
            PollingSpec(),
            log,
            rig.clock.now(),
        )
    assert len(polls(rig)) == 1 and [a.status for a in log] == [404]


async def test_a_failed_poll_is_retried_no_sooner_than_the_interval(rig: SandboxRig) -> None:
    rig.sandbox.config.job_seconds = 5.0
    sender = rig.sender(RetryPolicy(initial_delay=0.5, max_delay=1.0))
    job = await start_job(sender, [])
    rig.sandbox.script([Fault(status=503)], path="/v2beta/audio/results/*")
    log: list[Attempt] = []
    response = await wait_for_result(
        sender, f"/v2beta/audio/results/{job}", None, PollingSpec(), log, rig.clock.now()
    )
    assert response.status_code == 200
    times = polls(rig)
    assert len(times) == 2 and times[1] - times[0] >= 10.0
    assert [a.status for a in log] == [503, 200]
