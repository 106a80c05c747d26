"""schemas/*.schema.json are generated from the pydantic models and must be current."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from stability_connector.catalog import format_schema_text, format_schemas, write_format_schemas

from .conftest import REPO


@pytest.mark.parametrize("name", ["connector.schema.json", "action.schema.json"])
def test_format_schema_is_current(name: str) -> None:
    expected = format_schema_text(format_schemas()[name])
    current = (REPO / "schemas" / name).read_text(encoding="utf-8")
    assert current == expected, (
        f"schemas/{name} is stale: run python -m stability_connector.catalog"
    )


def test_write_format_schemas(tmp_path: Path) -> None:
    written = write_format_schemas(tmp_path)
    assert {p.name for p in written} >= {"connector.schema.json", "action.schema.json"}
    for path in written:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_connector_yaml_fits_its_format_schema() -> None:
    schema = format_schemas()["connector.schema.json"]
    jsonschema.validate(yaml.safe_load((REPO / "connector.yaml").read_text()), schema)


def test_action_files_fit_the_action_format_schema() -> None:
    schema = format_schemas()["action.schema.json"]
    for path in sorted((REPO / "actions").glob("*.yaml")):
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
