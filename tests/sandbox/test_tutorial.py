"""The ``requests`` snippets of a public Stability API tutorial run unchanged against the
sandbox on loopback: only the host differs. They are kept here verbatim as test data."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from stability_connector.sandbox import Sandbox, serve_in_thread

QUICK_START = """
import os
import requests

API_KEY = os.environ["STABILITY_API_KEY"]

response = requests.post(
    "https://api.stability.ai/v2beta/stable-image/generate/core",
    headers={
        "authorization": f"Bearer {API_KEY}",
        "accept": "image/*",
    },
    files={"none": ""},
    data={
        "prompt": "A cyberpunk city skyline at sunset, neon lights reflecting on wet streets",
        "output_format": "png",
    },
)

if response.status_code == 200:
    with open("output.png", "wb") as f:
        f.write(response.content)
    print("Image saved to output.png")
else:
    raise Exception(f"Error {response.status_code}: {response.json()}")
"""

SD3_TEXT_TO_IMAGE = """
import os
import requests

API_KEY = os.environ["STABILITY_API_KEY"]

response = requests.post(
    "https://api.stability.ai/v2beta/stable-image/generate/sd3",
    headers={
        "authorization": f"Bearer {API_KEY}",
        "accept": "image/*",
    },
    files={"none": ""},
    data={
        "prompt": "A photorealistic golden retriever sitting in a field of wildflowers, shallow depth of field, golden hour lighting",
        "negative_prompt": "blurry, low quality, distorted, watermark",
        "aspect_ratio": "16:9",
        "output_format": "png",
        "seed": 42,
    },
)

if response.status_code == 200:
    with open("golden_retriever.png", "wb") as f:
        f.write(response.content)
    print(f"Saved. Seed: {response.headers.get('seed', 'unknown')}")
else:
    print(f"Error {response.status_code}: {response.json()}")
"""  # noqa: E501

SD3_IMAGE_TO_IMAGE = """
import os
import requests

API_KEY = os.environ["STABILITY_API_KEY"]

with open("input_photo.png", "rb") as img_file:
    response = requests.post(
        "https://api.stability.ai/v2beta/stable-image/generate/sd3",
        headers={
            "authorization": f"Bearer {API_KEY}",
            "accept": "image/*",
        },
        files={
            "image": ("input_photo.png", img_file, "image/png"),
        },
        data={
            "prompt": "A watercolor painting of the same scene, soft brushstrokes, muted colors",
            "mode": "image-to-image",
            "strength": 0.45,
            "output_format": "png",
        },
    )

if response.status_code == 200:
    with open("watercolor_output.png", "wb") as f:
        f.write(response.content)
    print("Style transfer complete.")
else:
    print(f"Error {response.status_code}: {response.json()}")
"""

CONSERVATIVE_UPSCALE = """
import os
import requests

API_KEY = os.environ["STABILITY_API_KEY"]

with open("small_image.png", "rb") as img_file:
    response = requests.post(
        "https://api.stability.ai/v2beta/stable-image/upscale/conservative",
        headers={
            "authorization": f"Bearer {API_KEY}",
            "accept": "image/*",
        },
        files={
            "image": ("small_image.png", img_file, "image/png"),
        },
        data={
            "prompt": "high resolution detailed photograph",
            "output_format": "png",
            "creativity": 0.3,
        },
    )

if response.status_code == 200:
    with open("upscaled_output.png", "wb") as f:
        f.write(response.content)
    print("Upscaled image saved.")
else:
    print(f"Error {response.status_code}: {response.json()}")
"""

BASE64_JSON = """
import base64

response = requests.post(
    "https://api.stability.ai/v2beta/stable-image/generate/core",
    headers={
        "authorization": f"Bearer {os.environ['STABILITY_API_KEY']}",
        "accept": "application/json",
    },
    files={"none": ""},
    data={
        "prompt": "A minimalist logo design, flat vector style, blue and white",
        "output_format": "png",
    },
)

if response.status_code == 200:
    data = response.json()
    image_bytes = base64.b64decode(data["image"])
    with open("logo.png", "wb") as f:
        f.write(image_bytes)
    print(f"Finish reason: {data.get('finish_reason')}")
    print(f"Seed: {data.get('seed')}")
else:
    print(f"Error: {response.json()}")
"""

# The base64 snippet continues the tutorial's script, so it runs after an import block.
SNIPPETS = {
    "quick start": (QUICK_START, "output.png", (1280, 1280)),
    "sd3 text-to-image": (SD3_TEXT_TO_IMAGE, "golden_retriever.png", (1344, 768)),
    "sd3 image-to-image": (SD3_IMAGE_TO_IMAGE, "watercolor_output.png", (1216, 832)),
    "conservative upscale": (CONSERVATIVE_UPSCALE, "upscaled_output.png", (2508, 1672)),
    "base64 json": ("import os\nimport requests\n" + BASE64_JSON, "logo.png", (1280, 1280)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SNIPPETS))
def test_the_tutorial_snippet_runs_unchanged_but_for_the_host(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source, output, size = SNIPPETS[name]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STABILITY_API_KEY", "sk-tutorial-reader")
    Image.new("RGB", (768, 512), "teal").save(tmp_path / "input_photo.png")
    Image.new("RGB", (600, 400), "olive").save(tmp_path / "small_image.png")
    sandbox = Sandbox()
    with serve_in_thread(sandbox) as server:
        code = source.replace("https://api.stability.ai", server.base_url)
        assert code != source
        exec(compile(code, f"<tutorial: {name}>", "exec"), {"__name__": "__main__"})
    printed = capsys.readouterr().out
    assert "Error" not in printed
    with Image.open(tmp_path / output) as image:
        assert image.format == "PNG" and image.size == size
    (entry,) = sandbox.journal
    assert entry.status == 200 and entry.headers["authorization"] == "Bearer ***"
    if name == "sd3 text-to-image":
        assert "Seed: 42" in printed
    if name == "base64 json":
        assert "Finish reason: SUCCESS" in printed
        assert base64.b64encode((tmp_path / output).read_bytes())
    if name == "quick start":
        assert entry.files == {"none": 0}
        assert io.BytesIO((tmp_path / output).read_bytes()).read(4) == b"\x89PNG"
