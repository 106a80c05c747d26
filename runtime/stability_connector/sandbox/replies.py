"""The shapes of the sandbox's answers: error bodies, media in raw or JSON form, and
the content negotiation behind the ``accept`` header."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import pybase64

from .media import Media

__all__ = ["Reply", "error_reply", "json_reply", "media_reply", "negotiate"]

#: The ``name`` of the API's error body for each status the sandbox answers with.
ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "content_moderation",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    422: "invalid_language",
    429: "rate_limit_exceeded",
    500: "internal_error",
    502: "bad_gateway",
    503: "service_unavailable",
    504: "gateway_timeout",
}
ERROR_MESSAGES = {
    401: "authorization: missing or invalid API key",
    402: "You lack sufficient credits to make this request. Please purchase more credits "
    "at https://platform.stability.ai/account/credits and try again.",
    403: "Your request was flagged by our content moderation system, as a result your "
    "request was denied and you were not charged.",
    404: "id: the generation either does not exist or has expired.",
    413: "body: payloads cannot be larger than 10MiB in size",
    422: "English is the only supported language for this service.",
    500: "An unexpected server error has occurred, please try again later.",
    502: "The server received an invalid response from an upstream server.",
    503: "The service is temporarily unavailable, please try again later.",
    504: "The upstream server did not answer in time.",
}


@dataclass
class Reply:
    """An HTTP answer about to be sent."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    error_name: str | None = None
    credits: float = 0.0
    job_id: str | None = None

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"content-type", self.content_type.encode("latin-1")),
            (b"content-length", str(len(self.body)).encode("latin-1")),
        ]
        headers += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        return headers


def json_reply(status: int, payload: Any, **headers: str) -> Reply:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Reply(status, body, "application/json", dict(headers))


def error_reply(
    status: int,
    errors: Sequence[str] | None = None,
    *,
    error_id: str,
    name: str | None = None,
    v1: bool = False,
    html: bool = False,
    headers: dict[str, str] | None = None,
) -> Reply:
    """The API's error body: ``{id, name, errors[]}`` (v2) or ``{id, name, message}`` (v1);
    ``html`` gives the kind of page a gateway in front of the API answers with."""
    name = name or ERROR_NAMES.get(status, "error")
    messages = list(errors or [ERROR_MESSAGES.get(status, HTTPStatus(status).phrase)])
    if html:
        phrase = HTTPStatus(status).phrase
        page = (
            f"<html><head><title>{status} {phrase}</title></head><body>"
            f"<center><h1>{status} {phrase}</h1></center></body></html>\n"
        )
        return Reply(
            status,
            page.encode("utf-8"),
            "text/html; charset=utf-8",
            dict(headers or {}),
            error_name=name,
        )
    payload: dict[str, Any] = {"id": error_id, "name": name}
    if v1:
        payload["message"] = "; ".join(messages)
    else:
        payload["errors"] = messages
    reply = json_reply(status, payload, **(headers or {}))
    reply.error_name = name
    return reply


def _ranges(accept: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in accept.split(",") if part.strip()]


def negotiate(accept: str | None, default: str, family: str, *, v1: bool = False) -> bool | None:
    """Whether to answer in JSON (True), raw bytes (False), or neither is acceptable
    (None). ``family`` is the raw media's top-level type (image, audio, video)."""
    ranges = _ranges(accept or "") or _ranges(default)

    def raw_ok(value: str) -> bool:
        return value.startswith(f"{family}/") or (value == "*/*" and not v1)

    if ranges[0] == "application/json" or (v1 and ranges[0] in ("*/*", "application/*")):
        return True
    if any(raw_ok(r) for r in ranges):
        return False
    if "application/json" in ranges or "*/*" in ranges:
        return True
    return None


def media_reply(
    media: Media, *, as_json: bool, request_id: str, v1: bool = False, typed_json: bool = True
) -> Reply:
    """Media as raw bytes (with ``seed``/``finish-reason`` headers) or JSON
    (``{image|audio|video, seed, finish_reason}``; v1: ``{artifacts: [...]}``)."""
    return media_list_reply(
        [media], as_json=as_json, request_id=request_id, v1=v1, typed_json=typed_json
    )


def media_list_reply(
    items: Sequence[Media],
    *,
    as_json: bool,
    request_id: str,
    v1: bool = False,
    typed_json: bool = True,
) -> Reply:
    first = items[0]
    if v1:
        if as_json:
            artifacts = [
                {
                    "base64": pybase64.b64encode_as_string(m.body),
                    "seed": m.seed,
                    "finishReason": m.finish_reason,
                }
                for m in items
            ]
            return json_reply(200, {"artifacts": artifacts}, **{"x-request-id": request_id})
        return Reply(
            200,
            first.body,
            first.media_type,
            {
                "finish-reason": first.finish_reason,
                "seed": str(first.seed),
                "x-request-id": request_id,
            },
        )
    if as_json:
        payload = {
            first.json_field: pybase64.b64encode_as_string(first.body),
            "seed": first.seed,
            "finish_reason": first.finish_reason,
        }
        reply = json_reply(200, payload, **{"x-request-id": request_id})
        if typed_json:
            reply.content_type = f"application/json; type={first.media_type}"
        return reply
    return Reply(
        200,
        first.body,
        first.media_type,
        {
            "finish-reason": first.finish_reason,
            "seed": str(first.seed),
            "x-request-id": request_id,
        },
    )
