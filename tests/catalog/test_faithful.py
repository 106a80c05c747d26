"""Every action is faithful to Stability's official API description.

The facts come from ``api_facts.json`` (derived from the official OpenAPI description
by ``tools/derive_api_facts.py``, and checked current against it below when the
description is present). For every action in ``actions/``:

- each field the request sends exists in the official operation under that name;
- each official field is offered, unless listed in ``NOT_OFFERED`` with a reason;
- allowed values, ranges, lengths, defaults and required fields are the official ones
  (our ``integer`` is accepted where the API says ``number`` with whole-number bounds);
- file inputs check the official format, size and pixel or duration limits;
- a flat official credit price is the action's price.

And every current operation has an action (coverage).
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from stability_connector.api_facts import operations
from stability_connector.catalog import _read_common, load_action, names_used, option_values
from stability_connector.definitions import ActionSpec
from stability_connector.templates import definition_scope, render_definition

from .conftest import REPO

ACTION_FILES = sorted((REPO / "actions").glob("*.yaml"))

# Official fields an action deliberately does not offer, with the reason.
NOT_OFFERED: dict[tuple[str, str], str] = {}

# Fields an action sends that the description does not list, with the source.
_V1_STYLE = (
    "the v1 generation API takes style_preset with its other generation options, as "
    "ByteChef's Create Image shows it (seeds/001, 'Style'); the current description "
    "dropped it. Its values are the v2 style presets (common.yaml)"
)
BEYOND_THE_DESCRIPTION: dict[tuple[str, str], str] = {
    ("v1_text_to_image", "style_preset"): _V1_STYLE,
    ("v1_image_to_image", "style_preset"): _V1_STYLE,
    ("v1_masking", "style_preset"): _V1_STYLE,
}

# Actions that combine several operations behind their own simpler contract. Their
# wire fields must still be official, and every option they offer must produce a
# request the routed operation accepts (checked by rendering each option).
COMPOSITE: dict[str, str] = {
    "generate_image": "the Generate Image contract: six aspect ratios (4:3 is generated "
    "at 3:2 and cropped), the seed as text, and a model choice routing to core, sd3 "
    "or ultra; style, image to image and CFG are in the dedicated actions",
}

# Operations no action lists, and what replaces each (the docs say so too).
RESULT_GETS_ARE_JOBS = "fetched by the actions' own job polling and by fetch_result"


@cache
def common() -> dict[str, Any]:
    return _read_common(REPO)


@cache
def spec_of(path: Path) -> ActionSpec:
    return load_action(REPO, f"actions/{path.name}", common())


def wire_fields(spec: ActionSpec) -> dict[str, Any]:
    """API field -> the template that fills it (body and files)."""
    return {**spec.request.body, **spec.request.files}


def inputs_feeding(template: Any) -> set[str]:
    names: set[str] = set()
    for text in _strings(template):
        names |= names_used(text)
    return names


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for sub in value.values():
            yield from _strings(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _strings(sub)


def official_fields(spec: ActionSpec) -> dict[str, dict[str, Any]]:
    fields: dict[str, dict[str, Any]] = {}
    for key in spec.operations:
        fields.update(operations()[key]["fields"])
    return fields


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# --- per field comparison ------------------------------------------------------------


def _integral(value: Any) -> bool:
    return isinstance(value, int | float) and float(value).is_integer()


def field_differences(name: str, ours: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    """How an input's schema differs from the official field facts (empty: faithful)."""
    found: list[str] = []
    official_type = facts.get("type")
    our_type = ours.get("type")
    if facts.get("format") == "binary":
        if not ours.get("x-media"):
            found.append(f"{name}: a file field without x-media limits")
    elif official_type == "number":
        bounds = [facts.get(k) for k in ("minimum", "maximum") if k in facts]
        if our_type == "integer" and not (bounds and all(map(_integral, bounds))):
            found.append(f"{name}: integer, but the API takes any number")
        elif our_type not in ("number", "integer"):
            found.append(f"{name}: type {our_type}, the API says number")
    elif official_type is not None and our_type != official_type:
        found.append(f"{name}: type {our_type}, the API says {official_type}")
    if "enum" in facts:
        values = option_values(ours)
        if values is None or sorted(map(str, values)) != sorted(map(str, facts["enum"])):
            found.append(f"{name}: values {values}, the API says {facts['enum']}")
    for key in (
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "multipleOf",
        "default",
    ):
        if ours.get(key) != facts.get(key):
            found.append(f"{name}: {key} is {ours.get(key)!r}, the API says {facts.get(key)!r}")
    if "items" in facts and isinstance(ours.get("items"), dict):
        item_facts = facts["items"]
        item_ours = ours["items"]
        for sub, sub_facts in item_facts.get("properties", {}).items():
            sub_ours = item_ours.get("properties", {}).get(sub)
            if sub_ours is None:
                found.append(f"{name}[].{sub}: not offered")
            else:
                found += field_differences(f"{name}[].{sub}", sub_ours, sub_facts)
        if sorted(item_ours.get("required", [])) != sorted(item_facts.get("required", [])):
            found.append(
                f"{name}[]: required {item_ours.get('required')}, the API says "
                f"{item_facts.get('required')}"
            )
    if facts.get("format") == "binary":
        found += media_differences(name, ours.get("x-media") or {}, facts.get("media") or {})
    return found


_LIMITS = (
    "min_width",
    "max_width",
    "min_height",
    "max_height",
    "min_pixels",
    "max_pixels",
    "max_aspect_ratio",
    "min_seconds",
    "max_seconds",
)


def media_differences(name: str, ours: Mapping[str, Any], facts: Mapping[str, Any]) -> list[str]:
    found = []
    for key in _LIMITS:
        if ours.get(key) != facts.get(key):
            found.append(
                f"{name}: x-media.{key} is {ours.get(key)!r}, the API says {facts.get(key)!r}"
            )
    if "formats" in facts and sorted(ours.get("formats", [])) != sorted(facts["formats"]):
        found.append(
            f"{name}: x-media.formats {ours.get('formats')}, the API says {facts['formats']}"
        )
    if "sizes" in facts and ours.get("sizes") != facts["sizes"]:
        found.append(f"{name}: x-media.sizes {ours.get('sizes')}, the API says {facts['sizes']}")
    return found


def differences(spec: ActionSpec) -> list[str]:
    """Everything about ``spec`` that is not the official API's."""
    found: list[str] = []
    official = official_fields(spec)
    properties: dict[str, Any] = spec.inputs.get("properties", {})
    required = set(spec.inputs.get("required", []))
    official_required = set().union(*(operations()[k]["required"] for k in spec.operations))
    sent = wire_fields(spec)
    for field in sent:
        if field not in official and (spec.id, field) not in BEYOND_THE_DESCRIPTION:
            found.append(f"request sends {field!r}, which the API does not define")
    if spec.id in COMPOSITE:
        return found
    for field, facts in official.items():
        if field not in sent:
            if (spec.id, field) not in NOT_OFFERED:
                found.append(f"{field}: an official field the action does not offer")
            continue
        feeding = inputs_feeding(sent[field])
        if len(feeding) != 1:
            continue  # built from several inputs (or none): compared by the examples
        name = feeding.pop()
        ours = properties[name]
        found += field_differences(field, ours, facts)
        if (field in official_required) != (name in required):
            state = "required" if name in required else "optional"
            found.append(f"{field}: {state} here, the API says the opposite")
    return found


# --- the tests -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ACTION_FILES, ids=ids(ACTION_FILES))
def test_action_is_faithful_to_the_api(path: Path) -> None:
    spec = spec_of(path)
    assert differences(spec) == []


def flat_price(credits: float | str | None) -> float | None:
    """The official price when it is one figure ("Flat rate of 26 credits ...")."""
    if isinstance(credits, int | float) or credits is None:
        return credits
    figures = {float(f) for f in re.findall(r"(\d+(?:\.\d+)?) credits?\b", credits)}
    return figures.pop() if len(figures) == 1 else None


@pytest.mark.parametrize("path", ACTION_FILES, ids=ids(ACTION_FILES))
def test_credit_price_is_the_official_one(path: Path) -> None:
    spec = spec_of(path)
    if spec.id in COMPOSITE:
        return  # priced per model, checked with the options below
    stated = [operations()[k]["credits"] for k in spec.operations]
    stated = [c for c in stated if c is not None]
    if not stated:
        return
    price = flat_price(stated[0])
    if price is not None:
        assert spec.credits == price, f"{spec.id} costs {price:g} credits per the API"
    else:  # the price depends on inputs: the action computes it or explains it
        assert isinstance(spec.credits, str) or spec.credits_note, (
            f"{spec.id}: the API's price depends on inputs ({stated[0]}); "
            "give credits as a template or a credits_note"
        )


@pytest.mark.parametrize("path", ACTION_FILES, ids=ids(ACTION_FILES))
def test_accept_header_is_one_the_api_offers(path: Path) -> None:
    spec = spec_of(path)
    accepted = set().union(*(operations()[k]["accept"] for k in spec.operations))
    if spec.request.accept and accepted and "<<" not in spec.request.accept:
        assert spec.request.accept in accepted


@pytest.mark.parametrize("path", ACTION_FILES, ids=ids(ACTION_FILES))
def test_examples_map_from_the_trigger(path: Path) -> None:
    """An example shows a workflow: inputs mapped from the context, and the request."""
    spec = spec_of(path)
    for example in spec.examples:
        assert example.request is not None, f"{example.title}: no expected request"
    if spec.inputs.get("properties"):
        mapped = any("<<trigger." in text for e in spec.examples for text in _strings(e.inputs))
        assert mapped, "no example maps an input from <<trigger.x>>"


# --- the composite Generate Image ----------------------------------------------------


def _choices(schema: Mapping[str, Any]) -> list[Any]:
    return option_values(schema) or [None]


def test_every_generate_image_option_sends_what_the_api_accepts() -> None:
    spec = spec_of(REPO / "actions" / "generate_image.yaml")
    props = spec.inputs["properties"]
    names = ["model", "aspect_ratio", "output_format"]
    for combination in itertools.product(*(_choices(props[n]) for n in names)):
        inputs = {"prompt": "a fox", "seed": "42", **dict(zip(names, combination, strict=True))}
        scope = definition_scope(inputs)
        path = render_definition("request.path", spec.request.path, scope)
        body = render_definition("request.body", spec.request.body, scope)
        key = f"POST {path}"
        assert key in spec.operations, f"{inputs} goes to {key}"
        facts = operations()[key]["fields"]
        for field, value in body.items():
            assert field in facts, f"{inputs}: {field} is not a field of {key}"
            if "enum" in facts[field]:
                assert value in facts[field]["enum"], f"{inputs}: {field}={value} refused by {key}"
        if inputs["aspect_ratio"] == "4:3":
            assert body["aspect_ratio"] == "3:2"
            hooks = [h for h in spec.response.hooks if h.name == "crop_to_aspect"]
            assert hooks and render_definition("when", hooks[0].when, scope) is True
            assert hooks[0].args == {"ratio": "4:3"}


# --- coverage ------------------------------------------------------------------------


def _is_result_get(key: str) -> bool:
    return key.startswith("GET ") and "/result" in key


def test_every_current_operation_has_an_action() -> None:
    listed = {key for path in ACTION_FILES for key in spec_of(path).operations}
    jobs = [spec_of(p).response.job for p in ACTION_FILES]
    polled = {
        f"GET {job.result_path}".replace("<<job.id>>", "{id}") for job in jobs if job is not None
    }
    missing = [
        key
        for key, op in operations().items()
        if op["status"] in ("current", "limited")
        and key not in listed
        and not (_is_result_get(key) and key in polled)
    ]
    assert missing == [], f"operations without an action: {missing}"


def test_legacy_operations_name_their_replacement() -> None:
    from stability_connector.docs import REPLACED_BY

    listed = {key for path in ACTION_FILES for key in spec_of(path).operations}
    unlisted = [
        key for key, op in operations().items() if op["status"] == "legacy" and key not in listed
    ]
    for key in unlisted:
        assert key in REPLACED_BY, f"{key} is legacy and no action replaces it in the docs"
        for action_id in REPLACED_BY[key]:
            assert (REPO / "actions" / f"{action_id}.yaml").is_file(), action_id


# --- api_facts.json is current -------------------------------------------------------

REFERENCE = REPO.parent / "shared" / "reference" / "stability-openapi.json"


@pytest.mark.skipif(
    not REFERENCE.is_file(),
    reason=f"the official description {REFERENCE} is not here; api_facts.json is checked "
    "against it where it is",
)
def test_api_facts_are_current() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "tools" / "derive_api_facts.py"), str(REFERENCE), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
