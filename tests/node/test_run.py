"""One node end to end: the data flow's order, the wire, files, jobs, filtered results."""

from __future__ import annotations

import base64
import json
import os
import random
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from stability_connector.catalog import Catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.errors import (
    ContentFilteredError,
    InputValidationError,
    TemplateError,
)
from stability_connector.node import ActionResult, RunContext, Runtime, run, run_sync
from stability_connector.request import form_text
from stability_connector.sandbox import Sandbox, SandboxConfig
from stability_connector.transport import Attempt

from .conftest import png

pytestmark = pytest.mark.anyio


# --- templates from the trigger and from upstream steps ------------------------------------


async def test_inputs_map_from_a_trigger_payload(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    await runtime.run(
        "stable_image_core",
        {"prompt": "<<trigger.subject>>, <<vars.style>>", "seed": "<<trigger.seed>>"},
        {"trigger": {"subject": "a red mug", "seed": 7}, "vars": {"style": "watercolour"}},
        connection=connection,
    )
    assert sandbox.journal[0].fields == {"prompt": "a red mug, watercolour", "seed": "7"}


async def test_an_upstream_steps_image_feeds_the_next_step(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    first = await runtime.run(
        "generate_image", {"prompt": "a mug", "aspect_ratio": "1:1"}, connection=connection
    )
    image = Path(first.outputs["file"]).read_bytes()
    steps = {"gen": {**first.outputs, "raw": image}}
    for reference in ("<<steps.gen.file>>", "<<steps.gen.raw>>", "<<steps.gen.image>>"):
        result = await runtime.run(
            "remove_background",
            {"image": reference},
            RunContext(steps=steps),
            connection=connection,
        )
        assert sandbox.journal[-1].files == {"image": len(image)}
        assert result.outputs["content_type"].startswith("image/")


async def test_a_template_error_stops_the_run_before_anything_is_sent(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    with pytest.raises(TemplateError, match="'trigger' has no field 'promt'; it has: prompt"):
        await runtime.run(
            "generate_image",
            {"prompt": "<<trigger.promt>>"},
            {"trigger": {"prompt": "x"}},
            connection=connection,
        )
    assert sandbox.journal == []


async def test_item_is_the_loops_current_element(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    for item in ("a mug", "a cup"):
        await runtime.run(
            "stable_image_core", {"prompt": "<<item>>"}, {"item": item}, connection=connection
        )
    assert [e.fields["prompt"] for e in sandbox.journal] == ["a mug", "a cup"]


# --- media inputs and limits ----------------------------------------------------------------


async def test_media_inputs_in_every_form_send_the_same_file(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, tmp_path: Path
) -> None:
    data = png(320, 240)
    path = tmp_path / "photo.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    for form in (str(path), b64, f"data:image/png;base64,{b64}", data):
        await runtime.run("remove_background", {"image": form}, connection=connection)
    assert [e.files for e in sandbox.journal] == [{"image": len(data)}] * 4


async def test_media_limits_are_refused_before_sending(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    with pytest.raises(InputValidationError) as caught:
        await runtime.run(
            "upscale_creative",
            {"image": png(2048, 2048), "prompt": "x", "creativity": "0.9"},
            connection=connection,
        )
    assert {p.field for p in caught.value.problems} == {"image", "creativity"}
    assert "4,194,304 pixels, out of range" in str(caught.value)
    assert sandbox.journal == []


async def test_a_request_over_ten_mib_is_refused_before_sending(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    noise = Image.frombytes("RGB", (1500, 1500), random.Random(1).randbytes(1500 * 1500 * 3))
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"noise-{os.getpid()}.png"
    noise.save(path)
    try:
        assert 5 * 2**20 < path.stat().st_size < 10 * 2**20
        with pytest.raises(InputValidationError) as caught:
            await runtime.run(
                "inpaint",
                {"image": str(path), "mask": str(path), "prompt": "a cat"},
                connection=connection,
            )
    finally:
        path.unlink()
    (problem,) = caught.value.problems
    assert problem.field == "request"
    assert "the API accepts at most 10 MiB" in problem.problem
    assert sandbox.journal == []


# --- the request on the wire ------------------------------------------------------------------


async def test_v2_is_multipart_even_without_files(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    await runtime.run("stable_image_core", {"prompt": "a mug"}, connection=connection)
    (entry,) = sandbox.journal
    assert entry.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert entry.files == {}
    assert entry.headers["accept"] == "image/*"
    assert entry.headers["stability-client-id"] == "stability-connector"


async def test_numbers_are_sent_as_decimal_text(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    await runtime.run(
        "upscale_creative",
        {"image": png(256, 256), "prompt": "x", "creativity": "0.35", "seed": 12},
        connection=connection,
        wait=False,
    )
    fields = sandbox.journal[0].fields
    assert (fields["creativity"], fields["seed"]) == ("0.35", "12")
    assert [form_text(v) for v in (1e-05, 7.0, 3, True, 0.1 + 0.2)] == [
        "0.00001",
        "7",
        "3",
        "true",
        "0.30000000000000004",
    ]


async def test_v1_text_to_image_is_json_with_arrays(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, catalog: Catalog
) -> None:
    example = catalog.action("v1_text_to_image").examples[0]
    _, _, prepared = runtime.prepare(
        "v1_text_to_image", example.inputs, example.context, connection
    )
    assert prepared.multipart is False and prepared.data is None
    assert prepared.json == {
        "text_prompts": [
            {"text": "A lighthouse on a cliff at sunset, oil painting", "weight": 1},
            {"text": "blurry", "weight": -1},
        ],
        "width": 512,
        "height": 512,
        "samples": 4,
        "steps": 30,
        "seed": 1234,
        "style_preset": "analog-film",
    }
    assert prepared.headers["accept"] == "application/json"
    result = await runtime.run(
        "v1_text_to_image", example.inputs, example.context, connection=connection
    )
    (entry,) = sandbox.journal
    assert entry.headers["content-type"] == "application/json"
    assert len(result.artifacts) == 4
    assert len(result.outputs["artifacts"]) == 4
    for item in result.outputs["artifacts"]:
        with Image.open(item["file"]) as image:
            assert image.size == (512, 512)
        assert isinstance(item["seed"], int)


async def test_v1_multipart_flattens_the_prompts(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    await runtime.run(
        "v1_image_to_image",
        {
            "engine_id": "stable-diffusion-v1-6",
            "init_image": png(512, 512),
            "text_prompts": '[{"text": "a watercolour mug", "weight": 0.5}]',
            "image_strength": 0.4,
        },
        connection=connection,
    )
    fields = sandbox.journal[0].fields
    assert fields["text_prompts[0][text]"] == "a watercolour mug"
    assert fields["text_prompts[0][weight]"] == "0.5"
    assert fields["image_strength"] == "0.4"
    assert sandbox.journal[0].files == {"init_image": len(png(512, 512))}


async def test_prepare_and_estimate_send_nothing(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    spec, values, prepared = runtime.prepare(
        "generate_image", {"prompt": "x", "model": "ultra", "aspect_ratio": "4:3"}, None, connection
    )
    assert (spec.id, prepared.path) == ("generate_image", "/v2beta/stable-image/generate/ultra")
    assert prepared.data == {"prompt": "x", "aspect_ratio": "3:2"}
    assert prepared.paid is True
    assert values["model"] == "ultra"
    assert runtime.estimate_credits("generate_image", {"prompt": "x", "model": "ultra"}) == 8.0
    assert runtime.estimate_credits("generate_image", {"prompt": "x"}) == 3.0
    assert sandbox.journal == []


# --- CONTENT_FILTERED is an outcome --------------------------------------------------------------


async def test_a_filtered_result_is_an_outcome(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a blurword scene"}, connection=connection
    )
    assert result.status == "succeeded"
    assert result.outputs["filtered"] is True and result.filtered
    assert result.outputs["finish_reason"] == "CONTENT_FILTERED"
    assert Path(result.outputs["file"]).is_file()
    assert len(sandbox.journal) == 1


async def test_a_filtered_result_can_fail_the_run(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    with pytest.raises(ContentFilteredError) as caught:
        await runtime.run(
            "generate_image",
            {"prompt": "a blurword scene"},
            connection=connection,
            content_filtered="fail",
        )
    assert caught.value.outputs["finish_reason"] == "CONTENT_FILTERED"
    assert [a.status for a in caught.value.attempts] == [200]
    assert caught.value.retryable is False


async def test_a_filtered_result_can_be_retried_with_new_seeds(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "generate_image",
        {"prompt": "a blurword scene", "seed": "42"},
        connection=connection,
        content_filtered="retry",
    )
    seeds = [e.fields["seed"] for e in sandbox.journal]
    assert len(seeds) == 3 and seeds[0] == "42" and len(set(seeds)) == 3
    assert result.filtered  # still filtered after the retries: the outcome says so
    assert len(result.attempts) == 3


async def test_a_retry_stops_at_the_first_clean_result(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a mug"}, connection=connection, content_filtered="retry"
    )
    assert not result.filtered and len(sandbox.journal) == 1


# --- asynchronous jobs --------------------------------------------------------------------------


async def test_a_job_returns_its_id_at_once_and_is_picked_up_later(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, clock: FakeClock
) -> None:
    started: list[tuple[str, int]] = []
    pending = await runtime.run(
        "upscale_creative",
        {"image": png(512, 512), "prompt": "a mug"},
        connection=connection,
        wait=False,
        on_job_started=lambda job: started.append((job, len(sandbox.journal))),
    )
    assert pending.status == "pending" and pending.job_id
    assert started == [(pending.job_id, 1)]
    assert pending.outputs == {"job_id": pending.job_id}
    clock.advance(30)
    done = await runtime.run("upscale_creative", {}, connection=connection, job_id=pending.job_id)
    assert done.status == "succeeded" and done.job_id == pending.job_id
    assert [(e.method, e.path) for e in sandbox.journal[1:]] == [
        ("GET", f"/v2beta/results/{pending.job_id}")
    ]
    assert [a.kind for a in done.attempts] == ["poll"]
    assert Path(done.outputs["file"]).is_file() and done.outputs["credits"] == 60.0


async def test_waiting_for_a_job_persists_the_id_before_the_first_poll(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, clock: FakeClock
) -> None:
    seen: list[Attempt] = []
    journal_at_start: list[int] = []

    async def persist(job: str) -> None:
        journal_at_start.append(len(sandbox.journal))

    result = await runtime.run(
        "upscale_creative",
        {"image": png(512, 512), "prompt": "a mug"},
        connection=connection,
        on_job_started=persist,
        on_attempt=seen.append,
    )
    assert journal_at_start == [1]  # only the creation had been sent
    polls = [e for e in sandbox.journal if e.method == "GET"]
    assert polls and polls[0].at >= sandbox.journal[0].at + 10
    assert result.attempts[0].kind == "send"
    assert seen == result.attempts
    assert result.outputs["job_id"] == result.job_id


# --- results and the one-shot API ---------------------------------------------------------


async def test_the_result_is_json_ready(runtime: Runtime, connection: Connection) -> None:
    result = await runtime.run("generate_image", {"prompt": "a mug"}, connection=connection)
    shown = json.loads(json.dumps(result.to_dict()))
    assert shown["status"] == "succeeded"
    assert shown["artifacts"][0]["path"] == result.outputs["file"]
    assert shown["attempts"][0]["status"] == 200
    assert shown["credits"] == 3.0


def client_for(sandbox: Sandbox) -> Any:
    def make(conn: Connection) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=conn.base_url, transport=sandbox.transport())

    return make


async def test_the_one_shot_run(catalog: Catalog, connection: Connection, tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig())
    result = await run(
        "stable_image_core",
        {"prompt": "a mug"},
        connection=connection,
        catalog=catalog,
        client_factory=client_for(sandbox),
        out_dir=tmp_path,
    )
    assert isinstance(result, ActionResult) and Path(result.outputs["file"]).parent == tmp_path


def test_run_sync(catalog: Catalog, connection: Connection, tmp_path: Path) -> None:
    sandbox = Sandbox(SandboxConfig())
    result = run_sync(
        "account_balance",
        {},
        connection=connection,
        catalog=catalog,
        client_factory=client_for(sandbox),
        out_dir=tmp_path,
    )
    assert result.outputs["credits"] == 1000.0
