"""Normalizing and validating inputs: forgiving where it is safe, every problem at once."""

from __future__ import annotations

from typing import Any

import pytest

from stability_connector.catalog import Catalog
from stability_connector.definitions import ActionSpec
from stability_connector.errors import FieldProblem, InputValidationError
from stability_connector.inputs import media_fields, normalize, problems, validate


def spec(inputs: dict[str, Any]) -> ActionSpec:
    return ActionSpec.model_validate(
        {
            "id": "demo",
            "title": "Demo",
            "description": "d",
            "group": "Generate",
            "operations": [],
            "inputs": inputs,
            "request": {"method": "POST", "path": "/x"},
            "response": {"kind": "json"},
            "examples": [{"title": "e", "inputs": {}}],
        }
    )


DEMO = spec(
    {
        "type": "object",
        "required": ["prompt"],
        "additionalProperties": False,
        "properties": {
            "prompt": {"type": "string", "minLength": 1, "maxLength": 20},
            "mode": {
                "type": "string",
                "oneOf": [
                    {"const": "text-to-image", "title": "Text to image"},
                    {"const": "image-to-image", "title": "Image to image"},
                ],
            },
            "image": {"type": "string"},
            "strength": {"type": "number", "minimum": 0, "maximum": 1},
            "steps": {"type": "integer", "minimum": 10, "maximum": 50},
            "width": {"type": "integer", "multipleOf": 64},
            "upscale": {"type": "boolean"},
            "prompts": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}, "weight": {"type": "number"}},
                },
            },
        },
        "allOf": [
            {
                "if": {"properties": {"mode": {"const": "image-to-image"}}, "required": ["mode"]},
                "then": {"required": ["image", "strength"]},
            }
        ],
        "dependentRequired": {"image": ["strength"]},
    }
)


def test_numeric_boolean_and_json_strings_become_what_the_schema_wants() -> None:
    got = normalize(
        DEMO,
        {
            "prompt": "42",
            "strength": "0.35",
            "steps": "30",
            "width": 512.0,
            "upscale": "TRUE",
            "prompts": '[{"text": "a", "weight": "0.5"}]',
        },
    )
    assert got == {
        "prompt": "42",  # the schema wants text: it stays text
        "strength": 0.35,
        "steps": 30,
        "width": 512,
        "upscale": True,
        "prompts": [{"text": "a", "weight": 0.5}],
    }


def test_an_option_is_accepted_by_value_or_label_case_insensitively() -> None:
    for given in ("image-to-image", "Image to image", "IMAGE TO IMAGE", "Image-To-Image"):
        assert normalize(DEMO, {"mode": given}) == {"mode": "image-to-image"}


def test_empty_optional_values_are_absent_but_a_required_one_is_reported() -> None:
    assert normalize(DEMO, {"prompt": "x", "mode": "", "steps": "  ", "image": None}) == {
        "prompt": "x"
    }
    assert normalize(DEMO, {"prompt": ""}) == {"prompt": ""}
    with pytest.raises(InputValidationError) as caught:
        validate(DEMO, normalize(DEMO, {"prompt": ""}))
    assert caught.value.problems == [FieldProblem("prompt", "must not be empty")]


def test_every_problem_is_reported_at_once_in_words() -> None:
    values = normalize(
        DEMO,
        {
            "mode": "sideways",
            "strength": "2",
            "steps": "many",
            "width": "500",
            "upscale": "maybe",
            "colour": "red",
            "prompts": [{"weight": 1}],
        },
    )
    found = {p.field: str(p) for p in problems(DEMO, values)}
    assert found == {
        "prompt": "prompt: is required",
        "mode": "mode: 'sideways' is not one of the options "
        "(allowed: Text to image, Image to image)",
        "strength": "strength: 2 is out of range (allowed: 0 to 1)",
        "steps": "steps: 'many' is not a whole number",
        "width": "width: 500 is not a multiple of 64",
        "upscale": "upscale: 'maybe' is not true or false",
        "colour": "colour: is not an input of this action "
        "(allowed: prompt, mode, image, strength, steps, width, upscale, prompts)",
        "prompts[0].text": "prompts[0].text: is required",
    }


def test_conditional_requirements_say_when() -> None:
    found = {str(p) for p in problems(DEMO, {"prompt": "x", "mode": "image-to-image"})}
    assert found == {
        "image: required when mode is 'image-to-image'",
        "strength: required when mode is 'image-to-image'",
    }
    found = {str(p) for p in problems(DEMO, {"prompt": "x", "image": "a.png"})}
    assert found == {"strength: required when image is given"}


def test_the_error_lists_every_problem_and_says_nothing_was_sent() -> None:
    with pytest.raises(InputValidationError) as caught:
        validate(DEMO, {"steps": 5}, [FieldProblem("image", "is GIF", "PNG, JPEG, WEBP")])
    text = str(caught.value)
    assert text.startswith("demo: 3 problems with the inputs, nothing was sent:")
    assert "  - image: is GIF (allowed: PNG, JPEG, WEBP)" in text
    assert "  - steps: 5 is out of range (allowed: 10 to 50)" in text
    assert caught.value.to_dict()["problems"][0] == {
        "field": "image",
        "problem": "is GIF",
        "allowed": "PNG, JPEG, WEBP",
    }


# --- generate_image --------------------------------------------------------------------------


def test_generate_image_aspect_ratio_by_label(catalog: Catalog) -> None:
    action = catalog.action("generate_image")
    labels = {
        "1:1 (Square)": "1:1",
        "16:9 (Landscape)": "16:9",
        "9:16 (Portrait)": "9:16",
        "4:3": "4:3",
        "3:2": "3:2",
        "21:9 (Ultrawide)": "21:9",
        "16:9 (landscape)": "16:9",
        "PNG": "png",
        "JPEG": "jpeg",
        "WebP": "webp",
        "webp": "webp",
    }
    for label, value in labels.items():
        field = "output_format" if value in ("png", "jpeg", "webp") else "aspect_ratio"
        assert normalize(action, {"prompt": "x", field: label})[field] == value


def test_generate_image_aspect_ratio_refusal_lists_the_labels(catalog: Catalog) -> None:
    action = catalog.action("generate_image")
    (problem,) = problems(action, {"prompt": "x", "aspect_ratio": "square"})
    assert str(problem) == (
        "aspect_ratio: 'square' is not one of the options (allowed: 1:1 (Square), "
        "16:9 (Landscape), 9:16 (Portrait), 4:3, 3:2, 21:9 (Ultrawide))"
    )


@pytest.mark.parametrize(
    ("seed", "sent"),
    [
        ("", None),
        ("42", "42"),
        ("0", "0"),
        ("4294967294", "4294967294"),
        (None, None),
        (" 42 ", "42"),
        ("042", "42"),
        # A whole number mapped from an earlier step's integer output, e.g. its seed.
        (42, "42"),
        (7.0, "7"),
    ],
)
def test_generate_image_seed_strings_that_are_accepted(
    catalog: Catalog, seed: str | int | float | None, sent: str | None
) -> None:
    action = catalog.action("generate_image")
    values = normalize(action, {"prompt": "x", "seed": seed})
    assert values.get("seed") == sent
    assert problems(action, values) == []


@pytest.mark.parametrize(
    ("seed", "problem"),
    [
        ("abc", "'abc' is not a whole number"),
        ("-1", "'-1' is out of range"),
        ("4.2", "'4.2' is not a whole number"),
        ("4294967295", "'4294967295' is out of range"),
    ],
)
def test_generate_image_seed_strings_that_are_refused(
    catalog: Catalog, seed: str, problem: str
) -> None:
    action = catalog.action("generate_image")
    (found,) = problems(action, normalize(action, {"prompt": "x", "seed": seed}))
    assert found.field == "seed"
    assert found.problem == problem
    assert found.allowed is not None and "4294967294" in found.allowed


def test_the_fast_path_never_accepts_what_jsonschema_refuses(catalog: Catalog) -> None:
    # Every action's example inputs and a spread of wrong values for each field.
    from stability_connector.inputs import _surely_valid, _validator

    wrong: list[Any] = ["", "x" * 20000, -1, 0, 1.5, 10**12, True, None, [], {}, "abc", "42"]
    checked = 0
    for action in catalog.actions.values():
        fast, validator = _validator(action.inputs)
        media = set(media_fields(action))
        for example in action.examples:
            base = {k: v for k, v in example.inputs.items() if k not in media}
            base = {k: v for k, v in base.items() if not (isinstance(v, str) and "<<" in v)}
            cases = [base, {**base, "unknown_field": 1}, {}]
            for name in action.inputs.get("properties", {}):
                cases += [{**base, name: value} for value in wrong]
            for case in cases:
                if _surely_valid(fast, case):
                    assert list(validator.iter_errors(case)) == [], (action.id, case)
                checked += 1
    assert checked > 1000


def test_rules_across_fields_name_the_fields() -> None:
    action = spec(
        {
            "type": "object",
            "properties": {"left": {"type": "integer", "minimum": 1}, "right": {"type": "integer"},
                           "width": {"type": "integer"}, "height": {"type": "integer"}},
            "anyOf": [{"required": ["left"], "properties": {"left": {"minimum": 1}}},
                      {"required": ["right"]}],
            "not": {"required": ["width", "height"]},
        }
    )  # fmt: skip
    found = [str(p) for p in problems(action, {"width": 64, "height": 64})]
    assert found == [
        "left, right: give at least one of these (allowed: at least 1)",
        "width, height: cannot be given together; give only one",
    ]
