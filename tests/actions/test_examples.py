"""Every example of every action runs end to end against the sandbox.

For each example: its inputs (mapped from its context) go through the runtime, the
request the sandbox received is the one the example shows (method, path, accept,
form or JSON fields, file fields), the result is a real file of the right kind and
size, the outputs fit the action's output schema, and the credits the action states
are the credits the sandbox charged. Asynchronous actions wait for their job the way
the API asks (first poll at least 10 s after the start, then at least 10 s apart); the
sandbox's jobs are shortened so each answers one poll with 202, and a fake clock
makes the waiting instant.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import av
import pytest
from jsonschema import Draft202012Validator
from PIL import Image

from stability_connector.catalog import load_catalog
from stability_connector.clock import FakeClock
from stability_connector.connection import Connection
from stability_connector.definitions import ActionSpec, Example
from stability_connector.node import ActionResult, Runtime
from stability_connector.sandbox import JournalEntry, Sandbox

from .conftest import JOB_SECONDS, REPO, TEST_KEY

CATALOG = load_catalog(REPO)
CASES = [
    pytest.param(spec.id, index, id=f"{spec.id}[{index}]")
    for spec in CATALOG.actions.values()
    for index in range(len(spec.examples))
]

# The action whose example starts a job of each kind fetch_result can pick up.
JOB_STARTERS = {
    "image": "replace_background_and_relight",
    "upscale_creative": "upscale_creative",
    "audio": "stable_audio_3_text_to_audio",
    "video": "image_to_video",
}

# Sizes each example must produce, by action and the aspect ratio it asks for (None:
# none asked). Generators draw the model's size for the ratio (1 MP for SD 3.5, Ultra
# and Style Guide, 1.5 MP for Core), 4:3 is 3:2 cropped to exactly 4:3, image-to-image
# keeps the input's ratio; with the 512x512 sample photo, edits and control keep the
# input's size, outpaint adds the requested pixels, fast upscale is 4x, conservative
# and creative upscale make 4 MP, v1 draws width x height and v1 upscale scales to the
# requested width.
EXPECTED_SIZES: dict[tuple[str, str | None], tuple[int, int]] = {
    ("generate_image", "16:9"): (1664, 960),
    ("generate_image", "1:1"): (1024, 1024),
    ("generate_image", "4:3"): (1108, 831),
    ("stable_image_core", "16:9"): (1664, 960),
    ("stable_image_core", "1:1"): (1280, 1280),
    ("stable_image_ultra", "16:9"): (1344, 768),
    ("stable_image_ultra", None): (1344, 768),
    ("stable_diffusion_3", "2:3"): (832, 1216),
    ("stable_diffusion_3", None): (1344, 768),
    ("erase", None): (512, 512),
    ("inpaint", None): (512, 512),
    ("search_and_replace", None): (512, 512),
    ("search_and_recolor", None): (512, 512),
    ("remove_background", None): (512, 512),
    ("replace_background_and_relight", None): (512, 512),
    ("fetch_result", None): (512, 512),
    ("control_sketch", None): (512, 512),
    ("control_structure", None): (512, 512),
    ("control_style", "16:9"): (1344, 768),
    ("control_style_transfer", None): (1024, 1024),
    ("outpaint", None): (1024, 512),
    ("upscale_fast", None): (2048, 2048),
    ("upscale_conservative", None): (2048, 2048),
    ("upscale_creative", None): (2048, 2048),
    ("v1_text_to_image", None): (512, 512),
    ("v1_image_to_image", None): (512, 512),
    ("v1_masking", None): (512, 512),
    ("v1_upscale", None): (1024, 1024),
}
# Image to video: 1024x576 from a landscape image, as the API documents.
VIDEO_SIZE = (1024, 576)

CONTENT_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "glb": "model/gltf-binary",
    "mp4": "video/mp4",
}


# --- what a file is --------------------------------------------------------------------


def sniff(data: bytes) -> str | None:
    """A file's format by its magic bytes."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "wav"
    if data[:3] == b"ID3" or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "mp3"
    if data[:4] == b"glTF":
        return "glb"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


def expected_format(spec: ActionSpec, values: Mapping[str, Any]) -> str:
    """The format the example asks for (or the action's default)."""
    kind = spec.response.media
    if kind == "model":
        return "glb"
    if kind == "video":
        return "mp4"
    if spec.id == "fetch_result":
        return {"image": "png", "upscale_creative": "webp", "audio": "mp3", "video": "mp4"}[
            values.get("kind", "image")
        ]
    if spec.id == "http_request":
        return str(values["body"]["output_format"])
    default = "mp3" if kind == "audio" else "png"
    return str(values.get("output_format", default))


def check_file(
    path: str | Path, fmt: str, content_type: str, size_bytes: int
) -> tuple[bytes, Image.Image | None]:
    """The file exists, has the format's magic bytes and is complete; images open."""
    data = Path(path).read_bytes()
    assert len(data) == size_bytes > 0
    assert sniff(data) == fmt, f"{path}: expected {fmt}, found {sniff(data)}"
    assert content_type == CONTENT_TYPES[fmt]
    if fmt in ("png", "jpeg", "webp"):
        image = Image.open(io.BytesIO(data))
        image.load()
        assert image.width > 0 and image.height > 0
        return data, image
    if fmt == "glb":
        magic, version, length = struct.unpack("<4sII", data[:12])
        assert (magic, version, length) == (b"glTF", 2, len(data))
    if fmt == "mp4":
        assert struct.unpack(">I", data[:4])[0] <= len(data)
    return data, None


def media_seconds(data: bytes) -> float:
    """An audio file's length, from its decoded samples."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return float(samples / stream.rate)


def video_size(data: bytes) -> tuple[int, int]:
    """A video's frame size, from its first decoded frame."""
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        return int(frame.width), int(frame.height)


# --- what went over the wire -----------------------------------------------------------


def wire_matches(expected: Any, sent: str) -> bool:
    """A form (or JSON) field's text against the example's value."""
    if isinstance(expected, str):
        return sent == expected
    if isinstance(expected, bool):
        return sent == ("true" if expected else "false")
    if isinstance(expected, int | float):
        return float(sent) == float(expected)
    return bool(json.loads(sent) == expected)


def request_entry(sandbox: Sandbox, since: int, method: str, path: str) -> JournalEntry:
    for entry in sandbox.journal[since:]:
        if entry.method == method and entry.path == path:
            return entry
    sent = [f"{e.method} {e.path}" for e in sandbox.journal[since:]]
    raise AssertionError(f"{method} {path} was never sent; the sandbox received {sent}")


def check_wire(entry: JournalEntry, example: Example, path: str) -> None:
    expected = example.request
    assert expected is not None
    assert (entry.method, entry.path) == (expected.method, path)
    assert entry.status is not None and 200 <= entry.status < 300, entry.error_name
    if expected.accept is not None:
        assert entry.headers.get("accept") == expected.accept
    # Exactly the example's fields: nothing the user did not give is sent.
    assert sorted(entry.fields) == sorted(expected.body), entry.fields
    for name, value in expected.body.items():
        assert wire_matches(value, entry.fields[name]), (name, value, entry.fields[name])
    assert sorted(entry.files) == sorted(expected.files)
    assert all(size > 0 for size in entry.files.values())
    assert "authorization" not in json.dumps(entry.fields).lower()


def check_polls(spec: ActionSpec, sandbox: Sandbox, start: JournalEntry, job_id: str) -> None:
    """The job's result was polled the API's way: 202 while running, then 200."""
    job = spec.response.job
    assert job is not None
    polls = [e for e in sandbox.journal[start.seq + 1 :] if e.method == "GET" and job_id in e.path]
    assert [p.status for p in polls] == [202, 200]
    assert polls[0].at >= start.at + 10
    assert polls[1].at >= polls[0].at + 10
    assert polls[1].at - start.at >= JOB_SECONDS
    accept = {p.headers.get("accept") for p in polls}
    assert len(accept) == 1 and None not in accept


# --- the test ---------------------------------------------------------------------------


async def start_job(runtime: Runtime, connection: Connection, action: str) -> str:
    spec = runtime.action(action)
    example = spec.examples[0]
    pending = await runtime.run(
        action, example.inputs, example.context, connection=connection, wait=False
    )
    assert pending.status == "pending" and pending.job_id
    return pending.job_id


@pytest.mark.anyio
@pytest.mark.parametrize(("action_id", "index"), CASES)
async def test_example_runs_end_to_end(
    action_id: str,
    index: int,
    runtime: Runtime,
    sandbox: Sandbox,
    clock: FakeClock,
    connection: Connection,
) -> None:
    spec = runtime.action(action_id)
    example = spec.examples[index]
    assert example.request is not None
    context: dict[str, Any] = dict(example.context)
    path = example.request.path
    if action_id == "fetch_result":
        # The example's job id stands for one started earlier in the workflow.
        kind = str(example.inputs.get("kind", "image"))
        job_id = await start_job(runtime, connection, JOB_STARTERS[kind])
        clock.advance(JOB_SECONDS)
        old_id = example.context["trigger"]["job_id"]
        context["trigger"] = {**example.context["trigger"], "job_id": job_id}
        path = path.replace(old_id, job_id)
    before = sandbox.balance(TEST_KEY)
    since = len(sandbox.journal)

    result = await runtime.run(action_id, example.inputs, context, connection=connection)

    assert result.status == "succeeded"
    _, values = runtime.resolve(spec, example.inputs, context)
    entry = request_entry(sandbox, since, example.request.method, path)
    check_wire(entry, example, path)
    Draft202012Validator(spec.outputs.schema_).validate(result.outputs)
    check_outputs(spec, result, values)
    if spec.response.kind == "job" and action_id != "fetch_result":
        assert result.job_id and result.outputs["job_id"] == result.job_id
        check_polls(spec, sandbox, entry, result.job_id)
    if result.credits is not None:
        assert sandbox.balance(TEST_KEY) == pytest.approx(before - result.credits)


def check_outputs(spec: ActionSpec, result: ActionResult, values: Mapping[str, Any]) -> None:
    outputs = result.outputs
    kind = spec.response.kind
    if kind in ("media", "job"):
        fmt = expected_format(spec, values)
        data, image = check_file(
            outputs["file"], fmt, outputs["content_type"], outputs["size_bytes"]
        )
        assert outputs["filtered"] is False
        assert outputs["request_id"]
        assert [a.path for a in result.artifacts] == [Path(outputs["file"])]
        if image is not None:
            assert outputs["finish_reason"] == "SUCCESS"
            assert image.size == EXPECTED_SIZES[spec.id, values.get("aspect_ratio")]
            if spec.id == "remove_background":
                assert "A" in image.getbands()
        if fmt in ("wav", "mp3"):
            assert media_seconds(data) == pytest.approx(float(values["duration"]), abs=0.1)
        if fmt == "mp4":
            assert video_size(data) == VIDEO_SIZE
        # 0 asks for a random seed; 3D models come back without a seed header.
        if int(values.get("seed") or 0) and fmt != "glb":
            assert outputs["seed"] == int(values["seed"])
    elif kind == "artifacts":
        items = outputs["artifacts"]
        assert len(items) == int(values.get("samples", 1))
        assert len(result.artifacts) == len(items)
        for item in items:
            _, image = check_file(item["file"], "png", item["content_type"], item["size_bytes"])
            assert image is not None and image.size == EXPECTED_SIZES[spec.id, None]
            assert item["finish_reason"] == "SUCCESS" and item["filtered"] is False
        if int(values.get("seed") or 0):
            assert items[0]["seed"] == int(values["seed"])
        assert len({i["file"] for i in items}) == len(items)
    elif kind == "json":
        declared = spec.outputs.schema_.get("properties", {})
        assert set(declared) <= set(outputs), set(declared) - set(outputs)
    else:  # raw: the generic request
        assert outputs["status"] == 200
        if "file" in outputs:
            check_file(
                outputs["file"],
                expected_format(spec, values),
                outputs["content_type"].split(";")[0],
                outputs["size_bytes"],
            )
        else:
            assert isinstance(outputs["json"], dict)


def test_every_action_has_an_example_with_its_request() -> None:
    for spec in CATALOG.actions.values():
        assert spec.examples, spec.id
        for example in spec.examples:
            assert example.request is not None, f"{spec.id}: {example.title}"


def test_example_media_files_exist_and_are_small() -> None:
    """Examples point at the committed sample files, which stay small."""
    for spec in CATALOG.actions.values():
        for example in spec.examples:
            text = json.dumps({"inputs": example.inputs, "context": example.context})
            for part in text.split('"'):
                if part.startswith("examples/media/"):
                    file = REPO / part
                    assert file.is_file(), f"{spec.id}: {part} is missing"
                    assert file.stat().st_size < 200_000, f"{part} is too large for the repo"
