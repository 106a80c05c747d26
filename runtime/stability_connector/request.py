"""Render an action's request (its YAML ``request``) from validated inputs.

``render_request`` turns ``request`` into a :class:`PreparedRequest`: the path and
headers rendered, the body as multipart form fields (numbers as their decimal text,
nested values flattened the way the API reads them: ``text_prompts[0][text]``) or as
JSON, media inputs as files, and absent optional inputs left out.

Every path is confined to the connection's base URL (:func:`confine_path`). For the
generic request, whose path, query, headers and body the user writes, this is the
SSRF guard: absolute URLs, other hosts, userinfo, dot segments (also percent-encoded,
at any depth), backslashes, control characters and look-alike characters are refused
with a :class:`BlockedRequestError` before anything is sent. Redirects are never
followed (the client is built with ``follow_redirects=False``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import httpx
import pybase64

from .definitions import ActionSpec, RequestSpec
from .errors import BlockedRequestError
from .media import MAX_REQUEST_BYTES, Media, inspect
from .templates import compile_definition, definition_scope, render
from .transport import PreparedRequest

MAX_PATH_CHARS = 2048
METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}
# Headers a user may not set: they would change where the request goes, how its body
# is framed, or whose credentials it carries.
FORBIDDEN_HEADERS = {
    "host", "content-length", "transfer-encoding", "connection", "cookie", "authorization",
    "proxy-authorization", "proxy-connection", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "upgrade", "te", "trailer", "expect",
}  # fmt: skip
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NON_ASCII = re.compile(r"[^\x00-\x7e]")
_ENCODED_SLASH = re.compile(r"%(2f|5c)", re.IGNORECASE)


class _Plan:
    """A request definition with its templates compiled (made once per definition)."""

    def __init__(self, spec: RequestSpec, place: str) -> None:
        self.path = compile_definition(f"{place}.path", spec.path)
        self.headers = compile_definition(f"{place}.headers", spec.headers)
        self.query = compile_definition(f"{place}.query", spec.query)
        self.body = compile_definition(f"{place}.body", spec.body)
        self.files = compile_definition(f"{place}.files", spec.files)
        self.accept = (
            None if spec.accept is None else compile_definition(f"{place}.accept", spec.accept)
        )


# Keyed by the definition's id(); the entry keeps the definition alive, so an id is
# never reused while its plan is here.
_PLANS: dict[int, tuple[RequestSpec, _Plan]] = {}
_MAX_PLANS = 1024


def _plan(spec: RequestSpec, place: str) -> _Plan:
    entry = _PLANS.get(id(spec))
    if entry is None or entry[0] is not spec:
        if len(_PLANS) >= _MAX_PLANS:
            _PLANS.clear()
        entry = (spec, _Plan(spec, place))
        _PLANS[id(spec)] = entry
    return entry[1]


def render_request(
    action: ActionSpec, inputs: Mapping[str, Any], *, base_url: str | None = None
) -> PreparedRequest:
    """The request ``action`` sends for ``inputs`` (already normalized and validated).

    ``base_url`` (the connection's) lets the final URL be checked too; the path
    alone is already confined.
    """
    prepared = render_spec(action.request, inputs, place=f"{action.id}: request", base_url=base_url)
    prepared.paid = prepared.method != "GET" and bool(action.credits)
    return prepared


def render_spec(
    spec: RequestSpec, inputs: Mapping[str, Any], *, place: str, base_url: str | None = None
) -> PreparedRequest:
    """:func:`render_request` of a request definition on its own (the connector's
    connection test is one); ``place`` names it in errors. Not marked paid."""
    plan = _plan(spec, place)
    scope = definition_scope(inputs)
    method: str = spec.method
    encoding: str = spec.encoding
    path = plan.path(scope)
    headers = _strings(plan.headers(scope))
    params = _strings(plan.query(scope))
    body = plan.body(scope)
    files = _files(plan.files(scope))

    if spec.generic:
        method, encoding, body = _generic(inputs, method, encoding, body, headers, params)

    if not isinstance(path, str):
        raise BlockedRequestError(f"{place}: the path must be text, not {type(path).__name__}")
    path = confine_path(path, base_url)
    if plan.accept is not None:
        accept = plan.accept(scope)
        if accept:
            headers["accept"] = str(accept)

    prepared = PreparedRequest(method=method, path=path, headers=headers, params=params)
    if encoding == "multipart":
        data: dict[str, str] = {}
        for key, value in (body or {}).items():
            if type(value) is str:  # the common case, as _flatten would store it
                data[key] = value
            else:
                _flatten(key, value, data, files)
        prepared.data = data
        prepared.files = files or None
        prepared.multipart = True
    elif encoding == "json":
        prepared.json = _jsonable(body)
    return prepared


def check_generic_path(action: ActionSpec, inputs: Mapping[str, Any]) -> None:
    """Refuse a generic request's path before anything else is looked at."""
    path = render(f"{action.id}: request.path", action.request.path, definition_scope(inputs))
    if isinstance(path, str):
        confine_path(path)


def body_size(request: PreparedRequest) -> int:
    """About how many bytes the body will be (multipart framing included)."""
    if request.multipart:
        size = sum(len(k) + len(v.encode()) + 100 for k, v in (request.data or {}).items())
        for name, (filename, payload, content_type) in (request.files or {}).items():
            size += len(name) + len(filename) + len(content_type) + len(payload) + 130
        return size
    if request.json is not None:
        return len(json.dumps(request.json, ensure_ascii=False).encode())
    return 0


def too_large(request: PreparedRequest) -> str | None:
    """Why the request cannot be sent (over the API's 10 MiB), or None."""
    size = body_size(request)
    if size <= MAX_REQUEST_BYTES:
        return None
    parts = ", ".join(
        f"{name} {len(payload) / 1048576:.1f} MiB"
        for name, (_, payload, _) in (request.files or {}).items()
    )
    detail = f" ({parts})" if parts else ""
    return f"the request would be {size / 1048576:.1f} MiB{detail}; the API accepts at most 10 MiB"


# --- body encoding ---------------------------------------------------------------------


def form_text(value: Any) -> str:
    """A form field's text: numbers in plain decimal (never 1e-05), booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    return str(value)


def _flatten(
    key: str, value: Any, data: dict[str, str], files: dict[str, tuple[str, bytes, str]]
) -> None:
    if value is None:
        return
    if isinstance(value, Mapping):
        for sub, entry in value.items():
            _flatten(f"{key}[{sub}]", entry, data, files)
    elif isinstance(value, list | tuple):
        for i, entry in enumerate(value):
            _flatten(f"{key}[{i}]", entry, data, files)
    elif isinstance(value, Media | bytes | bytearray):
        files.update(_files({key: value}))
    else:
        data[key] = form_text(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Media):
        return pybase64.b64encode_as_string(value.data)
    if isinstance(value, bytes | bytearray):
        return pybase64.b64encode_as_string(bytes(value))
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _files(rendered: Any) -> dict[str, tuple[str, bytes, str]]:
    out: dict[str, tuple[str, bytes, str]] = {}
    for field, value in (rendered or {}).items():
        if value is None:
            continue
        media = value if isinstance(value, Media) else inspect(bytes(value))
        out[field] = (media.filename(field), media.data, media.content_type)
    return out


def _strings(rendered: Any) -> dict[str, str]:
    return {str(k): form_text(v) for k, v in (rendered or {}).items() if v is not None}


# --- the generic request ---------------------------------------------------------------


def _generic(
    inputs: Mapping[str, Any],
    method: str,
    encoding: str,
    body: Any,
    headers: dict[str, str],
    params: dict[str, str],
) -> tuple[str, str, Any]:
    """What the user described: ``method``, ``query``, ``headers``, ``body``, ``encoding``."""
    method = str(inputs.get("method") or method).upper()
    if method not in METHODS:
        raise BlockedRequestError(
            f"method {method!r} is not allowed ({', '.join(sorted(METHODS))})"
        )
    encoding = str(inputs.get("encoding") or encoding)
    for name, value in dict(inputs.get("headers") or {}).items():
        headers[check_header(str(name), value)] = form_text(value)
    for name, value in dict(inputs.get("query") or {}).items():
        if value is not None:
            params[_clean(str(name), "query parameter")] = _clean(form_text(value), "query value")
    user_body = inputs.get("body")
    if isinstance(user_body, Mapping) and isinstance(body, Mapping):
        body = {**body, **user_body}
    elif user_body is not None:
        body = user_body
    if encoding == "multipart" and not isinstance(body or {}, Mapping):
        raise BlockedRequestError("a multipart body must be an object of form fields")
    return method, encoding, body


def check_header(name: str, value: Any) -> str:
    """A header the user may set; refuses framing, routing and credential headers."""
    lower = name.strip().lower()
    if not _HEADER_NAME.match(lower):
        raise BlockedRequestError(f"header name {name!r} is not a valid HTTP header name")
    if lower in FORBIDDEN_HEADERS or lower.startswith("proxy-"):
        raise BlockedRequestError(f"header {name!r} cannot be set on a request")
    _clean(form_text(value), f"header {name!r}")
    return lower


def _clean(text: str, what: str) -> str:
    if _CONTROL.search(text):
        raise BlockedRequestError(f"{what} holds control characters (CR, LF, NUL, …)")
    return text


def _blocked(path: str, reason: str) -> BlockedRequestError:
    shown = path if len(path) <= 120 else path[:117] + "…"
    return BlockedRequestError(
        f"refused path {shown!r}: {reason}. A request may only go to the connection's base "
        "URL: give a path such as /v2beta/…, nothing was sent"
    )


@lru_cache(maxsize=4096)
def confine_path(path: str, base_url: str | None = None) -> str:
    """``path`` if it stays on the base URL, else :class:`BlockedRequestError`."""
    if len(path) > MAX_PATH_CHARS:
        raise _blocked(path, f"longer than {MAX_PATH_CHARS} characters")
    if _CONTROL.search(path):
        raise _blocked(path, "it holds control characters (CR, LF, NUL, tab)")
    if _NON_ASCII.search(path):
        raise _blocked(path, "it holds non-ASCII characters (look-alikes of / . @ and such)")
    if _SCHEME.match(path):
        raise _blocked(path, "absolute URLs are not accepted")
    if path.startswith("//"):
        raise _blocked(path, "'//' at the start names another host")
    if not path.startswith("/"):
        raise _blocked(path, "it must start with '/'")
    # Undo percent-encoding until nothing changes, so %2e%2e and %252e%252e are seen too.
    layers = [path]
    while len(layers) < 5:
        decoded = unquote(layers[-1])
        if decoded == layers[-1]:
            break
        layers.append(decoded)
    else:
        raise _blocked(path, "it is percent-encoded too many times")
    for layer in layers:
        if _CONTROL.search(layer):
            raise _blocked(path, "it holds encoded control characters (CR, LF, NUL)")
        if _NON_ASCII.search(layer):
            raise _blocked(path, "it holds encoded non-ASCII characters")
        if _ENCODED_SLASH.search(layer):
            raise _blocked(path, "encoded slashes (%2F, %5C) are not accepted")
        if "\\" in layer:
            raise _blocked(path, "backslashes are not accepted")
        if "@" in layer:
            raise _blocked(path, "'@' (user information) is not accepted")
        if "?" in layer or "#" in layer:
            raise _blocked(path, "'?' and '#' do not belong in the path; use the query field")
        if "//" in layer:
            raise _blocked(path, "empty path segments ('//') are not accepted")
        if any(segment in (".", "..") for segment in layer.split("/")):
            raise _blocked(path, "'.' and '..' segments are not accepted")
    if base_url is not None:
        _check_url(path, base_url)
    return path


def _check_url(path: str, base_url: str) -> None:
    """Build the URL the way the client will and compare it with the base URL."""
    base = httpx.URL(base_url)
    url = httpx.URL(base_url.rstrip("/") + path)
    same = (url.scheme, url.host, url.port) == (base.scheme, base.host, base.port)
    if not same or not url.path.startswith(base.path.rstrip("/")):
        raise _blocked(path, "it leaves the connection's base URL")
