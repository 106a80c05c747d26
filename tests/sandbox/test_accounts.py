"""Credits, rate limits, asynchronous jobs and moderation, on a fake clock."""

from __future__ import annotations

import io
from collections.abc import Callable

import anyio
import httpx
import pytest
from PIL import Image
from sandbox_helpers import KEY, FakeClock, image_bytes

from stability_connector.sandbox import Fault, Sandbox

CORE = "/v2beta/stable-image/generate/core"
SD3 = "/v2beta/stable-image/generate/sd3"
FORM = {"files": {"none": ""}, "data": {"prompt": "a red kite"}}


async def generate(client: httpx.AsyncClient, path: str = CORE, **data: str) -> httpx.Response:
    return await client.post(path, files={"none": ""}, data={"prompt": "a red kite", **data})


# --- credits -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("sd3.5-large", 6.5),
        ("sd3.5-large-turbo", 4.0),
        ("sd3.5-medium", 3.5),
        ("sd3.5-flash", 2.5),
    ],
)
async def test_sd3_is_charged_per_model(sandbox: Sandbox, model: str, price: float) -> None:
    async with sandbox.client(api_key=KEY) as client:
        assert (await generate(client, SD3, model=model)).status_code == 200
        balance = (await client.get("/v1/user/balance")).json()
    assert balance == {"credits": sandbox.config.credits - price}


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("data", "price"),
    [
        ({"model": "stable-audio-2.5", "duration": "3"}, 20.0),
        ({"model": "stable-audio-2", "duration": "3"}, 20.0),
        ({"model": "stable-audio-2", "duration": "3", "steps": "100"}, 23.0),
    ],
)
async def test_stable_audio_2_prices(sandbox: Sandbox, data: dict[str, str], price: float) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/audio/stable-audio-2/text-to-audio",
            files={"none": ""},
            data={"prompt": "rain", **data},
        )
    assert response.status_code == 200, response.text
    assert sandbox.balance(KEY) == pytest.approx(sandbox.config.credits - price)


@pytest.mark.anyio
async def test_steps_follow_the_audio_model(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/audio/stable-audio-2/text-to-audio",
            files={"none": ""},
            data={"prompt": "rain", "model": "stable-audio-2.5", "steps": "50"},
        )
    assert response.status_code == 400
    assert "steps: must be between 4 and 8" in response.json()["errors"][0]


@pytest.mark.anyio
async def test_a_request_the_balance_cannot_cover_is_402(
    make_sandbox: Callable[..., Sandbox],
) -> None:
    sandbox = make_sandbox(credits=5.0)
    async with sandbox.client(api_key=KEY) as client:
        first = await generate(client)  # 3 credits
        second = await generate(client)  # 2 left
    assert first.status_code == 200
    assert second.status_code == 402
    body = second.json()
    assert body["name"] == "payment_required" and body["errors"]
    assert sandbox.balance(KEY) == 2.0


@pytest.mark.anyio
async def test_keys_have_their_own_balances(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(keys={"sk-rich": 100.0, "sk-poor": 1.0})
    async with sandbox.client(api_key="sk-poor") as poor, sandbox.client(api_key="sk-rich") as rich:
        assert (await generate(poor)).status_code == 402
        assert (await generate(rich)).status_code == 200
    assert sandbox.balance("sk-rich") == 97.0 and sandbox.balance("sk-poor") == 1.0


# --- rate limits -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_151st_request_in_10_seconds_is_429_and_times_the_key_out(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    async with sandbox.client(api_key=KEY) as client, sandbox.client(api_key="sk-other") as other:
        for _ in range(150):
            assert (await client.get("/v1/user/balance")).status_code == 200
            clock.advance(0.05)
        limited = await client.get("/v1/user/balance")
        assert limited.status_code == 429
        assert limited.json()["name"] == "rate_limit_exceeded"
        assert "150 requests within a 10 second period" in limited.json()["message"]
        assert "retry-after" not in limited.headers
        # Another key is not affected.
        assert (await other.get("/v1/user/balance")).status_code == 200
        # Timed out for 60 s, even though the window has passed.
        clock.advance(30)
        assert (await client.get("/v1/user/balance")).status_code == 429
        clock.advance(30)
        assert (await client.get("/v1/user/balance")).status_code == 200


@pytest.mark.anyio
async def test_the_window_slides(sandbox: Sandbox, clock: FakeClock) -> None:
    async with sandbox.client(api_key=KEY) as client:
        for _ in range(150):
            await client.get("/v1/user/balance")
        clock.advance(10.01)
        assert (await client.get("/v1/user/balance")).status_code == 200


@pytest.mark.anyio
async def test_limits_are_configurable_and_can_add_retry_after(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock
) -> None:
    sandbox = make_sandbox(rate_limit=3, rate_window=1.0, timeout_seconds=5.0, retry_after=True)
    async with sandbox.client(api_key=KEY) as client:
        statuses = [(await client.get("/v1/user/balance")) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[-1].headers["retry-after"] == "5"
        clock.advance(2)
        assert (await client.get("/v1/user/balance")).headers["retry-after"] == "3"
        clock.advance(3)
        assert (await client.get("/v1/user/balance")).status_code == 200


class HeldSleep:
    """Latency that holds every request until the test lets them all go (the test moves
    the clock), so several requests are in flight at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self.released = anyio.Event()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await self.released.wait()

    async def holding(self, count: int) -> None:
        while len(self.calls) < count:
            await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_requests_are_counted_when_they_arrive_not_after_their_latency(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock
) -> None:
    held = HeldSleep()
    sandbox = make_sandbox(rate_limit=2, rate_window=10.0, latency=1.0, sleep=held)
    sandbox.script([Fault(latency=5.0)])  # the first request is slow to answer
    statuses: dict[str, int] = {}

    async def send(client: httpx.AsyncClient, name: str) -> None:
        statuses[name] = (await generate(client)).status_code

    with anyio.fail_after(10):  # a guard: counting late would hold the third request
        async with sandbox.client(api_key=KEY) as client, anyio.create_task_group() as tg:
            tg.start_soon(send, client, "slow")  # arrives at 1000.0, answers at 1006.0
            await held.holding(1)
            clock.advance(0.5)
            tg.start_soon(send, client, "quick")  # arrives at 1000.5, answers at 1001.5
            await held.holding(2)
            clock.advance(0.5)
            # The third in 10 s is over the limit when it arrives, although neither of
            # the others has been answered: refused at once, without its latency.
            third = await generate(client)
            assert third.status_code == 429
            assert held.calls == [6.0, 1.0]
            clock.advance(6.0)
            held.released.set()
    assert statuses == {"slow": 200, "quick": 200}
    arrivals = sorted((e.at, e.status) for e in sandbox.journal)
    assert arrivals == [(1000.0, 200), (1000.5, 200), (1001.0, 429)]
    assert sandbox.journal[0].fault is None  # a refused request draws no fault


# --- asynchronous jobs -------------------------------------------------------------------


async def start_creative(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/v2beta/stable-image/upscale/creative",
        files={"image": ("small.png", image_bytes(256, 192), "image/png")},
        data={"prompt": "a sharper photo", "seed": "5", "output_format": "webp"},
    )
    assert response.status_code == 200, response.text
    job_id: str = response.json()["id"]
    return job_id


@pytest.mark.anyio
async def test_a_job_is_in_progress_then_done_and_charged_when_ready(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    async with sandbox.client(api_key=KEY) as client:
        job_id = await start_creative(client)
        assert sandbox.balance(KEY) == sandbox.config.credits  # not charged yet
        clock.advance(19.9)
        assert (await client.get(f"/v2beta/results/{job_id}")).status_code == 202
        clock.advance(0.1)
        assert sandbox.balance(KEY) == sandbox.config.credits - 60
        raw = await client.get(f"/v2beta/results/{job_id}")
        same = await client.get(
            f"/v2beta/stable-image/upscale/creative/result/{job_id}", headers={"accept": "image/*"}
        )
        as_json = await client.get(
            f"/v2beta/results/{job_id}", headers={"accept": "application/json"}
        )
    assert raw.status_code == 200 and raw.headers["content-type"] == "image/webp"
    assert raw.headers["seed"] == "5" and raw.headers["finish-reason"] == "SUCCESS"
    assert Image.open(io.BytesIO(raw.content)).size == (2365, 1774)  # 4 MP, same ratio
    assert same.content == raw.content
    assert as_json.headers["content-type"] == "application/json; type=image/webp"
    assert as_json.json()["seed"] == 5
    assert sandbox.balance(KEY) == sandbox.config.credits - 60  # charged once


@pytest.mark.anyio
async def test_another_keys_job_is_404(sandbox: Sandbox, clock: FakeClock) -> None:
    async with sandbox.client(api_key=KEY) as owner, sandbox.client(api_key="sk-else") as other:
        job_id = await start_creative(owner)
        clock.advance(60)
        stolen = await other.get(f"/v2beta/results/{job_id}")
        wrong_family = await owner.get(f"/v2beta/audio/results/{job_id}")
    assert stolen.status_code == 404 and stolen.json()["name"] == "generation_not_found"
    assert wrong_family.status_code == 404


@pytest.mark.anyio
async def test_a_job_expires_after_24_hours(sandbox: Sandbox, clock: FakeClock) -> None:
    async with sandbox.client(api_key=KEY) as client:
        job_id = await start_creative(client)
        clock.advance(24 * 3600 - 1)
        assert (await client.get(f"/v2beta/results/{job_id}")).status_code == 200
        clock.advance(1)
        assert (await client.get(f"/v2beta/results/{job_id}")).status_code == 404


@pytest.mark.anyio
async def test_job_time_is_configurable(
    make_sandbox: Callable[..., Sandbox], clock: FakeClock
) -> None:
    sandbox = make_sandbox(job_seconds=0)
    async with sandbox.client(api_key=KEY) as client:
        job_id = await start_creative(client)
        assert (await client.get(f"/v2beta/results/{job_id}")).status_code == 200


@pytest.mark.anyio
async def test_stable_audio_3_starts_with_202_and_results_in_audio(
    sandbox: Sandbox, clock: FakeClock
) -> None:
    async with sandbox.client(api_key=KEY) as client:
        start = await client.post(
            "/v2beta/audio/stable-audio/text-to-audio",
            files={"none": ""},
            data={"prompt": "ocean waves", "duration": "4", "output_format": "wav"},
        )
        assert start.status_code == 202
        job_id = start.json()["id"]
        clock.advance(20)
        done = await client.get(f"/v2beta/audio/results/{job_id}")
        as_json = await client.get(
            f"/v2beta/audio/results/{job_id}", headers={"accept": "application/json"}
        )
    assert done.status_code == 200 and done.headers["content-type"] == "audio/wav"
    assert done.content[:4] == b"RIFF"
    assert set(as_json.json()) == {"audio", "seed", "finish_reason"}
    assert sandbox.balance(KEY) == sandbox.config.credits - 26


@pytest.mark.anyio
async def test_pending_jobs_hold_credits(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(credits=100.0)
    async with sandbox.client(api_key=KEY) as client:
        await start_creative(client)  # 60 promised
        second = await client.post(
            "/v2beta/stable-image/upscale/creative",
            files={"image": ("small.png", image_bytes(256, 192), "image/png")},
            data={"prompt": "again"},
        )
    assert second.status_code == 402


# --- moderation --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_blocked_word_is_403_and_free(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            CORE, files={"none": ""}, data={"prompt": "a ForbiddenWord in the sky"}
        )
    assert response.status_code == 403
    assert response.json()["name"] == "content_moderation"
    assert sandbox.balance(KEY) == sandbox.config.credits


@pytest.mark.anyio
async def test_a_filtered_word_gives_a_blurred_image(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        clean = await client.post(CORE, files={"none": ""}, data={"prompt": "a cat", "seed": "9"})
        filtered = await client.post(
            CORE,
            files={"none": ""},
            data={"prompt": "a cat", "negative_prompt": "blurword", "seed": "9"},
        )
    assert clean.headers["finish-reason"] == "SUCCESS"
    assert filtered.status_code == 200
    assert filtered.headers["finish-reason"] == "CONTENT_FILTERED"
    image = Image.open(io.BytesIO(filtered.content))
    assert image.size == (1280, 1280)
    assert sandbox.balance(KEY) == sandbox.config.credits - 6


@pytest.mark.anyio
async def test_word_lists_are_configurable(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(block_words=["dragon"], filter_words=[])
    async with sandbox.client(api_key=KEY) as client:
        blocked = await client.post(CORE, files={"none": ""}, data={"prompt": "a dragon"})
        fine = await client.post(CORE, files={"none": ""}, data={"prompt": "a blurword"})
    assert blocked.status_code == 403
    assert fine.headers["finish-reason"] == "SUCCESS"


@pytest.mark.anyio
async def test_v1_prompts_with_blocked_words_are_invalid_prompts(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v1/generation/stable-diffusion-v1-6/text-to-image",
            json={"text_prompts": [{"text": "forbiddenword"}]},
        )
    assert response.status_code == 400
    assert response.json()["name"] == "invalid_prompts"


@pytest.mark.anyio
async def test_a_failed_render_is_500_and_refunded(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise RuntimeError("renderer out of order")

    monkeypatch.setattr("stability_connector.sandbox.app.render_image", broken)
    async with sandbox.client(api_key=KEY) as client:
        response = await generate(client)
    assert response.status_code == 500
    assert response.json()["name"] == "internal_error"
    assert sandbox.balance(KEY) == sandbox.config.credits
