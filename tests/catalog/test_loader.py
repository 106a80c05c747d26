"""Loading the catalog: common.yaml inlined, the standard media outputs added, and
every broken definition refused with the file, the place and the problem."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from stability_connector.catalog import find_catalog_root, load_catalog, names_used
from stability_connector.errors import ConnectorError, DefinitionError

from .conftest import REPO, MakeCatalog, action_yaml


def core() -> dict[str, Any]:
    return action_yaml("stable_image_core")


def refused(make_catalog: MakeCatalog, action: dict[str, Any]) -> str:
    with pytest.raises(DefinitionError) as caught:
        load_catalog(make_catalog(action))
    return str(caught.value)


# --- what a good definition becomes ---------------------------------------------------


def test_common_refs_are_inlined_keeping_the_keys_next_to_them(make_catalog: MakeCatalog) -> None:
    catalog = load_catalog(make_catalog(core()))
    seed = catalog.action("stable_image_core").inputs["properties"]["seed"]
    assert "$ref" not in json.dumps(catalog.action("stable_image_core").inputs)
    assert seed["type"] == "integer"
    assert (seed["minimum"], seed["maximum"], seed["default"]) == (0, 4294967294, 0)
    assert seed["x-ui"] == {"widget": "number", "order": 5, "advanced": True}


def test_x_ui_and_x_media_merge_key_by_key_and_null_removes(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["image"] = {
        "$ref": "common.yaml#/$defs/image",
        "x-ui": {"order": 9},
        "x-media": {"max_pixels": None, "max_aspect_ratio": 2.5},
    }
    action["request"]["files"] = {"image": "<<inputs.image>>"}
    image = (
        load_catalog(make_catalog(action)).action("stable_image_core").inputs["properties"]["image"]
    )
    assert image["x-ui"] == {"widget": "file", "order": 9}
    assert image["x-media"] == {
        "kind": "image",
        "formats": ["png", "jpeg", "webp"],
        "min_width": 64,
        "min_height": 64,
        "min_pixels": 4096,
        "max_aspect_ratio": 2.5,
    }


def test_media_actions_get_the_standard_outputs(make_catalog: MakeCatalog) -> None:
    outputs = load_catalog(make_catalog(core())).action("stable_image_core").outputs.schema_
    assert list(outputs["properties"])[:8] == [
        "file",
        "content_type",
        "size_bytes",
        "seed",
        "finish_reason",
        "filtered",
        "credits",
        "request_id",
    ]
    assert outputs["properties"]["filtered"]["type"] == "boolean"


def test_actions_keep_the_connector_order(make_catalog: MakeCatalog) -> None:
    second = copy.deepcopy(core())
    second["id"] = "another_core"
    catalog = load_catalog(make_catalog(second, core()))
    assert list(catalog.actions) == ["another_core", "stable_image_core"]


def test_unknown_action_names_the_known_ones(make_catalog: MakeCatalog) -> None:
    catalog = load_catalog(make_catalog(core()))
    with pytest.raises(ConnectorError, match=r"Did you mean 'stable_image_core'.*Known actions"):
        catalog.action("stable_image_cor")


def test_document_is_one_json_document(make_catalog: MakeCatalog) -> None:
    document = load_catalog(make_catalog(core())).document()
    again = json.loads(json.dumps(document))
    assert again["connector"]["id"] == "stability_ai"
    assert [a["id"] for a in again["actions"]] == ["stable_image_core"]
    assert again["actions"][0]["inputs"]["properties"]["output_format"]["oneOf"][0] == {
        "const": "png",
        "title": "PNG",
    }


# --- refusals -------------------------------------------------------------------------


def test_unknown_top_level_key(make_catalog: MakeCatalog) -> None:
    action = core()
    action["credit"] = 3
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: credit: unknown key (a typo?)"
    )


def test_unknown_nested_key(make_catalog: MakeCatalog) -> None:
    action = core()
    action["request"]["bodyy"] = {}
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: request.bodyy: unknown key (a typo?)"
    )


def test_template_naming_an_undeclared_input(make_catalog: MakeCatalog) -> None:
    action = core()
    action["request"]["body"]["style_preset"] = "<<inputs.style>>"
    message = refused(make_catalog, action)
    assert message.startswith(
        "actions/stable_image_core.yaml: request.body.style_preset: "
        "names inputs.style, which is not an input (inputs: prompt, negative_prompt"
    )


def test_undeclared_input_by_subscript_in_the_path(make_catalog: MakeCatalog) -> None:
    action = core()
    action["request"]["path"] = "/v2beta/stable-image/generate/<<inputs['flavour']>>"
    assert "request.path: names inputs.flavour" in refused(make_catalog, action)


def test_required_input_never_sent(make_catalog: MakeCatalog) -> None:
    action = core()
    del action["request"]["body"]["prompt"]
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.prompt: "
        "is required but the request never sends it"
    )


def test_duplicate_order(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["x-ui"]["order"] = 1
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.seed.x-ui.order: "
        "duplicate order 1 (also prompt)"
    )


def test_show_if_on_a_missing_field(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["x-ui"]["show_if"] = {"mode": "image-to-image"}
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.seed.x-ui.show_if.mode: "
        "'mode' is not an input of this action"
    )


def test_show_if_with_a_value_the_field_never_takes(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["x-ui"]["show_if"] = {"output_format": "gif"}
    assert "show_if.output_format: 'gif' is not one of output_format's values" in refused(
        make_catalog, action
    )


def test_unknown_x_ui_key(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["x-ui"]["colour"] = "red"
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.seed.x-ui.colour: unknown key"
    )


def test_bad_widget(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["x-ui"]["widget"] = "dial"
    assert "inputs.properties.seed.x-ui.widget: Input should be" in refused(make_catalog, action)


def test_bad_x_media(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["image"] = {
        "$ref": "common.yaml#/$defs/image",
        "x-media": {"formats": ["gif"]},
    }
    action["request"]["files"] = {"image": "<<inputs.image>>"}
    assert "inputs.properties.image.x-media.formats[0]: Input should be" in refused(
        make_catalog, action
    )


def test_invalid_json_schema(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"] = {"type": "integr"}
    message = refused(make_catalog, action)
    assert message.startswith(
        "actions/stable_image_core.yaml: inputs.properties.seed.type: invalid JSON Schema:"
    )


def test_ref_to_a_missing_common_definition(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["$ref"] = "common.yaml#/$defs/sed"
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.seed.$ref: "
        "common.yaml has no definition 'sed' (did you mean 'seed'?)"
    )


def test_ref_to_another_file(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["seed"]["$ref"] = "other.yaml#/$defs/seed"
    assert "inputs.properties.seed.$ref: 'other.yaml#/$defs/seed': only" in refused(
        make_catalog, action
    )


def test_operation_not_in_the_api(make_catalog: MakeCatalog) -> None:
    action = core()
    action["operations"] = ["POST /v2beta/stable-image/generate/cor"]
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: operations[0]: "
        "'POST /v2beta/stable-image/generate/cor' is not an operation of the API "
        "(did you mean 'POST /v2beta/stable-image/generate/core'?)"
    )


def test_request_path_outside_the_operations(make_catalog: MakeCatalog) -> None:
    action = core()
    action["request"]["path"] = "/v2beta/stable-image/generate/ultra"
    assert "request.path: POST /v2beta/stable-image/generate/ultra matches none" in refused(
        make_catalog, action
    )


def test_default_the_field_refuses(make_catalog: MakeCatalog) -> None:
    action = core()
    action["inputs"]["properties"]["output_format"]["default"] = "gif"
    assert refused(make_catalog, action) == (
        "actions/stable_image_core.yaml: inputs.properties.output_format.default: "
        "'gif' is not a value the field accepts"
    )


def test_template_that_does_not_parse(make_catalog: MakeCatalog) -> None:
    action = core()
    action["request"]["body"]["seed"] = "<<inputs.seed"
    assert "request.body.seed: template '<<inputs.seed' does not parse" in refused(
        make_catalog, action
    )


def test_id_must_match_the_file_name(make_catalog: MakeCatalog, tmp_path: Path) -> None:
    root = make_catalog(core())
    path = root / "actions" / "stable_image_core.yaml"
    data = yaml.safe_load(path.read_text())
    data["id"] = "core"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError, match="id: is 'core' but the file is named"):
        load_catalog(root)


def test_listed_action_without_a_file(make_catalog: MakeCatalog) -> None:
    root = make_catalog(core())
    (root / "actions" / "stable_image_core.yaml").unlink()
    with pytest.raises(DefinitionError) as caught:
        load_catalog(root)
    assert str(caught.value) == (
        "connector.yaml: actions[0]: lists 'stable_image_core' "
        "but actions/stable_image_core.yaml does not exist"
    )


def test_action_listed_twice(make_catalog: MakeCatalog) -> None:
    with pytest.raises(DefinitionError, match=r"connector.yaml: actions\[1\]: .* listed twice"):
        load_catalog(make_catalog(core(), core()))


def test_invalid_yaml_names_the_line(make_catalog: MakeCatalog) -> None:
    root = make_catalog(core())
    (root / "actions" / "stable_image_core.yaml").write_text("id: x\ntitle: [unclosed\n")
    with pytest.raises(DefinitionError, match=r"stable_image_core.yaml: line \d+, column \d+: "):
        load_catalog(root)


def test_connector_unknown_key(make_catalog: MakeCatalog) -> None:
    connector = yaml.safe_load((REPO / "connector.yaml").read_text())
    connector["timeout"] = 3
    with pytest.raises(DefinitionError) as caught:
        load_catalog(make_catalog(core(), connector=connector))
    assert str(caught.value) == "connector.yaml: timeout: unknown key (a typo?)"


def test_connector_icon_must_exist(make_catalog: MakeCatalog) -> None:
    connector = yaml.safe_load((REPO / "connector.yaml").read_text())
    connector["icon"] = "schemas/missing.svg"
    with pytest.raises(DefinitionError, match=r"connector\.yaml: icon: 'schemas/missing\.svg'"):
        load_catalog(make_catalog(core(), connector=connector))


# --- template scanning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("plain text", set()),
        ("<<inputs.prompt>>", {"prompt"}),
        ("<<inputs['seed']>>", {"seed"}),
        ("<<inputs.get('model', 'core')>>", {"model"}),
        ("<% if 'mode' in inputs %>x<% endif %>", {"mode"}),
        ("<<'3:2' if inputs.aspect_ratio == '4:3' else inputs.aspect_ratio>>", {"aspect_ratio"}),
        ("<<response.headers.seed>>", set()),
    ],
)
def test_names_used(template: str, names: set[str]) -> None:
    assert names_used(template) == names


# --- where the catalog is found -------------------------------------------------------


def test_packaged_catalog_is_preferred(tmp_path: Path) -> None:
    package = tmp_path / "site" / "stability_connector"
    (package / "catalog").mkdir(parents=True)
    (package / "catalog" / "connector.yaml").write_text("id: x\n")
    assert find_catalog_root(package) == package / "catalog"


def test_repository_root_without_a_packaged_catalog(tmp_path: Path) -> None:
    package = tmp_path / "runtime" / "stability_connector"
    package.mkdir(parents=True)
    (tmp_path / "connector.yaml").write_text("id: x\n")
    assert find_catalog_root(package) == tmp_path


def test_no_catalog_anywhere(tmp_path: Path) -> None:
    package = tmp_path / "runtime" / "stability_connector"
    package.mkdir(parents=True)
    with pytest.raises(DefinitionError, match=r"connector\.yaml: not found in"):
        find_catalog_root(package)


def test_this_checkout_finds_its_own_catalog() -> None:
    root = find_catalog_root()
    assert (root / "connector.yaml").is_file()
    assert (root / "actions").is_dir()
