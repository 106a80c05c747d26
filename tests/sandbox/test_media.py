"""The media the sandbox returns: real encodings, documented sizes, determinism."""

from __future__ import annotations

import base64
import io
import json
import struct
from typing import Any

import av
import httpx
import pytest
from PIL import Image
from sandbox_helpers import KEY, FakeClock, image_bytes, wav_bytes

from stability_connector.sandbox import Sandbox
from stability_connector.sandbox.media import render_audio, render_glb

ULTRA_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "5:4": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
    "2:3": (832, 1216),
    "4:5": (896, 1152),
}


def size_of(content: bytes) -> tuple[int, int]:
    image = Image.open(io.BytesIO(content))
    return image.size


async def post(
    client: httpx.AsyncClient,
    path: str,
    data: dict[str, str],
    files: dict[str, Any] | None = None,
    accept: str = "image/*",
) -> httpx.Response:
    response = await client.post(
        path, data=data, files=files or {"none": ""}, headers={"accept": accept}
    )
    assert response.status_code == 200, response.text
    return response


@pytest.mark.anyio
@pytest.mark.parametrize("aspect_ratio", list(ULTRA_SIZES))
@pytest.mark.parametrize("path", ["generate/ultra", "generate/sd3", "control/style"])
async def test_one_megapixel_sizes(sandbox: Sandbox, path: str, aspect_ratio: str) -> None:
    data = {"prompt": "a fox", "aspect_ratio": aspect_ratio}
    files = None
    if path == "control/style":
        files = {"image": ("style.png", image_bytes(300, 300), "image/png")}
    async with sandbox.client(api_key=KEY) as client:
        response = await post(client, f"/v2beta/stable-image/{path}", data, files)
    assert size_of(response.content) == ULTRA_SIZES[aspect_ratio]


@pytest.mark.anyio
async def test_core_is_about_one_and_a_half_megapixels(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        for ratio in ULTRA_SIZES:
            response = await post(
                client,
                "/v2beta/stable-image/generate/core",
                {"prompt": "a fox", "aspect_ratio": ratio},
            )
            width, height = size_of(response.content)
            assert width % 64 == 0 and height % 64 == 0
            assert 1.35 <= width * height / 2**20 <= 1.65
            a, b = map(int, ratio.split(":"))
            assert abs(width / height - a / b) / (a / b) < 0.1


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "data", "input_size", "expected"),
    [
        ("edit/erase", {}, (640, 480), (640, 480)),
        ("edit/inpaint", {"prompt": "a hat"}, (640, 480), (640, 480)),
        (
            "edit/search-and-recolor",
            {"prompt": "red", "select_prompt": "car"},
            (300, 200),
            (300, 200),
        ),
        ("control/sketch", {"prompt": "a castle"}, (512, 384), (512, 384)),
        ("edit/outpaint", {"left": "100", "down": "36"}, (512, 512), (612, 548)),
        ("upscale/fast", {}, (300, 200), (1200, 800)),
        ("upscale/conservative", {"prompt": "a photo"}, (512, 512), (2048, 2048)),
        ("control/style-transfer", {}, (400, 200), (1448, 724)),
        ("generate/ultra", {"prompt": "a fox", "strength": "0.5"}, (900, 500), (1344, 768)),
    ],
)
async def test_sizes_that_follow_the_input(
    sandbox: Sandbox,
    path: str,
    data: dict[str, str],
    input_size: tuple[int, int],
    expected: tuple[int, int],
) -> None:
    field = "init_image" if path.endswith("style-transfer") else "image"
    files = {field: ("in.png", image_bytes(*input_size), "image/png")}
    if field == "init_image":
        files["style_image"] = ("style.png", image_bytes(256, 256), "image/png")
    async with sandbox.client(api_key=KEY) as client:
        response = await post(client, f"/v2beta/stable-image/{path}", data, files)
    assert size_of(response.content) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("fmt", "magic", "pil"),
    [
        ("png", b"\x89PNG", "PNG"),
        ("jpeg", b"\xff\xd8", "JPEG"),
        ("webp", b"RIFF", "WEBP"),
    ],
)
async def test_the_requested_output_format_is_really_encoded(
    sandbox: Sandbox, fmt: str, magic: bytes, pil: str
) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await post(
            client, "/v2beta/stable-image/generate/core", {"prompt": "a fox", "output_format": fmt}
        )
    assert response.headers["content-type"] == f"image/{fmt}"
    assert response.content.startswith(magic)
    assert Image.open(io.BytesIO(response.content)).format == pil


@pytest.mark.anyio
async def test_remove_background_is_transparent(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await post(
            client,
            "/v2beta/stable-image/edit/remove-background",
            {},
            {"image": ("in.jpg", image_bytes(320, 240, "JPEG"), "image/jpeg")},
        )
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGBA" and image.getpixel((0, 0))[3] == 0  # type: ignore[index]


@pytest.mark.anyio
async def test_same_request_same_bytes_and_seed_zero_is_random(sandbox: Sandbox) -> None:
    data = {"prompt": "a fox in snow", "seed": "1234"}
    async with sandbox.client(api_key=KEY) as client:
        first = await post(client, "/v2beta/stable-image/generate/core", data)
        again = await post(client, "/v2beta/stable-image/generate/core", data)
        other_seed = await post(
            client, "/v2beta/stable-image/generate/core", {**data, "seed": "1235"}
        )
        other_prompt = await post(
            client, "/v2beta/stable-image/generate/core", {**data, "prompt": "a fox in rain"}
        )
        random_a = await post(
            client, "/v2beta/stable-image/generate/core", {"prompt": "a fox", "seed": "0"}
        )
        random_b = await post(client, "/v2beta/stable-image/generate/core", {"prompt": "a fox"})
        replay = await post(
            client,
            "/v2beta/stable-image/generate/core",
            {"prompt": "a fox", "seed": random_a.headers["seed"]},
        )
    assert first.content == again.content and first.headers["seed"] == "1234"
    assert other_seed.content != first.content
    assert other_prompt.content != first.content
    assert random_a.headers["seed"] != random_b.headers["seed"]
    assert replay.content == random_a.content


@pytest.mark.anyio
async def test_determinism_holds_across_sandboxes() -> None:
    data = {"prompt": "a fox", "seed": "77", "aspect_ratio": "3:2", "output_format": "webp"}
    bodies = []
    for _ in range(2):
        async with Sandbox().client(api_key="sk-any") as client:
            bodies.append((await post(client, "/v2beta/stable-image/generate/sd3", data)).content)
    assert bodies[0] == bodies[1]


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", ["mp3", "wav"])
async def test_audio_has_the_requested_duration(sandbox: Sandbox, fmt: str) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await post(
            client,
            "/v2beta/audio/stable-audio-2/text-to-audio",
            {
                "prompt": "soft rain",
                "duration": "12.5",
                "output_format": fmt,
                "model": "stable-audio-2.5",
            },
            accept="audio/*",
        )
    assert response.headers["content-type"] == {"mp3": "audio/mpeg", "wav": "audio/wav"}[fmt]
    with av.open(io.BytesIO(response.content)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples / 44_100 == pytest.approx(12.5, abs=0.1)


def test_the_default_audio_length_is_cheap_to_make() -> None:
    assert len(render_audio(190, b"seed", "mp3")) > 2_000_000


@pytest.mark.anyio
async def test_audio_to_audio_takes_an_upload(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await post(
            client,
            "/v2beta/audio/stable-audio-2/audio-to-audio",
            {"prompt": "jazz", "duration": "8"},
            {"audio": ("in.wav", wav_bytes(7), "audio/wav")},
            accept="application/json",
        )
    body = response.json()
    assert response.headers["content-type"] == "application/json; type=audio/mpeg"
    assert base64.b64decode(body["audio"])[:2] == b"\xff\xfb"  # an MPEG-1 Layer III frame
    assert body["finish_reason"] == "SUCCESS"


def _read_glb(data: bytes) -> dict[str, Any]:
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))
    json_length, json_type = struct.unpack_from("<I4s", data, 12)
    assert json_type == b"JSON" and json_length % 4 == 0
    document: dict[str, Any] = json.loads(data[20 : 20 + json_length])
    bin_length, bin_type = struct.unpack_from("<I4s", data, 20 + json_length)
    assert bin_type == b"BIN\x00" and bin_length == document["buffers"][0]["byteLength"]
    assert 28 + json_length + bin_length == len(data)
    return document


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["stable-fast-3d", "stable-point-aware-3d"])
async def test_3d_is_a_valid_glb(sandbox: Sandbox, path: str) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            f"/v2beta/3d/{path}", files={"image": ("in.png", image_bytes(512, 512), "image/png")}
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "model/gltf-binary"
    document = _read_glb(response.content)
    assert document["asset"]["version"] == "2.0"
    positions = document["accessors"][0]
    assert positions["type"] == "VEC3" and len(positions["min"]) == 3


def test_glb_is_deterministic() -> None:
    assert render_glb(b"a") == render_glb(b"a") != render_glb(b"b")


@pytest.mark.anyio
async def test_image_to_video_is_a_playable_mp4(sandbox: Sandbox, clock: FakeClock) -> None:
    async with sandbox.client(api_key=KEY) as client:
        start = await client.post(
            "/v2beta/image-to-video",
            data={"seed": "3"},
            files={"image": ("in.png", image_bytes(1024, 576), "image/png")},
        )
        assert start.status_code == 200
        job_id = start.json()["id"]
        clock.advance(20)
        video = await client.get(
            f"/v2beta/image-to-video/result/{job_id}", headers={"accept": "video/*"}
        )
        as_json = await client.get(
            f"/v2beta/image-to-video/result/{job_id}", headers={"accept": "application/json"}
        )
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.headers["seed"] == "3"
    with av.open(io.BytesIO(video.content)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert len(frames) >= 10
    assert (frames[0].width, frames[0].height) == (1024, 576)
    assert as_json.headers["content-type"] == "application/json"
    assert base64.b64decode(as_json.json()["video"]) == video.content
    assert sandbox.balance(KEY) == sandbox.config.credits - 20


@pytest.mark.anyio
async def test_v1_text_to_image(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        as_json = await client.post(
            "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
            json={
                "text_prompts": [{"text": "a fox"}],
                "width": 1152,
                "height": 896,
                "samples": 3,
                "seed": 10,
            },
        )
        raw = await client.post(
            "/v1/generation/stable-diffusion-v1-6/text-to-image",
            headers={"accept": "image/png"},
            json={"text_prompts": [{"text": "a fox"}]},
        )
        sdxl_default = await client.post(
            "/v1/generation/stable-diffusion-xl-1024-v1-0/text-to-image",
            json={"text_prompts": [{"text": "a fox"}]},
        )
        not_64 = await client.post(
            "/v1/generation/stable-diffusion-v1-6/text-to-image",
            json={"text_prompts": [{"text": "a fox"}], "width": 520},
        )
        many_raw = await client.post(
            "/v1/generation/stable-diffusion-v1-6/text-to-image",
            headers={"accept": "image/png"},
            json={"text_prompts": [{"text": "a fox"}], "samples": 2},
        )
    artifacts = as_json.json()["artifacts"]
    assert [a["seed"] for a in artifacts] == [10, 11, 12]
    assert {size_of(base64.b64decode(a["base64"])) for a in artifacts} == {(1152, 896)}
    assert raw.headers["content-type"] == "image/png" and size_of(raw.content) == (512, 512)
    assert raw.headers["finish-reason"] == "SUCCESS" and int(raw.headers["seed"]) > 0
    assert sdxl_default.status_code == 400
    assert sdxl_default.json()["name"] == "invalid_height_or_width"
    assert not_64.status_code == 400 and not_64.json()["name"] == "invalid_height_or_width"
    assert many_raw.status_code == 400 and many_raw.json()["name"] == "invalid_samples"
    assert sandbox.balance(KEY) == sandbox.config.credits - 4


@pytest.mark.anyio
async def test_v1_masking_needs_a_mask_unless_alpha(sandbox: Sandbox) -> None:
    init = ("init.png", image_bytes(512, 512, mode="RGBA"), "image/png")
    form = {"text_prompts[0][text]": "a window", "mask_source": "MASK_IMAGE_WHITE"}
    path = "/v1/generation/stable-inpainting-512-v2-0/image-to-image/masking"
    async with sandbox.client(api_key=KEY) as client:
        no_mask = await client.post(path, data=form, files={"init_image": init})
        alpha = await client.post(
            path, data={**form, "mask_source": "INIT_IMAGE_ALPHA"}, files={"init_image": init}
        )
        mismatch = await client.post(
            path,
            data=form,
            files={"init_image": init, "mask_image": ("m.png", image_bytes(256, 256), "image/png")},
        )
    assert no_mask.status_code == 400 and no_mask.json()["name"] == "invalid_mask_image"
    assert alpha.status_code == 200
    assert mismatch.json()["name"] == "invalid_image_dimensions"


@pytest.mark.anyio
async def test_v1_upscale_keeps_the_ratio(sandbox: Sandbox) -> None:
    path = "/v1/generation/esrgan-v1-x2plus/image-to-image/upscale"
    image = ("in.png", image_bytes(512, 384), "image/png")
    async with sandbox.client(api_key=KEY) as client:
        doubled = await client.post(path, files={"image": image}, headers={"accept": "image/png"})
        wide = await client.post(
            path, files={"image": image}, data={"width": "2048"}, headers={"accept": "image/png"}
        )
        both = await client.post(
            path, files={"image": image}, data={"width": "2048", "height": "1536"}
        )
    assert size_of(doubled.content) == (1024, 768)
    assert size_of(wide.content) == (2048, 1536)
    assert both.status_code == 400
