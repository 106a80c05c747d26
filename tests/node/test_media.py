"""Media inputs in every form, their limits, and how outputs are written."""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from stability_connector import media
from stability_connector.hooks import MediaBody, crop_to_aspect, exact_crop

from .conftest import png

IMAGE_LIMITS = {
    "kind": "image",
    "formats": ["png", "jpeg", "webp"],
    "min_width": 64,
    "min_height": 64,
    "min_pixels": 4096,
    "max_pixels": 1048576,
    "max_aspect_ratio": 2.5,
}


def encoded(fmt: str, size: tuple[int, int] = (100, 80)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, "blue").save(out, format=fmt)
    return out.getvalue()


def wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def mp3(seconds: float) -> bytes:
    """Silent MPEG-1 Layer III frames at 128 kbit/s, 44.1 kHz (1152 samples each)."""
    header = bytes([0xFF, 0xFB, 0x90, 0x00])
    frame = header + b"\0" * (144 * 128000 // 44100 - 4)
    frames = round(seconds * 44100 / 1152)
    return b"ID3\x03\x00\x00\x00\x00\x00\x00" + frame * frames


# --- forms -------------------------------------------------------------------------------


def test_every_form_of_input_gives_the_same_media(tmp_path: Path) -> None:
    data = png(100, 80)
    path = tmp_path / "in.png"
    path.write_bytes(data)
    b64 = base64.b64encode(data).decode()
    forms: list[Any] = [
        data,
        bytearray(data),
        str(path),
        path,
        b64,
        b64[:40] + "\n" + b64[40:],
        f"data:image/png;base64,{b64}",
        {"file": str(path), "seed": 1},  # an earlier step's outputs
    ]
    for form in forms:
        got, found = media.read_media("image", form, IMAGE_LIMITS)
        assert found == []
        assert got is not None
        assert (got.data, got.format, got.width, got.height) == (data, "png", 100, 80)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("/no/such/file.png", "no file at '/no/such/file.png'"),
        ("not base64 at all!", "is not a file path, base64 or a data URI"),
        ("data:image/png,rawtext", "is a data URI without ;base64"),
        (12, "is int, not a file, base64 or a data URI"),
    ],
)
def test_unreadable_inputs_are_named_problems(value: Any, problem: str) -> None:
    got, found = media.read_media("image", value, IMAGE_LIMITS)
    assert got is None
    assert [p.field for p in found] == ["image"]
    assert found[0].problem.startswith(problem)


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (encoded("PNG"), "png"),
        (encoded("JPEG"), "jpeg"),
        (encoded("WEBP"), "webp"),
        (encoded("GIF"), "gif"),
        (wav(1), "wav"),
        (mp3(1), "mp3"),
        (b"glTF\x02\0\0\0", "glb"),
        (b"\0\0\0\x18ftypmp42", "mp4"),
        (b"hello", None),
    ],
)
def test_formats_are_sniffed_from_the_bytes(data: bytes, fmt: str | None) -> None:
    assert media.sniff(data) == fmt


def test_a_format_the_field_does_not_take_is_refused() -> None:
    _, found = media.read_media("image", encoded("GIF"), IMAGE_LIMITS)
    assert [str(p) for p in found] == ["image: is GIF (allowed: PNG, JPEG, WEBP)"]
    _, found = media.read_media("image", b"%PDF-1.7 not an image", IMAGE_LIMITS)
    assert [str(p) for p in found] == [
        "image: is not a format we recognise (allowed: PNG, JPEG, WEBP)"
    ]


@pytest.mark.parametrize(
    ("size", "problem"),
    [
        ((32, 200), "image: is 32x200; its width of 32 pixels is out of range "
         "(allowed: at least 64)"),
        ((2000, 600), "image: is 2000x600 = 1,200,000 pixels, out of range "
         "(allowed: 4,096 to 1,048,576 pixels)"),
        ((300, 64), "image: is 300x64, too long and thin (allowed: sides up to 2.5:1 in either "
         "direction)"),
    ],
)  # fmt: skip
def test_image_limits_are_checked_before_sending(size: tuple[int, int], problem: str) -> None:
    _, found = media.read_media("image", encoded("PNG", size), IMAGE_LIMITS)
    assert problem in [str(p) for p in found]


def test_exact_sizes() -> None:
    limits = {"kind": "image", "formats": ["png"], "sizes": ["1024x576", "576x1024"]}
    assert media.read_media("image", encoded("PNG", (1024, 576)), limits)[1] == []
    _, found = media.read_media("image", encoded("PNG", (1000, 576)), limits)
    assert [str(p) for p in found] == ["image: is 1000x576 (allowed: 1024x576, 576x1024)"]


def test_a_decompression_bomb_is_refused_without_decoding() -> None:
    # A PNG header announcing 100000 x 100000 pixels.
    out = io.BytesIO()
    Image.new("1", (1, 1)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    data[16:24] = struct.pack(">II", 100000, 100000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    _, found = media.read_media("image", bytes(data), IMAGE_LIMITS)
    assert [str(p) for p in found] == [
        "image: is 100000x100000 = 10,000,000,000 pixels, out of range "
        "(allowed: 4,096 to 1,048,576 pixels)"
    ]


def test_audio_durations_are_read_from_wav_and_mp3() -> None:
    assert media.wav_seconds(wav(7.5)) == pytest.approx(7.5)
    assert media.mp3_seconds(mp3(10)) == pytest.approx(10, abs=0.05)
    limits = {"kind": "audio", "formats": ["mp3", "wav"], "min_seconds": 6, "max_seconds": 190}
    assert media.read_media("audio", wav(8), limits)[1] == []
    assert media.read_media("audio", mp3(8), limits)[1] == []
    _, found = media.read_media("audio", wav(2), limits)
    assert [str(p) for p in found] == ["audio: is 2.0 seconds long (allowed: 6 to 190 seconds)"]
    _, found = media.read_media("audio", mp3(200), limits)
    assert [str(p) for p in found] == ["audio: is 200.0 seconds long (allowed: 6 to 190 seconds)"]


def test_a_file_over_ten_mib_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    with big.open("wb") as handle:
        handle.write(png(64, 64))
        handle.truncate(11 * 1024 * 1024)
    _, found = media.read_media("image", str(big), IMAGE_LIMITS)
    assert [str(p) for p in found] == [
        "image: is 11.0 MiB; the API accepts at most 10 MiB per request"
    ]


# --- outputs -------------------------------------------------------------------------------


def test_outputs_are_written_atomically_with_readable_unique_names(tmp_path: Path) -> None:
    out = tmp_path / "deep" / "out"
    first = media.write_output(out, "generate_image-42", b"one", "png")
    second = media.write_output(out, "generate_image-42", b"two", "png")
    again = media.write_output(out, "generate_image-42", b"one", "png")
    assert first.parent == out
    assert first.name.startswith("generate_image-42-") and first.suffix == ".png"
    assert first != second and first == again
    assert first.read_bytes() == b"one" and second.read_bytes() == b"two"
    assert sorted(p.name for p in out.iterdir()) == sorted([first.name, second.name])
    assert media.output_name("../../etc/passwd", b"x", "png").startswith("etc-passwd-")


# --- crop_to_aspect --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "ratio"),
    [((1536, 1024), "4:3"), ((1216, 832), "4:3"), ((1000, 1000), "16:9"), ((640, 1536), "9:16")],
)
def test_exact_crop_gives_exactly_the_ratio(size: tuple[int, int], ratio: str) -> None:
    left, top, right, bottom = exact_crop(*size, ratio)
    a, b = (int(x) for x in ratio.split(":"))
    width, height = right - left, bottom - top
    assert width * b == height * a
    assert width <= size[0] and height <= size[1]
    assert abs(left - (size[0] - right)) <= 1 and abs(top - (size[1] - bottom)) <= 1


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"),
                                                     ("WEBP", "image/webp")])  # fmt: skip
def test_crop_to_aspect_keeps_the_format(fmt: str, content_type: str) -> None:
    result = crop_to_aspect(MediaBody(encoded(fmt, (1536, 1024)), content_type), {"ratio": "4:3"})
    with Image.open(io.BytesIO(result.data)) as image:
        assert image.size == (1364, 1023)
        assert image.format == fmt
    assert result.content_type == content_type
