"""Workflow files: what loads, and what is refused before anything runs (with the file,
the step and the field)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from stability_connector.catalog import find_catalog_root
from stability_connector.errors import DefinitionError, InputValidationError
from stability_connector.workflows.spec import (
    SCHEMA_FILE,
    load_workflow,
    render_workflow_schema,
    template_references,
    validate_trigger,
)

from .helpers import fake_catalog

GOOD: dict[str, Any] = {
    "name": "shots",
    "trigger": {
        "type": "object",
        "required": ["products"],
        "properties": {
            "products": {
                "type": "array",
                "items": {"type": "object", "properties": {"name": {"type": "string"}}},
            },
            "style": {"type": "string"},
        },
    },
    "retry": {"max_attempts": 4},
    "budget": {"credits": 100},
    "vars": {"look": "studio light"},
    "steps": [
        {
            "id": "shot",
            "action": "gen",
            "for_each": "<<trigger.products>>",
            "concurrency": 3,
            "inputs": {"prompt": "<<item.name>>, <<vars.look>>, <<trigger.style>>"},
        },
        {
            "id": "big",
            "action": "upscale",
            "for_each": "<<steps.shot>>",
            "inputs": {"image": "<<item.file>>"},
        },
        {"id": "hero", "action": "upscale", "inputs": {"image": "<<steps.big[0].file>>"}},
    ],
}


def load(write_workflow: Any, data: dict[str, Any]) -> Any:
    return load_workflow(write_workflow(data), fake_catalog())


def refused(write_workflow: Any, data: dict[str, Any]) -> DefinitionError:
    with pytest.raises(DefinitionError) as caught:
        load(write_workflow, data)
    return caught.value


def test_a_good_workflow_loads(write_workflow: Any) -> None:
    workflow = load(write_workflow, GOOD)
    assert [s.id for s in workflow.spec.steps] == ["shot", "big", "hero"]
    assert workflow.spec.retry is not None and workflow.spec.retry.max_attempts == 4
    assert workflow.step("shot").concurrency == 3


def variant(change: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    change(data)
    return data


@pytest.mark.parametrize(
    ("change", "place", "words"),
    [
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (
            lambda d: d["retry"].update(max_attempts=6),
            "retry.max_attempts",
            "less than or equal to 5",
        ),
        (
            lambda d: d["steps"][0].update(action="gen_image"),
            "steps.shot.action",
            "unknown action 'gen_image'",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(promt="x"),
            "steps.shot.inputs.promt",
            "no input 'promt'",
        ),
        (
            lambda d: d["steps"][0].update(inputs={}),
            "steps.shot.inputs.prompt",
            "requires this input",
        ),
        (
            lambda d: d["steps"][1].update(inputs={"image": "<<item.fiel>>"}),
            "steps.big.inputs.image",
            "no output 'fiel'",
        ),
        (
            lambda d: d["steps"][2].update(inputs={"image": "<<steps.big.file>>"}),
            "steps.hero.inputs.image",
            "is a loop",
        ),
        (
            lambda d: d["steps"][2].update(inputs={"image": "<<steps.bigg[0].file>>"}),
            "steps.hero.inputs.image",
            "no step 'bigg'",
        ),
        (
            lambda d: d["steps"][2].update(inputs={"image": "<<steps.big[0].url>>"}),
            "steps.hero.inputs.image",
            "no output 'url'",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<steps.hero.file>>"),
            "steps.shot.inputs.style",
            "runs later",
        ),
        (
            lambda d: d["steps"][2].update(inputs={"image": "<<item>>"}),
            "steps.hero.inputs.image",
            "only in a step with for_each",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<vars.mood>>"),
            "steps.shot.inputs.style",
            "no var 'mood'",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<trigger.colour>>"),
            "steps.shot.inputs.style",
            "no field 'colour'",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<item.nam>>"),
            "steps.shot.inputs.style",
            "no field 'nam'",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<trigger.style"),
            "steps.shot.inputs.style",
            "does not parse",
        ),
        (
            lambda d: d["steps"][0]["inputs"].update(style="<<secrets.key>>"),
            "steps.shot.inputs.style",
            "unknown name 'secrets'",
        ),
        (lambda d: d["steps"][1].update(id="shot"), "steps.shot", "unique"),
        (lambda d: d["steps"][2].update(concurrency=4), "steps.hero.concurrency", "only a loop"),
        (
            lambda d: d["steps"][0].update(concurrency=0),
            "steps.shot.concurrency",
            "greater than or equal to 1",
        ),
        (lambda d: d.update(trigger={"type": "objekt"}), "trigger", "not a valid JSON Schema"),
    ],
)
def test_refused_before_anything_runs(
    write_workflow: Any, change: Any, place: str, words: str
) -> None:
    error = refused(write_workflow, variant(change))
    assert error.file.endswith("flow.yaml")
    assert error.place == place, error.message
    assert words in error.problem, error.message


def test_not_yaml_is_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsteps: [\n", encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_workflow(path, fake_catalog())
    assert "broken.yaml" in caught.value.message and "line" in caught.value.place


def test_template_local_names_are_not_references() -> None:
    refs = template_references("<% for p in trigger.tags %><<p>>-<<loop.index>><% endfor %>")
    assert refs == [("trigger", ["tags"])]
    assert template_references("<<item.get('details', vars.x)>>") == [
        ("item", []),
        ("vars", ["x"]),
    ]


def test_trigger_payload_is_validated_with_every_problem(write_workflow: Any) -> None:
    workflow = load(write_workflow, GOOD)
    validate_trigger(workflow, {"products": [{"name": "mug"}]})
    with pytest.raises(InputValidationError) as caught:
        validate_trigger(workflow, {"products": [{"name": 3}], "style": 1})
    fields = [p.field for p in caught.value.problems]
    assert fields == ["trigger.products[0].name", "trigger.style"]


def test_the_workflow_schema_file_is_current() -> None:
    path = find_catalog_root() / "schemas" / SCHEMA_FILE
    assert path.read_text(encoding="utf-8") == render_workflow_schema(), (
        "schemas/workflow.schema.json is stale: run python -m stability_connector.workflows"
    )


def test_the_schema_accepts_the_examples() -> None:
    import jsonschema
    import yaml

    schema = json.loads(render_workflow_schema())
    examples = sorted((find_catalog_root() / "examples").glob("*.yaml"))
    for example in examples:
        jsonschema.validate(yaml.safe_load(example.read_text(encoding="utf-8")), schema)


def _real(step_inputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "name": "fixed",
        "trigger": {"type": "object", "properties": {"ratio": {"type": "string"}}},
        **extra,
        "steps": [
            {"id": "gen", "action": "generate_image", "inputs": step_inputs},
            {
                "id": "up",
                "action": "upscale_fast",
                "inputs": {"image": "<<steps.gen.file>>", "output_format": "webp"},
            },
        ],
    }


@pytest.mark.parametrize(
    ("inputs", "field", "words"),
    [
        ({"prompt": "x", "aspect_ratio": "5:4"}, "steps.gen.inputs.aspect_ratio", "'5:4'"),
        ({"prompt": "x", "output_format": "gif"}, "steps.gen.inputs.output_format", "'gif'"),
        ({"prompt": "x", "seed": "many"}, "steps.gen.inputs.seed", "'many'"),
        ({"prompt": "x", "seed": -3}, "steps.gen.inputs.seed", "whole number from 0"),
    ],
)
def test_fixed_inputs_the_action_refuses_are_caught_by_the_check(
    write_workflow: Any, inputs: dict[str, Any], field: str, words: str
) -> None:
    from stability_connector.catalog import load_catalog

    with pytest.raises(DefinitionError) as caught:
        load_workflow(write_workflow(_real(inputs)), load_catalog())
    error = caught.value
    assert error.place == field and words in error.problem
    assert "generate_image" in error.problem and str(write_workflow(_real(inputs))) in str(error)
    if "options" in error.problem:
        assert "allowed: " in error.problem


def test_fixed_inputs_are_normalized_and_templates_wait_for_the_run(write_workflow: Any) -> None:
    from stability_connector.catalog import load_catalog

    # Labels and numeric text are accepted as the runtime accepts them; a template's value
    # is only known at run time.
    data = _real({"prompt": "x", "aspect_ratio": "16:9 (landscape)", "seed": "42"})
    load_workflow(write_workflow(data), load_catalog())
    data = _real({"prompt": "x", "aspect_ratio": "<<trigger.ratio>>"})
    load_workflow(write_workflow(data), load_catalog())


def test_an_unknown_connection_is_refused_naming_the_known_ones(
    write_workflow: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from stability_connector.cli import main

    path = write_workflow(_real({"prompt": "x"}, connection="prodution"))
    code = main(["workflow", "check", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}: connection: unknown connection 'prodution'" in err
    assert "production" in err and "sandbox" in err
    code = main(["workflow", "run", str(path), "--db", str(path.parent / "runs.sqlite3")])
    assert code == 2 and "unknown connection" in capsys.readouterr().err
    good = write_workflow(_real({"prompt": "x"}, connection="sandbox"), "good.yaml")
    assert main(["workflow", "check", str(good)]) == 0
