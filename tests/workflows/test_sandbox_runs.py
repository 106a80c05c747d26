"""Workflows against the sandbox over real HTTP (in-process ASGI transport), on a fake
clock: what went over the wire is read from the sandbox's journal."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stability_connector.catalog import find_catalog_root, load_catalog
from stability_connector.clock import FakeClock
from stability_connector.errors import DefinitionError
from stability_connector.node import Runtime
from stability_connector.sandbox import Fault, Sandbox, SandboxConfig
from stability_connector.workflows.commands import format_estimate
from stability_connector.workflows.estimate import estimate_workflow, fixed_costs
from stability_connector.workflows.runner import (
    RunOverBudgetError,
    WorkflowRunner,
    default_resolver,
    revise_run,
)
from stability_connector.workflows.spec import load_workflow
from stability_connector.workflows.store import Store

from .helpers import fixable_flow

ROOT = find_catalog_root()
EXAMPLES = ROOT / "examples"
CATALOG = load_catalog()
GENERATE = "/v2beta/stable-image/generate/*"


class InFlight(httpx.AsyncBaseTransport):
    """Counts the requests in flight at once (the concurrency bound, seen from the wire)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.now = 0
        self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            response = await self.inner.handle_async_request(request)
            await response.aread()
            return response
        finally:
            self.now -= 1


class World:
    def __init__(self, tmp: Path, latency: float = 0.0) -> None:
        self.clock = FakeClock(start=1000.0)
        self.sandbox = Sandbox(
            SandboxConfig(
                credits=100_000,
                clock=self.clock.now,
                sleep=self.clock.sleep,
                latency=latency,
                random_seed=7,
                render_in_thread=False,
            )
        )
        self.wire = InFlight(self.sandbox.transport())
        self.runtime = Runtime(
            CATALOG,
            clock=self.clock,
            out_dir=tmp / "files",
            client_factory=lambda conn: httpx.AsyncClient(
                base_url=conn.base_url, transport=self.wire, timeout=60
            ),
        )
        self.store = Store(tmp / "runs.sqlite3")
        self.runner = WorkflowRunner(
            self.runtime, self.store, default_retry=CATALOG.connector.retry, files_dir=tmp / "files"
        )

    def sent(self, path: str = "/v2beta/stable-image/generate/") -> list[Any]:
        return [e for e in self.sandbox.journal if e.path.startswith(path)]

    def prompts(self) -> Counter[str]:
        return Counter(e.fields.get("prompt", "") for e in self.sent())


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    w = World(tmp_path)
    async with w.runtime:
        yield w
    w.store.close()


def flow(tmp_path: Path, data: dict[str, Any]) -> Any:
    import yaml

    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_workflow(path, CATALOG)


def loop_flow(concurrency: int = 1, max_attempts: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "name": "loop",
        "trigger": {"type": "object", "properties": {"names": {"type": "array"}}},
        "retry": {"max_attempts": max_attempts, "initial_delay": 1.0, "max_delay": 4.0},
        **extra,
        "steps": [
            {
                "id": "shot",
                "action": "generate_image",
                "for_each": "<<trigger.names>>",
                "concurrency": concurrency,
                "inputs": {"prompt": "<<item>> on a table", "model": "sd3.5-medium"},
            },
            {
                "id": "big",
                "action": "upscale_fast",
                "for_each": "<<steps.shot>>",
                "concurrency": concurrency,
                "inputs": {"image": "<<item.file>>"},
            },
        ],
    }


NAMES = [f"thing {i}" for i in range(6)]


@pytest.mark.anyio
async def test_product_shots_example_runs_on_the_sandbox(world: World) -> None:
    workflow = load_workflow(EXAMPLES / "product_shots.yaml", CATALOG)
    trigger = json.loads((EXAMPLES / "product_shots.trigger.json").read_text())
    outcome = await world.runner.start(workflow, trigger)
    assert outcome.status == "succeeded", outcome.error
    n = len(trigger["products"])
    assert len(world.sent()) == n
    assert len(world.sent("/v2beta/stable-image/edit/remove-background")) == n
    assert len(world.sent("/v2beta/stable-image/upscale/fast")) == n
    # Each product's prompt was mapped from its own item and the workflow's vars.
    for product in trigger["products"]:
        (prompt,) = [p for p in world.prompts() if p.startswith(product["name"])]
        assert "studio product photo" in prompt
    for large in outcome.outputs["large"]:
        assert Path(large["file"]).is_file()
    # The cut-out of item i went to the upscale of item i.
    cutouts = [Path(c["file"]).stat().st_size for c in outcome.outputs["cutout"]]
    uploads = [e.files["image"] for e in world.sent("/v2beta/stable-image/upscale/fast")]
    assert sorted(cutouts) == sorted(uploads)


@pytest.mark.anyio
async def test_prompt_to_upscale_example_runs_on_the_sandbox(world: World) -> None:
    workflow = load_workflow(EXAMPLES / "prompt_to_upscale.yaml", CATALOG)
    trigger = json.loads((EXAMPLES / "prompt_to_upscale.trigger.json").read_text())
    outcome = await world.runner.start(workflow, trigger)
    assert outcome.status == "succeeded", outcome.error
    (generate,) = world.sent()
    assert generate.fields["prompt"] == trigger["prompt"] and generate.fields["seed"] == "42"
    assert outcome.outputs["generate"]["seed"] == 42
    (upscale,) = world.sent("/v2beta/stable-image/upscale/fast")
    assert upscale.files["image"] == outcome.outputs["generate"]["size_bytes"]


@pytest.mark.anyio
async def test_a_400_pauses_the_run_and_retry_resends_only_that_item(
    world: World, tmp_path: Path
) -> None:
    workflow = flow(tmp_path, loop_flow())
    # Concurrency 1: the items go in order, so the third generation gets the 400.
    world.sandbox.script([None, None, Fault(status=400)], path=GENERATE)
    outcome = await world.runner.start(workflow, {"names": NAMES})
    assert outcome.status == "paused"
    error = outcome.error or {}
    assert error["step"] == "shot" and error["failed_items"] == [2] and error["status"] == 400
    assert error["request_id"]
    assert world.prompts() == Counter(f"{n} on a table" for n in NAMES)  # the others ran
    assert world.sent("/v2beta/stable-image/upscale/fast") == []  # later steps did not
    log = world.store.attempts(outcome.run_id)
    failed = [a for a in log if a["item_index"] == 2]
    assert [(a["status"], a["number"]) for a in failed] == [(400, 1)]  # 400 is never retried

    outcome = await world.runner.resume(outcome.run_id, workflow)
    assert outcome.status == "succeeded", outcome.error
    # Zero repeated requests for finished items: only item 2 was generated twice.
    expected = Counter(f"{n} on a table" for n in NAMES)
    expected["thing 2 on a table"] += 1
    assert world.prompts() == expected
    assert len(world.sent("/v2beta/stable-image/upscale/fast")) == len(NAMES)


@pytest.mark.anyio
async def test_attempts_exhausted_on_503_are_all_in_the_run_log(
    world: World, tmp_path: Path
) -> None:
    workflow = flow(tmp_path, loop_flow(max_attempts=3))
    world.sandbox.script([None] + [Fault(status=503)] * 3, path=GENERATE)
    outcome = await world.runner.start(workflow, {"names": NAMES[:3]})
    assert outcome.status == "paused"
    error = outcome.error or {}
    assert error["status"] == 503 and error["failed_items"] == [1]
    attempts = [a for a in world.store.attempts(outcome.run_id) if a["item_index"] == 1]
    assert [a["status"] for a in attempts] == [503, 503, 503]
    assert [a["wait_before_next"] is not None for a in attempts] == [True, True, False]
    assert all(a["request_id"] for a in attempts)
    # The workflow's policy was the only retry layer: 3 attempts, not 3 × 5.
    assert world.prompts()["thing 1 on a table"] == 3

    outcome = await world.runner.resume(outcome.run_id, workflow)
    assert outcome.status == "succeeded"
    assert world.prompts() == Counter(
        {"thing 0 on a table": 1, "thing 1 on a table": 4, "thing 2 on a table": 1}
    )


@pytest.mark.anyio
async def test_a_budget_refuses_before_anything_is_sent(world: World, tmp_path: Path) -> None:
    # 6 × 3.5 credits of generation fit in 30; the 6 × 2 of upscaling do not.
    workflow = flow(tmp_path, loop_flow(budget={"credits": 30}))
    estimate = estimate_workflow(
        workflow, {"names": NAMES}, world.runtime, default_resolver(), fixed_costs(CATALOG.actions)
    )
    assert [(s.step, s.items, s.total) for s in estimate.steps] == [
        ("shot", 6, 21.0),
        ("big", 6, 12.0),
    ]
    assert estimate.within_budget is False
    assert "OVER budget" in format_estimate(estimate)

    # The whole run's estimate (33) is over the budget: refused before anything is sent.
    with pytest.raises(RunOverBudgetError) as caught:
        await world.runner.start(workflow, {"names": NAMES})
    message = caught.value.message
    assert "estimated at 33 credits" in message and "budget of 30" in message
    assert "shot: 6 × 3.5 = 21; big: 6 × 2 = 12" in message
    assert list(world.sandbox.journal) == []  # nothing at all went out
    assert world.store.runs() == []

    # Within the estimate, the run goes through, and spends what the estimate said.
    enough = flow(tmp_path, {**loop_flow(budget={"credits": 33}), "name": "enough"})
    outcome = await world.runner.start(enough, {"names": NAMES})
    assert outcome.status == "succeeded", outcome.error
    assert world.store.spent(outcome.run_id) == 33


@pytest.mark.anyio
async def test_the_concurrency_bound_holds_on_the_wire(tmp_path: Path) -> None:
    world = World(tmp_path, latency=1.0)
    async with world.runtime:
        data = loop_flow(concurrency=3)
        data["steps"] = data["steps"][:1]
        outcome = await world.runner.start(
            flow(tmp_path, data), {"names": [f"n{i}" for i in range(12)]}
        )
    assert outcome.status == "succeeded"
    assert len(world.sent()) == 12
    assert world.wire.peak == 3


@pytest.mark.anyio
async def test_an_async_job_is_resumed_by_its_stored_id_not_started_again(
    world: World, tmp_path: Path
) -> None:
    image = str(ROOT / "examples" / "media" / "product.png")
    data = {
        "name": "creative",
        "trigger": {"type": "object"},
        "steps": [
            {
                "id": "up",
                "action": "upscale_creative",
                "inputs": {"image": image, "prompt": "a product photo"},
            }
        ],
    }
    workflow = flow(tmp_path, data)
    # The job starts; then every poll of this run fails (a lost connection, say).
    world.sandbox.script([Fault(status=404)], path="/v2beta/results/*")
    outcome = await world.runner.start(workflow, {})
    assert outcome.status == "paused"
    (item,) = world.store.items(outcome.run_id)
    assert item.job_id
    starts = world.sent("/v2beta/stable-image/upscale/creative")
    assert len(starts) == 1

    outcome = await world.runner.resume(outcome.run_id, workflow)
    assert outcome.status == "succeeded", outcome.error
    assert len(world.sent("/v2beta/stable-image/upscale/creative")) == 1  # not started again
    polls = world.sent("/v2beta/results/")
    assert polls and all(item.job_id in e.path for e in polls)


@pytest.mark.anyio
async def test_a_corrected_workflow_resumes_without_sending_again_what_succeeded(
    world: World, tmp_path: Path
) -> None:
    workflow = flow(tmp_path, fixable_flow("gif"))
    names = NAMES[:3]
    outcome = await world.runner.start(workflow, {"names": names})
    assert outcome.status == "paused" and (outcome.error or {})["step"] == "big"
    assert "output_format" in (outcome.error or {})["message"]
    assert len(world.sent()) == 3 and len(world.sent("/v2beta/stable-image/edit/")) == 3
    assert world.sent("/v2beta/stable-image/upscale/") == []
    # The stored definition alone fails the same way: that is what the file fixes.
    again = await world.runner.resume(outcome.run_id, workflow)
    assert again.status == "paused" and world.sent("/v2beta/stable-image/upscale/") == []

    fixed = flow(tmp_path, fixable_flow("webp"))
    changes = revise_run(world.store, outcome.run_id, fixed)
    assert changes == ["vars: changed"]
    assert world.store.run(outcome.run_id).spec["vars"] == {"format": "webp"}
    outcome = await world.runner.resume(outcome.run_id, fixed)
    assert outcome.status == "succeeded", outcome.error
    # Zero repeated requests: each generation and cut-out went out once, over both runs.
    assert world.prompts() == Counter(f"{n} on a table" for n in names)
    assert len(world.sent("/v2beta/stable-image/edit/remove-background")) == 3
    upscales = world.sent("/v2beta/stable-image/upscale/fast")
    assert [e.fields["output_format"] for e in upscales] == ["webp"] * 3
    events = [e["message"] for e in world.store.events(outcome.run_id)]
    assert any("replaced by the corrected one" in m for m in events)


@pytest.mark.anyio
async def test_a_corrected_workflow_that_renames_a_succeeded_step_is_refused(
    world: World, tmp_path: Path
) -> None:
    workflow = flow(tmp_path, fixable_flow("gif"))
    outcome = await world.runner.start(workflow, {"names": NAMES[:2]})
    assert outcome.status == "paused"
    stored = world.store.run(outcome.run_id).spec
    sent = len(world.sandbox.journal)

    renamed = fixable_flow("webp")
    renamed["steps"][1]["id"] = "cut"
    renamed["steps"][2]["for_each"] = "<<steps.cut>>"
    with pytest.raises(DefinitionError) as caught:
        revise_run(world.store, outcome.run_id, flow(tmp_path, renamed))
    error = caught.value
    assert error.place == "steps.cutout"
    assert "step 'cutout' succeeded" in error.problem and "no step 'cutout'" in error.problem
    assert "keep the step" in error.problem

    other = fixable_flow("webp")
    other["steps"][0]["action"] = "stable_image_core"
    other["steps"][0]["inputs"] = {"prompt": "<<item>> on a table"}
    with pytest.raises(DefinitionError) as caught:
        revise_run(world.store, outcome.run_id, flow(tmp_path, other))
    assert caught.value.place == "steps.shot.action"
    assert "must stay generate_image" in caught.value.problem

    # Nothing was sent and nothing about the run changed.
    assert len(world.sandbox.journal) == sent
    assert world.store.run(outcome.run_id).spec == stored
    assert [s.step_id for s in world.store.steps(outcome.run_id)] == ["shot", "cutout", "big"]
