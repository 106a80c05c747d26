"""x-ui.options_from: a dropdown listed live by another action, checked at load time."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stability_connector.catalog import default_catalog, describe_field, load_catalog
from stability_connector.errors import DefinitionError

from .conftest import MakeCatalog, action_yaml

ENGINES = action_yaml("v1_engines_list")


def text_to_image(**options_from: Any) -> dict[str, Any]:
    action = action_yaml("v1_text_to_image")
    source = {"action": "v1_engines_list", "output": "engines", "value": "id", "label": "name"}
    action["inputs"]["properties"]["engine_id"]["x-ui"] = {
        "order": 1,
        "options_from": {**source, **options_from},
    }
    return action


def refused(make_catalog: MakeCatalog, *actions: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_catalog(make_catalog(*actions))
    return str(caught.value)


def test_the_v1_engine_fields_name_their_live_source() -> None:
    catalog = default_catalog()
    for action in ("v1_text_to_image", "v1_image_to_image", "v1_masking", "v1_upscale"):
        schema = catalog.action(action).inputs["properties"]["engine_id"]
        source = schema["x-ui"]["options_from"]
        assert (source["action"], source["output"], source["value"]) == (
            "v1_engines_list",
            "engines",
            "id",
        )
        # The static constants stay, as the fallback.
        assert describe_field("engine_id", schema, False)["options"]
        assert describe_field("engine_id", schema, False)["options_from"] == source


def test_a_good_source_loads(make_catalog: MakeCatalog) -> None:
    action = text_to_image(filter={"type": ["PICTURE"]}, exclude={"id": {"pattern": "^esr"}})
    load_catalog(make_catalog(action, copy.deepcopy(ENGINES)))


def test_an_unknown_action_is_refused(make_catalog: MakeCatalog) -> None:
    message = refused(make_catalog, text_to_image(action="v1_engine_list"), ENGINES)
    assert "x-ui.options_from.action" in message
    assert "'v1_engine_list' is not an action of the catalog" in message
    assert "did you mean 'v1_engines_list'" in message


def test_a_source_that_is_not_a_json_list_is_refused(make_catalog: MakeCatalog) -> None:
    not_a_list = text_to_image(output="ids")
    engines = copy.deepcopy(ENGINES)
    engines["outputs"]["schema"]["properties"]["ids"] = {"type": "string"}
    message = refused(make_catalog, not_a_list, engines)
    assert "options_from.output" in message and "not a JSON list" in message

    message = refused(make_catalog, text_to_image(output="engine"), ENGINES)
    assert "v1_engines_list has no output 'engine'" in message

    image = action_yaml("stable_image_core")
    message = refused(make_catalog, text_to_image(action="stable_image_core"), image)
    assert "answers 'media', not JSON" in message


def test_a_source_that_needs_inputs_is_refused(make_catalog: MakeCatalog) -> None:
    engines = copy.deepcopy(ENGINES)
    engines["inputs"]["required"] = ["organization"]
    engines["request"]["headers"] = {"organization": "<<inputs.organization>>"}
    message = refused(make_catalog, text_to_image(), engines)
    assert "needs inputs (organization)" in message


@pytest.mark.parametrize(
    "options_from, place, problem",
    [
        ({"label": "title"}, "options_from.label", "have no key 'title'"),
        ({"filter": {"kind": "PICTURE"}}, "options_from.filter.kind", "have no key 'kind'"),
        (
            {"exclude": {"id": {"pattern": "(unclosed"}}},
            "options_from.exclude.id.pattern",
            "not a valid pattern",
        ),
    ],
)
def test_item_keys_and_patterns_are_checked(
    make_catalog: MakeCatalog, options_from: dict[str, Any], place: str, problem: str
) -> None:
    message = refused(make_catalog, text_to_image(**options_from), ENGINES)
    assert place in message and problem in message


def test_the_vocabulary_is_closed(make_catalog: MakeCatalog) -> None:
    message = refused(make_catalog, text_to_image(values="id"), ENGINES)
    assert "x-ui.options_from.values" in message and "unknown key" in message
    missing = text_to_image()
    del missing["inputs"]["properties"]["engine_id"]["x-ui"]["options_from"]["output"]
    assert "options_from.output" in refused(make_catalog, missing, ENGINES)


def test_only_a_form_field_lists_options(make_catalog: MakeCatalog) -> None:
    action = text_to_image()
    nested = {
        "type": "string",
        "x-ui": {"options_from": {"action": "v1_engines_list", "output": "engines"}},
    }
    action["inputs"]["properties"]["extra"] = {"type": "array", "items": nested}
    message = refused(make_catalog, action, ENGINES)
    assert "only a field of the form can list options" in message
