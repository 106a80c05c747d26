"""The ASGI application: one pipeline for every operation.

A request goes through: route (from ``api_facts.json``) → body (bounded) → rate limit
→ injected fault and latency → authorization → size limit → body encoding → fields
(:mod:`.validation`) → moderation → credits → the media, synchronous or as a job. The
answer is sent, cut short or dropped as the fault says, and journaled.

The rate limit comes first because the API counts a request when it arrives: a request
of a known key is counted at its arrival time (the journal's ``at``), and one over the
limit is refused at once, without latency or a fault. Counting after the latency would
let requests that arrived within one window slip into the next.

Connection resets work both in-process and under a server: under uvicorn the
connection's transport is aborted (the client sees the socket close); in-process
(``httpx.ASGITransport``, which re-raises what the app raises) the app raises the
``httpx`` transport error a client would get from a real socket.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import re
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import httpx
from starlette.datastructures import UploadFile
from starlette.requests import Request

from .admin import AdminRoutes
from .config import SandboxConfig
from .faults import Fault, FaultPlan
from .media import (
    AUDIO_CONTENT_TYPES,
    GLB_CONTENT_TYPE,
    IMAGE_CONTENT_TYPES,
    MP4_CONTENT_TYPE,
    Media,
    fingerprint_of,
    render_audio,
    render_glb,
    render_image,
    render_video,
)
from .operations import Operation, aspect_size, match_operation, megapixel_size
from .operations import nearest_aspect_ratio as _nearest_ratio
from .replies import (
    ERROR_MESSAGES,
    Reply,
    error_reply,
    json_reply,
    media_list_reply,
    media_reply,
    negotiate,
)
from .state import Account, Job, SandboxState, key_digest
from .validation import V1_ENGINES, Checked, Upload, check_fields

__all__ = ["SandboxApp"]

LOGGER = logging.getLogger("stability_connector.sandbox")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MAX_SEED = 4_294_967_294
REDACTED = "***"
#: Optional v2 request headers and their documented maximum length.
CLIENT_HEADERS = ("stability-client-id", "stability-client-user-id", "stability-client-version")
CLIENT_HEADER_MAX = 256


@dataclass
class Exchange:
    """One request as the pipeline sees it, and what the journal records about it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    request_id: str
    at: float
    wall_time: float
    operation: Operation | None = None
    path_params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_size: int = 0
    raw: dict[str, Any] = field(default_factory=dict)
    body_kind: str = "none"
    key: str = ""
    account: Account | None = None

    @property
    def v1(self) -> bool:
        return self.path.startswith("/v1/")


def _bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "").strip()
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


class MediaCache:
    """Rendered bytes for identical requests (bounded; benchmarks repeat requests)."""

    def __init__(self, entries: int) -> None:
        self._entries = entries
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_render(self, key: bytes, render: Callable[[], bytes]) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        data = render()
        if self._entries > 0:
            with self._lock:
                self._items[key] = data
                while len(self._items) > self._entries:
                    self._items.popitem(last=False)
        return data


class SandboxApp:
    """The ASGI callable. Holds no state of its own beyond a random source and a cache:
    accounts, jobs and the journal live in :class:`~.state.SandboxState`."""

    def __init__(self, config: SandboxConfig, state: SandboxState, faults: FaultPlan) -> None:
        self.config = config
        self.state = state
        self.faults = faults
        self.rng = random.Random(config.random_seed)
        self.cache = MediaCache(config.media_cache_entries)
        self.admin = AdminRoutes(config, state, faults)
        # Renders at once: one per CPU. More threads only share the same cores and hold
        # more images in memory at the same time.
        self._render_slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 2))

    # --- ASGI ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        if scope["path"].startswith("/_sandbox/") or scope["path"] == "/_sandbox":
            body, _ = await _read_body(receive, 1024 * 1024)
            reply = self.admin.handle(
                scope["method"],
                scope["path"],
                scope.get("query_string", b"").decode("latin-1"),
                body,
            )
            await _send_reply(send, reply)
            return
        await self._exchange(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hex(self, digits: int) -> str:
        return f"{self.rng.getrandbits(digits * 4):0{digits}x}"

    # --- one request ---------------------------------------------------------------

    async def _exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            key, text = name.decode("latin-1").lower(), value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        ex = Exchange(
            method=scope["method"],
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers=headers,
            request_id=self._hex(32),
            at=self.config.now(),
            wall_time=time.time(),
        )
        ex.operation, ex.path_params, path_exists = match_operation(ex.method, ex.path)
        limit = self.config.max_body_bytes
        if ex.operation is not None and ex.operation.behaviour.body_limit is not None:
            limit = max(limit, ex.operation.behaviour.body_limit)
        ex.body, ex.body_size = await _read_body(receive, limit)
        ex.key = _bearer(headers)
        if ex.body_size <= limit:
            ex.raw, ex.body_kind = await _parse_body(scope, ex.body, headers)

        refusal = self._admit(ex)
        if refusal is not None:
            self._journal(ex, refusal, "error", None)
            await _send_reply(send, refusal)
            return

        fault = self.faults.next_for(ex.path)
        await self.config.pause(self.config.latency + (fault.latency if fault else 0.0))
        reply: Reply | None = None
        if fault is not None and fault.reset == "before":
            outcome = "reset-before"
            if fault.charged:  # the work is done and paid for, the answer never leaves
                charged = (await self._safe_answer(ex, limit, path_exists)).credits
                self._journal(ex, Reply(0, credits=charged), outcome, fault)
                await _cut_connection(send, "before")
                return
        else:
            if fault is not None and fault.status is not None and not fault.charged:
                reply = self._fault_reply(fault, ex)
            else:
                reply = await self._safe_answer(ex, limit, path_exists)
                if fault is not None and fault.status is not None:
                    charged = reply.credits
                    reply = self._fault_reply(fault, ex)
                    reply.credits = charged
            outcome = "ok" if reply.status < 400 else "error"
            if fault is not None and fault.reset == "after":
                outcome = "reset-after"
            elif fault is not None and fault.truncate:
                outcome = "truncated"
        self._journal(ex, reply, outcome, fault)
        if reply is None:
            await _cut_connection(send, "before")
            return
        await _send_reply(send, reply, fault)

    def _fault_reply(self, fault: Fault, ex: Exchange) -> Reply:
        assert fault.status is not None
        headers = {"x-request-id": ex.request_id}
        if fault.retry_after is not None:
            headers["retry-after"] = _seconds_text(fault.retry_after)
        messages = None
        if fault.status == 429:
            messages = [self._rate_limit_message()]
        return error_reply(
            fault.status,
            messages,
            error_id=self._hex(32),
            v1=ex.v1,
            html=fault.html,
            headers=headers,
        )

    def _error(
        self,
        ex: Exchange,
        status: int,
        messages: list[str] | None = None,
        name: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        return error_reply(
            status,
            messages,
            error_id=self._hex(32),
            name=name,
            v1=ex.v1,
            headers={"x-request-id": ex.request_id, **(headers or {})},
        )

    def _rate_limit_message(self) -> str:
        c = self.config
        return (
            f"You have exceeded the rate limit of {c.rate_limit} requests within a "
            f"{_seconds_text(c.rate_window)} second period, and have been timed out "
            f"for {_seconds_text(c.timeout_seconds)} seconds."
        )

    def _admit(self, ex: Exchange) -> Reply | None:
        """Count the request against its key's limit at its arrival; the 429 when it is
        over. Requests to no operation or without a valid key are not counted (they get
        404/405/401 from :meth:`_answer`)."""
        if ex.operation is None or not ex.key:
            return None
        ex.account = self.state.account(ex.key)
        if ex.account is None:
            return None
        admission = self.state.admit(ex.account, ex.at)
        if admission.allowed:
            return None
        headers = {}
        if self.config.retry_after:
            headers["retry-after"] = _seconds_text(max(1, round(admission.retry_in)))
        return self._error(ex, 429, [self._rate_limit_message()], headers=headers)

    async def _safe_answer(self, ex: Exchange, limit: int, path_exists: bool) -> Reply:
        """The answer, or the API's 500 if the sandbox itself fails (logged)."""
        try:
            return await self._answer(ex, limit, path_exists)
        except Exception:
            LOGGER.exception("the sandbox failed to answer %s %s", ex.method, ex.path)
            return self._error(ex, 500)

    async def _answer(self, ex: Exchange, limit: int, path_exists: bool) -> Reply:
        operation = ex.operation
        if operation is None:
            if path_exists:
                return self._error(ex, 405, [f"{ex.method} is not allowed on {ex.path}"])
            return self._error(ex, 404, [f"{ex.path}: no such endpoint"], name="not_found")

        if not ex.key:
            problem = (
                "authorization: must be 'Bearer <your API key>'"
                if ex.headers.get("authorization")
                else "authorization: missing authorization header"
            )
            return self._error(ex, 401, [problem])
        if ex.account is None:
            return self._error(ex, 401, ["authorization: invalid API key"])

        now = self.config.now()
        if ex.body_size > limit:
            mib = limit // (1024 * 1024)
            return self._error(ex, 413, [f"body: payloads cannot be larger than {mib}MiB in size"])

        behaviour = operation.behaviour
        if behaviour.kind == "account":
            return self._account_reply(ex, now)
        if behaviour.kind == "result":
            return await self._result_reply(ex, now)
        if ex.v1 and ex.path_params.get("engine_id") not in {e["id"] for e in V1_ENGINES}:
            return self._error(
                ex,
                404,
                [f"The specified engine (ID {ex.path_params.get('engine_id')}) was not found."],
                name="not_found",
            )

        expected = {"multipart": "multipart/form-data", "json": "application/json"}
        if operation.encoding in expected and ex.body_kind != operation.encoding:
            got = ex.headers.get("content-type", "").split(";")[0] or "no content-type"
            if ex.body_kind == "invalid":
                problem = f"body: could not be parsed as {expected[operation.encoding]}"
            else:
                problem = (
                    f"content-type: the body must be {expected[operation.encoding]} (got {got})"
                )
            return self._error(ex, 400, [problem])

        family = {"image": "image", "audio": "audio", "model": "model", "video": "video"}
        as_json = negotiate(
            ex.headers.get("accept"),
            operation.facts.get("accept_default") or ("application/json" if ex.v1 else "*/*"),
            family[behaviour.kind],
            v1=ex.v1,
        )
        if as_json is None and behaviour.kind in ("image", "audio") and not operation.is_async:
            accepted = ", ".join(operation.facts.get("accept", [])) or "*/*"
            return self._error(ex, 400, [f"accept: must be one of {accepted}"])

        checked = check_fields(
            operation, ex.raw, path_params=ex.path_params, wants_json=bool(as_json)
        )
        for header in CLIENT_HEADERS if not ex.v1 else ():
            if len(ex.headers.get(header, "")) > CLIENT_HEADER_MAX:
                checked.add(f"{header}: must be at most {CLIENT_HEADER_MAX} characters long")
        if checked.problems:
            if ex.v1:
                return self._error(
                    ex, 400, [p.message for p in checked.problems], name=checked.problems[0].name
                )
            return self._error(ex, 400, [p.message for p in checked.problems])

        blocked, filtered = self._moderate(checked)
        if blocked:
            if ex.v1:
                return self._error(
                    ex,
                    400,
                    ["One or more of the prompts contains filtered words"],
                    name="invalid_prompts",
                )
            return self._error(ex, 403, [ERROR_MESSAGES[403]], name="content_moderation")

        price = operation.price(checked.values)
        if self.state.available(ex.account, now) < price:
            return self._error(ex, 402, name="payment_required")

        seed = self._seed(checked, v1=ex.v1)
        render = self._renderer(ex, checked, seed, filtered and behaviour.can_filter)
        if operation.is_async:
            result = None
            if self.config.jobs_dir is not None:  # kept as a file: rendered now
                try:
                    result = (await self._run(render))[0]
                except Exception:
                    return self._error(ex, 500)
            return self._start_job(ex, operation, price, render, now, result)

        self.state.charge(ex.account, price)
        try:
            items = await self._run(render)
        except Exception:
            self.state.refund(ex.account, price)
            return self._error(ex, 500)
        if ex.v1:
            reply = media_list_reply(
                items, as_json=bool(as_json), request_id=ex.request_id, v1=True
            )
        elif behaviour.kind == "model":
            reply = Reply(200, items[0].body, GLB_CONTENT_TYPE, {"x-request-id": ex.request_id})
        else:
            reply = media_reply(items[0], as_json=bool(as_json), request_id=ex.request_id)
        reply.credits = price
        return reply

    # --- pieces of the pipeline ----------------------------------------------------

    def _moderate(self, checked: Checked) -> tuple[bool, bool]:
        texts = [v for k, v in checked.values.items() if "prompt" in k and isinstance(v, str)]
        texts += [p["text"] for p in checked.values.get("text_prompts", []) or []]
        text = "\n".join(texts).lower()

        def hit(words: Any) -> bool:
            return any(re.search(rf"\b{re.escape(w.lower())}\b", text) for w in words if w)

        return hit(self.config.block_words), hit(self.config.filter_words)

    def _seed(self, checked: Checked, *, v1: bool) -> int:
        seed = int(checked.values.get("seed", 0) or 0)
        if seed == 0:
            seed = self.rng.randint(1, MAX_SEED + (1 if v1 else 0))
        checked.values["seed"] = seed
        return seed

    async def _run(self, render: Callable[[], list[Media]]) -> list[Media]:
        if not self.config.render_in_thread:
            return render()

        def bounded() -> list[Media]:
            with self._render_slots:
                return render()

        return await anyio.to_thread.run_sync(bounded)

    def _output_size(self, ex: Exchange, checked: Checked) -> tuple[int, int]:
        assert ex.operation is not None
        rule, _, argument = ex.operation.behaviour.size.partition(":")
        values, images = checked.values, checked.images
        source = next(iter(images.values()), None)
        if rule in ("aspect", "generate"):
            megapixels = float(argument)
            if rule == "generate" and "image" in images:
                ratio = _nearest_ratio(images["image"].width, images["image"].height)
                return aspect_size(ratio, megapixels)
            return aspect_size(str(values.get("aspect_ratio", "1:1")), megapixels)
        if rule == "input":
            info = images[argument]
            return info.width, info.height
        if rule == "ratio-of":
            info = images[argument]
            return megapixel_size(info.width, info.height, 1.0)
        if rule == "megapixels" and source is not None:
            return megapixel_size(source.width, source.height, float(argument))
        if rule == "scale" and source is not None:
            return source.width * int(argument), source.height * int(argument)
        if rule == "outpaint" and source is not None:
            return (
                source.width + int(values.get("left", 0)) + int(values.get("right", 0)),
                source.height + int(values.get("up", 0)) + int(values.get("down", 0)),
            )
        if rule == "v1":
            if "init_image" in images:
                return images["init_image"].width, images["init_image"].height
            if source is not None:  # upscale
                width, height = source.width, source.height
                if "width" in values:
                    return int(values["width"]), round(height * int(values["width"]) / width)
                if "height" in values:
                    return round(width * int(values["height"]) / height), int(values["height"])
                return width * 2, height * 2
            return int(values.get("width", 512)), int(values.get("height", 512))
        return 1024, 1024

    def _renderer(
        self, ex: Exchange, checked: Checked, seed: int, filtered: bool
    ) -> Callable[[], list[Media]]:
        operation = ex.operation
        assert operation is not None
        behaviour = operation.behaviour
        files = {name: hashlib.sha256(up.data).hexdigest() for name, up in checked.files.items()}
        values = dict(checked.values)
        finish = "CONTENT_FILTERED" if filtered else "SUCCESS"
        cache = self.cache

        def digest(sample_seed: int) -> bytes:
            return fingerprint_of(
                operation.key, ex.path_params, values | {"seed": sample_seed}, files
            )

        if behaviour.kind == "image":
            width, height = self._output_size(ex, checked)
            fmt = "png" if ex.v1 else str(values.get("output_format", "png"))
            samples = int(values.get("samples", 1)) if ex.v1 else 1

            def render_one(fp: bytes) -> bytes:
                return render_image(
                    width, height, fp, fmt, blurred=filtered, transparent=behaviour.transparent
                )

            def render_images() -> list[Media]:
                items = []
                for index in range(samples):
                    sample_seed = seed + index
                    fp = digest(sample_seed)
                    key = fingerprint_of(fp.hex(), width, height, fmt, filtered)
                    body = cache.get_or_render(key, functools.partial(render_one, fp))
                    items.append(Media(body, IMAGE_CONTENT_TYPES[fmt], sample_seed, finish))
                return items

            return render_images
        if behaviour.kind == "audio":
            seconds = float(values.get("duration", 190))
            fmt = str(values.get("output_format", "mp3"))
            return lambda: [
                Media(
                    render_audio(seconds, digest(seed), fmt),
                    AUDIO_CONTENT_TYPES[fmt],
                    seed,
                    "SUCCESS",
                )
            ]
        if behaviour.kind == "model":
            return lambda: [Media(render_glb(digest(seed)), GLB_CONTENT_TYPE, seed, "SUCCESS")]
        if behaviour.kind == "video":
            width, height = self._output_size(ex, checked)
            return lambda: [
                Media(render_video(width, height, digest(seed)), MP4_CONTENT_TYPE, seed, finish)
            ]
        raise AssertionError(f"no renderer for {behaviour.kind}")

    def _start_job(
        self,
        ex: Exchange,
        operation: Operation,
        price: float,
        render: Callable[[], list[Media]],
        now: float,
        result: Media | None,
    ) -> Reply:
        assert ex.account is not None
        job = Job(
            id=self._hex(64),
            owner=ex.account.digest,
            operation=operation.key,
            family=operation.behaviour.family,
            created=now,
            ready_at=now + self.config.job_seconds,
            expires_at=now + self.config.job_ttl,
            price=price,
            render=lambda: render()[0],
            result=result,
        )
        self.state.add_job(job, now)
        reply = json_reply(
            operation.start_status, {"id": job.id}, **{"x-request-id": ex.request_id}
        )
        reply.job_id = job.id
        return reply

    async def _result_reply(self, ex: Exchange, now: float) -> Reply:
        assert ex.operation is not None and ex.account is not None
        job_id = ex.path_params.get("id", "")
        if len(job_id) > 64:
            return self._error(ex, 400, ["id: must be at most 64 characters long"])
        job = self.state.find_job(job_id, ex.account, ex.operation.behaviour.serves, now)
        if job is None:
            return self._error(ex, 404, name="generation_not_found")
        if now < job.ready_at:
            reply = json_reply(
                202, {"id": job.id, "status": "in-progress"}, **{"x-request-id": ex.request_id}
            )
            reply.job_id = job.id
            return reply
        if job.result is None:
            job.result = (await self._run(lambda: [job.render()]))[0]
        media = job.result
        family = media.media_type.split("/")[0]
        default = ex.operation.facts.get("accept_default") or "*/*"
        as_json = negotiate(ex.headers.get("accept"), default, family)
        if as_json is None:
            accepted = ", ".join(ex.operation.facts.get("accept", [])) or "*/*"
            return self._error(ex, 400, [f"accept: must be one of {accepted}"])
        reply = media_reply(
            media, as_json=as_json, request_id=ex.request_id, typed_json=family != "video"
        )
        reply.job_id = job.id
        return reply

    def _account_reply(self, ex: Exchange, now: float) -> Reply:
        assert ex.operation is not None and ex.account is not None
        headers = {"x-request-id": ex.request_id}
        path = ex.operation.path
        if path == "/v1/user/balance":
            self.state.settle(now)
            return json_reply(200, {"credits": ex.account.credits}, **headers)
        if path == "/v1/engines/list":
            return json_reply(200, list(V1_ENGINES), **headers)
        fp = ex.account.fingerprint
        return json_reply(
            200,
            {
                "id": f"user-{fp}",
                "email": f"sandbox-{fp}@example.invalid",
                "profile_picture": "https://api.stability.ai/example.png",
                "organizations": [
                    {
                        "id": f"org-{fp}",
                        "name": "Sandbox Organization",
                        "role": "MEMBER",
                        "is_default": True,
                    },
                ],
            },
            **headers,
        )

    # --- journal -------------------------------------------------------------------

    def _journal(
        self, ex: Exchange, reply: Reply | None, outcome: str, fault: Fault | None
    ) -> None:
        secret = ex.key

        def redact(text: str) -> str:
            return text.replace(secret, REDACTED) if secret and secret in text else text

        headers = {name: redact(value) for name, value in ex.headers.items()}
        if "authorization" in headers:  # whatever the scheme, its credentials are secret
            scheme, _, credentials = ex.headers["authorization"].strip().partition(" ")
            headers["authorization"] = f"{scheme} {REDACTED}" if credentials else REDACTED
        fields: dict[str, str] = {}
        files: dict[str, int] = {}
        for name, value in ex.raw.items():
            if isinstance(value, Upload):
                files[name] = len(value.data)
            elif isinstance(value, str):
                fields[name] = redact(value)
            else:
                fields[name] = redact(json.dumps(value))
        self.state.record(
            {
                "at": ex.at,
                "wall_time": ex.wall_time,
                "method": ex.method,
                "path": ex.path,
                "query": redact(ex.query),
                "operation": ex.operation.key if ex.operation else None,
                "headers": headers,
                "fields": fields,
                "files": files,
                "body_size": ex.body_size,
                "status": (
                    reply.status
                    if reply is not None and outcome not in ("reset-before", "reset-after")
                    else None
                ),
                "outcome": outcome,
                "key_fingerprint": key_digest(secret)[:8] if secret else None,
                "request_id": ex.request_id,
                "error_name": reply.error_name if reply is not None else None,
                "fault": fault.describe() if fault is not None else None,
                "credits_charged": reply.credits if reply is not None else 0.0,
                "job_id": reply.job_id if reply is not None else None,
            }
        )


# --- wire helpers ------------------------------------------------------------------------


def _seconds_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


async def _read_body(receive: Receive, limit: int) -> tuple[bytes, int]:
    """The request body, and its size; beyond ``limit`` the bytes are counted, not kept."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return (b"".join(chunks) if size <= limit else b""), size


async def _parse_body(
    scope: Scope, body: bytes, headers: Mapping[str, str]
) -> tuple[dict[str, Any], str]:
    """The fields of a body and its kind: multipart, json, form, none, other or invalid."""
    mime = headers.get("content-type", "").split(";")[0].strip().lower()
    if not body and not mime:
        return {}, "none"
    if mime == "multipart/form-data":
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request({**scope, "type": "http"}, replay)
        try:
            form = await request.form(max_files=100, max_fields=1000, max_part_size=1024 * 1024)
        except Exception:
            return {}, "invalid"
        raw: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name in raw:
                continue
            if isinstance(value, UploadFile):
                data = await value.read()
                raw[name] = Upload(value.filename or "", value.content_type or "", data)
            else:
                raw[name] = value
        await form.close()
        return raw, "multipart"
    if mime == "application/json":
        try:
            parsed = json.loads(body or b"null")
        except ValueError:
            return {}, "invalid"
        return (parsed, "json") if isinstance(parsed, dict) else ({}, "invalid")
    if mime == "application/x-www-form-urlencoded":
        text = body.decode("utf-8", errors="replace")
        return dict(urllib.parse.parse_qsl(text, keep_blank_values=True)), "form"
    return {}, "other"


async def _send_reply(send: Send, reply: Reply, fault: Fault | None = None) -> None:
    start = {"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers()}
    if fault is not None and fault.reset == "after":
        await send(start)
        await _cut_connection(send, "after")
        return
    if fault is not None and fault.truncate:
        await send(start)
        half = reply.body[: len(reply.body) // 2]
        await send({"type": "http.response.body", "body": half, "more_body": True})
        await _cut_connection(send, "truncate", len(half), len(reply.body))
        return
    await send(start)
    await send({"type": "http.response.body", "body": reply.body, "more_body": False})


async def _cut_connection(send: Send, stage: str, received: int = 0, expected: int = 0) -> None:
    """Drop the connection. Under a server (uvicorn) the socket is aborted; in-process
    the client's transport error is raised, as ``httpx.ASGITransport`` passes it on."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if callable(abort):
        abort()
        # Let the server notice the closed connection before the app returns, so it
        # does not try to answer on it.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return
    if stage == "before":
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
    if stage == "after":
        raise httpx.ReadError("Connection reset by peer: the response was cut after its headers")
    raise httpx.RemoteProtocolError(
        "peer closed connection without sending complete message body "
        f"(received {received} bytes, expected {expected})"
    )
