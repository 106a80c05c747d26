"""Node inputs: normalize what people type, then validate it against the action's schema.

Normalizing makes a form forgiving without guessing: an option may be given by its
value or its label (labels case-insensitively, "16:9 (landscape)" → ``16:9``), a
numeric string becomes a number where the schema wants one, "true"/"false" a boolean,
a JSON string an array or object, and an empty optional value counts as absent.

Validating uses the action's JSON Schema (``Draft202012Validator``) and reports every
problem at once, each as a :class:`FieldProblem` written for people: the field path,
what is wrong, and what would be accepted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from .definitions import ActionSpec
from .errors import FieldProblem, InputValidationError

MEDIA_PLACEHOLDER = "<media>"
"""What a checked media input looks like to the schema (its own limits are checked by media.py)."""

_INT = re.compile(r"^[+-]?\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# --- reading schemas -----------------------------------------------------------------


def options(schema: Mapping[str, Any]) -> list[tuple[Any, str]] | None:
    """A dropdown's options as (value, label), from ``oneOf [{const, title}]`` or ``enum``."""
    one_of = schema.get("oneOf") or schema.get("anyOf")
    if isinstance(one_of, list) and one_of and all("const" in o for o in one_of):
        return [(o["const"], str(o.get("title", o["const"]))) for o in one_of]
    enum = schema.get("enum")
    if isinstance(enum, list):
        titles = schema.get("x-option-titles") or [str(v) for v in enum]
        return list(zip(enum, titles, strict=True))
    return None


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {str(k) for k in kind}
    return set()


def is_media(schema: Mapping[str, Any] | None) -> bool:
    return bool(schema) and "x-media" in schema  # type: ignore[operator]


def media_fields(spec: ActionSpec) -> dict[str, dict[str, Any]]:
    """The inputs that take a file, with their schemas."""
    props: dict[str, dict[str, Any]] = spec.inputs.get("properties", {})
    return {name: prop for name, prop in props.items() if is_media(prop)}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def allowed_text(schema: Mapping[str, Any]) -> str | None:
    """What a field accepts, for people: its options' labels, or its range."""
    opts = options(schema)
    if opts is not None:
        return ", ".join(label for _, label in opts)
    low = schema.get("minimum")
    high = schema.get("maximum")
    ex_low = schema.get("exclusiveMinimum")
    ex_high = schema.get("exclusiveMaximum")
    if low is not None and high is not None:
        return f"{_number_text(low)} to {_number_text(high)}"
    parts = []
    if low is not None:
        parts.append(f"at least {_number_text(low)}")
    if ex_low is not None:
        parts.append(f"more than {_number_text(ex_low)}")
    if high is not None:
        parts.append(f"at most {_number_text(high)}")
    if ex_high is not None:
        parts.append(f"less than {_number_text(ex_high)}")
    return " and ".join(parts) or None


# --- normalizing ---------------------------------------------------------------------


def normalize(spec: ActionSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """Inputs as the schema wants them; absent optional values are left out."""
    return _normalize_object(values, spec.inputs)


def _absent(value: Any, required: bool) -> bool:
    return value is None or (not required and isinstance(value, str) and value.strip() == "")


def _normalize_object(values: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    props: Mapping[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", []))
    out: dict[str, Any] = {}
    for name, value in values.items():
        if _absent(value, name in required):
            continue
        prop = props.get(name)
        out[name] = value if prop is None or is_media(prop) else _normalize(value, prop)
    return out


def _normalize(value: Any, schema: Mapping[str, Any]) -> Any:
    opts = options(schema)
    if opts is not None:
        return _option_value(value, opts)
    types = _types(schema)
    if types == {"string"}:
        return _as_text(value, schema)
    if isinstance(value, str) and "string" not in types:
        value = _from_text(value.strip(), types)
    if isinstance(value, float) and "integer" in types and value.is_integer():
        value = int(value)
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_normalize(v, schema["items"]) for v in value]
    if isinstance(value, Mapping) and "properties" in schema:
        return _normalize_object(value, schema)
    return value


def _as_text(value: Any, schema: Mapping[str, Any]) -> Any:
    """A whole number where text is wanted (a seed mapped from an earlier step's
    integer output) becomes its digits; text with a ``pattern`` (an identifier, never
    prose) loses surrounding blanks, and digits their leading zeros when the pattern
    asks for the plain form."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    pattern = schema.get("pattern")
    if not isinstance(value, str) or not isinstance(pattern, str):
        return value
    text = value.strip()
    candidates = [text, str(int(text))] if text.isdigit() else [text]
    return next((c for c in candidates if re.search(pattern, c)), value)


def _option_value(value: Any, opts: Sequence[tuple[Any, str]]) -> Any:
    for const, _ in opts:
        if value == const and type(value) is type(const):
            return const
    text = str(value).strip().casefold()
    for const, label in opts:
        if label.casefold() == text:
            return const
    for const, _ in opts:
        if str(const).casefold() == text:
            return const
    return value


def _from_text(text: str, types: set[str]) -> Any:
    if "integer" in types and _INT.match(text):
        return int(text)
    if ("number" in types or "integer" in types) and _NUMBER.match(text):
        number = float(text)
        if math.isfinite(number):
            return int(number) if number.is_integer() and _INT.match(text) else number
    if "boolean" in types:
        if text.casefold() in _TRUE:
            return True
        if text.casefold() in _FALSE:
            return False
    if types & {"array", "object"} and text[:1] in "[{":
        try:
            parsed = json.loads(text)
        except ValueError:
            return text
        if isinstance(parsed, list) and "array" in types:
            return parsed
        if isinstance(parsed, dict) and "object" in types:
            return parsed
    return text


# --- validating ----------------------------------------------------------------------

_VALIDATORS: dict[int, tuple[Mapping[str, Any], Any, Draft202012Validator]] = {}


def _validator(schema: Mapping[str, Any]) -> tuple[Any, Draft202012Validator]:
    """The schema as validated (dropdowns as enums) and its validator, made once."""
    # Keyed by the schema object, which the entry keeps alive (ids are never reused).
    entry = _VALIDATORS.get(id(schema))
    if entry is None or entry[0] is not schema:
        checked = _as_enums(schema)
        entry = (schema, checked, Draft202012Validator(checked))
        _VALIDATORS[id(schema)] = entry
    return entry[1], entry[2]


def _as_enums(node: Any) -> Any:
    """The schema with each dropdown's ``oneOf [{const, title}]`` as an ``enum`` (the same
    rule when the values differ, and far cheaper: oneOf builds an error per other
    option); the labels stay under ``x-option-titles`` for the messages."""
    if isinstance(node, list):
        return [_as_enums(v) for v in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _as_enums(v) for k, v in node.items()}
    one_of = node.get("oneOf")
    if (
        isinstance(one_of, list)
        and one_of
        and all(
            isinstance(o, Mapping) and set(o) <= {"const", "title", "description"} for o in one_of
        )
    ):
        consts = [o["const"] for o in one_of]
        if len({json.dumps(c, sort_keys=True) for c in consts}) == len(consts):
            del out["oneOf"]
            out["enum"] = consts
            out["x-option-titles"] = [str(o.get("title", o["const"])) for o in one_of]
    return out


def problems(spec: ActionSpec, values: Mapping[str, Any]) -> list[FieldProblem]:
    """Every problem with ``values`` (media inputs already replaced by their checks)."""
    media = media_fields(spec)
    instance = {k: MEDIA_PLACEHOLDER if k in media else v for k, v in values.items()}
    return _problems_of(spec.inputs, instance)


def _problems_of(
    schema: Mapping[str, Any], value: Any, within: str | None = None
) -> list[FieldProblem]:
    """One problem per field (the most basic one, missing or wrong type, wins) of
    ``value`` against ``schema``; ``within``: the field ``value`` is, for the paths."""
    fast_schema, validator = _validator(schema)
    if _surely_valid(fast_schema, value):
        return []
    found: dict[str, tuple[int, FieldProblem]] = {}
    for error in validator.iter_errors(value):
        for rank, problem in _explain(error, schema):
            if within is not None:
                inner = problem.field
                field = (
                    within
                    if inner == "inputs"
                    else within + ("" if inner[:1] == "[" else ".") + inner
                )
                problem = FieldProblem(field, problem.problem, problem.allowed)
            if problem.field not in found or rank < found[problem.field][0]:
                found[problem.field] = (rank, problem)
    return [problem for _, problem in found.values()]


def field_problems(spec: ActionSpec, values: Mapping[str, Any]) -> list[FieldProblem]:
    """Problems of some inputs taken one by one, each normalized and checked against its
    own schema in the action's inputs (media inputs are left to the media checks).

    For values known before a run while others are not (a workflow's fixed inputs): rules
    that span fields (``required``, ``if/then``) need every value and are left to
    :func:`problems` at run time."""
    props: Mapping[str, Any] = spec.inputs.get("properties", {})
    media = media_fields(spec)
    found: list[FieldProblem] = []
    for name, value in normalize(spec, values).items():
        prop = props.get(name)
        if isinstance(prop, Mapping) and name not in media:
            found += _problems_of(prop, value, within=name)
    return found


# --- a fast path for valid inputs ------------------------------------------------------------
# jsonschema spends most of its time building sub-validators; most inputs are valid and
# most action schemas use a handful of keywords. For those, this check says "valid" the
# way jsonschema would; anything it does not know (or any doubt) goes to jsonschema,
# which then gives the full list of problems.

_ANNOTATIONS = {
    "title", "description", "default", "examples", "$comment", "$schema", "$id", "format",
    "contentMediaType", "contentEncoding", "readOnly", "writeOnly", "deprecated",
}  # fmt: skip
_JSON_TYPES: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def _surely_valid(schema: Any, value: Any, depth: int = 0) -> bool:
    if not isinstance(schema, Mapping) or depth > 8:
        return False
    for key, rule in schema.items():
        if key in _ANNOTATIONS or key.startswith("x-"):
            continue
        if not _keyword_holds(key, rule, schema, value, depth):
            return False
    return True


def _keyword_holds(key: str, rule: Any, schema: Mapping[str, Any], value: Any, depth: int) -> bool:
    if key == "type":
        kinds = [rule] if isinstance(rule, str) else rule
        return any(_JSON_TYPES[k](value) for k in kinds if k in _JSON_TYPES)
    if key == "enum":
        return any(_same(value, option) for option in rule)
    if key == "const":
        return _same(value, rule)
    if key in ("pattern", "minLength", "maxLength"):
        if not isinstance(value, str):
            return True  # only about strings
        if key == "pattern":
            return re.search(rule, value) is not None
        # jsonschema counts code points, as len() does.
        return bool(len(value) >= rule if key == "minLength" else len(value) <= rule)
    if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
        if not isinstance(value, int | float) or isinstance(value, bool):
            return True  # only about numbers
        if key == "multipleOf":
            return isinstance(value, int) and isinstance(rule, int) and value % rule == 0
        if key == "minimum":
            return bool(value >= rule)
        if key == "maximum":
            return bool(value <= rule)
        return bool(value > rule) if key == "exclusiveMinimum" else bool(value < rule)
    if key in ("required", "properties", "additionalProperties"):
        if not isinstance(value, dict):
            return True  # only about objects
        if key == "required":
            return all(name in value for name in rule)
        if key == "properties":
            return all(
                _surely_valid(rule[name], v, depth + 1) for name, v in value.items() if name in rule
            )
        extra = [v for name, v in value.items() if name not in schema.get("properties", {})]
        if rule is False:
            return not extra
        return all(_surely_valid(rule, v, depth + 1) for v in extra)
    if key in ("items", "minItems", "maxItems"):
        if not isinstance(value, list):
            return True  # only about arrays
        if key == "items":
            return all(_surely_valid(rule, v, depth + 1) for v in value)
        return bool(len(value) >= rule if key == "minItems" else len(value) <= rule)
    return False  # a keyword this check does not know: jsonschema decides


def _same(a: Any, b: Any) -> bool:
    """JSON equality as jsonschema sees it: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and bool(a == b)


def validate(
    spec: ActionSpec, values: Mapping[str, Any], extra: Iterable[FieldProblem] = ()
) -> None:
    """Raise :class:`InputValidationError` listing every problem, ``extra`` included."""
    found = [*extra, *problems(spec, values)]
    seen: set[str] = set()
    unique = []
    for problem in found:
        if problem.field not in seen:
            seen.add(problem.field)
            unique.append(problem)
    if unique:
        raise InputValidationError(spec.id, unique)


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "inputs"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


_TYPE_WORDS = {
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "an object",
    "null": "empty",
}


def _schema_at(root: Mapping[str, Any], path: Iterable[Any]) -> Any:
    node: Any = root
    for part in path:
        node = node[part]
    return node


def _condition(root: Mapping[str, Any], schema_path: Sequence[Any]) -> str | None:
    """For a failure under ``then``: the ``if`` it depends on, in words."""
    parts = list(schema_path)
    if "then" not in parts:
        return None
    at = len(parts) - 1 - parts[::-1].index("then")
    condition = _schema_at(root, parts[:at]).get("if", {})
    props: Mapping[str, Any] = condition.get("properties", {})
    said = []
    for name, prop in props.items():
        if "const" in prop:
            said.append(f"{name} is {prop['const']!r}")
        elif "enum" in prop:
            said.append(f"{name} is one of {', '.join(map(repr, prop['enum']))}")
    for name in condition.get("required", []):
        if not {"const", "enum"} & set(props.get(name, {})):
            said.append(f"{name} is given")
    return " and ".join(said) or None


_DIGIT_PATTERN = re.compile(r"^[\^$()|\[\]{}0-9,?+*\\d-]+$")


def _pattern_problem(value: Any, pattern: str) -> str:
    if _DIGIT_PATTERN.match(pattern):  # the pattern accepts whole numbers only
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return f"{_show(value)} is out of range"
        return f"{_show(value)} is not a whole number"
    return f"{_show(value)} is not in the accepted form"


def _hint(schema: Mapping[str, Any]) -> str | None:
    """What a pattern accepts, in the schema's words: the last sentence of its description."""
    text = " ".join(str(schema.get("description") or "").split())
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    return sentences[-1].rstrip(".") if sentences else None


def _all_require(branches: Any) -> bool:
    """Whether each branch of an anyOf / oneOf names fields that must be given."""
    return isinstance(branches, list) and all(
        isinstance(b, Mapping) and b.get("required") for b in branches
    )


def _explain(error: ValidationError, root: Mapping[str, Any]) -> list[tuple[int, FieldProblem]]:
    where = list(error.absolute_path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    kind = error.validator
    value = error.instance
    rule: Any = error.validator_value
    field = _path(where)

    if kind == "required":
        present = value if isinstance(value, Mapping) else {}
        missing = [n for n in rule if n not in present]
        condition = _condition(root, list(error.absolute_schema_path))
        problem = f"required when {condition}" if condition else "is required"
        return [(0, FieldProblem(_path([*where, n]), problem)) for n in missing]
    if kind == "dependentRequired":
        present = value if isinstance(value, Mapping) else {}
        out = []
        for trigger, needed in rule.items():
            if trigger in present:
                for n in needed:
                    if n not in present:
                        text = f"required when {trigger} is given"
                        out.append((0, FieldProblem(_path([*where, n]), text)))
        return out
    if kind == "additionalProperties":
        props = schema.get("properties", {})
        extra = [n for n in (value if isinstance(value, Mapping) else {}) if n not in props]
        known = ", ".join(props) or None
        return [
            (0, FieldProblem(_path([*where, n]), "is not an input of this action", known))
            for n in extra
        ]
    if kind == "type":
        wanted = rule
        words = " or ".join(
            _TYPE_WORDS.get(t, t) for t in ([wanted] if isinstance(wanted, str) else wanted)
        )
        return [(1, FieldProblem(field, f"{_show(value)} is not {words}"))]
    if kind in {"oneOf", "anyOf", "enum", "const"} and options(schema) is not None:
        problem = f"{_show(value)} is not one of the options"
        return [(2, FieldProblem(field, problem, allowed_text(schema)))]
    if kind in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return [(2, FieldProblem(field, f"{_show(value)} is out of range", allowed_text(schema)))]
    if kind == "minLength":
        if rule == 1:
            return [(2, FieldProblem(field, "must not be empty"))]
        return [(2, FieldProblem(field, f"is shorter than {rule} characters"))]
    if kind == "maxLength":
        size = len(value) if isinstance(value, str) else "?"
        problem = f"is longer than {rule} characters (it has {size})"
        return [(2, FieldProblem(field, problem))]
    if kind == "multipleOf":
        step = _number_text(rule)
        return [(2, FieldProblem(field, f"{_show(value)} is not a multiple of {step}"))]
    if kind == "minItems":
        return [(2, FieldProblem(field, f"needs at least {rule} items"))]
    if kind == "maxItems":
        return [(2, FieldProblem(field, f"takes at most {rule} items"))]
    if kind == "pattern":
        return [(2, FieldProblem(field, _pattern_problem(value, str(rule)), _hint(schema)))]
    if kind in {"anyOf", "oneOf"} and _all_require(rule):
        names = list(dict.fromkeys(n for branch in rule for n in branch["required"]))
        limits = sorted(
            {
                limit
                for branch in rule
                for prop in (branch.get("properties") or {}).values()
                if (limit := allowed_text(prop))
            }
        )
        want = "at least one" if kind == "anyOf" else "exactly one"
        return [
            (3, FieldProblem(", ".join(names), f"give {want} of these", "; ".join(limits) or None))
        ]
    if kind == "not" and isinstance(rule, Mapping) and set(rule) == {"required"}:
        names = list(rule["required"])
        return [(3, FieldProblem(", ".join(names), "cannot be given together; give only one"))]
    if kind == "not":
        return [(3, FieldProblem(field, f"{_show(value)} is not allowed here"))]
    return [(3, FieldProblem(field, error.message))]
