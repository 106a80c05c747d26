"""Every operation the sandbox answers: the facts from ``api_facts.json`` joined with
what the description states only in prose (output sizes, prices that depend on a
field, rules across fields, body limits), written here as data.

A :class:`Behaviour` per operation says what it produces and how; the request
handling in :mod:`.app` and the checks in :mod:`.validation` read it and the facts,
so no operation has its own handler.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, Literal

__all__ = [
    "ASPECT_RATIOS",
    "Behaviour",
    "Operation",
    "aspect_size",
    "load_operations",
    "match_operation",
]

MIB = 1024 * 1024

Kind = Literal["image", "audio", "model", "video", "result", "account"]
#: How the output size is decided:
#: aspect:MP       from ``aspect_ratio`` at MP megapixels
#: generate:MP     as aspect:MP, but image-to-image keeps the input's (nearest) ratio
#: input:FIELD     the size of the uploaded FIELD
#: ratio-of:FIELD  1 MP with FIELD's aspect ratio
#: megapixels:MP   MP megapixels keeping the input's aspect ratio
#: scale:N         the input's sides times N
#: outpaint        the input plus the requested left/right/up/down pixels
#: v1              ``width``/``height`` (text-to-image), the init image, or the upscale rule
Size = str

# Ultra, SD 3.5 and Style Guide produce 1 MP; these are the sizes Stability returns.
_ONE_MEGAPIXEL = {
    "21:9": (1536, 640),
    "16:9": (1344, 768),
    "3:2": (1216, 832),
    "5:4": (1152, 896),
    "1:1": (1024, 1024),
}
# Core produces 1.5 MP: the nearest sides in multiples of 64 for each ratio.
_ONE_AND_A_HALF_MEGAPIXELS = {
    "21:9": (1920, 832),
    "16:9": (1664, 960),
    "3:2": (1536, 1024),
    "5:4": (1408, 1152),
    "1:1": (1280, 1280),
}
ASPECT_RATIOS = ("21:9", "16:9", "3:2", "5:4", "1:1", "4:5", "2:3", "9:16", "9:21")


def aspect_size(aspect_ratio: str, megapixels: float = 1.0) -> tuple[int, int]:
    """The output size for an ``aspect_ratio`` at 1 or 1.5 megapixels."""
    table = _ONE_AND_A_HALF_MEGAPIXELS if megapixels > 1.2 else _ONE_MEGAPIXEL
    if aspect_ratio in table:
        return table[aspect_ratio]
    width, height = table[":".join(reversed(aspect_ratio.split(":")))]
    return height, width


def nearest_aspect_ratio(width: int, height: int) -> str:
    ratio = math.log(width / height)
    return min(ASPECT_RATIOS, key=lambda r: abs(math.log(_ratio(r)) - ratio))


def _ratio(text: str) -> float:
    a, b = text.split(":")
    return int(a) / int(b)


def megapixel_size(width: int, height: int, megapixels: float) -> tuple[int, int]:
    """``megapixels`` (of 2^20 pixels) keeping the aspect ratio of width x height."""
    scale = math.sqrt(megapixels * MIB / (width * height))
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Price:
    """Credits per successful result: flat, or looked up by one field's value, with an
    optional linear term in another field (Stable Audio 2.0: 17 + 0.06 * steps)."""

    flat: float | None = None
    by: str | None = None
    table: Mapping[str, float] = field(default_factory=dict)
    linear: Mapping[str, tuple[float, float, str, float]] = field(default_factory=dict)
    per_sample: bool = False

    def of(self, values: Mapping[str, Any]) -> float:
        credits = self.flat or 0.0
        if self.by is not None:
            key = str(values.get(self.by))
            if key in self.linear:
                base, slope, name, default = self.linear[key]
                credits = base + slope * float(values.get(name, default) or default)
            else:
                credits = self.table.get(key, credits)
        if self.per_sample:
            credits *= int(values.get("samples", 1) or 1)
        return round(credits, 4)


@dataclass(frozen=True)
class Behaviour:
    kind: Kind
    size: Size = ""
    price: Price = field(default_factory=Price)
    #: Cross-field rules by name, checked in :mod:`.validation`.
    rules: tuple[str, ...] = ()
    #: Values the prose accepts beyond the schema's enum (e.g. ``sd3.5-flash``).
    extra_enum: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Ranges the prose states per value of another field: {field: (by, {value: (min, max)})}.
    ranges_by: Mapping[str, tuple[str, Mapping[str, tuple[float, float]]]] = field(
        default_factory=dict
    )
    #: Largest request body in bytes; None: the configured limit (10 MiB by default).
    body_limit: int | None = None
    #: Results calls: the job families they serve.
    serves: tuple[str, ...] = ()
    #: Asynchronous starts: the family of the job they create.
    family: str = ""
    transparent: bool = False
    #: Filtered prompts give CONTENT_FILTERED (images); audio is always SUCCESS.
    can_filter: bool = True


_SD3_MODELS = {
    # SD 3.5 prices; the 3.0 names are re-routed to 3.5 at the same price.
    "sd3.5-large": 6.5,
    "sd3.5-large-turbo": 4.0,
    "sd3.5-medium": 3.5,
    "sd3.5-flash": 2.5,
    "sd3-large": 6.5,
    "sd3-large-turbo": 4.0,
    "sd3-medium": 3.5,
}
_AUDIO2_PRICE = Price(
    flat=20.0,
    by="model",
    table={"stable-audio-2.5": 20.0},
    linear={"stable-audio-2": (17.0, 0.06, "steps", 50.0)},
)
# Stable Audio 2.0 takes 30..100 steps (default 50), 2.5 takes 4..8 (default 8).
_AUDIO2_STEPS = {"steps": ("model", {"stable-audio-2": (30, 100), "stable-audio-2.5": (4, 8)})}
_V1_GENERATION = Price(flat=1.0, per_sample=True)

BEHAVIOURS: dict[str, Behaviour] = {
    # Account
    "GET /v1/engines/list": Behaviour("account"),
    "GET /v1/user/account": Behaviour("account"),
    "GET /v1/user/balance": Behaviour("account"),
    # v1 generation (prices are not stated by the description: 1 credit per image,
    # 0.2 per upscale)
    "POST /v1/generation/{engine_id}/text-to-image": Behaviour(
        "image", "v1", _V1_GENERATION, rules=("v1_engine", "v1_dimensions", "v1_samples")
    ),
    "POST /v1/generation/{engine_id}/image-to-image": Behaviour(
        "image", "v1", _V1_GENERATION, rules=("v1_engine", "v1_init_image", "v1_samples")
    ),
    "POST /v1/generation/{engine_id}/image-to-image/masking": Behaviour(
        "image",
        "v1",
        _V1_GENERATION,
        rules=("v1_engine", "v1_init_image", "v1_mask_size", "v1_samples"),
    ),
    "POST /v1/generation/{engine_id}/image-to-image/upscale": Behaviour(
        "image", "v1", Price(flat=0.2), rules=("v1_upscale_engine", "v1_one_side")
    ),
    # Generate
    "POST /v2beta/stable-image/generate/ultra": Behaviour(
        "image", "generate:1", rules=("strength_with_image",)
    ),
    "POST /v2beta/stable-image/generate/core": Behaviour("image", "aspect:1.5"),
    "POST /v2beta/stable-image/generate/sd3": Behaviour(
        "image",
        "generate:1",
        Price(by="model", table=_SD3_MODELS),
        rules=("sd3_mode",),
        extra_enum={"model": ("sd3.5-flash", "sd3-large", "sd3-large-turbo", "sd3-medium")},
    ),
    # Control
    "POST /v2beta/stable-image/control/sketch": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/control/structure": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/control/style": Behaviour("image", "aspect:1"),
    "POST /v2beta/stable-image/control/style-transfer": Behaviour("image", "ratio-of:init_image"),
    # Edit
    "POST /v2beta/stable-image/edit/erase": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/edit/inpaint": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/edit/outpaint": Behaviour(
        "image", "outpaint", rules=("outpaint_direction",)
    ),
    "POST /v2beta/stable-image/edit/search-and-replace": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/edit/search-and-recolor": Behaviour("image", "input:image"),
    "POST /v2beta/stable-image/edit/remove-background": Behaviour(
        "image", "input:image", transparent=True
    ),
    "POST /v2beta/stable-image/edit/replace-background-and-relight": Behaviour(
        "image", "input:subject_image", rules=("relight_background",), family="image"
    ),
    # Upscale
    "POST /v2beta/stable-image/upscale/conservative": Behaviour("image", "megapixels:4"),
    "POST /v2beta/stable-image/upscale/creative": Behaviour(
        "image", "megapixels:4", family="creative-upscale"
    ),
    "POST /v2beta/stable-image/upscale/fast": Behaviour("image", "scale:4"),
    # Legacy v2alpha (prices stated in US cents; 1 credit is 1 cent)
    "POST /v2alpha/generation/stable-image/upscale": Behaviour(
        "image", "megapixels:4", Price(flat=25.0), family="v2alpha-upscale"
    ),
    "POST /v2alpha/generation/stable-image/inpaint": Behaviour(
        "image", "input:image", Price(by="mode", table={"search": 4.0, "mask": 3.0})
    ),
    # 3D
    "POST /v2beta/3d/stable-fast-3d": Behaviour("model"),
    "POST /v2beta/3d/stable-point-aware-3d": Behaviour("model"),
    # Audio (Stable Audio 2 takes up to 50 MB, Stable Audio 3 up to 100 MB)
    "POST /v2beta/audio/stable-audio-2/text-to-audio": Behaviour(
        "audio",
        price=_AUDIO2_PRICE,
        ranges_by=_AUDIO2_STEPS,
        body_limit=50 * MIB,
        can_filter=False,
    ),
    "POST /v2beta/audio/stable-audio-2/audio-to-audio": Behaviour(
        "audio",
        price=_AUDIO2_PRICE,
        ranges_by=_AUDIO2_STEPS,
        body_limit=50 * MIB,
        can_filter=False,
    ),
    "POST /v2beta/audio/stable-audio-2/inpaint": Behaviour(
        "audio", rules=("mask_window",), body_limit=50 * MIB, can_filter=False
    ),
    "POST /v2beta/audio/stable-audio/text-to-audio": Behaviour(
        "audio", family="audio", body_limit=100 * MIB, can_filter=False
    ),
    "POST /v2beta/audio/stable-audio/audio-to-audio": Behaviour(
        "audio", family="audio", body_limit=100 * MIB, can_filter=False
    ),
    "POST /v2beta/audio/stable-audio/inpaint": Behaviour(
        "audio", rules=("mask_window",), family="audio", body_limit=100 * MIB, can_filter=False
    ),
    # Video (legacy)
    "POST /v2beta/image-to-video": Behaviour(
        "video", "input:image", rules=("video_size",), family="video"
    ),
    # Results
    "GET /v2beta/results/{id}": Behaviour("result", serves=("image", "creative-upscale")),
    "GET /v2beta/stable-image/upscale/creative/result/{id}": Behaviour(
        "result", serves=("creative-upscale",)
    ),
    "GET /v2beta/audio/results/{id}": Behaviour("result", serves=("audio",)),
    "GET /v2beta/image-to-video/result/{id}": Behaviour("result", serves=("video",)),
    "GET /v2alpha/generation/stable-image/upscale/result/{id}": Behaviour(
        "result", serves=("v2alpha-upscale",)
    ),
}


@dataclass(frozen=True)
class Operation:
    """One operation: its facts (from ``api_facts.json``) and its behaviour."""

    key: str
    method: str
    path: str
    facts: Mapping[str, Any]
    behaviour: Behaviour
    pattern: re.Pattern[str]

    @property
    def version(self) -> str:
        return self.path.split("/")[1]

    @property
    def is_v1(self) -> bool:
        return self.version == "v1"

    @property
    def encoding(self) -> str:
        return str(self.facts.get("encoding", "none"))

    @property
    def fields(self) -> Mapping[str, Mapping[str, Any]]:
        fields: Mapping[str, Mapping[str, Any]] = self.facts.get("fields", {})
        return fields

    @property
    def required(self) -> list[str]:
        return list(self.facts.get("required", []))

    @property
    def is_async(self) -> bool:
        return bool(self.facts.get("async"))

    @property
    def start_status(self) -> int:
        """200 or 202, as the description answers an asynchronous start."""
        responses = self.facts.get("responses", {})
        return 202 if "202" in responses and "200" not in responses else 200

    def price(self, values: Mapping[str, Any]) -> float:
        price = self.behaviour.price
        if price.flat is None and price.by is None:
            return Price(flat=self.stated_credits(), per_sample=price.per_sample).of(values)
        return price.of(values)

    def stated_credits(self) -> float:
        """The flat price the facts state (a number, or one flat rate in the prose)."""
        credits = self.facts.get("credits")
        if isinstance(credits, int | float):
            return float(credits)
        if isinstance(credits, str):
            rates = set(re.findall(r"[Ff]lat rate of (\d+(?:\.\d+)?) credits", credits))
            if len(rates) == 1:
                return float(rates.pop())
        return 0.0


def _pattern(path: str) -> re.Pattern[str]:
    parts = re.split(r"\{(\w+)\}", path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


@cache
def load_operations() -> tuple[Operation, ...]:
    """All operations of ``api_facts.json``; each must have a behaviour here."""
    text = resources.files("stability_connector").joinpath("api_facts.json").read_text("utf-8")
    facts = json.loads(text)["operations"]
    missing = sorted(set(facts) - set(BEHAVIOURS))
    if missing:
        raise RuntimeError(f"the sandbox has no behaviour for: {', '.join(missing)}")
    operations = [
        Operation(key, op["method"], op["path"], op, BEHAVIOURS[key], _pattern(op["path"]))
        for key, op in facts.items()
    ]
    # Literal paths before templated ones (".../upscale/creative" vs ".../{id}").
    operations.sort(key=lambda op: ("{" in op.path, op.path))
    return tuple(operations)


def match_operation(method: str, path: str) -> tuple[Operation | None, dict[str, str], bool]:
    """The operation for a request, its path parameters, and whether the path exists
    under another method (405 rather than 404)."""
    path_exists = False
    for operation in load_operations():
        match = operation.pattern.match(path)
        if match is None:
            continue
        if operation.method == method:
            return operation, match.groupdict(), True
        path_exists = True
    return None, {}, path_exists
