"""The rules the actions state as data, seen from a workflow: required combinations
refused before anything is sent, prices that depend on the inputs, and jobs picked up
later by id with fetch_result."""

from __future__ import annotations

from typing import Any

import pytest

from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.errors import InputValidationError, NotFoundError
from stability_connector.node import Runtime
from stability_connector.sandbox import Sandbox

from .conftest import JOB_SECONDS, TEST_KEY

PHOTO = "examples/media/product.png"
MASK = "examples/media/mask.png"

REFUSED = [
    ("v1_masking", {"init_image": PHOTO, "mask_source": "MASK_IMAGE_BLACK",
                    "text_prompts": [{"text": "a teapot"}]}, "mask_image"),
    ("erase", {"image": PHOTO, "prompt": "remove the mug"}, "prompt"),
    ("remove_background", {"image": PHOTO, "output_format": "jpeg"}, "output_format"),
    ("outpaint", {"image": PHOTO, "left": 64, "creativity": 0.6}, "creativity"),
    ("stable_fast_3d", {"image": PHOTO, "texture_resolution": 4096}, "texture_resolution"),
    ("v1_text_to_image", {"text_prompts": [{"text": "a fox"}], "width": 500}, "width"),
    ("stable_audio_3_inpaint", {"audio": PHOTO, "prompt": "a drum fill"}, "audio"),
    ("image_to_video", {"image": PHOTO}, "image"),
    ("upscale_fast", {"image": "examples/media/loop.wav"}, "image"),
]  # fmt: skip

# Rules across fields (at least one of, not both): refused, nothing sent.
REFUSED_COMBINATIONS = [
    ("outpaint", {"image": PHOTO}, ["left", "right", "up", "down"]),
    ("outpaint", {"image": PHOTO, "left": 0, "down": 0}, ["left", "right", "up", "down"]),
    ("replace_background_and_relight", {"subject_image": PHOTO},
     ["background_prompt", "background_reference"]),
    ("v1_upscale", {"image": PHOTO, "width": 1024, "height": 1024}, ["width", "height"]),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("action", "inputs", "field"),
    REFUSED,
    ids=[f"{a}-{f}" for a, _, f in REFUSED],
)
async def test_invalid_inputs_are_refused_before_sending(
    action: str,
    inputs: dict[str, Any],
    field: str,
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
) -> None:
    with pytest.raises(InputValidationError) as refused:
        await runtime.run(action, inputs, connection=connection)
    assert sandbox.journal == []
    assert [p.field for p in refused.value.problems] == [field], str(refused.value)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("action", "inputs", "fields"),
    REFUSED_COMBINATIONS,
    ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(REFUSED_COMBINATIONS)],
)
async def test_invalid_combinations_are_refused_before_sending(
    action: str,
    inputs: dict[str, Any],
    fields: list[str],
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
) -> None:
    with pytest.raises(InputValidationError):
        await runtime.run(action, inputs, connection=connection)
    assert sandbox.journal == []


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("action", "inputs", "fields"),
    REFUSED_COMBINATIONS,
    ids=[f"{a}-{i}" for i, (a, _, _) in enumerate(REFUSED_COMBINATIONS)],
)
async def test_refused_combinations_name_their_fields(
    action: str,
    inputs: dict[str, Any],
    fields: list[str],
    runtime: Runtime,
    connection: Connection,
) -> None:
    with pytest.raises(InputValidationError) as refused:
        await runtime.run(action, inputs, connection=connection)
    assert all(name in str(refused.value) for name in fields), str(refused.value)


def test_an_empty_engine_means_the_engine_default(catalog: Catalog) -> None:
    """The path's fallback engine is the one the form shows as the default."""
    for action in ("v1_text_to_image", "v1_image_to_image", "v1_masking", "v1_upscale"):
        spec = catalog.action(action)
        default = spec.inputs["properties"]["engine_id"]["default"]
        assert f"<<inputs.engine_id or '{default}'>>" in spec.request.path


@pytest.mark.anyio
async def test_v1_masking_from_the_image_transparency_needs_no_mask(
    runtime: Runtime, connection: Connection
) -> None:
    inputs = {
        "init_image": PHOTO,
        "mask_source": "INIT_IMAGE_ALPHA",
        "text_prompts": [{"text": "a teapot"}],
    }
    *_, request = runtime.prepare("v1_masking", inputs, connection=connection)
    assert "mask_image" not in (request.files or {})
    assert request.data is not None and request.data["mask_source"] == "INIT_IMAGE_ALPHA"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("inputs", "credits"),
    [
        ({"model": "stable-audio-2.5", "steps": 8}, 20.0),
        ({"model": "stable-audio-2", "steps": 100}, 23.0),
        ({"model": "stable-audio-2", "steps": 30}, 18.8),
        ({"model": "stable-audio-2"}, 20.0),
        ({}, 20.0),
    ],
)
async def test_stable_audio_2_price_follows_model_and_steps(
    inputs: dict[str, Any],
    credits: float,
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
) -> None:
    inputs = {"prompt": "rain on a tin roof", "duration": 5, **inputs}
    assert runtime.estimate_credits("stable_audio_2_text_to_audio", inputs) == credits
    before = sandbox.balance(TEST_KEY)
    result = await runtime.run("stable_audio_2_text_to_audio", inputs, connection=connection)
    assert result.credits == credits
    assert sandbox.balance(TEST_KEY) == pytest.approx(before - credits)


# --- fetching jobs later ----------------------------------------------------------------

STARTERS = {
    "image": ("replace_background_and_relight", "image/png"),
    "upscale_creative": ("upscale_creative", "image/webp"),
    "audio": ("stable_audio_3_audio_to_audio", "audio/wav"),
    "video": ("image_to_video", "video/mp4"),
}


async def start(runtime: Runtime, connection: Connection, action: str) -> str:
    example = runtime.action(action).examples[0]
    pending = await runtime.run(
        action, example.inputs, example.context, connection=connection, wait=False
    )
    assert pending.status == "pending" and pending.outputs == {"job_id": pending.job_id}
    assert pending.artifacts == []
    assert pending.job_id is not None
    return pending.job_id


@pytest.mark.anyio
@pytest.mark.parametrize("kind", list(STARTERS))
async def test_fetch_result_waits_for_a_running_job(
    kind: str, runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    action, content_type = STARTERS[kind]
    job_id = await start(runtime, connection, action)
    since = len(sandbox.journal)
    result = await runtime.run(
        "fetch_result", {"job_id": job_id, "kind": kind}, connection=connection
    )
    assert result.status == "succeeded" and result.outputs["job_id"] == job_id
    assert result.outputs["content_type"] == content_type
    polls = sandbox.journal[since:]
    assert {p.path.rsplit("/", 1)[-1] for p in polls} == {job_id}
    assert polls[0].status == 202 and polls[-1].status == 200
    assert polls[-1].at - polls[0].at >= 10


@pytest.mark.anyio
async def test_a_creative_upscale_is_also_fetched_from_the_shared_results_address(
    runtime: Runtime, sandbox: Sandbox, clock: FakeClock, connection: Connection
) -> None:
    job_id = await start(runtime, connection, "upscale_creative")
    clock.advance(JOB_SECONDS)
    result = await runtime.run("fetch_result", {"job_id": job_id}, connection=connection)
    assert result.outputs["content_type"] == "image/webp"
    assert sandbox.journal[-1].path == f"/v2beta/results/{job_id}"


@pytest.mark.anyio
async def test_the_wrong_kind_of_job_is_a_final_404(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    job_id = await start(runtime, connection, "replace_background_and_relight")
    since = len(sandbox.journal)
    with pytest.raises(NotFoundError):
        await runtime.run(
            "fetch_result", {"job_id": job_id, "kind": "audio"}, connection=connection
        )
    assert [e.status for e in sandbox.journal[since:]] == [404]  # never retried


@pytest.mark.anyio
async def test_an_async_action_resumes_a_job_by_id(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    """What `run --resume-id` does: the job's own action picks it up, nothing is restarted."""
    job_id = await start(runtime, connection, "stable_audio_3_text_to_audio")
    example = runtime.action("stable_audio_3_text_to_audio").examples[0]
    since = len(sandbox.journal)
    result = await runtime.run(
        "stable_audio_3_text_to_audio",
        example.inputs,
        example.context,
        connection=connection,
        job_id=job_id,
    )
    assert result.outputs["content_type"] == "audio/mpeg" and result.job_id == job_id
    assert all(e.method == "GET" for e in sandbox.journal[since:])
