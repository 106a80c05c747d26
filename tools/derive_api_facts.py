"""Derive the compact API facts file from Stability's official OpenAPI description.

The full description is large and lives outside the project; the catalog tests and
the sandbox need only the facts it states about each operation (fields, types, enums,
ranges, defaults, required fields, content types, sync or async). This script
extracts them into ``runtime/stability_connector/api_facts.json`` so a clone without
the description still has them, and a test checks the file is current when the
description is present.

Usage: python tools/derive_api_facts.py [PATH/TO/stability-openapi.json] [--check]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT.parent / "shared" / "reference" / "stability-openapi.json"
TARGET = ROOT / "runtime" / "stability_connector" / "api_facts.json"

# Keywords of a field schema that carry a fact a client must match.
FACT_KEYS = (
    "type",
    "format",
    "enum",
    "default",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "multipleOf",
    "minItems",
    "maxItems",
)

# Image-to-video was withdrawn from the current description; the product pages still
# show it, so its facts are kept here as those pages state them.
LEGACY_OPERATIONS: dict[str, Any] = {
    "POST /v2beta/image-to-video": {
        "method": "POST",
        "path": "/v2beta/image-to-video",
        "summary": "Start generation",
        "tags": ["Image-to-Video"],
        "status": "legacy",
        "source": "product pages (withdrawn from the current description)",
        "encoding": "multipart",
        "accept": [],
        "async": True,
        "result_path": "/v2beta/image-to-video/result/{id}",
        "credits": 20,
        "required": ["image"],
        "fields": {
            "image": {"type": "string", "format": "binary"},
            "seed": {"type": "number", "minimum": 0, "maximum": 4294967294, "default": 0},
            "cfg_scale": {"type": "number", "minimum": 0, "maximum": 10, "default": 1.8},
            "motion_bucket_id": {"type": "number", "minimum": 1, "maximum": 255, "default": 127},
        },
        "image_sizes": ["1024x576", "576x1024", "768x768"],
        "responses": {"200": ["application/json"]},
        "error_statuses": [400, 403, 413, 422, 429, 500],
    },
    "GET /v2beta/image-to-video/result/{id}": {
        "method": "GET",
        "path": "/v2beta/image-to-video/result/{id}",
        "summary": "Fetch generation result",
        "tags": ["Image-to-Video"],
        "status": "legacy",
        "source": "product pages (withdrawn from the current description)",
        "encoding": "none",
        "accept": ["video/*", "application/json"],
        "async": False,
        "result_path": None,
        "credits": None,
        "required": [],
        "fields": {},
        "responses": {"200": ["video/mp4", "application/json"], "202": ["application/json"]},
        "error_statuses": [400, 404, 500],
    },
}


def resolve(spec: dict[str, Any], node: Any, seen: frozenset[str] = frozenset()) -> Any:
    """Inline every ``$ref`` below ``node``."""
    if isinstance(node, list):
        return [resolve(spec, item, seen) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        ref = node["$ref"]
        if ref in seen:
            return {}
        target: Any = spec
        for part in ref.lstrip("#/").split("/"):
            target = target[part]
        merged = dict(resolve(spec, target, seen | {ref}))
        merged.update({k: resolve(spec, v, seen) for k, v in node.items() if k != "$ref"})
        return merged
    return {k: resolve(spec, v, seen) for k, v in node.items()}


def merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    """Merge ``allOf`` parts as JSON Schema does: every part must hold, so bounds
    intersect. The first part's default wins (it is the shared definition)."""
    if "allOf" not in schema:
        return schema
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in (merge_all_of(p) for p in schema["allOf"]):
        for key, value in part.items():
            if key not in merged:
                merged[key] = value
            elif key in ("minimum", "minLength", "exclusiveMinimum", "minItems"):
                merged[key] = max(merged[key], value)
            elif key in ("maximum", "maxLength", "exclusiveMaximum", "maxItems"):
                merged[key] = min(merged[key], value)
            elif key == "properties":
                merged[key] = {**value, **merged[key]}
            elif key == "required":
                merged[key] = sorted(set(merged[key]) | set(value))
    return merged


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def media_rules(description: str) -> dict[str, Any]:
    """The limits a media field's prose states (formats, sides, pixels, aspect ratio,
    duration), as numbers a validator can check."""
    rules: dict[str, Any] = {}
    lowered = description.lower()
    if "supported formats" in lowered or "supported dimensions" in lowered:
        block = lowered.split("supported formats:")[-1].split("validation rules")[0]
        formats = re.findall(r"^- (jpeg|png|webp|mp3|wav)\s*$", block, re.M)
        if formats:
            rules["formats"] = formats
    for side in ("width", "height"):
        m = re.search(side + r" must be between ([\d,]+) and ([\d,]+) pixels", lowered)
        if m:
            rules[f"min_{side}"], rules[f"max_{side}"] = _number(m.group(1)), _number(m.group(2))
    m = re.search(r"every side must be at least ([\d,]+) pixels", lowered)
    if m:
        rules["min_width"] = rules["min_height"] = _number(m.group(1))
    m = re.search(r"total pixel count must be between ([\d,]+) and ([\d,]+)", lowered)
    if m:
        rules["min_pixels"], rules["max_pixels"] = _number(m.group(1)), _number(m.group(2))
    m = re.search(r"total pixel count must be at least ([\d,]+)", lowered)
    if m:
        rules["min_pixels"] = _number(m.group(1))
    m = re.search(r"total pixel count cannot exceed ([\d,]+)", lowered)
    if m:
        rules["max_pixels"] = _number(m.group(1))
    if re.search(r"between 1:2\.5 and 2\.5:1", lowered):
        rules["max_aspect_ratio"] = 2.5
    m = re.search(r"audio must be between (\d+) and (\d+) seconds", lowered)
    if m:
        rules["min_seconds"], rules["max_seconds"] = int(m.group(1)), int(m.group(2))
    return rules


def field_facts(schema: dict[str, Any]) -> dict[str, Any]:
    schema = merge_all_of(schema)
    facts = {k: schema[k] for k in FACT_KEYS if k in schema}
    if schema.get("format") == "binary":
        rules = media_rules(schema.get("description", ""))
        if rules:
            facts["media"] = rules
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        items = merge_all_of(schema["items"])
        facts["items"] = {
            "type": items.get("type"),
            "properties": {
                name: field_facts(sub) for name, sub in items.get("properties", {}).items()
            },
            "required": items.get("required", []),
        }
    return facts


def body_facts(
    spec: dict[str, Any], content: dict[str, Any]
) -> tuple[str, dict[str, Any], list[str], dict[str, Any] | None]:
    """The encoding, fields, required fields and variants of a request body. Variants
    (``oneOf``/``anyOf``) contribute their fields, and an enum is the union of the
    variants' enums; only what every variant requires is required. When a
    discriminator names the variant, ``variants`` gives what each of its values
    requires (e.g. v1 masking needs ``mask_image`` unless ``INIT_IMAGE_ALPHA``)."""
    if not content:
        return "none", {}, [], None
    media_type = next(iter(content))
    encoding = {"multipart/form-data": "multipart", "application/json": "json"}.get(
        media_type, media_type
    )
    schema = merge_all_of(content[media_type].get("schema", {}))
    variants = schema.get("oneOf") or schema.get("anyOf") or [schema]
    fields: dict[str, Any] = {}
    required_sets = []
    for variant in variants:
        variant = merge_all_of(
            {**{k: v for k, v in schema.items() if k not in ("oneOf", "anyOf")}, "allOf": [variant]}
        )
        for name, sub in variant.get("properties", {}).items():
            facts = field_facts(sub)
            known = fields.setdefault(name, facts)
            if known is not facts and "enum" in known and "enum" in facts:
                known["enum"] = known["enum"] + [v for v in facts["enum"] if v not in known["enum"]]
        required_sets.append(set(variant.get("required", [])))
    required = set.intersection(*required_sets) if required_sets else set()
    variants = discriminated_variants(spec, schema, fields)
    # A name the description requires but never defines is not a field (erase's "prompt").
    return encoding, fields, sorted(required & set(fields)), variants


def discriminated_variants(
    spec: dict[str, Any], schema: dict[str, Any], fields: dict[str, Any]
) -> dict[str, Any] | None:
    """What each value of a discriminator property requires. The values also become
    the property's enum when the description gives it none (v1 ``mask_source``)."""
    discriminator = schema.get("discriminator") or {}
    name, mapping = discriminator.get("propertyName"), discriminator.get("mapping")
    if not name or not mapping:
        return None
    required: dict[str, list[str]] = {}
    for value, ref in mapping.items():
        target = merge_all_of(resolve(spec, {"$ref": ref}))
        required[value] = sorted(set(target.get("required", [])) & set(fields))
    if name in fields:
        enum = list(fields[name].get("enum", []))
        fields[name]["enum"] = enum + [v for v in mapping if v not in enum]
    return {"property": name, "required": required}


def result_of(path: str, description: str) -> str:
    """Where an asynchronous operation's result is fetched: the results call its
    description names, else the one its family shares."""
    match = re.search(r"(/v2beta/[\w/-]*results?/\{id\})", description)
    if match:
        return match.group(1)
    if path.startswith("/v2beta/audio/"):
        return "/v2beta/audio/results/{id}"
    if path.startswith("/v2alpha/"):
        return "/v2alpha/generation/stable-image/upscale/result/{id}"
    return "/v2beta/results/{id}"


def credits_of(description: str) -> float | str | None:
    """The flat credit price stated in an operation's prose, or the sentence itself
    when the price depends on the model."""
    match = re.search(r"### Credits\s*\n(.*?)(?:\n###|\Z)", description, re.S)
    if not match:
        return None
    text = " ".join(match.group(1).split())
    flat = re.fullmatch(
        r"(?:The \w+ service uses |Flat rate of )?(\d+(?:\.\d+)?) credits? per successful.*", text
    )
    return float(flat.group(1)) if flat else text


def returns_job_id(response: dict[str, Any]) -> bool:
    """A JSON answer holding an ``id`` and no media: the operation starts a job."""
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    properties = merge_all_of(schema).get("properties", {})
    return "id" in properties and not {"image", "audio", "artifacts"} & set(properties)


def derive(spec: dict[str, Any]) -> dict[str, Any]:
    operations: dict[str, Any] = {}
    for path, methods in spec["paths"].items():
        for method, raw in methods.items():
            if method not in ("get", "post"):
                continue
            op = resolve(spec, raw)
            params = {p["name"].lower(): p for p in op.get("parameters", [])}
            accept = params.get("accept", {}).get("schema", {})
            encoding, fields, required, variants = body_facts(
                spec, op.get("requestBody", {}).get("content", {})
            )
            description = op.get("description", "")
            responses = {
                status: sorted(resp.get("content", {}).keys())
                for status, resp in op.get("responses", {}).items()
                if status.startswith("2")
            }
            is_async = method == "post" and any(
                returns_job_id(resp)
                for status, resp in op.get("responses", {}).items()
                if status in ("200", "202")
            )
            key = f"{method.upper()} {path}"
            operations[key] = {
                "method": method.upper(),
                "path": path,
                "summary": op.get("summary", ""),
                "tags": op.get("tags", []),
                "status": "legacy"
                if path.startswith("/v2alpha")
                else ("limited" if op.get("x-launchDarklyEnableFlag") else "current"),
                "source": "openapi",
                "encoding": encoding,
                "accept": accept.get("enum", []),
                "accept_default": accept.get("default"),
                "async": is_async,
                "result_path": result_of(path, description) if is_async else None,
                "credits": credits_of(description),
                "required": required,
                "fields": fields,
                **({"variants": variants} if variants else {}),
                "path_parameters": sorted(
                    p["name"] for p in op.get("parameters", []) if p.get("in") == "path"
                ),
                "responses": responses,
                "error_statuses": sorted(int(s) for s in op.get("responses", {}) if s[0] in "45"),
            }
    operations.update(LEGACY_OPERATIONS)
    return {"operations": dict(sorted(operations.items()))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--check", action="store_true", help="fail if the facts file is stale")
    args = parser.parse_args()
    raw = args.source.read_bytes()
    facts = {
        "source": {"file": args.source.name, "sha256": hashlib.sha256(raw).hexdigest()},
        **derive(json.loads(raw)),
    }
    text = json.dumps(facts, indent=1, sort_keys=False, ensure_ascii=False) + "\n"
    if args.check:
        if not TARGET.exists() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run python tools/derive_api_facts.py")
            return 1
        return 0
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}: {len(facts['operations'])} operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
