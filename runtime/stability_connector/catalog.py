"""Find, load and check the action catalog.

The catalog is data: ``connector.yaml``, ``actions/<id>.yaml`` and
``schemas/common.yaml``. Installed, it lives in the package as ``catalog/``; in a
clone, at the repository root. Loading inlines every ``common.yaml`` reference (so a
consumer sees each input's full schema), then refuses a broken definition with a
:class:`DefinitionError` naming the file and the place: a typo in a definition
must never become a silently ignored setting or a field the API never receives.

Also here: the format schemas (``schemas/*.schema.json``) generated from the
pydantic models, and :func:`describe_action`, the summary the command line shows.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import itertools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, TypeVar

import jinja2
import yaml
from jinja2 import nodes
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from .api_facts import operations as official_operations
from .definitions import ActionSpec, ConnectorSpec, MediaLimits, OptionsSource, UiHints
from .errors import ConnectorError, DefinitionError

PACKAGE_DIR = Path(__file__).resolve().parent
COMMON_FILE = "schemas/common.yaml"
COMMON_REF = "common.yaml#/$defs/"
MEDIA_OUTPUTS_DEF = "media_outputs"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
M = TypeVar("M", bound=BaseModel)


# --- where the catalog is ------------------------------------------------------------


def find_catalog_root(package_dir: Path = PACKAGE_DIR) -> Path:
    """The packaged ``catalog/`` of an installed copy, else the repository root
    (an editable install or a clone, where ``runtime/`` sits next to the catalog)."""
    packaged = package_dir / "catalog"
    if (packaged / "connector.yaml").is_file():
        return packaged
    repo = package_dir.parent.parent
    if (repo / "connector.yaml").is_file():
        return repo
    raise DefinitionError(
        "connector.yaml",
        "",
        f"not found in {packaged} nor in {repo}; reinstall the package or run from a clone",
    )


# --- the catalog ---------------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    root: Path
    connector: ConnectorSpec
    actions: dict[str, ActionSpec]
    common: dict[str, Any] = field(default_factory=dict, repr=False)

    def action(self, action_id: str) -> ActionSpec:
        try:
            return self.actions[action_id]
        except KeyError:
            close = get_close_matches(action_id, self.actions, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            known = ", ".join(self.actions)
            raise ConnectorError(
                f"unknown action {action_id!r}.{hint} Known actions: {known}"
            ) from None

    def document(self) -> dict[str, Any]:
        """The whole catalog as one JSON document, for an engine's canvas: the
        connector, then every action (inputs fully inlined) in catalog order."""
        return {
            "format": "stability-connector/catalog",
            "connector": self.connector.model_dump(mode="json", by_alias=True),
            "actions": [
                spec.model_dump(mode="json", by_alias=True, exclude_none=True)
                for spec in self.actions.values()
            ],
        }


def load_catalog(root: Path | None = None) -> Catalog:
    """Load and check the catalog at ``root`` (default: :func:`find_catalog_root`)."""
    root = find_catalog_root() if root is None else root
    connector = _model(ConnectorSpec, _read_yaml(root, "connector.yaml"), "connector.yaml")
    _check_icon(root, connector)
    common = _read_common(root)
    actions: dict[str, ActionSpec] = {}
    for index, action_id in enumerate(connector.actions):
        place = f"actions[{index}]"
        if action_id in actions:
            raise DefinitionError("connector.yaml", place, f"{action_id!r} is listed twice")
        file = f"actions/{action_id}.yaml"
        if not (root / file).is_file():
            raise DefinitionError(
                "connector.yaml", place, f"lists {action_id!r} but {file} does not exist"
            )
        actions[action_id] = load_action(root, file, common)
    check_options_sources(actions)
    return Catalog(root=root, connector=connector, actions=actions, common=common)


@cache
def default_catalog() -> Catalog:
    """The catalog this package ships, loaded once per process."""
    return load_catalog()


def load_action(root: Path, file: str, common: dict[str, Any]) -> ActionSpec:
    """Read one action file, inline its ``common.yaml`` refs and check it."""
    raw = _read_yaml(root, file)
    if not isinstance(raw, dict):
        raise DefinitionError(file, "", "must hold a mapping (id, title, inputs, request, ...)")
    raw = inline_common_refs(raw, common, file)
    spec = _model(ActionSpec, raw, file)
    expected = Path(file).stem
    if spec.id != expected:
        raise DefinitionError(file, "id", f"is {spec.id!r} but the file is named {expected}.yaml")
    if spec.response.media is not None and spec.response.kind in ("media", "job"):
        spec = _with_media_outputs(spec, common)
    check_action(spec, file)
    return spec


# --- reading -------------------------------------------------------------------------


def _read_yaml(root: Path, file: str) -> Any:
    path = root / file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DefinitionError(file, "", f"does not exist in {root}") from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as broken:
        mark = getattr(broken, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(broken, "problem", None) or str(broken)
        raise DefinitionError(file, where, f"is not valid YAML: {problem}") from None


def _read_common(root: Path) -> dict[str, Any]:
    raw = _read_yaml(root, COMMON_FILE)
    defs = raw.get("$defs") if isinstance(raw, dict) else None
    if not isinstance(defs, dict):
        raise DefinitionError(COMMON_FILE, "$defs", "must be a mapping of shared definitions")
    try:
        Draft202012Validator.check_schema(raw)
    except SchemaError as bad:
        raise DefinitionError(COMMON_FILE, _json_path(bad.absolute_path), bad.message) from None
    for name, definition in defs.items():
        _check_vocabulary(definition, COMMON_FILE, f"$defs.{name}")
    return defs


def _model(model: type[M], raw: Any, file: str) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as invalid:
        errors = invalid.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        problem = first["msg"]
        if first["type"] == "extra_forbidden":
            problem = "unknown key (a typo?)"
        raise DefinitionError(file, _json_path(first["loc"]), problem + more) from None


def _json_path(parts: Any) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _check_icon(root: Path, connector: ConnectorSpec) -> None:
    icon = connector.icon
    if icon.startswith("data:image/"):
        return
    if icon.startswith(("/", "..")) or "://" in icon or not (root / icon).is_file():
        raise DefinitionError(
            "connector.yaml",
            "icon",
            f"{icon!r} is neither a data:image/ URI nor a file inside the catalog",
        )


# --- common.yaml references ----------------------------------------------------------

_MERGED_MAPPINGS = ("x-ui", "x-media")


def inline_common_refs(node: Any, common: Mapping[str, Any], file: str, place: str = "") -> Any:
    """A copy of ``node`` with every ``$ref: common.yaml#/$defs/<name>`` replaced by the
    definition. Keys next to the ``$ref`` override the definition's; ``x-ui`` and
    ``x-media`` merge key by key, and a null there removes a shared value."""
    if isinstance(node, list):
        return [inline_common_refs(v, common, file, f"{place}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(COMMON_REF):
        base = _common_def(ref[len(COMMON_REF) :], common, file, f"{place}.$ref")
        for key, value in node.items():
            if key == "$ref":
                continue
            value = inline_common_refs(value, common, file, f"{place}.{key}")
            if key in _MERGED_MAPPINGS and isinstance(value, dict):
                merged = {**base.get(key, {}), **value}
                base[key] = {k: v for k, v in merged.items() if v is not None}
            else:
                base[key] = value
        return base
    if isinstance(ref, str) and not ref.startswith("#"):
        raise DefinitionError(file, f"{place}.$ref", f"{ref!r}: only {COMMON_REF}<name> is allowed")
    return {
        key: inline_common_refs(value, common, file, f"{place}.{key}" if place else key)
        for key, value in node.items()
    }


def _common_def(name: str, common: Mapping[str, Any], file: str, place: str) -> dict[str, Any]:
    if name not in common:
        close = get_close_matches(name, common, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DefinitionError(file, place, f"common.yaml has no definition {name!r}{hint}")
    definition: dict[str, Any] = _resolve_internal(copy.deepcopy(common[name]), common, file, place)
    return definition


def _resolve_internal(node: Any, common: Mapping[str, Any], file: str, place: str) -> Any:
    """Inline ``#/$defs/x`` refs inside a common definition: they point into
    common.yaml, which the action's schema does not contain."""
    if isinstance(node, list):
        return [_resolve_internal(v, common, file, place) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**_common_def(ref[len("#/$defs/") :], common, file, place), **rest}
    return {k: _resolve_internal(v, common, file, place) for k, v in node.items()}


def _with_media_outputs(spec: ActionSpec, common: Mapping[str, Any]) -> ActionSpec:
    """Add the standard media outputs (file, content_type, seed, ...) to an action
    whose response is a media file; the action's own outputs come after them."""
    standard = _common_def(MEDIA_OUTPUTS_DEF, common, COMMON_FILE, f"$defs.{MEDIA_OUTPUTS_DEF}")
    own = spec.outputs.schema_
    schema = {
        "type": "object",
        **{k: v for k, v in own.items() if k not in ("properties", "required")},
        "properties": {**standard["properties"], **own.get("properties", {})},
        "required": sorted(set(standard.get("required", [])) | set(own.get("required", []))),
    }
    outputs = spec.outputs.model_copy(update={"schema_": schema})
    return spec.model_copy(update={"outputs": outputs})


# --- checks --------------------------------------------------------------------------


def check_action(spec: ActionSpec, file: str) -> None:
    """The checks a pydantic model cannot express: valid JSON Schemas, the x-ui and
    x-media vocabularies, templates that name real inputs, every required input
    sent, known operations, and a request that matches them."""
    for name, schema in (("inputs", spec.inputs), ("outputs.schema", spec.outputs.schema_)):
        problem = _schema_problem(json.dumps(schema, sort_keys=True))
        if problem is not None:
            path, message = problem
            where = _json_path([name, *path])
            raise DefinitionError(file, where, f"invalid JSON Schema: {message}")
    if spec.inputs.get("type") != "object":
        raise DefinitionError(file, "inputs.type", "must be 'object' (a form of named fields)")
    properties: dict[str, Any] = spec.inputs.get("properties", {})
    _check_vocabulary(spec.inputs, file, "inputs")
    _check_form(properties, file)
    _check_defaults(properties, file)
    for index, name in enumerate(spec.inputs.get("required", [])):
        if name not in properties:
            raise DefinitionError(file, f"inputs.required[{index}]", f"{name!r} is not an input")
    _check_templates(spec, properties, file)
    _check_operations(spec, file)


@lru_cache(maxsize=512)
def _schema_problem(schema_json: str) -> tuple[tuple[Any, ...], str] | None:
    """The metaschema check, remembered per schema: it dominates the load time and
    the same schemas are checked again whenever a process loads the catalog anew."""
    try:
        Draft202012Validator.check_schema(json.loads(schema_json))
    except SchemaError as bad:
        return tuple(bad.relative_path), bad.message
    return None


def _walk_schema(node: Any, place: str) -> Iterator[tuple[dict[str, Any], str]]:
    """Every subschema (mapping) below ``node`` with its place. Values that are data,
    not schemas (``const``, ``default``, ``examples``, ``enum``, the x- hints), are
    not entered."""
    if isinstance(node, dict):
        yield node, place
        for key, value in node.items():
            if key in ("const", "default", "examples", "enum", *_MERGED_MAPPINGS):
                continue
            yield from _walk_schema(value, f"{place}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk_schema(value, f"{place}[{index}]")


def _check_vocabulary(schema: Any, file: str, place: str) -> None:
    """``x-ui`` must be :class:`UiHints`, ``x-media`` :class:`MediaLimits`."""
    for node, where in _walk_schema(schema, place):
        for key, model in (("x-ui", UiHints), ("x-media", MediaLimits)):
            if key not in node:
                continue
            try:
                model.model_validate(node[key])
            except ValidationError as invalid:
                first = invalid.errors()[0]
                problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
                raise DefinitionError(
                    file, _json_path([f"{where}.{key}", *first["loc"]]), problem
                ) from None


def _check_form(properties: Mapping[str, Any], file: str) -> None:
    """The form's layout: unique ``x-ui.order``, and ``show_if`` naming real fields
    with values they can take."""
    orders: dict[int, str] = {}
    for name, schema in properties.items():
        ui = schema.get("x-ui", {}) if isinstance(schema, dict) else {}
        order = ui.get("order")
        if order is not None:
            if order in orders:
                raise DefinitionError(
                    file,
                    f"inputs.properties.{name}.x-ui.order",
                    f"duplicate order {order} (also {orders[order]})",
                )
            orders[order] = name
        for other, wanted in (ui.get("show_if") or {}).items():
            where = f"inputs.properties.{name}.x-ui.show_if.{other}"
            if other not in properties:
                raise DefinitionError(file, where, f"{other!r} is not an input of this action")
            allowed = option_values(properties[other])
            if allowed is None:
                continue
            for value in wanted if isinstance(wanted, list) else [wanted]:
                if value not in allowed:
                    raise DefinitionError(
                        file, where, f"{value!r} is not one of {other}'s values {allowed}"
                    )


def options_source(schema: Mapping[str, Any]) -> OptionsSource | None:
    """A field's ``x-ui.options_from`` (validated by the loader), or None."""
    ui = schema.get("x-ui")
    raw = ui.get("options_from") if isinstance(ui, Mapping) else None
    return None if raw is None else OptionsSource.model_validate(raw)


def check_options_sources(actions: Mapping[str, ActionSpec]) -> None:
    """Every ``x-ui.options_from`` sits on a form field and names an action of the
    catalog that can fill a dropdown: a JSON response, an output that is a list, no
    required inputs (it runs with none), and item keys its outputs declare."""
    for spec in actions.values():
        file = f"actions/{spec.id}.yaml"
        fields = {f"inputs.properties.{name}" for name in spec.inputs.get("properties", {})}
        for node, where in _walk_schema(spec.inputs, "inputs"):
            ui = node.get("x-ui")
            if not isinstance(ui, dict) or ui.get("options_from") is None:
                continue
            place = f"{where}.x-ui.options_from"
            if where not in fields:
                raise DefinitionError(file, place, "only a field of the form can list options")
            source = OptionsSource.model_validate(ui["options_from"])
            _check_options_source(source, actions, file, place)


def _check_options_source(
    source: OptionsSource, actions: Mapping[str, ActionSpec], file: str, place: str
) -> None:
    lister = actions.get(source.action)
    if lister is None:
        close = get_close_matches(source.action, actions, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DefinitionError(
            file, f"{place}.action", f"{source.action!r} is not an action of the catalog{hint}"
        )
    if lister.response.kind != "json":
        raise DefinitionError(
            file,
            f"{place}.action",
            f"{source.action} answers {lister.response.kind!r}, not JSON; it cannot list options",
        )
    required = lister.inputs.get("required", [])
    if required:
        raise DefinitionError(
            file,
            f"{place}.action",
            f"{source.action} needs inputs ({', '.join(required)}); a list of options must "
            "come from an action that runs without any",
        )
    outputs: dict[str, Any] = lister.outputs.schema_.get("properties", {})
    output = outputs.get(source.output)
    if output is None:
        raise DefinitionError(
            file,
            f"{place}.output",
            f"{source.action} has no output {source.output!r} "
            f"(outputs: {', '.join(outputs) or 'none'})",
        )
    if output.get("type") != "array":
        raise DefinitionError(
            file,
            f"{place}.output",
            f"{source.action}.{source.output} is {output.get('type', 'untyped')!r}, not a JSON "
            "list; options come from a list of items",
        )
    items = output.get("items", {})
    keys: dict[str, Any] = items.get("properties", {}) if isinstance(items, dict) else {}
    named = [
        ("value", source.value),
        ("label", source.label),
        *((f"filter.{k}", k) for k in source.filter),
        *((f"exclude.{k}", k) for k in source.exclude),
    ]
    for what, key in named:
        if key is not None and keys and key not in keys:
            raise DefinitionError(
                file,
                f"{place}.{what}",
                f"the items of {source.action}.{source.output} have no key {key!r} "
                f"(keys: {', '.join(keys)})",
            )
    for kind, matches in (("filter", source.filter), ("exclude", source.exclude)):
        for key, wanted in matches.items():
            if isinstance(wanted, str | list):
                continue
            try:
                re.compile(wanted.pattern)
            except re.error as broken:
                raise DefinitionError(
                    file, f"{place}.{kind}.{key}.pattern", f"is not a valid pattern: {broken}"
                ) from None


def _check_defaults(properties: Mapping[str, Any], file: str) -> None:
    """A default the field itself would refuse is a definition bug."""
    for name, schema in properties.items():
        if isinstance(schema, dict) and "default" in schema:
            plain = {k: v for k, v in schema.items() if k != "default"}
            if not Draft202012Validator(plain).is_valid(schema["default"]):
                raise DefinitionError(
                    file,
                    f"inputs.properties.{name}.default",
                    f"{schema['default']!r} is not a value the field accepts",
                )


def option_values(schema: Mapping[str, Any]) -> list[Any] | None:
    """The values a dropdown offers (``oneOf``/``anyOf`` consts, or ``enum``)."""
    options = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(options, list) and options and all("const" in o for o in options):
        return [o["const"] for o in options]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


# --- templates -----------------------------------------------------------------------

_PARSER = jinja2.Environment(
    block_start_string="<%",
    block_end_string="%>",
    variable_start_string="<<",
    variable_end_string=">>",
    comment_start_string="<#",
    comment_end_string="#>",
    autoescape=False,
)


def template_strings(value: Any, place: str) -> Iterator[tuple[str, str]]:
    """Every string below ``value`` with its place (templates may sit inside JSON)."""
    if isinstance(value, str):
        yield value, place
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from template_strings(sub, f"{place}.{key}")
    elif isinstance(value, list):
        for index, sub in enumerate(value):
            yield from template_strings(sub, f"{place}[{index}]")


def names_used(template: str, variable: str = "inputs") -> set[str]:
    """The fields of ``variable`` a template reads: ``inputs.x``, ``inputs['x']``,
    ``inputs.get('x')`` and ``'x' in inputs``. Raises ``TemplateSyntaxError``."""
    if "<<" not in template and "<%" not in template:
        return set()
    tree = _PARSER.parse(template)
    used: set[str] = set()

    def is_var(node: nodes.Node) -> bool:
        return isinstance(node, nodes.Name) and node.name == variable

    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Call, nodes.Compare)):
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
            if is_var(node.node.node) and node.node.attr == "get" and node.args:
                arg = node.args[0]
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    used.add(arg.value)
        elif isinstance(node, nodes.Getattr) and is_var(node.node) and node.attr != "get":
            used.add(node.attr)
        elif isinstance(node, nodes.Getitem) and is_var(node.node):
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                used.add(node.arg.value)
        elif isinstance(node, nodes.Compare) and isinstance(node.expr, nodes.Const):
            for operand in node.ops:
                if operand.op in ("in", "notin") and is_var(operand.expr):
                    used.add(str(node.expr.value))
    return used


def _check_templates(spec: ActionSpec, properties: Mapping[str, Any], file: str) -> None:
    request = spec.request.model_dump(exclude={"method", "encoding", "generic"})
    sources: list[tuple[Any, str]] = [
        (request, "request"),
        (spec.outputs.values, "outputs.values"),
        ([h.model_dump() for h in spec.response.hooks], "response.hooks"),
    ]
    if isinstance(spec.credits, str):
        sources.append((spec.credits, "credits"))
    sent: set[str] = set()
    for value, root in sources:
        for text, place in template_strings(value, root):
            try:
                used = names_used(text)
            except jinja2.TemplateSyntaxError as broken:
                raise DefinitionError(
                    file, place, f"template {text!r} does not parse: {broken.message}"
                ) from None
            unknown = sorted(used - set(properties))
            if unknown:
                raise DefinitionError(
                    file,
                    place,
                    f"names inputs.{unknown[0]}, which is not an input "
                    f"(inputs: {', '.join(properties) or 'none'})",
                )
            if root == "request":
                sent |= used
    for name in spec.inputs.get("required", []):
        if name in properties and name not in sent:
            raise DefinitionError(
                file, f"inputs.properties.{name}", "is required but the request never sends it"
            )


# --- operations ----------------------------------------------------------------------

_TEMPLATE_PART = re.compile(r"<<.*?>>|<%.*?%>", re.S)


def _path_pattern(path: str) -> re.Pattern[str]:
    """A request path as a pattern: a template part may stand for any text."""
    parts = _TEMPLATE_PART.split(path)
    return re.compile(".+".join(re.escape(p) for p in parts) + r"\Z", re.S)


def path_matches(request_path: str, official_path: str) -> bool:
    """Could the (templated) request path be this official path? ``{param}`` in the
    official path stands for one segment."""
    sample = re.sub(r"\{[^}/]+\}", "x", official_path)
    if _path_pattern(request_path).match(sample):
        return True
    # A template may render to the parameter itself (``/v1/generation/<<engine>>/...``).
    pattern = re.compile(
        "".join(
            "[^/]+" if re.fullmatch(r"\{[^}/]+\}", part) else re.escape(part)
            for part in re.split(r"(\{[^}/]+\})", official_path)
        )
        + r"\Z"
    )
    filled = _TEMPLATE_PART.sub("x", request_path)
    return bool(pattern.match(filled))


def _check_operations(spec: ActionSpec, file: str) -> None:
    known = official_operations()
    for index, key in enumerate(spec.operations):
        if key not in known:
            close = get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise DefinitionError(
                file, f"operations[{index}]", f"{key!r} is not an operation of the API{hint}"
            )
    if spec.request.generic:
        return
    method = spec.request.method
    if not any(
        known[key]["method"] == method and path_matches(spec.request.path, known[key]["path"])
        for key in spec.operations
    ):
        raise DefinitionError(
            file,
            "request.path",
            f"{method} {spec.request.path} matches none of the operations "
            f"{', '.join(spec.operations) or '(none listed)'}",
        )


# --- format schemas ------------------------------------------------------------------

_FORMATS: dict[str, type[BaseModel]] = {
    "connector.schema.json": ConnectorSpec,
    "action.schema.json": ActionSpec,
}


_FORMAT_MODULES = ("stability_connector.workflows.spec",)


def register_format(file_name: str, model: type[BaseModel]) -> None:
    """Add a file format whose JSON Schema ``write_format_schemas`` generates
    (the workflow format registers itself this way)."""
    _FORMATS[file_name] = model


_VOCABULARIES: dict[str, tuple[type[BaseModel], ...]] = {
    "action.schema.json": (UiHints, MediaLimits),
}
"""Models of the ``x-`` keys inside a format's embedded JSON Schemas (``inputs`` holds
``x-ui`` and ``x-media``), added to the format's ``$defs`` so other languages can
validate them too."""


def _with_vocabularies(schema: dict[str, Any], models: tuple[type[BaseModel], ...]) -> None:
    _, defs = models_json_schema(
        [(m, "validation") for m in models], by_alias=True, ref_template="#/$defs/{model}"
    )
    merged = {**schema.get("$defs", {}), **defs.get("$defs", {})}
    schema["$defs"] = dict(sorted(merged.items()))


def format_schemas() -> dict[str, dict[str, Any]]:
    """``{file name: JSON Schema}`` of every registered file format."""
    schemas: dict[str, dict[str, Any]] = {}
    for file_name, model in sorted(_FORMATS.items()):
        schema = model.model_json_schema(by_alias=True)
        if file_name in _VOCABULARIES:
            _with_vocabularies(schema, _VOCABULARIES[file_name])
        schemas[file_name] = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": file_name,
            **schema,
        }
    return schemas


def format_schema_text(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_format_schemas(directory: Path) -> list[Path]:
    """Write every registered format's schema into ``directory``; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, schema in format_schemas().items():
        path = directory / file_name
        path.write_text(format_schema_text(schema), encoding="utf-8")
        written.append(path)
    return written


# --- summaries for the command line and the docs -------------------------------------


def _type_name(schema: Mapping[str, Any]) -> str:
    if schema.get("x-media"):
        return f"{schema['x-media']['kind']} file"
    if option_values(schema) is not None:
        return "options"
    kind = schema.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


def _span(low: Any, high: Any, unit: str = "") -> str:
    """``0 – 35``, ``at least 128``, ``up to 10000 characters``."""
    if low is not None and high is not None:
        text = f"{_num(low)} – {_num(high)}"
    elif low is not None:
        text = f"at least {_num(low)}"
    else:
        text = f"up to {_num(high)}"
    if unit and (high if high is not None else low) == 1:
        unit = unit.removesuffix("s")  # "at least 1 item"
    return f"{text} {unit}" if unit else text


def range_text(schema: Mapping[str, Any]) -> str | None:
    """What a number, text or list field accepts, in words; None when anything goes."""
    low, high = schema.get("minimum"), schema.get("maximum")
    step = schema.get("multipleOf")
    if low is not None or high is not None:
        text = _span(low, high)
        return f"{text}, a multiple of {_num(step)}" if step else text
    if step:
        return f"a multiple of {_num(step)}"
    if schema.get("maxLength") is not None:
        return _span(schema.get("minLength") or None, schema["maxLength"], "characters")
    if schema.get("minItems") is not None or schema.get("maxItems") is not None:
        return _span(schema.get("minItems"), schema.get("maxItems"), "items")
    return None


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def media_text(limits: Mapping[str, Any]) -> str:
    """Human words for an ``x-media`` block."""
    parts = [", ".join(f.upper() for f in limits.get("formats", []))]
    if limits.get("min_width") is not None and limits.get("max_width") is not None:
        parts.append(f"width {limits['min_width']}–{limits['max_width']} px")
    elif limits.get("min_width") is not None:
        parts.append(f"sides at least {limits['min_width']} px")
    if limits.get("max_height") is not None:
        parts.append(f"height {limits.get('min_height', 0)}–{limits['max_height']} px")
    if limits.get("min_pixels") is not None:
        parts.append(f"at least {limits['min_pixels']:,} pixels")
    if limits.get("max_pixels") is not None:
        parts.append(f"at most {limits['max_pixels']:,} pixels")
    if limits.get("max_aspect_ratio") is not None:
        ratio = _num(limits["max_aspect_ratio"])
        parts.append(f"aspect ratio between 1:{ratio} and {ratio}:1")
    if limits.get("min_seconds") is not None:
        parts.append(f"{_num(limits['min_seconds'])}–{_num(limits.get('max_seconds'))} seconds")
    if limits.get("sizes"):
        parts.append("sizes " + ", ".join(limits["sizes"]))
    return "; ".join(p for p in parts if p)


def describe_field(name: str, schema: Mapping[str, Any], required: bool) -> dict[str, Any]:
    ui = schema.get("x-ui", {})
    options = schema.get("oneOf") or schema.get("anyOf") or []
    described: dict[str, Any] = {
        "name": name,
        "title": schema.get("title", name),
        "type": _type_name(schema),
        "required": required,
        "description": schema.get("description"),
        "default": schema.get("default"),
        "options": [
            {"label": o.get("title", str(o["const"])), "value": o["const"]}
            for o in options
            if isinstance(o, dict) and "const" in o
        ]
        or [{"label": str(v), "value": v} for v in schema.get("enum", [])],
        "range": range_text(schema),
        "media": media_text(schema["x-media"]) if schema.get("x-media") else None,
        "help": ui.get("help"),
        "widget": ui.get("widget"),
        "order": ui.get("order"),
        "advanced": ui.get("advanced", False),
        "show_if": ui.get("show_if"),
        "options_from": ui.get("options_from"),
    }
    return described


def ordered_fields(spec: ActionSpec) -> list[tuple[str, dict[str, Any]]]:
    """Inputs in form order (``x-ui.order``, then as written)."""
    properties: dict[str, Any] = spec.inputs.get("properties", {})
    positions = {name: i for i, name in enumerate(properties)}
    return sorted(
        properties.items(),
        key=lambda item: (item[1].get("x-ui", {}).get("order", 10**6), positions[item[0]]),
    )


def credit_range(spec: ActionSpec) -> tuple[float, float] | None:
    """The lowest and highest price of an action whose price is a template, found by
    pricing every combination of the options the template reads (None when it reads
    a free-form input or prices nothing)."""
    if not isinstance(spec.credits, str):
        return None
    from .templates import definition_scope, render_definition

    properties: dict[str, Any] = spec.inputs.get("properties", {})
    names = sorted(names_used(spec.credits))
    choices: list[list[Any]] = []
    for name in names:
        values = option_values(properties.get(name, {}))
        if values is None:
            return None
        choices.append([None, *values])  # None: left empty, the default applies
    prices = set()
    for combination in itertools.product(*choices):
        scope = definition_scope(dict(zip(names, combination, strict=True)))
        try:
            price = render_definition("credits", spec.credits, scope)
        except ConnectorError:
            return None
        if not isinstance(price, int | float):
            return None
        prices.add(float(price))
    return (min(prices), max(prices)) if prices else None


def price_range(spec: ActionSpec) -> tuple[float, float] | None:
    """The lowest and highest price of a run (None when the action does not say)."""
    if isinstance(spec.credits, int | float):
        return float(spec.credits), float(spec.credits)
    return credit_range(spec)


def credits_summary(spec: ActionSpec) -> str:
    """A price people can read: ``free``, ``8 credits``, ``3–8 credits``, ``depends on
    the inputs``, or ``not stated`` (see the action's credits note)."""
    span = price_range(spec)
    if span is None:
        return "not stated" if spec.credits is None else "depends on the inputs"
    low, high = span
    if high == 0:
        return "free"
    return f"{low:g} credits" if low == high else f"{low:g}–{high:g} credits"


def describe_action(spec: ActionSpec, *, brief: bool = False) -> dict[str, Any]:
    """What the command line shows: ``brief`` gives the catalog summary (id, title,
    group, credits, status); otherwise also fields (options label → value, defaults,
    ranges), outputs and the first example."""
    summary: dict[str, Any] = {
        "id": spec.id,
        "title": spec.title,
        "group": spec.group,
        "status": spec.status,
        "credits": credits_summary(spec),
        # For engines that compare or sum prices; null when the price is not known ahead.
        "credits_min": None if (span := price_range(spec)) is None else span[0],
        "credits_max": None if span is None else span[1],
    }
    if brief:
        return summary
    required = set(spec.inputs.get("required", []))
    outputs: dict[str, Any] = spec.outputs.schema_.get("properties", {})
    example = spec.examples[0]
    return {
        **summary,
        "description": spec.description,
        "credits_note": spec.credits_note,
        "credits_template": spec.credits if isinstance(spec.credits, str) else None,
        "operations": list(spec.operations),
        "fields": [describe_field(n, s, n in required) for n, s in ordered_fields(spec)],
        "outputs": {name: s.get("title", name) for name, s in outputs.items()},
        "example": {
            "title": example.title,
            "context": example.context,
            "inputs": example.inputs,
        },
        "errors": dict(spec.errors),
    }


def main() -> int:
    """``python -m stability_connector.catalog``: rewrite the format schemas in the
    catalog's ``schemas/``, then check the catalog."""
    # Formats defined elsewhere register themselves when their module loads.
    for module in _FORMAT_MODULES:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    written = write_format_schemas(find_catalog_root() / "schemas")
    print(f"wrote {', '.join(p.name for p in written)}")
    try:
        catalog = load_catalog()
    except DefinitionError as broken:
        print(f"catalog is broken: {broken}")
        return 1
    print(f"catalog OK: {len(catalog.actions)} actions")
    return 0


if __name__ == "__main__":
    # Run the imported module's main: formats register into its registry, not this copy's.
    from stability_connector.catalog import main as imported_main

    raise SystemExit(imported_main())
