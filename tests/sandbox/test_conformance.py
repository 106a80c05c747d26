"""Every operation in api_facts.json, over HTTP through httpx.ASGITransport: a valid
request is answered as documented, and each kind of invalid request gets the
documented status and error body."""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from PIL import Image
from sandbox_helpers import KEY, FakeClock, image_bytes, wav_bytes

from stability_connector.sandbox import Sandbox
from stability_connector.sandbox.operations import load_operations

OPERATIONS = {op.key: op for op in load_operations()}
STARTS = [op for op in OPERATIONS.values() if op.behaviour.kind not in ("result", "account")]
RESULTS = [op for op in OPERATIONS.values() if op.behaviour.kind == "result"]
ACCOUNT = [op for op in OPERATIONS.values() if op.behaviour.kind == "account"]

# What the facts alone cannot say about a valid request (rules stated in prose).
EXTRA: dict[str, dict[str, Any]] = {
    "POST /v2beta/stable-image/edit/outpaint": {"left": "128"},
    "POST /v2beta/stable-image/edit/replace-background-and-relight": {
        "background_prompt": "a beach at sunset"
    },
}
ENGINES = {"upscale": "esrgan-v1-x2plus", "default": "stable-diffusion-v1-6"}
# Images that satisfy each operation's limits (video takes fixed sizes only).
IMAGE_SIZE = {"POST /v2beta/image-to-video": (768, 768)}

ERROR_ID = re.compile(r"^[0-9a-f]{32}$")
JOB_ID = re.compile(r"^[0-9a-f]{64}$")


def url_of(op_key: str) -> str:
    op = OPERATIONS[op_key]
    engine = ENGINES["upscale"] if op.path.endswith("/upscale") else ENGINES["default"]
    return op.path.replace("{engine_id}", engine)


def _scalar(facts: dict[str, Any]) -> str:
    if "enum" in facts:
        return str(facts.get("default", facts["enum"][0]))
    if facts.get("type") == "string":
        return "a lighthouse on a cliff at dawn"
    if "default" in facts:
        return str(facts["default"])
    return str(facts.get("minimum", 1))


def _file(op_key: str, name: str, facts: dict[str, Any]) -> tuple[str, bytes, str]:
    media = facts.get("media", {})
    if "mp3" in media.get("formats", []):
        return ("input.wav", wav_bytes(media.get("min_seconds", 6) + 0.5), "audio/wav")
    width, height = IMAGE_SIZE.get(op_key, (512, 512))
    return (f"{name}.png", image_bytes(width, height), "image/png")


def valid_request(op_key: str) -> dict[str, Any]:
    """Keyword arguments for httpx: a request the operation accepts."""
    op = OPERATIONS[op_key]
    required = set(op.required)
    variants = op.facts.get("variants")
    data: dict[str, Any] = {}
    if variants:
        first = op.fields[variants["property"]]["enum"][0]
        data[variants["property"]] = first
        required |= set(variants["required"][first])
    files: dict[str, Any] = {}
    for name in sorted(required):
        facts = op.fields[name]
        if name == "text_prompts":
            continue
        if facts.get("format") == "binary":
            files[name] = _file(op_key, name, facts)
        elif name not in data:
            data[name] = _scalar(facts)
    data.update(EXTRA.get(op_key, {}))
    if op.encoding == "json":
        return {"json": {"text_prompts": [{"text": "a lighthouse", "weight": 1}], **data}}
    if "text_prompts" in op.fields:
        data["text_prompts[0][text]"] = "a lighthouse on a cliff"
    if not files:
        files = {"none": ""}
    return {"data": data, "files": files}


def without(request: dict[str, Any], name: str) -> dict[str, Any]:
    copy = {k: dict(v) for k, v in request.items()}
    for part in copy.values():
        part.pop(name, None)
    if "files" in copy and not copy["files"]:
        copy["files"] = {"none": ""}
    return copy


def with_field(request: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    copy = {k: dict(v) for k, v in request.items()}
    if "json" in copy:
        copy["json"][name] = value
    else:
        copy["data"][name] = str(value)
    return copy


def assert_error(
    response: httpx.Response, status: int, name: str | None = None, mentions: str | None = None
) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert ERROR_ID.match(body["id"])
    if response.url.path.startswith("/v1/"):
        assert set(body) == {"id", "name", "message"}
        text = body["message"]
    else:
        assert set(body) == {"id", "name", "errors"}
        assert body["errors"] and all(isinstance(e, str) for e in body["errors"])
        text = " ".join(body["errors"])
    if name is not None:
        assert body["name"] == name
    if mentions is not None:
        assert mentions in text, text
    assert KEY not in response.text
    return body


def check_media(response: httpx.Response, op_key: str, *, as_json: bool) -> None:
    op = OPERATIONS[op_key]
    content_type = response.headers["content-type"]
    documented = op.facts["responses"]["200"]
    assert content_type in documented, (content_type, documented)
    assert response.headers["x-request-id"]
    if op.behaviour.kind == "model":
        assert response.content[:4] == b"glTF"
        return
    if as_json:
        body = response.json()
        if op.is_v1:
            artifact = body["artifacts"][0]
            assert set(artifact) == {"base64", "seed", "finishReason"}
            Image.open(io.BytesIO(base64.b64decode(artifact["base64"]))).verify()
            return
        field = {"image": "image", "audio": "audio", "video": "video"}[
            content_type.partition("type=")[2].split("/")[0] or "video"
        ]
        assert set(body) == {field, "seed", "finish_reason"}
        assert body["finish_reason"] in ("SUCCESS", "CONTENT_FILTERED")
        assert base64.b64decode(body[field])
        assert "seed" not in response.headers
        return
    assert int(response.headers["seed"]) > 0
    assert response.headers["finish-reason"] in ("SUCCESS", "CONTENT_FILTERED")
    if content_type.startswith("image/"):
        Image.open(io.BytesIO(response.content)).verify()


def accept_for(op_key: str, as_json: bool) -> dict[str, str]:
    op = OPERATIONS[op_key]
    if as_json:
        return {"accept": "application/json"}
    if op.is_v1:
        return {"accept": "image/png"}
    return {"accept": op.facts.get("accept_default") or "*/*"}


@pytest.mark.anyio
@pytest.mark.parametrize("op_key", [op.key for op in STARTS])
@pytest.mark.parametrize("as_json", [False, True], ids=["raw", "json"])
async def test_a_valid_request_is_answered_as_documented(
    sandbox: Sandbox, clock: FakeClock, op_key: str, as_json: bool
) -> None:
    op = OPERATIONS[op_key]
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            url_of(op_key), headers=accept_for(op_key, as_json), **valid_request(op_key)
        )
        if not op.is_async:
            assert response.status_code == 200, response.text
            check_media(response, op_key, as_json=as_json)
            return
        assert response.status_code == op.start_status, response.text
        assert response.headers["content-type"] == "application/json"
        job = response.json()
        assert set(job) == {"id"} and JOB_ID.match(job["id"])
        result_path = op.facts["result_path"].replace("{id}", job["id"])
        poll = await client.get(result_path, headers=accept_for(op_key, as_json))
        assert poll.status_code == 202
        assert poll.json() == {"id": job["id"], "status": "in-progress"}
        clock.advance(sandbox.config.job_seconds)
        done = await client.get(result_path, headers=accept_for(op_key, as_json))
        assert done.status_code == 200, done.text
        result_key = f"GET {op.facts['result_path']}"
        check_media(done, result_key, as_json=as_json)


@pytest.mark.anyio
@pytest.mark.parametrize("op_key", [op.key for op in ACCOUNT])
async def test_account_calls_answer_the_documented_shapes(sandbox: Sandbox, op_key: str) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.get(url_of(op_key))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    if op_key.endswith("/balance"):
        assert body == {"credits": sandbox.config.credits}
    elif op_key.endswith("/account"):
        assert {"id", "email", "organizations"} <= set(body)
        assert {"id", "name", "role", "is_default"} <= set(body["organizations"][0])
    else:
        assert all({"id", "name", "description", "type"} <= set(e) for e in body)


def _required_cases() -> list[tuple[str, str]]:
    cases = []
    for op in STARTS:
        request = valid_request(op.key)
        for name in op.required:
            if name == "text_prompts" and op.encoding == "json":
                continue
            if name == "text_prompts":
                cases.append((op.key, "text_prompts[0][text]"))
            elif any(name in part for part in request.values()):
                cases.append((op.key, name))
    return cases


@pytest.mark.anyio
@pytest.mark.parametrize(("op_key", "name"), _required_cases())
async def test_a_missing_required_field_is_400(sandbox: Sandbox, op_key: str, name: str) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(url_of(op_key), **without(valid_request(op_key), name))
    assert_error(response, 400, mentions=name.split("[")[0])
    assert sandbox.balance(KEY) == sandbox.config.credits


def _enum_cases() -> list[tuple[str, str]]:
    return [(op.key, name) for op in STARTS for name, f in op.fields.items() if "enum" in f]


@pytest.mark.anyio
@pytest.mark.parametrize(("op_key", "name"), _enum_cases())
async def test_a_value_outside_an_enum_is_400(sandbox: Sandbox, op_key: str, name: str) -> None:
    request = with_field(valid_request(op_key), name, "not-a-listed-value")
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(url_of(op_key), **request)
    body = assert_error(response, 400, mentions=name)
    if not op_key.startswith("POST /v1/"):
        assert body["name"] == "bad_request"


def _range_cases() -> list[tuple[str, str, float]]:
    cases = []
    for op in STARTS:
        for name, facts in op.fields.items():
            step = 1 if facts.get("type") == "integer" else 0.5
            if "maximum" in facts:
                cases.append((op.key, name, facts["maximum"] + step))
            if "minimum" in facts:
                cases.append((op.key, name, facts["minimum"] - step))
    return cases


@pytest.mark.anyio
@pytest.mark.parametrize(("op_key", "name", "value"), _range_cases())
async def test_a_number_out_of_range_is_400(
    sandbox: Sandbox, op_key: str, name: str, value: float
) -> None:
    request = with_field(valid_request(op_key), name, value)
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(url_of(op_key), **request)
    assert_error(response, 400, mentions=name)


@pytest.mark.anyio
@pytest.mark.parametrize("op_key", [op.key for op in STARTS])
async def test_a_body_in_the_wrong_encoding_is_400(sandbox: Sandbox, op_key: str) -> None:
    op = OPERATIONS[op_key]
    request = valid_request(op_key)
    async with sandbox.client(api_key=KEY) as client:
        if op.encoding == "json":
            response = await client.post(url_of(op_key), data={"x": "1"}, files={"none": ""})
            assert_error(response, 400, mentions="application/json")
            return
        form = {k: v for k, v in request["data"].items()}
        urlencoded = await client.post(url_of(op_key), data=form)
        as_json = await client.post(url_of(op_key), json=form)
    for response in (urlencoded, as_json):
        body = assert_error(response, 400, mentions="multipart/form-data")
        if not op.is_v1:
            assert body["name"] == "bad_request"


@pytest.mark.anyio
@pytest.mark.parametrize("op_key", list(OPERATIONS))
async def test_a_request_without_a_key_is_401(sandbox: Sandbox, op_key: str) -> None:
    op = OPERATIONS[op_key]
    url = url_of(op_key).replace("{id}", "0" * 64)
    async with sandbox.client(api_key=None) as client:
        if op.method == "GET":
            missing = await client.get(url)
            wrong_scheme = await client.get(url, headers={"authorization": f"Basic {KEY}"})
        else:
            missing = await client.post(url, **valid_request(op_key))
            wrong_scheme = await client.post(
                url, headers={"authorization": f"Basic {KEY}"}, **valid_request(op_key)
            )
    assert_error(missing, 401, name="unauthorized")
    assert_error(wrong_scheme, 401, name="unauthorized")


@pytest.mark.anyio
async def test_only_configured_keys_are_accepted(make_sandbox: Callable[..., Sandbox]) -> None:
    sandbox = make_sandbox(keys=["sk-one"])
    async with sandbox.client(api_key="sk-two") as client:
        rejected = await client.get("/v1/user/balance")
    async with sandbox.client(api_key="sk-one") as client:
        accepted = await client.get("/v1/user/balance")
    assert_error(rejected, 401, name="unauthorized")
    assert accepted.status_code == 200


@pytest.mark.anyio
# Stable Audio takes larger bodies: checked by the next test.
@pytest.mark.parametrize("op_key", [op.key for op in STARTS if op.behaviour.body_limit is None])
async def test_a_body_over_the_limit_is_413(sandbox: Sandbox, op_key: str) -> None:
    limit = sandbox.config.max_body_bytes
    request = valid_request(op_key)
    request.pop("json", None)
    request["files"] = {**request.get("files", {}), "padding": ("pad.bin", b"0" * limit)}
    request.setdefault("data", {})
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(url_of(op_key), **request)
    assert_error(response, 413, name="payload_too_large", mentions="10MiB")


@pytest.mark.anyio
async def test_stable_audio_takes_bodies_up_to_50_mib(sandbox: Sandbox) -> None:
    op_key = "POST /v2beta/audio/stable-audio-2/audio-to-audio"
    request = valid_request(op_key)
    padding = ("pad.bin", b"0" * (12 * 1024 * 1024))
    async with sandbox.client(api_key=KEY) as client:
        fits = await client.post(
            url_of(op_key), data=request["data"], files={**request["files"], "padding": padding}
        )
        too_big = await client.post(
            url_of(op_key),
            data=request["data"],
            files={**request["files"], "padding": ("pad.bin", b"0" * (50 * 1024 * 1024))},
        )
    assert fits.status_code == 200, fits.text
    assert_error(too_big, 413, name="payload_too_large", mentions="50MiB")


def _image_limit_cases() -> list[tuple[str, str, tuple[int, int]]]:
    cases = []
    for op in STARTS:
        for name, facts in op.fields.items():
            media = facts.get("media", {})
            if facts.get("format") != "binary" or "mp3" in media.get("formats", []):
                continue
            if "min_width" in media:
                cases.append((op.key, name, (media["min_width"] - 1, 256)))
            if "max_width" in media:
                cases.append((op.key, name, (media["max_width"] + 1, 64)))
            if "max_pixels" in media:
                side = int(media["max_pixels"] ** 0.5) + 1
                cases.append((op.key, name, (side, side)))
            if "max_aspect_ratio" in media:
                cases.append((op.key, name, (64, int(64 * media["max_aspect_ratio"]) + 64)))
            if name == "image" and op.facts.get("image_sizes"):
                cases.append((op.key, name, (512, 512)))
    return cases


@pytest.mark.anyio
@pytest.mark.parametrize(("op_key", "name", "size"), _image_limit_cases())
async def test_an_image_outside_the_documented_limits_is_400(
    sandbox: Sandbox, op_key: str, name: str, size: tuple[int, int]
) -> None:
    request = valid_request(op_key)
    request["files"] = {k: v for k, v in request["files"].items() if k != "none"}
    request["files"][name] = (f"{name}.png", image_bytes(*size), "image/png")
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(url_of(op_key), **request)
    assert_error(response, 400, mentions=name)


@pytest.mark.anyio
async def test_an_upload_that_is_not_an_image_is_400(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/stable-image/edit/erase",
            files={"image": ("photo.png", b"definitely not a picture", "image/png")},
        )
    assert_error(response, 400, mentions="image")


@pytest.mark.anyio
async def test_audio_outside_the_documented_length_is_400(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/audio/stable-audio-2/audio-to-audio",
            data={"prompt": "a calm piano"},
            files={"audio": ("short.wav", wav_bytes(2.0), "audio/wav")},
        )
    assert_error(response, 400, mentions="between 6 and 190 seconds")


@pytest.mark.anyio
@pytest.mark.parametrize("op", RESULTS, ids=lambda op: op.key)
async def test_an_unknown_job_id_is_404(sandbox: Sandbox, op: Any) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.get(op.path.replace("{id}", "ab" * 32))
    assert_error(response, 404, name="generation_not_found")


@pytest.mark.anyio
async def test_unknown_paths_and_methods(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        missing = await client.post("/v2beta/stable-image/generate/nothing", files={"none": ""})
        wrong_method = await client.get("/v2beta/stable-image/generate/core")
    assert_error(missing, 404, name="not_found")
    assert_error(wrong_method, 405)


@pytest.mark.anyio
async def test_an_unknown_v1_engine_is_404(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v1/generation/some-fake-engine/text-to-image", json={"text_prompts": [{"text": "hi"}]}
        )
    assert_error(response, 404, name="not_found", mentions="some-fake-engine")


@pytest.mark.anyio
async def test_an_unacceptable_accept_header_is_400(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/stable-image/generate/core",
            headers={"accept": "text/html"},
            files={"none": ""},
            data={"prompt": "a boat"},
        )
    assert_error(response, 400, mentions="accept")


def test_every_operation_of_the_facts_is_covered() -> None:
    facts = json.loads(
        (
            __import__("importlib.resources").resources.files("stability_connector")
            / "api_facts.json"
        ).read_text("utf-8")
    )["operations"]
    assert set(facts) == set(OPERATIONS)
    assert len(STARTS) + len(RESULTS) + len(ACCOUNT) == len(facts)


@pytest.mark.anyio
async def test_client_headers_longer_than_256_characters_are_400(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        fine = await client.post(
            "/v2beta/stable-image/generate/core",
            files={"none": ""},
            data={"prompt": "a boat"},
            headers={"stability-client-id": "a" * 256},
        )
        too_long = await client.post(
            "/v2beta/stable-image/generate/core",
            files={"none": ""},
            data={"prompt": "a boat"},
            headers={"stability-client-user-id": "a" * 257},
        )
    assert fine.status_code == 200
    assert_error(too_long, 400, name="bad_request", mentions="stability-client-user-id")


@pytest.mark.anyio
async def test_ultra_takes_an_image_of_16384_by_16384(sandbox: Sandbox) -> None:
    buffer = io.BytesIO()
    Image.new("1", (16384, 16384)).save(buffer, format="PNG")  # 1 bit per pixel: cheap
    huge = buffer.getvalue()
    assert len(huge) < 10 * 1024 * 1024
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(
            "/v2beta/stable-image/generate/ultra",
            files={"image": ("huge.png", huge, "image/png")},
            data={"prompt": "a bay", "strength": "0.6"},
        )
        too_wide = await client.post(
            "/v2beta/stable-image/generate/ultra",
            files={"image": ("wide.png", image_bytes(16385, 64), "image/png")},
            data={"prompt": "a bay", "strength": "0.6"},
        )
    assert response.status_code == 200, response.text
    assert_error(too_wide, 400, mentions="image: width must be between 64 and 16384")


PNG_512 = ("in.png", image_bytes(512, 512), "image/png")
COMBINATIONS = [
    (
        "/v2beta/stable-image/generate/ultra",
        {"prompt": "a bay"},
        {"image": PNG_512},
        "strength: is required when an image is provided",
    ),
    (
        "/v2beta/stable-image/generate/sd3",
        {"prompt": "a bay", "mode": "image-to-image", "strength": "0.5"},
        {},
        "image: is required when mode is image-to-image",
    ),
    (
        "/v2beta/stable-image/generate/sd3",
        {"prompt": "a bay", "mode": "image-to-image"},
        {"image": PNG_512},
        "strength: is required when mode is image-to-image",
    ),
    (
        "/v2beta/stable-image/generate/sd3",
        {"prompt": "a bay", "strength": "0.5"},
        {"image": PNG_512},
        "mode: must be image-to-image",
    ),
    (
        "/v2beta/stable-image/edit/outpaint",
        {"left": "0"},
        {"image": PNG_512},
        "at least one of them must be greater than 0",
    ),
    (
        "/v2beta/stable-image/edit/replace-background-and-relight",
        {"foreground_prompt": "a cat"},
        {"subject_image": PNG_512},
        "background_prompt or background_reference is required",
    ),
    (
        "/v2beta/audio/stable-audio-2/inpaint",
        {"prompt": "rain", "mask_start": "40", "mask_end": "20"},
        {"audio": ("in.wav", wav_bytes(7), "audio/wav")},
        "mask_end: must be greater",
    ),
    (
        "/v2alpha/generation/stable-image/inpaint",
        {"prompt": "a hat", "mode": "search"},
        {"image": PNG_512},
        "search_prompt: is required",
    ),
    (
        "/v1/generation/esrgan-v1-x2plus/image-to-image",
        {"text_prompts[0][text]": "a bay"},
        {"init_image": PNG_512},
        "only upscales",
    ),
    (
        "/v1/generation/stable-diffusion-v1-6/image-to-image/upscale",
        {},
        {"image": PNG_512},
        "cannot upscale",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "data", "files", "message"),
    COMBINATIONS,
    ids=[
        f"{c[0].rsplit('/', 2)[-2]}/{c[0].rsplit('/', 1)[-1]}-{i}"
        for i, c in enumerate(COMBINATIONS)
    ],
)
async def test_required_combinations_are_400(
    sandbox: Sandbox, path: str, data: dict[str, str], files: dict[str, Any], message: str
) -> None:
    async with sandbox.client(api_key=KEY) as client:
        response = await client.post(path, data=data, files=files or {"none": ""})
    assert_error(response, 400, mentions=message)


@pytest.mark.anyio
async def test_the_variant_that_needs_less_is_accepted(sandbox: Sandbox) -> None:
    async with sandbox.client(api_key=KEY) as client:
        masked = await client.post(
            "/v2alpha/generation/stable-image/inpaint",
            data={"prompt": "a hat", "mode": "mask"},
            files={"image": PNG_512},
        )
        relit = await client.post(
            "/v2beta/stable-image/edit/replace-background-and-relight",
            files={"subject_image": PNG_512, "background_reference": PNG_512},
        )
    assert masked.status_code == 200, masked.text
    assert relit.status_code == 200, relit.text
    # search costs 4 credits and mask 3 (cents in the description); relight is a job.
    assert sandbox.balance(KEY) == sandbox.config.credits - 3
