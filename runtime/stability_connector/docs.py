"""Generate the action pages (``docs/actions/<id>.md``) and the catalog index from the
definitions, so the docs say exactly what the catalog does and cannot drift.

``python -m stability_connector.docs [OUT_DIR]`` rewrites them (default: the
repository's ``docs/actions``); a test fails when a committed page is stale.
The page templates are packaged in ``docs_templates/``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import jinja2

from .api_facts import operations
from .catalog import (
    Catalog,
    credits_summary,
    describe_field,
    load_catalog,
    names_used,
    ordered_fields,
    template_strings,
)
from .definitions import ActionSpec, Group
from .errors import AuthenticationError, PaymentRequiredError

TEMPLATES = Path(__file__).resolve().parent / "docs_templates"

# Legacy operations of the API description that are not actions, and the current
# actions that replace them (the index page says so; a test keeps this complete).
REPLACED_BY: dict[str, list[str]] = {
    "POST /v2alpha/generation/stable-image/inpaint": ["inpaint", "search_and_replace"],
    "POST /v2alpha/generation/stable-image/upscale": ["upscale_creative"],
    "GET /v2alpha/generation/stable-image/upscale/result/{id}": ["fetch_result"],
}
REPLACED_WHY: dict[str, str] = {
    "POST /v2alpha/generation/stable-image/inpaint": "The v2alpha inpaint's 'mask' mode is "
    "Inpaint, its 'search' mode is Search and Replace, both on the current v2beta API.",
    "POST /v2alpha/generation/stable-image/upscale": "The v2alpha creative upscale became "
    "the v2beta Creative Upscale (same fields, current models).",
    "GET /v2alpha/generation/stable-image/upscale/result/{id}": "Creative upscale results are "
    "fetched by the action itself, or later by Fetch result.",
}

_STATUS = {
    "current": "current",
    "limited": "limited availability",
    "legacy": "legacy (withdrawn from the current API description)",
}
_CONTENT_TYPES = {"image": "image/png", "audio": "audio/mpeg", "model": "model/gltf-binary",
                  "video": "video/mp4"}  # fmt: skip
_EXTENSIONS = {"image": "png", "audio": "mp3", "model": "glb", "video": "mp4"}


# --- rendering helpers ---------------------------------------------------------------


def _cell(value: Any) -> str:
    """Text safe inside a Markdown table cell."""
    if value is None:
        return ""
    return " ".join(str(value).split()).replace("|", "\\|")


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _code(value: Any) -> str:
    return f"`{value}`"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters.update(cell=_cell, pretty=_pretty, code=_code)
    return env


def _number(value: float) -> str:
    return f"{value:g}"


def credits_text(spec: ActionSpec) -> str:
    """Short: ``3 credits``, ``free``, or ``depends on the inputs``."""
    return "see Credits" if spec.credits is None else credits_summary(spec)


def credits_long(spec: ActionSpec) -> str:
    if isinstance(spec.credits, int | float):
        first = (
            "Free."
            if spec.credits == 0
            else f"{_number(spec.credits)} credits per successful run; "
            "failed or refused runs are not charged."
        )
        return f"{first} {spec.credits_note}" if spec.credits_note else first
    return spec.credits_note or "Depends on the inputs; see Stability's pricing."


def api_fields(spec: ActionSpec) -> dict[str, list[str]]:
    """Input -> where the request puts it (API field names, or the path)."""
    placed: dict[str, list[str]] = {}
    request = spec.request
    parts: list[tuple[str, Any]] = [("path", request.path)]
    parts += [(f"query {k}", v) for k, v in request.query.items()]
    parts += [(f"header {k}", v) for k, v in request.headers.items()]
    parts += [(k, v) for k, v in {**request.body, **request.files}.items()]
    for where, template in parts:
        for text, _ in template_strings(template, where):
            for name in sorted(names_used(text)):
                if where not in placed.setdefault(name, []):
                    placed[name].append(where)
    return placed


def _allowed(field: Mapping[str, Any], schema: Mapping[str, Any]) -> str:
    if field["options"]:
        return ", ".join(
            o["label"] if str(o["label"]) == str(o["value"]) else f"{o['label']} → `{o['value']}`"
            for o in field["options"]
        )
    text = field["media"] or field["range"] or ""
    if not text and schema.get("pattern"):
        text = "as described"
    return str(text)


def _default(field: Mapping[str, Any]) -> str:
    default = field["default"]
    if default is None:
        return ""
    for option in field["options"]:
        if option["value"] == default and str(option["label"]) != str(default):
            return f"{option['label']} (`{default}`)"
    return f"`{json.dumps(default) if not isinstance(default, str) else default}`"


def _live(action: str, field: Mapping[str, Any]) -> str | None:
    """The sentence that says a dropdown is listed live (``x-ui.options_from``)."""
    source = field.get("options_from")
    if not source:
        return None
    return (
        f"The list is live: a workflow engine that fills dropdowns at run time lists the options "
        f"with `{source['action']}` on the step's connection, and the values shown here "
        f"are the fallback. `stability-connector actions options {action} {field['name']}` "
        "prints the live list."
    )


def _names(names: Sequence[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _condition(schema: Mapping[str, Any]) -> str | None:
    props = schema.get("properties", {})
    consts = [f"`{n}` is `{s['const']}`" for n, s in props.items() if "const" in s]
    if consts:
        return " and ".join(consts)
    alternatives = schema.get("anyOf") or []
    given = [r for alt in alternatives for r in alt.get("required", [])]
    if given:
        return " or ".join(f"`{n}`" for n in given) + " is given"
    return None


def _consequence(schema: Mapping[str, Any]) -> str | None:
    parts = []
    if schema.get("required"):
        verb = "is" if len(schema["required"]) == 1 else "are"
        parts.append(f"{_names(schema['required'])} {verb} required")
    for name, sub in schema.get("properties", {}).items():
        if sub is False or sub == {"not": {}}:
            parts.append(f"`{name}` is not allowed")
        elif isinstance(sub, dict) and "const" in sub:
            parts.append(f"`{name}` must be `{sub['const']}`")
    return ", ".join(parts) or None


def rules(inputs: Mapping[str, Any]) -> list[str]:
    """The cross-field rules of an input schema, in words."""
    found = []
    for name, needs in inputs.get("dependentRequired", {}).items():
        found.append(f"`{name}` needs {_names(needs)}.")
    conditionals = list(inputs.get("allOf", []))
    if "if" in inputs:
        conditionals.append(inputs)
    for part in conditionals:
        when = _condition(part.get("if", {}))
        then = _consequence(part.get("then", {}))
        if when and then:
            found.append(f"When {when}: {then}.")
    return found


def _sample_value(name: str, schema: Mapping[str, Any], spec: ActionSpec) -> Any:
    media = spec.response.media
    by_name: dict[str, Any] = {
        "file": f"{spec.id}-….{_EXTENSIONS.get(media or '', 'bin')}",
        "content_type": _CONTENT_TYPES.get(media or "", "application/octet-stream"),
        "seed": 42,
        "finish_reason": "SUCCESS",
        "filtered": False,
        "credits": spec.credits if isinstance(spec.credits, int | float) else 3,
        "request_id": "…",
        "image": "base64-encoded-image-data...",
        "size_bytes": 123456,
    }
    if name in by_name:
        return by_name[name]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), None) if isinstance(kind, list) else kind
    return {"integer": 0, "number": 0, "boolean": False, "array": [], "object": {}}.get(
        str(kind), "…"
    )


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type", "any")
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


# What each named response hook does, in words (hooks.py implements them).
_HOOKS = {"crop_to_aspect": "the image is cropped centrally to exactly {ratio}"}


def _hook_text(name: str, when: str | None, args: Mapping[str, Any]) -> str:
    does = _HOOKS.get(name)
    if does is not None:
        try:
            text = does.format(**args) + f" (`{name}`)"
        except KeyError:
            does = None
    if does is None:
        detail = ", ".join(f"{k}={v}" for k, v in args.items())
        text = f"`{name}`" + (f" ({detail})" if detail else "")
    return f"when `{when}`, {text}" if when else text


# --- pages ---------------------------------------------------------------------------


def render_action_page(spec: ActionSpec) -> str:
    placed = api_fields(spec)
    required = set(spec.inputs.get("required", []))
    fields = []
    for name, schema in ordered_fields(spec):
        field = describe_field(name, schema, name in required)
        text = " ".join(
            t for t in (field["description"], field["help"], _live(spec.id, field)) if t
        )
        fields.append(
            {
                **field,
                "api": ", ".join(f"`{w}`" if w == name else w for w in placed.get(name, []))
                or "not sent",
                "allowed": _allowed(field, schema),
                "default_text": _default(field),
                "text": text,
            }
        )
    outputs_schema: dict[str, Any] = spec.outputs.schema_.get("properties", {})
    example = spec.examples[0]
    returns = {
        name: example.outputs.get(name, _sample_value(name, schema, spec))
        for name, schema in outputs_schema.items()
    }
    outputs = [
        {"name": name, "type": _type_of(schema), "text": schema.get("description") or
         schema.get("title", "")}
        for name, schema in outputs_schema.items()
    ]  # fmt: skip
    page = (
        _environment()
        .get_template("action.md.j2")
        .render(
            a=spec,
            question=f"use {spec.title}",
            status_text=_STATUS[spec.status],
            credits_text=credits_text(spec),
            credits_long=credits_long(spec),
            fields=fields,
            rules=rules(spec.inputs),
            example=example,
            encoding=spec.request.encoding,
            returns=returns,
            outputs=outputs,
            media=spec.response.media is not None,
            filtered_note=" `filtered` is true when moderation blurred or withheld the result: "
            "branch on it rather than failing.",
            job=spec.response.kind == "job",
            hooks=[_hook_text(h.name, h.when, h.args) for h in spec.response.hooks],
            errors=_errors(spec),
        )
    )
    return page


# What any call can answer, whatever the action declares: a wrong key, and (for paid
# actions) too few credits. Worded as the errors themselves word them.
_ANY_CALL = {
    "401": f"The API key is missing or wrong. {AuthenticationError.hint}",
    "402": f"The account has too few credits for this call. {PaymentRequiredError.hint}",
}


def _errors(spec: ActionSpec) -> list[tuple[str, str]]:
    errors = dict(spec.errors)
    errors.setdefault("401", _ANY_CALL["401"])
    if spec.credits != 0:  # free calls are never refused for credits
        errors.setdefault("402", _ANY_CALL["402"])
    return sorted(errors.items())


def _summary(description: str) -> str:
    first, _, _ = " ".join(description.split()).partition(". ")
    return first.rstrip(".") + "."


def render_index(catalog: Catalog) -> str:
    order = list(get_args(Group))
    by_group: dict[str, list[dict[str, Any]]] = {}
    for spec in catalog.actions.values():
        by_group.setdefault(spec.group, []).append(
            {
                "id": spec.id,
                "title": spec.title,
                "summary": _summary(spec.description),
                "credits": credits_text(spec),
                "status": _STATUS[spec.status].split(" (")[0],
            }
        )
    groups = sorted(by_group.items(), key=lambda item: order.index(item[0]))
    listed = {key for spec in catalog.actions.values() for key in spec.operations}
    replaced = [
        {
            "key": key,
            "actions": ", ".join(f"[{a}]({a}.md)" for a in REPLACED_BY.get(key, [])) or "—",
            "why": REPLACED_WHY.get(key, ""),
        }
        for key, op in operations().items()
        if op["status"] == "legacy"
        and key not in listed
        and key.split(" ")[1].startswith("/v2alpha")
    ]
    return (
        _environment()
        .get_template("index.md.j2")
        .render(
            connector=catalog.connector,
            count=len(catalog.actions),
            groups=groups,
            replaced=replaced,
        )
    )


def render_docs(catalog: Catalog) -> dict[str, str]:
    """``{file name: Markdown}``: ``index.md`` and one page per action."""
    pages = {"index.md": render_index(catalog)}
    for spec in catalog.actions.values():
        pages[f"{spec.id}.md"] = render_action_page(spec)
    return pages


def write_docs(out_dir: Path, catalog: Catalog | None = None) -> list[Path]:
    """Write every page into ``out_dir``; returns the files written."""
    catalog = catalog or load_catalog()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_docs(catalog).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    catalog = load_catalog()
    out_dir = Path(args[0]) if args else catalog.root / "docs" / "actions"
    written = write_docs(out_dir, catalog)
    print(f"wrote {len(written)} pages to {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
