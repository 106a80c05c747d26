"""Run one node: an action, its inputs and the run context, in the order of the data flow.

    templates → normalize → media → validate   (nothing is sent on any problem)
      → render the request → send (limiter, retries) → (job: poll) → outputs + files

``Runtime`` holds what outlives one run: the catalog, one httpx client per connection,
the rate limiter of each key, the clock and where files go. ``run`` / ``run_sync`` make a
one-shot runtime.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import httpx

from . import inputs as inputs_mod
from . import media as media_mod
from . import request as request_mod
from . import templates
from .catalog import Catalog, default_catalog
from .clock import Clock, SystemClock
from .connection import Connection, resolve_connection
from .definitions import ActionSpec
from .errors import (
    ApiError,
    BlockedRequestError,
    ConnectorError,
    ContentFilteredError,
    ExecutionError,
    FieldProblem,
    InputValidationError,
)
from .jobs import wait_for_result
from .ratelimit import RateLimiter, limiter_for
from .response import Artifact, map_response
from .retry import INTERACTIVE_POLICY, RetryPolicy
from .transport import Attempt, PreparedRequest, Sender, build_client

if TYPE_CHECKING:
    from .connection_check import ConnectionCheck

logger = logging.getLogger(__name__)

ContentFilteredPolicy = Literal["fail", "continue", "retry"]
FILTERED_RETRIES = 2
"""How many times ``content_filtered="retry"`` tries again with a new seed."""
MAX_SEED = 4294967294


class _Absent:
    def __repr__(self) -> str:
        return "<absent>"


ABSENT: Any = _Absent()
"""``RunContext.item`` outside a loop: templates then have no ``item`` at all."""


@dataclass
class RunContext:
    """What node templates can refer to: the trigger's payload, earlier steps' outputs,
    workflow variables and, inside a loop, the current item."""

    trigger: Mapping[str, Any] = field(default_factory=dict)
    steps: Mapping[str, Any] = field(default_factory=dict)
    vars: Mapping[str, Any] = field(default_factory=dict)
    item: Any = ABSENT

    @classmethod
    def of(cls, context: RunContext | Mapping[str, Any] | None) -> RunContext:
        if context is None:
            return cls()
        if isinstance(context, RunContext):
            return context
        unknown = set(context) - set(templates.CONTEXT_NAMES)
        if unknown:
            raise ConnectorError(
                f"unknown context names {', '.join(sorted(unknown))}; "
                f"a run context has {', '.join(templates.CONTEXT_NAMES)}"
            )
        return cls(
            trigger=context.get("trigger") or {},
            steps=context.get("steps") or {},
            vars=context.get("vars") or {},
            item=context.get("item", ABSENT),
        )

    def names(self) -> dict[str, Any]:
        return templates.context_names(
            self.trigger, self.steps, self.vars, self.item, in_loop=self.item is not ABSENT
        )


@dataclass
class ActionResult:
    """What one run produced: outputs for downstream steps, the files written, and every
    HTTP attempt (the run log)."""

    action: str
    status: Literal["succeeded", "pending"]
    outputs: dict[str, Any]
    artifacts: list[Artifact]
    attempts: list[Attempt]
    job_id: str | None = None
    credits: float | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.outputs.get("filtered"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "status": self.status,
            "outputs": self.outputs,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "attempts": [a.to_dict() for a in self.attempts],
            "job_id": self.job_id,
            "credits": self.credits,
        }


@dataclass
class _Prepared:
    spec: ActionSpec
    values: dict[str, Any]
    request: PreparedRequest


class Runtime:
    """Runs actions of a catalog. Use as ``async with Runtime() as runtime:``."""

    def __init__(
        self,
        catalog: Catalog | None = None,
        *,
        clock: Clock | None = None,
        out_dir: Path | None = None,
        client_factory: Callable[[Connection], httpx.AsyncClient] | None = None,
        shared_limit_dir: Path | None = None,
        content_filtered: ContentFilteredPolicy = "continue",
        rng: random.Random | None = None,
    ) -> None:
        self.catalog = catalog if catalog is not None else default_catalog()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.out_dir = out_dir
        self.shared_limit_dir = shared_limit_dir
        self.content_filtered: ContentFilteredPolicy = content_filtered
        self.rng = rng if rng is not None else random.Random()
        self._client_factory = client_factory
        self._clients: dict[tuple[str, str, bool], httpx.AsyncClient] = {}
        self._limiters: dict[str, RateLimiter] = {}

    async def __aenter__(self) -> Runtime:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    # --- preparing (nothing is sent) ---------------------------------------------------

    def action(self, action: str | ActionSpec) -> ActionSpec:
        return action if isinstance(action, ActionSpec) else self.catalog.action(action)

    def resolve(
        self,
        action: str | ActionSpec,
        inputs: Mapping[str, Any],
        context: RunContext | Mapping[str, Any] | None = None,
    ) -> tuple[ActionSpec, dict[str, Any]]:
        """Templates resolved, values normalized, media read and everything validated."""
        spec = self.action(action)
        resolved = templates.resolve_inputs(inputs, RunContext.of(context).names())
        values = inputs_mod.normalize(spec, resolved)
        problems: list[FieldProblem] = []
        limits = inputs_mod.media_fields(spec)
        for name, schema in limits.items():
            if name in values:
                media, found = media_mod.read_media(name, values[name], schema.get("x-media"))
                problems += found
                if media is not None:
                    values[name] = media
        if spec.request.generic:
            # Where a user-written request goes is checked first, whatever else is wrong.
            request_mod.check_generic_path(spec, values)
        inputs_mod.validate(spec, values, problems)
        return spec, values

    def _render(self, spec: ActionSpec, values: dict[str, Any], base_url: str) -> PreparedRequest:
        prepared = request_mod.render_request(spec, values, base_url=base_url)
        problem = request_mod.too_large(prepared)
        if problem is not None:
            raise InputValidationError(spec.id, [FieldProblem("request", problem)])
        return prepared

    def prepare(
        self,
        action: str | ActionSpec,
        inputs: Mapping[str, Any],
        context: RunContext | Mapping[str, Any] | None = None,
        connection: Connection | str | None = None,
    ) -> tuple[ActionSpec, dict[str, Any], PreparedRequest]:
        """Resolve, validate and render the request, without sending anything."""
        spec, values = self.resolve(action, inputs, context)
        conn = self.connection(connection)
        return spec, values, self._render(spec, values, conn.base_url)

    def estimate_credits(
        self,
        action: str | ActionSpec,
        inputs: Mapping[str, Any],
        context: RunContext | Mapping[str, Any] | None = None,
    ) -> float | None:
        """What a successful run would cost (None when the action does not say)."""
        spec = self.action(action)
        resolved = templates.resolve_inputs(inputs, RunContext.of(context).names())
        return credits_for(spec, inputs_mod.normalize(spec, resolved))

    def connection(self, connection: Connection | str | None = None) -> Connection:
        if isinstance(connection, Connection):
            return connection
        return resolve_connection(self.catalog.connector, connection, os.environ)

    def _sender(self, conn: Connection, policy: RetryPolicy | None) -> Sender:
        key = (conn.name, conn.base_url, conn.sandbox)
        client = self._clients.get(key)
        if client is None:
            if self._client_factory is not None:
                client = self._client_factory(conn)
            else:
                client = build_client(conn, self.catalog.connector.timeouts)
            self._clients[key] = client
        fingerprint = conn.api_key.fingerprint()
        limiter = self._limiters.get(fingerprint)
        if limiter is None:
            limiter = limiter_for(
                conn.api_key, self.catalog.connector.rate_limit, self.clock, self.shared_limit_dir
            )
            self._limiters[fingerprint] = limiter
        policy = policy or RetryPolicy.from_spec(self.catalog.connector.retry)
        return Sender(
            client,
            conn,
            policy,
            limiter,
            self.clock,
            self.catalog.connector.client_headers,
            self.rng,
        )

    async def test_connection(
        self, connection: Connection | str | None = None, policy: RetryPolicy | None = None
    ) -> ConnectionCheck:
        """Send the connector's connection test (``GET /v1/user/account``) the way runs
        send: client headers, the key at send time, the key's limiter, the retry policy.
        Returns what it found (``ok``, the account's id and email, or the error and what
        to change); raises nothing for a refused key or an unreachable base URL. A person
        waits on it: ``policy`` defaults to :data:`~.retry.INTERACTIVE_POLICY`."""
        from .connection_check import check_connection

        wanted = connection.name if isinstance(connection, Connection) else connection
        return await check_connection(
            self.catalog.connector,
            lambda: self.connection(connection),
            lambda conn: self._sender(conn, policy or INTERACTIVE_POLICY),
            wanted,
        )

    # --- running -------------------------------------------------------------------------

    async def run(
        self,
        action: str | ActionSpec,
        inputs: Mapping[str, Any],
        context: RunContext | Mapping[str, Any] | None = None,
        connection: Connection | str | None = None,
        policy: RetryPolicy | None = None,
        *,
        wait: bool = True,
        job_id: str | None = None,
        on_job_started: Callable[[str], Any] | None = None,
        on_attempt: Callable[[Attempt], None] | None = None,
        content_filtered: ContentFilteredPolicy | None = None,
        out_dir: Path | None = None,
    ) -> ActionResult:
        """Run one node. Raises the error tree's exceptions; ``attempts`` on execution
        errors hold every attempt of the run.

        ``wait=False`` returns an asynchronous job as ``status="pending"`` with its
        ``job_id`` right after it started; ``job_id=...`` picks an earlier job up (no
        new job is created). ``content_filtered`` says what a CONTENT_FILTERED result
        does: ``continue`` (an outcome with ``filtered: true``), ``fail``
        (``ContentFilteredError``) or ``retry`` (again with a new seed).
        """
        policy_filtered = content_filtered or self.content_filtered
        conn = self.connection(connection)
        log = _Log(on_attempt)
        where = Path(out_dir or self.out_dir or Path.cwd())
        try:
            if job_id is not None:
                spec = self.action(action)
                resolved = templates.resolve_inputs(inputs, RunContext.of(context).names())
                values = inputs_mod.normalize(spec, resolved)
                sender = self._sender(conn, policy)
                return await self._resume(spec, values, sender, job_id, log, where)
            spec, values = self.resolve(action, inputs, context)
            prepared = self._render(spec, values, conn.base_url)
            sender = self._sender(conn, policy)
            tries = 1 + (FILTERED_RETRIES if policy_filtered == "retry" else 0)
            for attempt in range(1, tries + 1):
                result = await self._send(
                    spec, values, prepared, sender, log, where, wait, on_job_started
                )
                if not result.filtered or attempt == tries:
                    break
                values = self._new_seed(spec, values)
                prepared = self._render(spec, values, conn.base_url)
                logger.info("%s: the result was filtered; trying again with a new seed", spec.id)
        except ExecutionError as error:
            error.attempts = tuple(log)
            raise
        finally:
            log.flush()
        if result.filtered and policy_filtered == "fail":
            filtered = ContentFilteredError(
                f"{spec.id}: moderation blurred the result (finish reason CONTENT_FILTERED); "
                "the generation was charged. Rephrase the prompt, or let the workflow continue "
                "or retry on filtered results",
                outputs=result.outputs,
            )
            filtered.attempts = tuple(log)
            raise filtered
        return result

    async def _send(
        self,
        spec: ActionSpec,
        values: dict[str, Any],
        prepared: PreparedRequest,
        sender: Sender,
        log: _Log,
        out_dir: Path,
        wait: bool,
        on_job_started: Callable[[str], Any] | None,
    ) -> ActionResult:
        try:
            response = await sender.send(prepared, log)
        except ApiError as error:
            if spec.request.generic and 300 <= error.status < 400:
                raise BlockedRequestError(
                    f"{spec.id}: the server answered with a redirect (HTTP {error.status}); "
                    "redirects are never followed, so the request stays on the base URL"
                ) from None
            raise
        finally:
            log.flush()
        credits = credits_for(spec, values)
        if spec.response.kind != "job":
            return self._result(spec, values, response, log, out_dir, credits)
        job_spec = spec.response.job
        if job_spec is None:
            raise ConnectorError(f"{spec.id}: response.kind is job but response.job is missing")
        started_at = self.clock.now()
        scope = templates.definition_scope(values, response=_response_scope(response))
        job_id = str(templates.render(f"{spec.id}: response.job.id", job_spec.id, scope))
        if on_job_started is not None:
            # Persisted before the first poll: a crash while polling loses nothing.
            await _maybe_await(on_job_started(job_id))
        if not wait:
            return ActionResult(spec.id, "pending", {"job_id": job_id}, [], list(log), job_id)
        return await self._poll(spec, values, sender, job_id, log, out_dir, started_at, credits)

    async def _resume(
        self,
        spec: ActionSpec,
        values: dict[str, Any],
        sender: Sender,
        job_id: str,
        log: _Log,
        out_dir: Path,
    ) -> ActionResult:
        if spec.response.kind != "job":
            raise ConnectorError(f"{spec.id} does not start jobs; there is no job to pick up")
        # The job started earlier: the first poll may go at once.
        started_at = self.clock.now() - self.catalog.connector.polling.first_poll_after
        credits = credits_for(spec, values)
        return await self._poll(spec, values, sender, job_id, log, out_dir, started_at, credits)

    async def _poll(
        self,
        spec: ActionSpec,
        values: dict[str, Any],
        sender: Sender,
        job_id: str,
        log: _Log,
        out_dir: Path,
        started_at: float,
        credits: float | None,
    ) -> ActionResult:
        job_spec = spec.response.job
        assert job_spec is not None
        scope = templates.definition_scope(values, job={"id": job_id})
        place = f"{spec.id}: response.job"
        result_path = request_mod.confine_path(
            str(templates.render(f"{place}.result_path", job_spec.result_path, scope)),
            sender.connection.base_url,
        )
        accept = job_spec.accept and templates.render(f"{place}.accept", job_spec.accept, scope)
        response = await wait_for_result(
            sender,
            result_path,
            str(accept) if accept else None,
            self.catalog.connector.polling,
            log,
            started_at,
            on_poll=lambda _: log.flush(),
            job_id=job_id,
        )
        log.flush()
        return self._result(spec, values, response, log, out_dir, credits, job_id)

    def _result(
        self,
        spec: ActionSpec,
        values: dict[str, Any],
        response: httpx.Response,
        log: _Log,
        out_dir: Path,
        credits: float | None,
        job_id: str | None = None,
    ) -> ActionResult:
        mapped = map_response(
            spec, response, inputs=values, out_dir=out_dir, credits=credits, job_id=job_id
        )
        if job_id is not None:
            mapped.outputs.setdefault("job_id", job_id)
        return ActionResult(
            spec.id, "succeeded", mapped.outputs, mapped.artifacts, list(log), job_id, credits
        )

    def _new_seed(self, spec: ActionSpec, values: dict[str, Any]) -> dict[str, Any]:
        schema = spec.inputs.get("properties", {}).get("seed")
        if schema is None:
            return values  # the API picks a new random seed itself
        seed = self.rng.randint(1, int(schema.get("maximum", MAX_SEED)))
        return {**values, "seed": str(seed) if schema.get("type") == "string" else seed}


class _Log(list[Attempt]):
    """The run log; ``flush`` reports attempts not yet reported, once each is complete."""

    def __init__(self, on_attempt: Callable[[Attempt], None] | None) -> None:
        super().__init__()
        self._on_attempt = on_attempt
        self._reported = 0

    def flush(self) -> None:
        while self._reported < len(self):
            attempt = self[self._reported]
            self._reported += 1
            if self._on_attempt is not None:
                self._on_attempt(attempt)


def credits_for(spec: ActionSpec, values: Mapping[str, Any]) -> float | None:
    """The action's credits per successful run; a template is rendered with the inputs."""
    if spec.credits is None:
        return None
    if isinstance(spec.credits, int | float):
        return float(spec.credits)
    scope = templates.definition_scope(values)
    value = templates.render(f"{spec.id}: credits", spec.credits, scope)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _response_scope(response: httpx.Response) -> dict[str, Any]:
    body: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    headers = {k.lower(): v for k, v in response.headers.items()}
    return {"status": response.status_code, "headers": headers, "json": body}


async def _maybe_await(value: Any) -> None:
    if inspect.isawaitable(value):
        await value


_RUNTIME_OPTIONS = {
    "catalog",
    "clock",
    "client_factory",
    "shared_limit_dir",
    "rng",
}


async def run(
    action: str | ActionSpec,
    inputs: Mapping[str, Any],
    context: RunContext | Mapping[str, Any] | None = None,
    connection: Connection | str | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> ActionResult:
    """Run one node with a one-shot :class:`Runtime` (options: ``catalog``, ``clock``,
    ``client_factory``, ``shared_limit_dir``, ``rng`` for the runtime; the rest as
    :meth:`Runtime.run` takes them)."""
    runtime_options = {k: options.pop(k) for k in list(options) if k in _RUNTIME_OPTIONS}
    async with Runtime(**runtime_options) as runtime:
        return await runtime.run(action, inputs, context, connection, policy, **options)


def run_sync(
    action: str | ActionSpec,
    inputs: Mapping[str, Any],
    context: RunContext | Mapping[str, Any] | None = None,
    connection: Connection | str | None = None,
    policy: RetryPolicy | None = None,
    **options: Any,
) -> ActionResult:
    """:func:`run` for code without an event loop."""
    coroutine: Awaitable[ActionResult] = run(action, inputs, context, connection, policy, **options)
    return asyncio.run(coroutine)  # type: ignore[arg-type]


__all__ = [
    "ABSENT",
    "ActionResult",
    "Artifact",
    "RunContext",
    "Runtime",
    "credits_for",
    "run",
    "run_sync",
]
