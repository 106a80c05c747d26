"""Generate Image end to end against the sandbox: every option of every dropdown does
what its label promises, on the wire and in the file written."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from stability_connector.catalog import Catalog
from stability_connector.connection import Connection
from stability_connector.errors import InputValidationError
from stability_connector.inputs import options
from stability_connector.media import sniff
from stability_connector.node import Runtime
from stability_connector.sandbox import Sandbox

from .conftest import TEST_KEY

pytestmark = pytest.mark.anyio

# The sizes Stability documents (and the sandbox returns): Core 1.5 MP, the others 1 MP.
CORE_SIZES = {
    "1:1": (1280, 1280),
    "16:9": (1664, 960),
    "9:16": (960, 1664),
    "3:2": (1536, 1024),
    "21:9": (1920, 832),
}
ONE_MP_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "9:16": (768, 1344),
    "3:2": (1216, 832),
    "21:9": (1536, 640),
}


def size_of(path: str) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_the_dropdowns_are_the_contracts(catalog: Catalog) -> None:
    props = catalog.action("generate_image").inputs["properties"]
    assert [label for _, label in options(props["aspect_ratio"]) or []] == [
        "1:1 (Square)", "16:9 (Landscape)", "9:16 (Portrait)", "4:3", "3:2", "21:9 (Ultrawide)"
    ]  # fmt: skip
    assert [label for _, label in options(props["output_format"]) or []] == ["PNG", "JPEG", "WebP"]


@pytest.mark.parametrize(
    ("label", "sent", "size"),
    [
        ("1:1 (Square)", "1:1", (1280, 1280)),
        ("16:9 (Landscape)", "16:9", (1664, 960)),
        ("9:16 (Portrait)", "9:16", (960, 1664)),
        ("4:3", "3:2", None),
        ("3:2", "3:2", (1536, 1024)),
        ("21:9 (Ultrawide)", "21:9", (1920, 832)),
    ],
)
async def test_every_aspect_ratio_gives_its_shape(
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
    label: str,
    sent: str,
    size: tuple[int, int] | None,
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a lighthouse", "aspect_ratio": label}, connection=connection
    )
    (entry,) = sandbox.journal
    assert entry.fields["aspect_ratio"] == sent
    width, height = size_of(result.outputs["file"])
    if size is None:  # 4:3: generated at 3:2, cropped to exactly 4:3 by pixel size
        assert width * 3 == height * 4
        assert (width, height) == (1364, 1023)
    else:
        assert (width, height) == size


@pytest.mark.parametrize("model", ["sd3.5-large", "ultra"])
async def test_four_to_three_is_exact_with_every_model(
    runtime: Runtime, connection: Connection, model: str
) -> None:
    result = await runtime.run(
        "generate_image",
        {"prompt": "a mug", "aspect_ratio": "4:3", "model": model},
        connection=connection,
    )
    width, height = size_of(result.outputs["file"])
    assert width * 3 == height * 4
    assert (width, height) == (1108, 831)  # from the documented 1216x832
    assert result.outputs["size_bytes"] == Path(result.outputs["file"]).stat().st_size


@pytest.mark.parametrize(
    ("model", "path", "credits"),
    [
        ("core", "/core", 3.0),
        ("sd3.5-large", "/sd3", 6.5),
        ("sd3.5-large-turbo", "/sd3", 4.0),
        ("sd3.5-medium", "/sd3", 3.5),
        ("ultra", "/ultra", 8.0),
    ],
)
async def test_every_model_goes_to_its_endpoint_and_costs_its_credits(
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
    model: str,
    path: str,
    credits: float,
) -> None:
    # Chosen by its label, as a form shows it.
    labels = dict(
        options(runtime.catalog.action("generate_image").inputs["properties"]["model"]) or []
    )
    before = sandbox.balance(TEST_KEY)
    result = await runtime.run(
        "generate_image",
        {"prompt": "a lighthouse", "aspect_ratio": "16:9", "model": labels[model]},
        connection=connection,
    )
    (entry,) = sandbox.journal
    assert entry.path == "/v2beta/stable-image/generate" + path
    assert entry.fields.get("model") == (model if path == "/sd3" else None)
    assert result.credits == credits == result.outputs["credits"]
    assert sandbox.balance(TEST_KEY) == pytest.approx(before - credits)
    expected = CORE_SIZES["16:9"] if path == "/core" else ONE_MP_SIZES["16:9"]
    assert size_of(result.outputs["file"]) == expected


@pytest.mark.parametrize(
    ("label", "fmt", "content_type", "suffix"),
    [
        ("PNG", "png", "image/png", ".png"),
        ("JPEG", "jpeg", "image/jpeg", ".jpg"),
        ("WebP", "webp", "image/webp", ".webp"),
    ],
)
async def test_every_output_format_is_really_that_format(
    runtime: Runtime,
    sandbox: Sandbox,
    connection: Connection,
    label: str,
    fmt: str,
    content_type: str,
    suffix: str,
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a mug", "output_format": label}, connection=connection
    )
    assert sandbox.journal[0].fields["output_format"] == fmt
    data = Path(result.outputs["file"]).read_bytes()
    assert sniff(data) == fmt
    assert result.outputs["content_type"] == content_type
    assert result.outputs["file"].endswith(suffix)
    assert base64.b64decode(result.outputs["image"]) == data


@pytest.mark.parametrize("label", ["PNG", "JPEG", "WebP"])
async def test_a_cropped_image_keeps_the_format_asked_for(
    runtime: Runtime, connection: Connection, label: str
) -> None:
    result = await runtime.run(
        "generate_image",
        {"prompt": "a mug", "aspect_ratio": "4:3", "output_format": label},
        connection=connection,
    )
    with Image.open(io.BytesIO(base64.b64decode(result.outputs["image"]))) as image:
        assert image.format == {"PNG": "PNG", "JPEG": "JPEG", "WebP": "WEBP"}[label]
        assert image.width * 3 == image.height * 4


async def test_seed_42_is_sent_and_returned_as_a_number(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a mug", "seed": "42"}, connection=connection
    )
    assert sandbox.journal[0].fields["seed"] == "42"
    assert result.outputs["seed"] == 42
    assert result.outputs["file"].split("/")[-1].startswith("generate_image-42-")
    again = await runtime.run(
        "generate_image", {"prompt": "a mug", "seed": "42"}, connection=connection
    )
    assert again.outputs["image"] == result.outputs["image"]  # the same seed, the same image


async def test_an_empty_seed_is_random(
    runtime: Runtime, sandbox: Sandbox, connection: Connection
) -> None:
    result = await runtime.run(
        "generate_image", {"prompt": "a mug", "seed": ""}, connection=connection
    )
    assert "seed" not in sandbox.journal[0].fields
    assert isinstance(result.outputs["seed"], int) and result.outputs["seed"] > 0


@pytest.mark.parametrize("seed", ["abc", "-3", "1.5", "4294967295"])
async def test_a_bad_seed_is_a_clear_error_and_nothing_is_sent(
    runtime: Runtime, sandbox: Sandbox, connection: Connection, seed: str
) -> None:
    with pytest.raises(InputValidationError) as caught:
        await runtime.run(
            "generate_image", {"prompt": "a mug", "seed": seed}, connection=connection
        )
    (problem,) = caught.value.problems
    assert problem.field == "seed"
    assert "whole number from 0 to 4294967294" in str(problem)
    assert sandbox.journal == []


async def test_the_readme_job(runtime: Runtime, sandbox: Sandbox, connection: Connection) -> None:
    """ "a lighthouse at dusk", 16:9 (Landscape) → a 16:9 PNG of the documented size."""
    result = await runtime.run(
        "generate_image",
        {"prompt": "<<trigger.prompt>>", "aspect_ratio": "<<trigger.aspect_ratio>>"},
        {"trigger": {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9 (Landscape)"}},
        connection=connection,
    )
    (entry,) = sandbox.journal
    assert entry.headers["content-type"].startswith("multipart/form-data")
    assert entry.headers["accept"] == "image/*"
    assert entry.fields == {"prompt": "a lighthouse at dusk", "aspect_ratio": "16:9"}
    out = result.outputs
    assert size_of(out["file"]) == (1664, 960)
    assert sniff(Path(out["file"]).read_bytes()) == "png"
    assert out["finish_reason"] == "SUCCESS" and out["filtered"] is False
    assert isinstance(out["seed"], int)
    assert out["request_id"] == entry.request_id
    assert set(out) >= {"seed", "image", "finish_reason", "file", "content_type", "size_bytes"}
