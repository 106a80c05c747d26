"""Workflow files: the model, loading, and every check that can be made before a run.

A workflow is YAML (``schemas/workflow.schema.json`` is generated from
:class:`WorkflowSpec`). Loading refuses, with the file, the step and the field, anything
that would only fail halfway through a run: unknown actions or inputs, missing required
inputs, fixed input values the action does not accept, an unknown connection, templates
that do not parse, and references to steps that do not exist (or come
later), to output fields the step's action does not produce, to undeclared vars or trigger
fields, and to ``item`` outside a loop. Nothing is sent before all of this passes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jinja2
import jsonschema
import yaml
from jinja2 import nodes
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stability_connector.catalog import (
    find_catalog_root,
    format_schema_text,
    format_schemas,
    register_format,
)
from stability_connector.connection import DEFAULT_NAME, SANDBOX_NAME
from stability_connector.definitions import ActionSpec, JsonSchema, RetrySpec
from stability_connector.errors import DefinitionError, FieldProblem, InputValidationError
from stability_connector.inputs import field_problems

# The node's standard media outputs (DESIGN "Outputs"): offered by every action whose
# response is media, whatever its own outputs schema lists.
MEDIA_OUTPUTS = frozenset(
    {
        "file",
        "content_type",
        "size_bytes",
        "seed",
        "finish_reason",
        "filtered",
        "credits",
        "request_id",
    }
)

STEP_ID_PATTERN = r"^[a-z][a-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BudgetSpec(_Strict):
    """The most the run may spend. The runner refuses a step (or loop item) whose
    estimated cost would take the run past it, before anything is sent."""

    credits: float = Field(gt=0, description="Credits the whole run may spend.")


class StepSpec(_Strict):
    """One node: an action, its inputs mapped with templates, optionally a loop."""

    id: str = Field(pattern=STEP_ID_PATTERN, description="How later steps refer to it.")
    action: str = Field(description="An action id of the catalog, e.g. generate_image.")
    inputs: dict[str, Any] = Field(
        default_factory=dict,
        description="Input -> value; strings may hold templates: <<trigger.x>>, "
        "<<steps.<id>.<field>>>, <<vars.x>>, <<item>> (in a loop).",
    )
    for_each: str | None = Field(
        default=None,
        description="A template yielding a list; the step runs once per element, "
        "which its inputs see as <<item>>.",
    )
    concurrency: int = Field(
        default=1, ge=1, le=64, description="Loop items in flight at once (for_each only)."
    )
    content_filtered: Literal["fail", "continue", "retry"] = Field(
        default="continue",
        description="When the API blurs a result (finish_reason CONTENT_FILTERED): "
        "fail the node, keep the result (outputs.filtered is true), or send again "
        "with a new seed (each send is charged).",
    )


class WorkflowSpec(_Strict):
    """A workflow file."""

    name: str = Field(min_length=1)
    description: str = ""
    trigger: JsonSchema = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema the trigger payload must satisfy.",
    )
    retry: RetrySpec | None = Field(
        default=None,
        description="Retry policy for every request of the run (1..5 attempts, "
        "exponential backoff with full jitter, Retry-After as a minimum). "
        "Defaults to connector.yaml's.",
    )
    connection: str | None = Field(
        default=None, description="A named connection of connector.yaml (e.g. production)."
    )
    budget: BudgetSpec | None = None
    vars: dict[str, Any] = Field(default_factory=dict, description="Constants: <<vars.x>>.")
    steps: list[StepSpec] = Field(min_length=1)


@dataclass(frozen=True)
class Workflow:
    """A loaded and checked workflow, with where it came from."""

    spec: WorkflowSpec
    file: str

    def step(self, step_id: str) -> StepSpec:
        for step in self.spec.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


# --- loading ---------------------------------------------------------------------------


def load_workflow(path: str | Path, catalog: Any) -> Workflow:
    """Read, parse and check a workflow file. Raises :class:`DefinitionError`."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise DefinitionError(file, "", f"cannot read the file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"line {mark.line + 1}" if mark is not None else ""
        raise DefinitionError(file, place, f"not valid YAML: {exc}") from None
    return workflow_from_data(data, catalog, file)


def workflow_from_data(data: Any, catalog: Any, file: str = "<workflow>") -> Workflow:
    """Validate a parsed workflow document (a mapping) and check it against the catalog."""
    if not isinstance(data, dict):
        raise DefinitionError(file, "", "a workflow is a mapping with name and steps")
    try:
        spec = WorkflowSpec.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError(file, *_first_problem(exc, data)) from None
    workflow = Workflow(spec=spec, file=file)
    check_workflow(workflow, catalog)
    return workflow


def _first_problem(exc: ValidationError, data: Mapping[str, Any]) -> tuple[str, str]:
    """(place, problem) for the first pydantic error, with step ids instead of indexes."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = list(error["loc"])
        if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int):
            steps = data.get("steps")
            step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
            step_id = step.get("id") if isinstance(step, dict) else None
            loc[1] = f"{step_id}" if step_id else f"#{loc[1] + 1}"
        place = ".".join(str(p) for p in loc)
        message = str(error["msg"])
        if error["type"] == "extra_forbidden":
            message = "unknown key (remove it or check its spelling)"
        problems.append(f"{place}: {message}")
    first = problems[0]
    place, _, problem = first.partition(": ")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return place, problem + more


# --- checks ----------------------------------------------------------------------------


def check_workflow(workflow: Workflow, catalog: Any) -> None:
    """Every check that needs the catalog. Raises :class:`DefinitionError`."""
    spec, file = workflow.spec, workflow.file
    try:
        jsonschema.Draft202012Validator.check_schema(spec.trigger)
    except jsonschema.SchemaError as exc:
        raise DefinitionError(file, "trigger", f"not a valid JSON Schema: {exc.message}") from None
    _check_connection(workflow, catalog)
    actions: Mapping[str, ActionSpec] = catalog.actions
    seen: dict[str, StepSpec] = {}
    later = {step.id for step in spec.steps}
    for step in spec.steps:
        place = f"steps.{step.id}"
        if step.id in seen:
            raise DefinitionError(file, place, "two steps have this id; step ids must be unique")
        later.discard(step.id)
        action = actions.get(step.action)
        if action is None:
            known = ", ".join(sorted(actions))
            raise DefinitionError(
                file, f"{place}.action", f"unknown action {step.action!r} (known: {known})"
            )
        if step.for_each is None and step.concurrency != 1:
            raise DefinitionError(
                file, f"{place}.concurrency", "only a loop (for_each) runs items concurrently"
            )
        properties = action.inputs.get("properties", {})
        for name in step.inputs:
            if name not in properties:
                known = ", ".join(properties) or "none"
                raise DefinitionError(
                    file,
                    f"{place}.inputs.{name}",
                    f"{step.action} has no input {name!r} (its inputs: {known})",
                )
        for name in action.inputs.get("required", []):
            if name not in step.inputs:
                raise DefinitionError(
                    file, f"{place}.inputs.{name}", f"{step.action} requires this input"
                )
        _check_fixed_inputs(file, place, step, action)
        checker = _ReferenceChecker(workflow, actions, seen, later, step)
        if step.for_each is not None:
            checker.check(f"{place}.for_each", step.for_each, in_loop=False)
        for field, value in _strings(step.inputs):
            checker.check(f"{place}.inputs.{field}", value, in_loop=step.for_each is not None)
        seen[step.id] = step


def _check_connection(workflow: Workflow, catalog: Any) -> None:
    """``connection:`` must name a connection of connector.yaml (or default / sandbox)."""
    name = workflow.spec.connection
    settings = getattr(getattr(catalog, "connector", None), "connection", None)
    if name is None or settings is None:
        return
    known = [DEFAULT_NAME, SANDBOX_NAME, *settings.named]
    if name not in known:
        raise DefinitionError(
            workflow.file,
            "connection",
            f"unknown connection {name!r} (connections: {', '.join(known)}; "
            "named connections are declared under connection.named in connector.yaml)",
        )


def has_template(value: Any) -> bool:
    """Whether any string inside ``value`` holds a template (known only at run time)."""
    return any("<<" in text or "<%" in text for _, text in _strings(value))


def _check_fixed_inputs(file: str, place: str, step: StepSpec, action: ActionSpec) -> None:
    """Inputs without templates are known now: normalize and validate them the way the
    runtime will, so a wrong constant is refused before anything is spent. Inputs holding
    templates, and rules spanning several inputs, wait for the run."""
    fixed = {name: value for name, value in step.inputs.items() if not has_template(value)}
    if not fixed:
        return
    problems = field_problems(action, fixed)
    if not problems:
        return
    described = [
        f"{p.problem} for {step.action}" + (f" (allowed: {p.allowed})" if p.allowed else "")
        for p in problems
    ]
    more = "".join(
        f"; also {place}.inputs.{p.field}: {text}"
        for p, text in zip(problems[1:], described[1:], strict=True)
    )
    raise DefinitionError(file, f"{place}.inputs.{problems[0].field}", described[0] + more)


def output_fields(action: ActionSpec) -> set[str] | None:
    """The fields a node of this action offers later steps; None when open-ended."""
    schema = action.outputs.schema_
    fields = set(schema.get("properties", {})) | set(action.outputs.values)
    if action.response.kind in ("media", "job", "artifacts"):
        fields |= MEDIA_OUTPUTS
    if action.response.kind == "raw" or (not fields and not schema):
        return None
    if schema.get("additionalProperties") not in (None, False) and not fields:
        return None
    return fields


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string inside an inputs value, with its dotted path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _strings(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _strings(inner, f"{path}[{index}]")


# Parsing only: the runtime's sandboxed environment renders; this one never does.
_PARSER = jinja2.Environment(
    variable_start_string="<<",
    variable_end_string=">>",
    block_start_string="<%",
    block_end_string="%>",
    comment_start_string="<#",
    comment_end_string="#>",
    autoescape=False,
)

Path_ = list[str | int]


def template_references(source: str) -> list[tuple[str, Path_]]:
    """(root name, path) of every variable a template reads, e.g.
    ``<<steps.a.file>>`` -> ``("steps", ["a", "file"])``. Raises jinja2 errors."""
    if "<<" not in source and "<%" not in source:
        return []
    tree = _PARSER.parse(source)
    found: list[tuple[str, Path_]] = []
    _collect(tree, found)
    # Names a template binds itself (<% for p in trigger.list %>, <% set x = ... %>)
    # are not context references.
    local = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    if any(True for _ in tree.find_all(nodes.For)):
        local.add("loop")
    return [(root, path) for root, path in found if root not in local]


def _collect(node: nodes.Node, found: list[tuple[str, Path_]]) -> None:
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        # A method call (<<item.get('details', '')>>): the method is not a field.
        _collect(node.node.node, found)
        for child in (*node.args, *node.kwargs):
            _collect(child, found)
        return
    chain = _chain(node)
    if chain is not None:
        found.append(chain)
        # Still look inside item subscripts: <<steps.a[trigger.n]>> reads trigger too.
        inner = node
        while isinstance(inner, nodes.Getattr | nodes.Getitem):
            if isinstance(inner, nodes.Getitem) and not isinstance(inner.arg, nodes.Const):
                _collect(inner.arg, found)
            inner = inner.node
        return
    for child in node.iter_child_nodes():
        _collect(child, found)


def _chain(node: nodes.Node) -> tuple[str, Path_] | None:
    path: Path_ = []
    while True:
        if isinstance(node, nodes.Name):
            return node.name, list(reversed(path))
        if isinstance(node, nodes.Getattr):
            path.append(node.attr)
        elif isinstance(node, nodes.Getitem):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
                path.append(node.arg.value)
            else:
                path = []  # a computed subscript: only what lies before it can be checked
        else:
            return None
        node = node.node


def _whole_reference(source: str) -> tuple[str, Path_] | None:
    """The reference when a template is exactly one ``<<expression>>``."""
    text = source.strip()
    if not (text.startswith("<<") and text.endswith(">>")) or text.count("<<") != 1:
        return None
    refs = template_references(text)
    return refs[0] if len(refs) == 1 else None


@dataclass
class _ReferenceChecker:
    workflow: Workflow
    actions: Mapping[str, ActionSpec]
    earlier: Mapping[str, StepSpec]
    later: set[str]
    step: StepSpec

    def fail(self, place: str, problem: str) -> DefinitionError:
        return DefinitionError(self.workflow.file, place, problem)

    def check(self, place: str, source: str, *, in_loop: bool) -> None:
        try:
            refs = template_references(source)
        except jinja2.TemplateSyntaxError as exc:
            raise self.fail(place, f"template {source!r} does not parse: {exc.message}") from None
        for root, path in refs:
            self.check_reference(place, source, root, path, in_loop=in_loop)

    def check_reference(
        self, place: str, source: str, root: str, path: Path_, *, in_loop: bool
    ) -> None:
        spec = self.workflow.spec
        if root == "trigger":
            self.check_schema_field(place, source, "trigger", spec.trigger, path)
        elif root == "vars":
            if path and path[0] not in spec.vars:
                known = ", ".join(spec.vars) or "none declared"
                raise self.fail(place, f"{source!r}: no var {path[0]!r} (vars: {known})")
        elif root == "item":
            if not in_loop:
                raise self.fail(place, f"{source!r}: <<item>> exists only in a step with for_each")
            self.check_item(place, source, path)
        elif root == "steps":
            self.check_step_reference(place, source, path)
        else:
            raise self.fail(
                place,
                f"{source!r}: unknown name {root!r} "
                "(templates read trigger, steps, vars and, in a loop, item)",
            )

    def check_schema_field(
        self, place: str, source: str, what: str, schema: Mapping[str, Any], path: Path_
    ) -> None:
        properties = schema.get("properties")
        if not path or not isinstance(properties, Mapping) or not isinstance(path[0], str):
            return
        if path[0] not in properties:
            known = ", ".join(properties) or "none"
            raise self.fail(
                place, f"{source!r}: the {what} schema has no field {path[0]!r} (fields: {known})"
            )

    def check_step_reference(self, place: str, source: str, path: Path_) -> None:
        if not path:
            return
        target = str(path[0])
        if target == self.step.id:
            raise self.fail(place, f"{source!r}: a step cannot read its own outputs")
        if target in self.later:
            raise self.fail(
                place, f"{source!r}: step {target!r} runs later; map only from earlier steps"
            )
        earlier = self.earlier.get(target)
        if earlier is None:
            known = ", ".join(self.earlier) or "none before this step"
            raise self.fail(place, f"{source!r}: no step {target!r} (earlier steps: {known})")
        rest = path[1:]
        if earlier.for_each is not None:
            if not rest:
                return
            if not isinstance(rest[0], int):
                raise self.fail(
                    place,
                    f"{source!r}: {target!r} is a loop; its outputs are a list with one entry "
                    f"per item: loop over it (for_each: <<steps.{target}>>, then <<item.field>>) "
                    f"or pick one (<<steps.{target}[0].{rest[0]}>>)",
                )
            rest = rest[1:]
        self.check_output_field(place, source, target, earlier.action, rest)

    def check_output_field(
        self, place: str, source: str, target: str, action_id: str, rest: Path_
    ) -> None:
        if not rest or not isinstance(rest[0], str):
            return
        fields = output_fields(self.actions[action_id])
        if fields is not None and rest[0] not in fields:
            raise self.fail(
                place,
                f"{source!r}: {action_id} (step {target!r}) has no output {rest[0]!r} "
                f"(its outputs: {', '.join(sorted(fields))})",
            )

    def check_item(self, place: str, source: str, path: Path_) -> None:
        """``item.field``: checked against what the loop iterates when that is known."""
        assert self.step.for_each is not None
        whole = _whole_reference(self.step.for_each)
        if whole is None or not path:
            return
        root, over = whole
        if root == "steps" and len(over) == 1:
            target = self.earlier.get(str(over[0]))
            if target is not None and target.for_each is not None:
                self.check_output_field(place, source, target.id, target.action, path)
        elif root == "trigger" and over:
            schema: Any = self.workflow.spec.trigger
            for part in over:
                schema = (
                    schema.get("properties", {}).get(part) if isinstance(schema, dict) else None
                )
            items = schema.get("items") if isinstance(schema, dict) else None
            if isinstance(items, dict):
                self.check_schema_field(place, source, "loop item", items, path)


# --- trigger payloads ------------------------------------------------------------------


def validate_trigger(workflow: Workflow, payload: Any) -> None:
    """Check a trigger payload against the workflow's trigger schema; every problem at once."""
    validator = jsonschema.Draft202012Validator(workflow.spec.trigger)
    problems = [
        FieldProblem(
            field="trigger" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.path),
            problem=e.message,
        )
        for e in sorted(validator.iter_errors(payload), key=lambda e: list(map(str, e.path)))
    ]
    if problems:
        raise InputValidationError(f"{workflow.file} trigger", problems)


# --- schema ----------------------------------------------------------------------------

SCHEMA_FILE = "workflow.schema.json"
register_format(SCHEMA_FILE, WorkflowSpec)


def workflow_json_schema() -> dict[str, Any]:
    """The JSON Schema of workflow files, generated from :class:`WorkflowSpec` by the
    catalog's format-schema writer (same layout as the other formats)."""
    return format_schemas()[SCHEMA_FILE]


def render_workflow_schema() -> str:
    return format_schema_text(workflow_json_schema())


def write_workflow_schema() -> Path:
    """Rewrite ``schemas/workflow.schema.json`` (``python -m stability_connector.workflows``)."""
    path = find_catalog_root() / "schemas" / SCHEMA_FILE
    path.write_text(render_workflow_schema(), encoding="utf-8")
    return path
