"""Media in and out: read a media input in any form people have it, check it against the
action's ``x-media`` limits before anything is sent, and write media outputs as files.

A media input may be a file path, base64 text, a data URI, raw bytes from an upstream
step, or an earlier step's outputs (its ``file``). The format is sniffed from the
bytes, never trusted from a name; image sizes are read from the header by the
format's Pillow reader without decoding the pixels; WAV and MP3 durations from their
headers and frames.
"""

from __future__ import annotations

import binascii
import contextlib
import io
import itertools
import os
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import pybase64
import xxhash
from PIL import GifImagePlugin, ImageFile, JpegImagePlugin, PngImagePlugin, WebPImagePlugin

from .errors import FieldProblem

MAX_REQUEST_BYTES = 10 * 1024 * 1024
"""The API refuses bodies over 10 MiB (413)."""

# format -> (content type, file extension)
FORMATS: dict[str, tuple[str, str]] = {
    "png": ("image/png", "png"),
    "jpeg": ("image/jpeg", "jpg"),
    "webp": ("image/webp", "webp"),
    "gif": ("image/gif", "gif"),
    "wav": ("audio/wav", "wav"),
    "mp3": ("audio/mpeg", "mp3"),
    "glb": ("model/gltf-binary", "glb"),
    "mp4": ("video/mp4", "mp4"),
}
_BY_CONTENT_TYPE = {ct: fmt for fmt, (ct, _) in FORMATS.items()} | {
    "image/jpg": "jpeg",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mp3": "mp3",
}


@dataclass(frozen=True, repr=False)
class Media:
    """Checked media: the bytes, their sniffed format and what the limits look at."""

    data: bytes
    format: str | None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None

    @property
    def content_type(self) -> str:
        return FORMATS[self.format][0] if self.format in FORMATS else "application/octet-stream"

    @property
    def extension(self) -> str:
        return FORMATS[self.format][1] if self.format in FORMATS else "bin"

    @property
    def size_bytes(self) -> int:
        return len(self.data)

    def filename(self, field: str) -> str:
        return f"{field}.{self.extension}"

    def __repr__(self) -> str:  # never the bytes
        size = f"{self.width}x{self.height}, " if self.width else ""
        return f"Media({self.format}, {size}{self.size_bytes} bytes)"


def format_for_content_type(content_type: str | None) -> str | None:
    base = (content_type or "").split(";")[0].strip().lower()
    return _BY_CONTENT_TYPE.get(base)


def extension_for(content_type: str | None, data: bytes = b"") -> str:
    fmt = format_for_content_type(content_type) or sniff(data)
    return FORMATS[fmt][1] if fmt in FORMATS else "bin"


def sniff(data: bytes) -> str | None:
    """The format of the bytes, by their magic numbers."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"glTF"):
        return "glb"
    if head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"ID3") or _mp3_frame(data, 0) is not None:
        return "mp3"
    return None


# --- reading inputs --------------------------------------------------------------------

_DATA_URI = re.compile(
    r"^data:(?P<type>[\w.+/-]*)(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,"
)


# A name ending in an extension, or starting like a path: most likely a file that is not there.
_PATH_LIKE = re.compile(r"(\.[A-Za-z0-9]{1,5}$)|(^(~|\.{1,2})?[/\\])|(^[A-Za-z]:[/\\])")


class _Refusal(Exception):
    def __init__(self, problem: str, allowed: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.allowed = allowed


def read_media(
    field: str, value: Any, limits: Mapping[str, Any] | None = None
) -> tuple[Media | None, list[FieldProblem]]:
    """Media from any accepted form, and every way it breaks the field's limits."""
    try:
        data = _bytes_of(value)
        media = inspect(data)
    except _Refusal as refusal:
        return None, [FieldProblem(field, refusal.problem, refusal.allowed)]
    return media, check(field, media, limits or {})


def _bytes_of(value: Any) -> bytes:
    if isinstance(value, Media):
        return value.data
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Mapping) and isinstance(value.get("file"), str | Path):
        return _read_file(Path(value["file"]))  # an earlier step's outputs
    if isinstance(value, Path):
        return _read_file(value)
    if not isinstance(value, str):
        raise _Refusal(f"is {type(value).__name__}, not a file, base64 or a data URI")
    text = value.strip()
    match = _DATA_URI.match(text)
    if match:
        if not match.group("b64"):
            raise _Refusal("is a data URI without ;base64 (only base64 data URIs are read)")
        return _decode_base64(text[match.end() :])
    if len(text) < 4096 and "\n" not in text:
        path = Path(text).expanduser()
        try:
            if path.is_file():
                return _read_file(path)
        except OSError:
            pass
    looks_like_path = len(text) < 4096 and bool(_PATH_LIKE.search(text))
    try:
        data = _decode_base64(text)
    except _Refusal:
        data = None
    if data is not None and (sniff(data) is not None or not looks_like_path):
        return data
    if looks_like_path:
        raise _Refusal(f"no file at {text!r}")
    raise _Refusal("is not a file path, base64 or a data URI")


def _read_file(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_REQUEST_BYTES:
            raise _Refusal(f"is {_mib(size)}; the API accepts at most 10 MiB per request")
        return path.read_bytes()
    except OSError as exc:
        raise _Refusal(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None


def _decode_base64(text: str) -> bytes:
    compact = re.sub(r"\s+", "", text)
    if len(compact) > MAX_REQUEST_BYTES * 4 // 3 + 4:
        raise _Refusal("is more than 10 MiB of base64; the API accepts at most 10 MiB")
    padded = compact + "=" * (-len(compact) % 4)
    try:
        # Standard or URL-safe alphabet, strictly: a path or a sentence is not base64.
        altchars = b"-_" if ("-" in compact or "_" in compact) else None
        data = pybase64.b64decode(padded, altchars=altchars, validate=True)
    except (binascii.Error, ValueError):
        raise _Refusal("is not valid base64") from None
    if not data:
        raise _Refusal("is empty")
    return data


def inspect(data: bytes) -> Media:
    """Sniff the format and read size or duration from the headers."""
    fmt = sniff(data)
    if fmt in _READERS:
        width, height = _image_size(data, fmt)
        return Media(data, fmt, width=width, height=height)
    if fmt == "wav":
        return Media(data, fmt, seconds=wav_seconds(data))
    if fmt == "mp3":
        return Media(data, fmt, seconds=mp3_seconds(data))
    return Media(data, fmt)


# Each format's own reader: it reads the header only. ``Image.open`` is not used because
# its guard against huge images refuses sizes the API takes (Ultra: 16384 x 16384) and
# hides the size; the limits are checked against the description's numbers instead.
_READERS: dict[str, type[ImageFile.ImageFile]] = {
    "png": PngImagePlugin.PngImageFile,
    "jpeg": JpegImagePlugin.JpegImageFile,
    "webp": WebPImagePlugin.WebPImageFile,
    "gif": GifImagePlugin.GifImageFile,
}


def image_size(data: bytes, fmt: str) -> tuple[int, int] | None:
    """Width and height from the header of a ``fmt`` image, or None when unreadable."""
    reader = _READERS.get(fmt)
    if reader is None:
        return None
    try:
        with reader(io.BytesIO(data)) as image:
            return image.width, image.height
    except (SyntaxError, OSError, ValueError, EOFError, struct.error):
        return None


def _image_size(data: bytes, fmt: str) -> tuple[int, int]:
    size = image_size(data, fmt)
    if size is None:
        raise _Refusal(f"looks like {fmt.upper()} but cannot be read as an image")
    return size


def check(field: str, media: Media, limits: Mapping[str, Any]) -> list[FieldProblem]:
    """Every way ``media`` breaks the ``x-media`` limits of its field."""
    out: list[FieldProblem] = []

    def refuse(problem: str, allowed: str | None = None) -> None:
        out.append(FieldProblem(field, problem, allowed))

    if media.size_bytes > MAX_REQUEST_BYTES:
        refuse(f"is {_mib(media.size_bytes)}; the API accepts at most 10 MiB per request")
    formats = limits.get("formats")
    if formats and media.format not in formats:
        what = media.format.upper() if media.format else "not a format we recognise"
        refuse(f"is {what}", ", ".join(f.upper() for f in formats))
        return out
    kind = limits.get("kind")
    if kind == "image" and media.width is None:
        refuse("is not an image", ", ".join(f.upper() for f in formats or ["png", "jpeg", "webp"]))
    if media.width is not None and media.height is not None:
        _check_image(media.width, media.height, limits, refuse)
    if kind == "audio" or media.seconds is not None:
        _check_audio(media.seconds, limits, refuse)
    return out


def _check_image(w: int, h: int, limits: Mapping[str, Any], refuse: Any) -> None:
    size = f"{w}x{h}"
    for side, value in (("width", w), ("height", h)):
        low, high = limits.get(f"min_{side}"), limits.get(f"max_{side}")
        if (low is not None and value < low) or (high is not None and value > high):
            refuse(f"is {size}; its {side} of {value} pixels is out of range", _range(low, high))
    pixels = w * h
    low, high = limits.get("min_pixels"), limits.get("max_pixels")
    if (low is not None and pixels < low) or (high is not None and pixels > high):
        refuse(f"is {size} = {pixels:,} pixels, out of range", _range(low, high, " pixels"))
    ratio = limits.get("max_aspect_ratio")
    if ratio is not None and max(w / h, h / w) > ratio:
        refuse(f"is {size}, too long and thin", f"sides up to {ratio}:1 in either direction")
    sizes = limits.get("sizes")
    if sizes and size not in sizes:
        refuse(f"is {size}", ", ".join(sizes))


def _check_audio(seconds: float | None, limits: Mapping[str, Any], refuse: Any) -> None:
    low, high = limits.get("min_seconds"), limits.get("max_seconds")
    if seconds is None:
        if low is not None or high is not None:
            refuse("is audio whose length cannot be read", "MP3 or WAV")
        return
    if (low is not None and seconds < low) or (high is not None and seconds > high):
        refuse(f"is {seconds:.1f} seconds long", _range(low, high, " seconds"))


def _range(low: float | None, high: float | None, unit: str = "") -> str:
    def n(x: float) -> str:
        return f"{x:,}" if isinstance(x, int) else f"{x:g}"

    if low is not None and high is not None:
        return f"{n(low)} to {n(high)}{unit}"
    return f"at least {n(low)}{unit}" if low is not None else f"at most {n(high or 0)}{unit}"


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f} MiB"


# --- audio durations ---------------------------------------------------------------------


def wav_seconds(data: bytes) -> float | None:
    """Duration from the RIFF ``fmt`` byte rate and the ``data`` chunk size."""
    pos, byte_rate, size = 12, None, None
    while pos + 8 <= len(data):
        chunk, length = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        if chunk == b"fmt " and length >= 12:
            byte_rate = struct.unpack_from("<I", data, pos + 16)[0]
        elif chunk == b"data":
            size = min(length, len(data) - pos - 8)
            break
        pos += 8 + length + (length & 1)
    if not byte_rate or size is None:
        return None
    return float(size / byte_rate)


_MP3_BITRATES = {
    1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_frame(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(frame length, samples, sample rate) of an MPEG Layer III frame at ``pos``."""
    if pos + 4 > len(data) or data[pos] != 0xFF or data[pos + 1] & 0xE0 != 0xE0:
        return None
    version = (data[pos + 1] >> 3) & 3
    layer = (data[pos + 1] >> 1) & 3
    bitrate_index = data[pos + 2] >> 4
    rate_index = (data[pos + 2] >> 2) & 3
    if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
        return None
    rate = _MP3_RATES[version][rate_index]
    bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
    padding = (data[pos + 2] >> 1) & 1
    samples = 1152 if version == 3 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def mp3_seconds(data: bytes) -> float | None:
    """Duration by walking the frames (after any ID3v2 tag)."""
    pos = 0
    if data.startswith(b"ID3") and len(data) >= 10:
        size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
        pos = 10 + size
    seconds, frames = 0.0, 0
    while True:
        frame = _mp3_frame(data, pos)
        if frame is None or frame[0] <= 0:
            break
        length, samples, rate = frame
        seconds += samples / rate
        frames += 1
        pos += length
    return seconds if frames else None


# --- writing outputs -------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def output_name(stem: str, data: bytes, extension: str) -> str:
    """``<stem>-<short hash>.<ext>``: readable, and unique per content."""
    # A content hash names the file, so a result already written is not written again;
    # xxh3 takes about 2 µs for a 1 MP PNG where sha256 takes 45 (no secret is hashed).
    digest = xxhash.xxh3_128_hexdigest(data)[:10]
    clean = _clean_stem(stem)
    return f"{clean}-{digest}.{extension}"


@lru_cache(maxsize=1024)
def _clean_stem(stem: str) -> str:
    return _UNSAFE.sub("-", stem).strip("-.")[:80] or "output"


_READY_DIRS: set[str] = set()
_counter = itertools.count()
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL


def write_output(out_dir: Path, stem: str, data: bytes, extension: str) -> Path:
    """Write ``data`` under ``out_dir`` atomically (temporary file, then rename)."""
    folder = os.fspath(out_dir)
    if folder not in _READY_DIRS:
        out_dir.mkdir(parents=True, exist_ok=True)
        _READY_DIRS.add(folder)
    name = output_name(stem, data, extension)
    path = os.path.join(folder, name)
    try:
        if os.stat(path).st_size == len(data):
            return out_dir / name  # the name holds a hash of the content: already there
    except OSError:
        pass
    # Unique per process and call, so concurrent writers never share a temporary file.
    temp = os.path.join(folder, f".{name}.{os.getpid()}-{next(_counter)}.part")
    try:
        fd = os.open(temp, _NEW_FILE, 0o644)
    except FileNotFoundError:  # the directory went away since it was made
        _READY_DIRS.discard(folder)
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(temp, _NEW_FILE, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return out_dir / name
