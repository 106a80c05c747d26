"""Synthetic media with real encodings: images, audio, 3D models and video.

Everything is drawn from a *fingerprint* (bytes hashed from the request), so the same
request gives the same bytes. Rendering is kept cheap: an image is a bilinear gradient
with a few shapes, encoded with fast settings; audio is a handful of tones repeated to
the requested length (the MP3 is encoded once per tone pattern and its frames repeated);
the 3D model is a small hand-written glTF 2.0 binary; the video is a couple of seconds
of moving shapes encoded with PyAV.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import struct
from array import array
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageDraw, ImageFilter

__all__ = [
    "AUDIO_CONTENT_TYPES",
    "IMAGE_CONTENT_TYPES",
    "Media",
    "audio_duration",
    "fingerprint_of",
    "render_audio",
    "render_glb",
    "render_image",
    "render_video",
]

IMAGE_CONTENT_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
AUDIO_CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}
GLB_CONTENT_TYPE = "model/gltf-binary"
MP4_CONTENT_TYPE = "video/mp4"

SAMPLE_RATE = 44_100
CHANNELS = 2
MP3_FRAME = 1152  # samples per MPEG-1 Layer III frame
NOTE_SAMPLES = MP3_FRAME * 20  # ~0.52 s, a whole number of MP3 frames
NOTES_PER_LOOP = 4
MP3_BITRATE = 96


@dataclass(frozen=True)
class Media:
    """A rendered result: its bytes, content type, the seed used and how it finished."""

    body: bytes
    media_type: str
    seed: int
    finish_reason: str = "SUCCESS"

    @property
    def json_field(self) -> str:
        """The JSON body's field for this media (``image``, ``audio``, ``video``)."""
        return self.media_type.split("/")[0]


def fingerprint_of(*parts: Any) -> bytes:
    """A stable digest of the request parts that decide the output."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).digest()


# --- images ------------------------------------------------------------------------------


def _colour(rng: random.Random, alpha: int | None = None) -> tuple[int, ...]:
    rgb = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
    return rgb if alpha is None else (*rgb, alpha)


def _canvas(width: int, height: int, fingerprint: bytes) -> Image.Image:
    rng = random.Random(fingerprint)
    corners = Image.new("RGB", (2, 2))
    corners.putdata([_colour(rng) for _ in range(4)])
    image = corners.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 6)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1 = min(width, x0 + rng.randint(width // 8 + 1, width // 2 + 2))
        y1 = min(height, y0 + rng.randint(height // 8 + 1, height // 2 + 2))
        shape = rng.choice(("ellipse", "rectangle", "triangle"))
        fill = _colour(rng)
        if shape == "ellipse":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif shape == "rectangle":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=fill)
    return image


def _blurred(image: Image.Image) -> Image.Image:
    """What a filtered result looks like: heavily blurred, cheaply (blur a thumbnail)."""
    width, height = image.size
    small = image.resize((max(1, width // 16), max(1, height // 16)), Image.Resampling.BOX)
    small = small.filter(ImageFilter.GaussianBlur(2))
    return small.resize((width, height), Image.Resampling.BILINEAR)


def _cut_out(image: Image.Image, fingerprint: bytes) -> Image.Image:
    """A subject on a transparent background (remove-background)."""
    width, height = image.size
    mask = Image.new("L", (width, height), 0)
    rng = random.Random(fingerprint[::-1])
    margin_x, margin_y = width // rng.randint(5, 8), height // rng.randint(5, 8)
    ImageDraw.Draw(mask).ellipse((margin_x, margin_y, width - margin_x, height - margin_y), 255)
    rgba = image.convert("RGBA")
    rgba.putalpha(mask)
    return rgba


def encode_image(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=1)
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=80, method=0)
    else:
        raise ValueError(f"unknown image format {output_format!r}")
    return buffer.getvalue()


def render_image(
    width: int,
    height: int,
    fingerprint: bytes,
    output_format: str = "png",
    *,
    blurred: bool = False,
    transparent: bool = False,
) -> bytes:
    """A deterministic picture of the given size, encoded as ``output_format``."""
    image = _canvas(width, height, fingerprint)
    if blurred:
        image = _blurred(image)
    if transparent:
        image = _cut_out(image, fingerprint)
    return encode_image(image, output_format)


# --- audio -------------------------------------------------------------------------------

_SCALE = (220.0, 246.94, 277.18, 329.63, 369.99, 440.0, 493.88, 554.37, 659.26)


def _tones(fingerprint: bytes) -> tuple[float, ...]:
    rng = random.Random(fingerprint)
    return tuple(rng.choice(_SCALE) for _ in range(NOTES_PER_LOOP))


@lru_cache(maxsize=64)
def _loop_pcm(tones: tuple[float, ...]) -> bytes:
    """Interleaved 16-bit stereo PCM of the tone loop (a whole number of MP3 frames)."""
    fade = SAMPLE_RATE // 200  # 5 ms in and out, so notes do not click
    samples = array("h")
    for frequency in tones:
        step = 2 * math.pi * frequency / SAMPLE_RATE
        for i in range(NOTE_SAMPLES):
            envelope = min(1.0, i / fade, (NOTE_SAMPLES - i) / fade)
            value = int(9000 * envelope * math.sin(step * i))
            samples.append(value)
            samples.append(value)
    return samples.tobytes()


def _mp3_encoder() -> Any:
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_BITRATE)
    encoder.set_in_sample_rate(SAMPLE_RATE)
    encoder.set_out_sample_rate(SAMPLE_RATE)
    encoder.set_channels(CHANNELS)
    encoder.set_quality(7)
    return encoder


def _mp3(pcm: bytes) -> bytes:
    encoder = _mp3_encoder()
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())


def _mp3_frames(data: bytes) -> int:
    """The number of MPEG-1 Layer III frames in ``data`` (CBR, as encoded here)."""
    bitrates = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    rates = (44_100, 48_000, 32_000)
    frames = position = 0
    while position + 4 <= len(data):
        header = int.from_bytes(data[position : position + 4], "big")
        if header >> 21 != 0x7FF:
            position += 1
            continue
        bitrate = bitrates[(header >> 12) & 0xF] if (header >> 12) & 0xF < 15 else 0
        rate_index = (header >> 10) & 0x3
        if not bitrate or rate_index == 3:
            position += 1
            continue
        length = 144_000 * bitrate // rates[rate_index] + ((header >> 9) & 1)
        frames += 1
        position += length
    return frames


@lru_cache(maxsize=64)
def _loop_mp3(tones: tuple[float, ...]) -> tuple[bytes, float]:
    data = _mp3(_loop_pcm(tones))
    return data, _mp3_frames(data) * MP3_FRAME / SAMPLE_RATE


def _wav(pcm: bytes) -> bytes:
    byte_rate = SAMPLE_RATE * CHANNELS * 2
    header = b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, CHANNELS, SAMPLE_RATE, byte_rate, 4, 16)
    return header + b"data" + struct.pack("<I", len(pcm)) + pcm


def render_audio(seconds: float, fingerprint: bytes, output_format: str = "mp3") -> bytes:
    """``seconds`` of a few tones as WAV (16-bit stereo, 44.1 kHz) or MP3."""
    tones = _tones(fingerprint)
    loop = _loop_pcm(tones)
    total_samples = max(1, round(seconds * SAMPLE_RATE))
    if output_format == "wav":
        total_bytes = total_samples * CHANNELS * 2
        repeats, rest = divmod(total_bytes, len(loop))
        return _wav(loop * repeats + loop[:rest])
    if output_format != "mp3":
        raise ValueError(f"unknown audio format {output_format!r}")
    encoded, loop_seconds = _loop_mp3(tones)
    repeats = int(seconds // loop_seconds)
    remainder = seconds - repeats * loop_seconds
    tail = b""
    if remainder * SAMPLE_RATE >= MP3_FRAME:
        # Whole frames only, minus the encoder's delay, so the total stays close.
        tail_samples = max(MP3_FRAME, int(remainder * SAMPLE_RATE) - MP3_FRAME)
        tail = _mp3(loop[: tail_samples * CHANNELS * 2])
    body = encoded * repeats + tail
    return body or _mp3(loop[: MP3_FRAME * CHANNELS * 2])


def audio_duration(data: bytes) -> tuple[str, float] | None:
    """The format (``mp3``/``wav``) and duration in seconds of an audio upload, or None
    when it is not audio the API accepts."""
    import av

    try:
        container: Any = av.open(io.BytesIO(data))
        with container:
            name = container.format.name
            if container.duration is not None:
                seconds = container.duration / 1_000_000
            else:
                stream = container.streams.audio[0]
                seconds = float((stream.duration or 0) * (stream.time_base or 0))
    except Exception:
        return None
    if "wav" in name:
        return "wav", seconds
    if "mp3" in name:
        return "mp3", seconds
    return None


# --- 3D ----------------------------------------------------------------------------------


def render_glb(fingerprint: bytes) -> bytes:
    """A small coloured mesh (a slightly irregular octahedron) as a glTF 2.0 binary."""
    rng = random.Random(fingerprint)
    extent = [0.5 + rng.random() / 2 for _ in range(6)]
    vertices = [
        (extent[0], 0.0, 0.0),
        (-extent[1], 0.0, 0.0),
        (0.0, extent[2], 0.0),
        (0.0, -extent[3], 0.0),
        (0.0, 0.0, extent[4]),
        (0.0, 0.0, -extent[5]),
    ]
    faces = [
        (0, 2, 4),
        (2, 1, 4),
        (1, 3, 4),
        (3, 0, 4),
        (2, 0, 5),
        (1, 2, 5),
        (3, 1, 5),
        (0, 3, 5),
    ]
    positions = b"".join(struct.pack("<3f", *v) for v in vertices)
    indices = b"".join(struct.pack("<3H", *f) for f in faces)
    indices += b"\x00" * (-len(indices) % 4)
    binary = positions + indices
    colour = [round(rng.random(), 3) for _ in range(3)] + [1.0]
    gltf = {
        "asset": {"version": "2.0", "generator": "stability-connector sandbox"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0, "name": "subject"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": colour, "metallicFactor": 0.0}}],
        "buffers": [{"byteLength": len(binary)}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": len(positions), "target": 34962},
            {
                "buffer": 0,
                "byteOffset": len(positions),
                "byteLength": len(faces) * 6,
                "target": 34963,
            },
        ],
        "accessors": [
            {
                "bufferView": 0,
                "componentType": 5126,
                "count": len(vertices),
                "type": "VEC3",
                "min": [min(v[i] for v in vertices) for i in range(3)],
                "max": [max(v[i] for v in vertices) for i in range(3)],
            },
            {"bufferView": 1, "componentType": 5123, "count": len(faces) * 3, "type": "SCALAR"},
        ],
    }
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<I4s", len(text), b"JSON") + text
    chunks += struct.pack("<I4s", len(binary), b"BIN\x00") + binary
    return struct.pack("<4sII", b"glTF", 2, 12 + len(chunks)) + chunks


# --- video -------------------------------------------------------------------------------


def render_video(
    width: int, height: int, fingerprint: bytes, *, frames: int = 24, fps: int = 12
) -> bytes:
    """A short MP4 (H.264 when available) of shapes drifting over a gradient."""
    import av

    base = _canvas(width, height, fingerprint)
    rng = random.Random(fingerprint)
    dots = [(_colour(rng), rng.randrange(width), rng.randrange(height)) for _ in range(3)]
    radius = max(4, min(width, height) // 10)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        stream: Any = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "crf": "32"}
        for index in range(frames):
            picture = base.copy()
            draw = ImageDraw.Draw(picture)
            for colour, x, y in dots:
                cx = (x + index * width // (2 * frames)) % width
                draw.ellipse((cx - radius, y - radius, cx + radius, y + radius), fill=colour)
            frame = av.VideoFrame.from_image(picture)  # type: ignore[no-untyped-call]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
