"""Checking a request's fields against the facts of its operation.

Every rule comes from ``api_facts.json`` (required fields, types, enums, ranges, lengths,
multiples, media limits, discriminated variants) or from an operation's
:class:`~.operations.Behaviour` (rules across fields the description states in prose).
All problems are reported at once, each as ``"<field>: <what is wrong>"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..media import image_size, sniff
from .media import audio_duration
from .operations import Operation

__all__ = ["V1_ENGINES", "Checked", "ImageInfo", "Problem", "Upload", "check_fields"]


#: The engines the v1 API lists (ids, names, type); "upscale" engines only upscale.
V1_ENGINES: tuple[dict[str, str], ...] = (
    {
        "id": "stable-diffusion-v1-6",
        "name": "Stable Diffusion v1.6",
        "description": "Stability-AI Stable Diffusion v1.6",
        "type": "PICTURE",
    },
    {
        "id": "stable-diffusion-xl-1024-v1-0",
        "name": "Stable Diffusion XL v1.0",
        "description": "Stability-AI Stable Diffusion XL v1.0",
        "type": "PICTURE",
    },
    {
        "id": "stable-diffusion-v1-5",
        "name": "Stable Diffusion v1.5",
        "description": "Stability-AI Stable Diffusion v1.5",
        "type": "PICTURE",
    },
    {
        "id": "stable-diffusion-512-v2-1",
        "name": "Stable Diffusion v2.1",
        "description": "Stability-AI Stable Diffusion v2.1",
        "type": "PICTURE",
    },
    {
        "id": "stable-diffusion-768-v2-1",
        "name": "Stable Diffusion v2.1-768",
        "description": "Stability-AI Stable Diffusion 768 v2.1",
        "type": "PICTURE",
    },
    {
        "id": "stable-inpainting-512-v2-0",
        "name": "Stable Inpainting v2.0",
        "description": "Stability-AI Stable Inpainting v2.0",
        "type": "PICTURE",
    },
    {
        "id": "esrgan-v1-x2plus",
        "name": "Real-ESRGAN x2",
        "description": "Real-ESRGAN_x2plus upscaler model",
        "type": "PICTURE",
    },
)
UPSCALE_ENGINES = frozenset({"esrgan-v1-x2plus"})
# SDXL 1024 engines generate only these sizes.
SDXL_SIZES = frozenset(
    {
        (1024, 1024),
        (1152, 896),
        (896, 1152),
        (1216, 832),
        (832, 1216),
        (1344, 768),
        (768, 1344),
        (1536, 640),
        (640, 1536),
    }
)


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart body."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request. ``name`` is the error class the API uses."""

    message: str
    name: str = "bad_request"


@dataclass
class Checked:
    """The typed values of a request (defaults filled in), its files and problems."""

    values: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)
    images: dict[str, ImageInfo] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def add(self, message: str, name: str = "bad_request") -> None:
        self.problems.append(Problem(message, name))


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _pixels(value: int) -> str:
    return f"{value:,}"


def _bounds(low: Any, high: Any, show: Any = str) -> str:
    if low is not None and high is not None:
        return f"between {show(low)} and {show(high)}"
    return f"at least {show(low)}" if low is not None else f"at most {show(high)}"


def _coerce(name: str, facts: Mapping[str, Any], raw: Any, checked: Checked) -> Any:
    """The value of a scalar field as its schema types it, or None after a problem."""
    kind = facts.get("type")
    if isinstance(raw, Upload):
        try:
            raw = raw.data.decode("utf-8")
        except UnicodeDecodeError:
            checked.add(f"{name}: must be a {kind or 'value'}, not a file")
            return None
    if kind == "string":
        if isinstance(raw, str):
            return raw
        checked.add(f"{name}: must be a string")
        return None
    if kind in ("number", "integer"):
        number: float | None = None
        if isinstance(raw, bool):
            number = None
        elif isinstance(raw, int | float):
            number = float(raw)
        elif isinstance(raw, str):
            try:
                number = float(raw.strip()) if raw.strip() else None
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            checked.add(f"{name}: must be a {'whole number' if kind == 'integer' else 'number'}")
            return None
        if kind == "integer":
            if not number.is_integer():
                checked.add(f"{name}: must be a whole number")
                return None
            return int(number)
        return number
    return raw


def _check_scalar(
    name: str, facts: Mapping[str, Any], value: Any, checked: Checked, extra: tuple[str, ...]
) -> None:
    enum = facts.get("enum")
    if enum is not None:
        allowed = [*enum, *extra]
        if str(value) not in [str(a) for a in allowed]:
            checked.add(f"{name}: must be one of {', '.join(str(a) for a in allowed)}")
            return
    if isinstance(value, int | float):
        low, high = facts.get("minimum"), facts.get("maximum")
        if (low is not None and value < low) or (high is not None and value > high):
            checked.add(f"{name}: must be {_bounds(low, high, _number_text)}")
        multiple = facts.get("multipleOf")
        if multiple and value % multiple:
            checked.add(
                f"{name}: must be a multiple of {_number_text(multiple)}", "invalid_height_or_width"
            )
    if isinstance(value, str):
        short, long = facts.get("minLength"), facts.get("maxLength")
        if short is not None and len(value) < short:
            checked.add(f"{name}: must be at least {short} characters long")
        if long is not None and len(value) > long:
            checked.add(f"{name}: must be at most {long} characters long")


def inspect_image(data: bytes) -> ImageInfo | None:
    """The size and format of an uploaded PNG, JPEG or WebP (only its header is read)."""
    fmt = sniff(data)
    size = image_size(data, fmt) if fmt in ("png", "jpeg", "webp") else None
    if fmt is None or size is None:
        return None
    return ImageInfo(size[0], size[1], fmt)


def _check_image(name: str, media: Mapping[str, Any], upload: Upload, checked: Checked) -> None:
    info = inspect_image(upload.data)
    formats = media.get("formats", ["jpeg", "png", "webp"])
    if info is None or info.format not in formats:
        checked.add(
            f"{name}: must be an image in one of these formats: {', '.join(formats)}",
            "invalid_mime_type",
        )
        return
    checked.images[name] = info
    for side, size in (("width", info.width), ("height", info.height)):
        low, high = media.get(f"min_{side}"), media.get(f"max_{side}")
        if (low is not None and size < low) or (high is not None and size > high):
            checked.add(f"{name}: {side} must be {_bounds(low, high)} pixels (got {size})")
    pixels = info.width * info.height
    low, high = media.get("min_pixels"), media.get("max_pixels")
    if (low is not None and pixels < low) or (high is not None and pixels > high):
        bounds = _bounds(low, high, _pixels)
        checked.add(f"{name}: total pixel count must be {bounds} (got {_pixels(pixels)})")
    ratio = media.get("max_aspect_ratio")
    if ratio and max(info.width / info.height, info.height / info.width) > ratio:
        checked.add(f"{name}: aspect ratio must be between 1:{ratio} and {ratio}:1")


def _check_audio(name: str, media: Mapping[str, Any], upload: Upload, checked: Checked) -> None:
    probe = audio_duration(upload.data)
    formats = media.get("formats", ["mp3", "wav"])
    if probe is None or probe[0] not in formats:
        checked.add(
            f"{name}: must be audio in one of these formats: {', '.join(formats)}",
            "invalid_mime_type",
        )
        return
    seconds = probe[1]
    low, high = media.get("min_seconds"), media.get("max_seconds")
    if (low is not None and seconds < low) or (high is not None and seconds > high):
        checked.add(
            f"{name}: audio must be between {low} and {high} seconds long (got {seconds:.1f})"
        )


def _text_prompts(raw: Mapping[str, Any]) -> Any:
    """v1 prompts: a JSON list, or multipart ``text_prompts[i][text|weight]`` parts."""
    if "text_prompts" in raw:
        return raw["text_prompts"]
    found: dict[int, dict[str, Any]] = {}
    for key, value in raw.items():
        match = re.fullmatch(r"text_prompts\[(\d+)\]\[(\w+)\]", key)
        if match:
            found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [found[i] for i in sorted(found)] if found else None


def _check_prompts(name: str, facts: Mapping[str, Any], raw: Any, checked: Checked) -> None:
    if not isinstance(raw, list) or len(raw) < facts.get("minItems", 1):
        checked.add(f"{name}: must contain at least one prompt", "invalid_prompts")
        return
    item_facts = facts.get("items", {}).get("properties", {})
    prompts = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping) or not isinstance(item.get("text"), str):
            checked.add(f"{name}[{index}].text: is required", "invalid_prompts")
            continue
        text = item["text"]
        limit = item_facts.get("text", {}).get("maxLength")
        if not text.strip():
            checked.add(f"{name}[{index}].text: must not be empty", "invalid_prompts")
        elif limit is not None and len(text) > limit:
            checked.add(
                f"{name}[{index}].text: must be at most {limit} characters long", "invalid_prompts"
            )
        weight = _coerce(
            f"{name}[{index}].weight", {"type": "number"}, item.get("weight", 1.0), checked
        )
        prompts.append({"text": text, "weight": 1.0 if weight is None else weight})
    checked.values[name] = prompts


def check_fields(
    operation: Operation,
    raw: Mapping[str, Any],
    *,
    path_params: Mapping[str, str],
    wants_json: bool,
) -> Checked:
    """Check the fields of one request (strings or uploads from a multipart body, or
    JSON values) against its operation's facts and rules."""
    checked = Checked()
    behaviour = operation.behaviour
    fields = operation.fields
    required = set(operation.required)
    variants = operation.facts.get("variants")
    if variants:
        chosen = raw.get(variants["property"])
        if isinstance(chosen, str):
            required |= set(variants["required"].get(chosen, []))

    for name, facts in fields.items():
        value = _text_prompts(raw) if name == "text_prompts" else raw.get(name)
        empty = value is None or (isinstance(value, str) and value == "")
        if empty:
            if name in required:
                checked.add(f"{name}: is required")
            elif "default" in facts:
                checked.values[name] = facts["default"]
            continue
        if facts.get("format") == "binary":
            if not isinstance(value, Upload):
                checked.add(f"{name}: must be a file")
                continue
            checked.files[name] = value
            media = facts.get("media", {})
            is_audio = any(f in ("mp3", "wav") for f in media.get("formats", []))
            if is_audio:
                _check_audio(name, media, value, checked)
            else:
                _check_image(name, media, value, checked)
            continue
        if facts.get("type") == "array":
            _check_prompts(name, facts, value, checked)
            continue
        typed = _coerce(name, facts, value, checked)
        if typed is None:
            continue
        _check_scalar(name, facts, typed, checked, tuple(behaviour.extra_enum.get(name, ())))
        checked.values[name] = typed

    for name, (by, ranges) in behaviour.ranges_by.items():
        selector = str(checked.values.get(by, ""))
        if selector in ranges:
            low, high = ranges[selector]
            value = checked.values.get(name)
            if value is None:
                continue
            if not low <= value <= high:
                checked.add(
                    f"{name}: must be between {_number_text(low)} and "
                    f"{_number_text(high)} for {by} {selector}"
                )

    for rule in behaviour.rules:
        RULES[rule](operation, checked, raw, path_params, wants_json)
    return checked


# --- rules across fields -------------------------------------------------------------


def _given(checked: Checked, name: str) -> bool:
    value = checked.values.get(name)
    return name in checked.files or (value is not None and value != "")


def _strength_with_image(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    if "image" in c.files and not _present(raw, "strength"):
        c.add("strength: is required when an image is provided")


def _present(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name)
    return value is not None and value != ""


def _sd3_mode(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    mode = c.values.get("mode", "text-to-image")
    if mode == "image-to-image":
        if "image" not in c.files and not any(m.startswith("image:") for m in _messages(c)):
            c.add("image: is required when mode is image-to-image")
        if not _present(raw, "strength"):
            c.add("strength: is required when mode is image-to-image")
    elif "image" in c.files:
        c.add("mode: must be image-to-image when an image is provided")


def _messages(c: Checked) -> list[str]:
    return [p.message for p in c.problems]


def _outpaint_direction(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    sides = ("left", "right", "up", "down")
    if not any(c.values.get(side) for side in sides):
        c.add("left, right, up, down: at least one of them must be greater than 0")


def _relight_background(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    if not _given(c, "background_prompt") and "background_reference" not in c.files:
        c.add("background_prompt: background_prompt or background_reference is required")


def _mask_window(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    start, end = c.values.get("mask_start"), c.values.get("mask_end")
    if isinstance(start, float | int) and isinstance(end, float | int) and start >= end:
        c.add("mask_end: must be greater than mask_start")


def _video_size(op: Operation, c: Checked, raw: Any, p: Any, j: bool) -> None:
    info = c.images.get("image")
    sizes = op.facts.get("image_sizes", [])
    if info is not None and sizes and f"{info.width}x{info.height}" not in sizes:
        c.add(
            f"image: must be one of these sizes: {', '.join(sizes)} "
            f"(got {info.width}x{info.height})"
        )


def _engine(params: Mapping[str, str]) -> str:
    return params.get("engine_id", "")


def _v1_engine(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    if _engine(params) in UPSCALE_ENGINES:
        c.add(f"engine_id: {_engine(params)} only upscales; use a generation engine")


def _v1_upscale_engine(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    if _engine(params) not in UPSCALE_ENGINES:
        c.add(
            f"engine_id: {_engine(params)} cannot upscale; use {', '.join(sorted(UPSCALE_ENGINES))}"
        )


def _v1_size_problem(engine: str, width: int, height: int) -> Problem | None:
    if width % 64 or height % 64:
        return Problem(
            "height and width must be specified in increments of 64", "invalid_height_or_width"
        )
    pixels = width * height
    if "xl-1024" in engine:
        if (width, height) not in SDXL_SIZES:
            sizes = ", ".join(f"{w}x{h}" for w, h in sorted(SDXL_SIZES))
            return Problem(
                f"for {engine} the dimensions must be one of {sizes}", "invalid_height_or_width"
            )
        return None
    low = 589_824 if "768" in engine else 262_144
    if not low <= pixels <= 1_048_576:
        return Problem(
            f"height * width must be between {_pixels(low)} and 1,048,576 pixels "
            f"(got {_pixels(pixels)})",
            "invalid_pixel_count",
        )
    return None


def _v1_dimensions(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    width, height = c.values.get("width"), c.values.get("height")
    if (
        isinstance(width, int)
        and isinstance(height, int)
        and not any(m.startswith(("width:", "height:")) for m in _messages(c))
    ):
        problem = _v1_size_problem(_engine(params), width, height)
        if problem:
            c.problems.append(problem)


def _v1_init_image(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    info = c.images.get("init_image")
    if info is not None:
        problem = _v1_size_problem(_engine(params), info.width, info.height)
        if problem:
            c.problems.append(Problem(f"init_image: {problem.message}", problem.name))


def _v1_mask_size(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    init, mask = c.images.get("init_image"), c.images.get("mask_image")
    if init and mask and (init.width, init.height) != (mask.width, mask.height):
        c.add(
            "the dimensions of the provided init_image and mask_image do not match",
            "invalid_image_dimensions",
        )
    if c.values.get("mask_source") in ("MASK_IMAGE_WHITE", "MASK_IMAGE_BLACK") and (
        "mask_image" not in c.files
    ):
        c.problems[:] = [p for p in c.problems if p.message != "mask_image: is required"]
        c.add(
            f"mask_image: is required when mask_source is {c.values['mask_source']}",
            "invalid_mask_image",
        )


def _v1_samples(op: Operation, c: Checked, raw: Any, params: Any, wants_json: bool) -> None:
    samples = c.values.get("samples", 1)
    if not wants_json and isinstance(samples, int) and samples > 1:
        c.add(
            "samples: may only be greater than 1 when the accept header is application/json",
            "invalid_samples",
        )


def _v1_one_side(op: Operation, c: Checked, raw: Any, params: Any, j: bool) -> None:
    if _present(raw, "width") and _present(raw, "height"):
        c.add("width, height: only one of width or height may be specified")


RULES = {
    "strength_with_image": _strength_with_image,
    "sd3_mode": _sd3_mode,
    "outpaint_direction": _outpaint_direction,
    "relight_background": _relight_background,
    "mask_window": _mask_window,
    "video_size": _video_size,
    "v1_engine": _v1_engine,
    "v1_upscale_engine": _v1_upscale_engine,
    "v1_dimensions": _v1_dimensions,
    "v1_init_image": _v1_init_image,
    "v1_mask_size": _v1_mask_size,
    "v1_samples": _v1_samples,
    "v1_one_side": _v1_one_side,
}
