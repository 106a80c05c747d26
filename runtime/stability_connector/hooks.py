"""Named response hooks: the few pieces of Python an action needs, declared in its YAML.

An action lists hooks under ``response.hooks`` (``name``, ``when``, ``args``); the
runtime applies each to the media before it is written. Keeping them named and small
keeps the YAML the one place that says what an action does.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from math import gcd
from typing import Any

from PIL import Image

from .definitions import HookCall
from .errors import ConnectorError
from .media import format_for_content_type, sniff
from .templates import render


@dataclass(frozen=True)
class MediaBody:
    """The media a hook receives and returns."""

    data: bytes
    content_type: str


Hook = Callable[[MediaBody, Mapping[str, Any]], MediaBody]
_HOOKS: dict[str, Hook] = {}


def hook(name: str) -> Callable[[Hook], Hook]:
    """Register a hook under ``name``."""

    def register(function: Hook) -> Hook:
        _HOOKS[name] = function
        return function

    return register


def names() -> list[str]:
    return sorted(_HOOKS)


def get(name: str) -> Hook:
    try:
        return _HOOKS[name]
    except KeyError:
        known = ", ".join(names()) or "none"
        raise ConnectorError(f"unknown response hook {name!r}; known hooks: {known}") from None


def apply(
    calls: Iterable[HookCall], media: MediaBody, scope: Mapping[str, Any], place: str
) -> MediaBody:
    """Apply each hook whose ``when`` (a definition template) holds."""
    for call in calls:
        if call.when is not None and not render(f"{place}.{call.name}.when", call.when, scope):
            continue
        media = get(call.name)(media, call.args)
    return media


# --- crop_to_aspect ----------------------------------------------------------------------

_PILLOW_FORMAT = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}


def exact_crop(width: int, height: int, ratio: str) -> tuple[int, int, int, int]:
    """The largest centred box of exactly ``ratio`` (e.g. "4:3") inside width x height."""
    try:
        a, b = (int(part) for part in ratio.split(":"))
    except ValueError:
        raise ConnectorError(f"crop_to_aspect: ratio {ratio!r} is not like '4:3'") from None
    if a <= 0 or b <= 0:
        raise ConnectorError(f"crop_to_aspect: ratio {ratio!r} must be positive")
    divisor = gcd(a, b)
    a, b = a // divisor, b // divisor
    k = min(width // a, height // b)
    if k == 0:
        raise ConnectorError(f"crop_to_aspect: a {width}x{height} image is too small for {ratio}")
    new_w, new_h = a * k, b * k
    left, top = (width - new_w) // 2, (height - new_h) // 2
    return left, top, left + new_w, top + new_h


@hook("crop_to_aspect")
def crop_to_aspect(media: MediaBody, args: Mapping[str, Any]) -> MediaBody:
    """Crop centrally to exactly ``args["ratio"]`` (pixel sizes in that exact ratio),
    re-encoded in the image's own format. The API has no 4:3, so generate_image asks
    for the nearest wider ratio (3:2) and this trims the sides."""
    fmt = format_for_content_type(media.content_type) or sniff(media.data)
    if fmt not in _PILLOW_FORMAT:
        raise ConnectorError(f"crop_to_aspect: cannot crop {media.content_type}")
    with Image.open(io.BytesIO(media.data)) as image:
        box = exact_crop(image.width, image.height, str(args.get("ratio", "")))
        if box == (0, 0, image.width, image.height):
            return media
        cropped = image.crop(box)
        cropped.load()
    if fmt == "jpeg" and cropped.mode not in ("RGB", "L"):
        cropped = cropped.convert("RGB")
    out = io.BytesIO()
    options: dict[str, Any] = {"quality": 95} if fmt in ("jpeg", "webp") else {}
    cropped.save(out, format=_PILLOW_FORMAT[fmt], **options)
    return MediaBody(out.getvalue(), media.content_type)
