"""A small catalog and a scripted node executor for testing the runner's scheduling,
store and resume logic without HTTP (the sandbox tests cover the wire)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from stability_connector.definitions import ActionSpec, RetrySpec
from stability_connector.errors import ApiErrorDetails, ConnectorError, api_error_for
from stability_connector.templates import resolve_inputs

MEDIA_OUT = {
    "type": "object",
    "properties": {
        name: {}
        for name in (
            "file",
            "content_type",
            "size_bytes",
            "seed",
            "finish_reason",
            "filtered",
            "credits",
            "request_id",
        )
    },
}


def _action(
    action_id: str, inputs: dict[str, Any], required: list[str], credits: Any
) -> ActionSpec:
    return ActionSpec.model_validate(
        {
            "id": action_id,
            "title": action_id,
            "description": action_id,
            "group": "Generate",
            "operations": [f"POST /v2beta/{action_id}"],
            "credits": credits,
            "inputs": {"type": "object", "required": required, "properties": inputs},
            "request": {"method": "POST", "path": f"/v2beta/{action_id}", "encoding": "multipart"},
            "response": {"kind": "media", "media": "image"},
            "outputs": {
                "schema": {**MEDIA_OUT, "properties": {**MEDIA_OUT["properties"], "image": {}}}
            },
            "examples": [{"title": "x", "inputs": {}}],
        }
    )


def fake_catalog() -> Any:
    actions = {
        "gen": _action(
            "gen",
            {
                "prompt": {"type": "string"},
                "seed": {"type": "integer"},
                "style": {"type": "string"},
            },
            ["prompt"],
            3,
        ),
        "upscale": _action(
            "upscale",
            {"image": {"type": "string"}, "format": {"type": "string", "enum": ["png", "gif"]}},
            ["image"],
            2,
        ),
        "mystery": _action("mystery", {"prompt": {"type": "string"}}, [], None),
    }
    return SimpleNamespace(actions=actions, connector=SimpleNamespace(retry=RetrySpec()))


@dataclass
class Call:
    action: str
    inputs: dict[str, Any]
    job_id: str | None


@dataclass
class FakeExecutor:
    """Resolves inputs with the real template engine, then answers from a script.

    ``fail``: (action, resolved inputs) -> an HTTP status to fail with, or None.
    ``job``: actions that start an async job (on_job_started is called before the result).
    ``charged``: action -> the credits a send reports, when not what the estimate says.
    """

    fail: Callable[[str, dict[str, Any]], int | None] = lambda action, inputs: None
    jobs: set[str] = field(default_factory=set)
    job_crash: Callable[[str, dict[str, Any]], bool] = lambda action, inputs: False
    filtered: Callable[[str, dict[str, Any]], bool] = lambda action, inputs: False
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    yields: int = 3
    policies: list[Any] = field(default_factory=list)
    charged: dict[str, float] = field(default_factory=dict)

    async def run(
        self,
        action: Any,
        inputs: Mapping[str, Any],
        context: Any = None,
        connection: Any = None,
        policy: Any = None,
        *,
        wait: bool = True,
        job_id: str | None = None,
        on_job_started: Callable[[str], Any] | None = None,
        on_attempt: Callable[[Any], None] | None = None,
        out_dir: Any = None,
    ) -> Any:
        resolved = resolve_inputs(inputs, context)
        self.calls.append(Call(action, resolved, job_id))
        self.policies.append(policy)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            # Let other items interleave, item-dependent so they finish out of order.
            for _ in range(self.yields + len(str(resolved)) % 5):
                await asyncio.sleep(0)
            status = self.fail(action, resolved)
            attempt = SimpleNamespace(
                number=1,
                kind="send",
                method="POST",
                path=f"/v2beta/{action}",
                status=status or 200,
                duration=0.01,
                error=None,
                wait_before_next=None,
                may_have_been_charged=False,
                request_id=f"req-{len(self.calls)}",
            )
            if on_attempt:
                on_attempt(attempt)
            if status is not None:
                raise api_error_for(
                    ApiErrorDetails(
                        status=status,
                        name="bad_request",
                        message=f"nope {status}",
                        id="err-x",
                        request_id="req-x",
                    )
                )
            if action in self.jobs and job_id is None:
                job_id = f"job-{len(self.calls)}"
                if on_job_started:
                    on_job_started(job_id)
                if self.job_crash(action, resolved):
                    raise ConnectorError("poller crashed")
            filtered = self.filtered(action, resolved)
            return SimpleNamespace(
                outputs={
                    "file": f"/out/{action}-{len(self.calls)}.png",
                    "seed": resolved.get("seed", 0),
                    "filtered": filtered,
                    "finish_reason": "CONTENT_FILTERED" if filtered else "SUCCESS",
                    "echo": resolved,
                    "image": "A" * 70_000 if action == "gen" else "small",
                },
                credits=self.charged.get(action, 3.0 if action == "gen" else 2.0),
                job_id=job_id,
            )
        finally:
            self.in_flight -= 1

    def estimate_credits(self, action: Any, inputs: Any, context: Any = None) -> float | None:
        return {"gen": 3.0, "upscale": 2.0}.get(action)


def fixable_flow(output_format: str) -> dict[str, Any]:
    """Three steps; the last one's output_format comes from vars, so only the run finds
    out that ``gif`` is not an upscale format."""
    return {
        "name": "fixable",
        "trigger": {"type": "object", "properties": {"names": {"type": "array"}}},
        "vars": {"format": output_format},
        "steps": [
            {
                "id": "shot",
                "action": "generate_image",
                "for_each": "<<trigger.names>>",
                "inputs": {"prompt": "<<item>> on a table", "model": "sd3.5-medium"},
            },
            {
                "id": "cutout",
                "action": "remove_background",
                "for_each": "<<steps.shot>>",
                "inputs": {"image": "<<item.file>>"},
            },
            {
                "id": "big",
                "action": "upscale_fast",
                "for_each": "<<steps.cutout>>",
                "inputs": {"image": "<<item.file>>", "output_format": "<<vars.format>>"},
            },
        ],
    }
