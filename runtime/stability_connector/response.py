"""Map a successful response to a node's outputs and files, per the action's ``response``.

- ``media``: one media file, either raw bytes with ``seed`` / ``finish-reason`` headers
  or JSON holding it as base64 (``{image, seed, finish_reason}``). Hooks run first,
  then the file is written; the standard media outputs are filled in.
- ``artifacts``: v1 JSON ``{artifacts: [{base64, seed, finishReason}]}`` (or one PNG
  with ``Seed`` / ``Finish-Reason`` headers): every image is written.
- ``job``: the result of the job (what the node polled) is read as media.
- ``json``: the body's fields become outputs.
- ``raw``: status, headers and body, for the generic request.

``outputs.values`` of the action add outputs rendered from ``inputs``, ``response``,
``job`` and ``artifact`` (e.g. generate_image's ``image: <<artifact.base64>>``).
Errors never reach this module: the sender turns them into the exception tree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pybase64

from . import hooks
from .definitions import ActionSpec
from .media import FORMATS, extension_for, format_for_content_type, sniff, write_output
from .templates import definition_scope, render

FILTERED = "CONTENT_FILTERED"
_MEDIA_KEYS = ("image", "audio", "video", "model", "base64")
# Response headers that describe the exchange, not the result; never returned.
_HIDDEN_HEADERS = {"set-cookie", "authorization", "proxy-authorization", "www-authenticate"}


@dataclass
class Artifact:
    """A file the run wrote."""

    path: Path
    kind: str
    content_type: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "kind": self.kind,
            "content_type": self.content_type,
            "size_bytes": self.size_bytes,
        }


@dataclass
class Mapped:
    outputs: dict[str, Any]
    artifacts: list[Artifact] = field(default_factory=list)
    filtered: bool = False


class _Lazy(dict[str, Any]):
    """A template scope entry whose ``base64`` is computed only when a template reads it."""

    def __init__(self, data: bytes, **values: Any) -> None:
        super().__init__(values)
        self._data = data

    def __missing__(self, key: str) -> Any:
        if key == "base64":
            self[key] = pybase64.b64encode_as_string(self._data)
            return self[key]
        if key == "bytes":
            return self._data
        raise KeyError(key)


def map_response(
    action: ActionSpec,
    response: httpx.Response,
    *,
    inputs: Mapping[str, Any],
    out_dir: Path,
    credits: float | None,
    job_id: str | None = None,
) -> Mapped:
    """The outputs (and written files) of a successful response."""
    kind = action.response.kind
    job = {"id": job_id} if job_id else None
    # Read once: each lookup in httpx's headers walks and decodes them all.
    received = {k.lower(): v for k, v in response.headers.items()}
    headers = {k: v for k, v in received.items() if k not in _HIDDEN_HEADERS}
    body = _json(response, received)
    scope = definition_scope(
        inputs, response={"status": response.status_code, "headers": headers, "json": body}
    )
    if job is not None:
        scope["job"] = job
    request_id = received.get("x-request-id")

    if kind in ("media", "job"):
        mapped = _media(action, response, received, body, scope, out_dir, credits, request_id)
    elif kind == "artifacts":
        mapped = _artifacts(action, response, received, body, out_dir, credits, request_id)
    elif kind == "json":
        fields = body if isinstance(body, dict) else {"result": body}
        mapped = Mapped(outputs=dict(fields))
    else:
        mapped = _raw(action, response, received, headers, body, out_dir)
    place = f"{action.id}: outputs.values"
    for name, template in action.outputs.values.items():
        mapped.outputs[name] = render(f"{place}.{name}", template, scope)
    return mapped


def _json(response: httpx.Response, received: Mapping[str, str]) -> Any:
    if "json" not in received.get("content-type", ""):
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _seed(value: Any) -> int | None:
    try:
        return int(value) if value is not None and str(value).strip() != "" else None
    except ValueError:
        return None


def _media_type(content_type: str, data: bytes) -> str:
    """``application/json; type=image/png`` → ``image/png``; else the header or a sniff."""
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key == "type" and value:
            return value.strip()
    base = content_type.split(";")[0].strip().lower()
    if base and "json" not in base and base != "application/octet-stream":
        return base
    fmt = sniff(data)
    return FORMATS[fmt][0] if fmt else "application/octet-stream"


def _media(
    action: ActionSpec,
    response: httpx.Response,
    received: Mapping[str, str],
    body: Any,
    scope: dict[str, Any],
    out_dir: Path,
    credits: float | None,
    request_id: str | None,
) -> Mapped:
    header_type = received.get("content-type", "")
    if isinstance(body, dict):  # JSON with the media as base64
        encoded = next((body[k] for k in _MEDIA_KEYS if isinstance(body.get(k), str)), "")
        data = pybase64.b64decode(encoded)
        seed, finish = body.get("seed"), body.get("finish_reason")
    else:
        data = response.content
        seed, finish = received.get("seed"), received.get("finish-reason")
    media = hooks.MediaBody(data, _media_type(header_type, data))
    media = hooks.apply(action.response.hooks, media, scope, f"{action.id}: response.hooks")
    seed_number = _seed(seed)
    path = _write(action, out_dir, media.data, media.content_type, seed_number)
    kind = action.response.media or media.content_type.split("/")[0]
    outputs = {
        "file": str(path),
        "content_type": media.content_type,
        "size_bytes": len(media.data),
        "seed": seed_number,
        "finish_reason": finish,
        "filtered": finish == FILTERED,
        "credits": credits,
        "request_id": request_id,
    }
    scope["artifact"] = _Lazy(media.data, **outputs, path=str(path), kind=kind)
    scope["response"]["media"] = _Lazy(
        media.data, content_type=media.content_type, size_bytes=len(media.data)
    )
    artifact = Artifact(path, kind, media.content_type, len(media.data))
    return Mapped(outputs, [artifact], finish == FILTERED)


def _artifacts(
    action: ActionSpec,
    response: httpx.Response,
    received: Mapping[str, str],
    body: Any,
    out_dir: Path,
    credits: float | None,
    request_id: str | None,
) -> Mapped:
    found: list[tuple[bytes, str, Any, Any]] = []
    if isinstance(body, dict):
        for entry in body.get("artifacts") or []:
            data = pybase64.b64decode(entry.get("base64") or "")
            found.append(
                (data, _media_type("", data), entry.get("seed"), entry.get("finishReason"))
            )
    else:
        data = response.content
        seed = received.get("seed")
        finish = received.get("finish-reason")
        found.append((data, _media_type(received.get("content-type", ""), data), seed, finish))
    items: list[dict[str, Any]] = []
    artifacts: list[Artifact] = []
    for data, content_type, seed, finish in found:
        seed_number = _seed(seed)
        path = _write(action, out_dir, data, content_type, seed_number)
        kind = action.response.media or "image"
        artifacts.append(Artifact(path, kind, content_type, len(data)))
        items.append(
            {
                "file": str(path),
                "content_type": content_type,
                "size_bytes": len(data),
                "seed": seed_number,
                "finish_reason": finish,
                "filtered": finish == FILTERED,
            }
        )
    filtered = any(item["filtered"] for item in items)
    first = items[0] if items else {}
    outputs = {
        "file": first.get("file"),
        "content_type": first.get("content_type"),
        "size_bytes": first.get("size_bytes", 0),
        "seed": first.get("seed"),
        "finish_reason": first.get("finish_reason"),
        "filtered": filtered,
        "credits": credits,
        "request_id": request_id,
        "artifacts": items,
    }
    return Mapped(outputs, artifacts, filtered)


def _raw(
    action: ActionSpec,
    response: httpx.Response,
    received: Mapping[str, str],
    headers: dict[str, str],
    body: Any,
    out_dir: Path,
) -> Mapped:
    content_type = received.get("content-type", "")
    outputs: dict[str, Any] = {
        "status": response.status_code,
        "headers": headers,
        "content_type": content_type,
        "request_id": received.get("x-request-id"),
    }
    artifacts: list[Artifact] = []
    fmt = format_for_content_type(content_type) or (
        None if content_type.startswith(("text/", "application/json")) else sniff(response.content)
    )
    if body is not None:
        outputs["json"] = body
    elif fmt is not None:
        data = response.content
        path = write_output(out_dir, action.id, data, extension_for(content_type, data))
        outputs.update(file=str(path), size_bytes=len(data))
        artifacts.append(Artifact(path, FORMATS[fmt][0].split("/")[0], FORMATS[fmt][0], len(data)))
    else:
        outputs["text"] = response.text
    return Mapped(outputs, artifacts)


def _write(
    action: ActionSpec, out_dir: Path, data: bytes, content_type: str, seed: int | None
) -> Path:
    stem = action.id if seed is None else f"{action.id}-{seed}"
    return write_output(out_dir, stem, data, extension_for(content_type, data))
