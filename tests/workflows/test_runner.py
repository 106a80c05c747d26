"""The runner's scheduling, store and resume logic, with a scripted node executor
(the sandbox tests check the same promises on the wire)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stability_connector.retry import RetryPolicy
from stability_connector.workflows.runner import (
    LARGE_OUTPUT,
    RunOverBudgetError,
    WorkflowRunner,
    revise_run,
)
from stability_connector.workflows.spec import load_workflow
from stability_connector.workflows.store import Store

from .helpers import FakeExecutor, fake_catalog

PRODUCTS = [{"name": f"product {i}"} for i in range(12)]

LOOP: dict[str, Any] = {
    "name": "loop",
    "trigger": {"type": "object", "properties": {"products": {"type": "array"}, "look": {}}},
    "retry": {"max_attempts": 2, "initial_delay": 0.5},
    "vars": {"suffix": "studio"},
    "steps": [
        {
            "id": "shot",
            "action": "gen",
            "for_each": "<<trigger.products>>",
            "concurrency": 4,
            "inputs": {"prompt": "<<item.name>>, <<vars.suffix>>, <<trigger.look>>"},
        },
        {
            "id": "big",
            "action": "upscale",
            "for_each": "<<steps.shot>>",
            "concurrency": 2,
            "inputs": {"image": "<<item.file>>"},
        },
        {"id": "hero", "action": "upscale", "inputs": {"image": "<<steps.big[3].file>>"}},
    ],
}


def runner_for(executor: FakeExecutor, store: Store) -> WorkflowRunner:
    return WorkflowRunner(executor, store, default_retry=fake_catalog().connector.retry)


def load(write_workflow: Any, data: dict[str, Any]) -> Any:
    return load_workflow(write_workflow(data), fake_catalog())


@pytest.mark.anyio
async def test_inputs_map_from_trigger_vars_earlier_steps_and_items(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor()
    outcome = await runner_for(executor, store).start(
        load(write_workflow, LOOP), {"products": PRODUCTS, "look": "warm"}
    )
    assert outcome.status == "succeeded"
    prompts = sorted(c.inputs["prompt"] for c in executor.calls if c.action == "gen")
    assert prompts == sorted(f"product {i}, studio, warm" for i in range(12))
    # The loop's outputs are its items' outputs in item order, whatever order they finished.
    shots = outcome.outputs["shot"]
    assert [s["echo"]["prompt"] for s in shots] == [f"product {i}, studio, warm" for i in range(12)]
    # Each upscale got the file of the item at its own position.
    big_inputs = {c.inputs["image"] for c in executor.calls if c.action == "upscale"}
    assert {s["file"] for s in shots} <= big_inputs
    hero = [c for c in executor.calls if c.action == "upscale"][-1]
    assert hero.inputs["image"] == outcome.outputs["big"][3]["file"]
    # Every request ran with the workflow's retry policy (the only retry layer).
    assert {p.max_attempts for p in executor.policies} == {2}
    assert all(isinstance(p, RetryPolicy) for p in executor.policies)


@pytest.mark.anyio
async def test_the_concurrency_bound_holds(write_workflow: Any, store: Store) -> None:
    executor = FakeExecutor(yields=10)
    data = {**LOOP, "steps": LOOP["steps"][:1]}
    outcome = await runner_for(executor, store).start(
        load(write_workflow, data), {"products": PRODUCTS * 3, "look": "warm"}
    )
    assert outcome.status == "succeeded"
    assert executor.peak == 4
    assert len(executor.calls) == 36


@pytest.mark.anyio
async def test_a_failed_item_pauses_the_run_and_retry_sends_only_what_did_not_succeed(
    write_workflow: Any, store: Store
) -> None:
    broken = {"product 5", "product 9"}
    executor = FakeExecutor(
        fail=lambda action, inputs: (
            400 if inputs.get("prompt", "").split(",")[0] in broken else None
        )
    )
    workflow = load(write_workflow, LOOP)
    runner = runner_for(executor, store)
    outcome = await runner.start(workflow, {"products": PRODUCTS, "look": "warm"})
    assert outcome.status == "paused"
    assert outcome.error is not None and outcome.error["step"] == "shot"
    assert outcome.error["failed_items"] == [5, 9]
    assert outcome.error["status"] == 400 and outcome.error["request_id"] == "req-x"
    assert "2 of 12 items failed" in outcome.error["message"]
    # The later steps never ran.
    assert {c.action for c in executor.calls} == {"gen"}
    assert len(executor.calls) == 12
    run = store.run(outcome.run_id)
    assert run.status == "paused" and run.error is not None
    events = store.events(outcome.run_id)
    assert any(e["level"] == "error" and e["item"] == 5 for e in events)
    assert len(store.attempts(outcome.run_id)) == 12

    # The cause is fixed; retry sends only the two failed items, then the rest of the run.
    executor.fail = lambda action, inputs: None
    executor.calls.clear()
    outcome = await runner.resume(outcome.run_id, workflow)
    assert outcome.status == "succeeded"
    gens = sorted(c.inputs["prompt"].split(",")[0] for c in executor.calls if c.action == "gen")
    assert gens == ["product 5", "product 9"]
    assert sum(c.action == "upscale" for c in executor.calls) == 13
    items = store.items(outcome.run_id, "shot")
    assert [i.sends for i in items] == [2 if i.index in (5, 9) else 1 for i in items]


@pytest.mark.anyio
async def test_key_problems_stop_the_loop_from_starting_more_items(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor(fail=lambda action, inputs: 401)
    data = {**LOOP, "steps": LOOP["steps"][:1]}
    outcome = await runner_for(executor, store).start(
        load(write_workflow, data), {"products": PRODUCTS * 5, "look": "warm"}
    )
    assert outcome.status == "paused"
    assert len(executor.calls) <= 4  # the items already in flight, no more


@pytest.mark.anyio
async def test_a_run_whose_estimate_is_over_the_budget_is_refused_before_it_starts(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor()
    workflow = load(write_workflow, {**LOOP, "budget": {"credits": 40}})
    # 12 generations × 3 + 12 upscales × 2 + 1 upscale × 2 = 62 credits.
    with pytest.raises(RunOverBudgetError) as caught:
        await runner_for(executor, store).start(workflow, {"products": PRODUCTS, "look": "warm"})
    message = caught.value.message
    assert "estimated at 62 credits" in message and "budget of 40" in message
    assert "shot: 12 × 3 = 36; big: 12 × 2 = 24; hero: 1 × 2 = 2" in message
    assert "nothing was sent" in message
    assert executor.calls == [] and store.runs() == []


@pytest.mark.anyio
async def test_a_retry_whose_estimate_is_over_a_lowered_budget_is_refused(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor(fail=lambda action, inputs: 400 if action == "upscale" else None)
    workflow = load(write_workflow, {**LOOP, "budget": {"credits": 62}})
    runner = runner_for(executor, store)
    outcome = await runner.start(workflow, {"products": PRODUCTS, "look": "warm"})
    assert outcome.status == "paused"
    sent = len(executor.calls)
    with pytest.raises(RunOverBudgetError) as caught:
        await runner.resume(outcome.run_id, workflow, budget=50)
    message = caught.value.message
    assert f"the retry of run {outcome.run_id} is estimated at 62 credits" in message
    assert "budget of 50" in message and f"runs retry {outcome.run_id} --budget 62" in message
    assert len(executor.calls) == sent, "nothing was sent"
    assert store.run(outcome.run_id).shown_status == "paused"


@pytest.mark.anyio
async def test_a_budget_refuses_the_step_whose_real_cost_the_estimate_could_not_know(
    write_workflow: Any, store: Store
) -> None:
    # The estimate (62) fits, but each generation is charged 4 instead of 3.
    executor = FakeExecutor(charged={"gen": 4.0})
    data = {**LOOP, "budget": {"credits": 62}}
    workflow = load(write_workflow, data)
    runner = runner_for(executor, store)
    outcome = await runner.start(workflow, {"products": PRODUCTS, "look": "warm"})
    assert outcome.status == "paused"
    assert outcome.error is not None
    assert outcome.error["type"] == "BudgetExceededError" and outcome.error["step"] == "big"
    assert "budget of 62" in outcome.error["message"]
    assert "nothing was sent" in outcome.error["message"]
    assert {c.action for c in executor.calls} == {"gen"}
    assert store.spent(outcome.run_id) == 48

    # A retry with a larger budget goes on from there, without sending a generation again.
    executor.calls.clear()
    outcome = await runner.resume(outcome.run_id, workflow, budget=80)
    assert outcome.status == "succeeded"
    assert {c.action for c in executor.calls} == {"upscale"}
    assert store.spent(outcome.run_id) == 48 + 24 + 2


@pytest.mark.anyio
async def test_a_started_job_is_stored_before_polling_and_resumed_by_its_id(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor(jobs={"gen"}, job_crash=lambda action, inputs: True)
    data = {**LOOP, "steps": LOOP["steps"][:1]}
    workflow = load(write_workflow, data)
    runner = runner_for(executor, store)
    outcome = await runner.start(workflow, {"products": PRODUCTS[:3], "look": "warm"})
    assert outcome.status == "paused"
    stored = {i.index: i.job_id for i in store.items(outcome.run_id, "shot")}
    assert all(stored.values())

    executor.job_crash = lambda action, inputs: False
    executor.calls.clear()
    outcome = await runner.resume(outcome.run_id, workflow)
    assert outcome.status == "succeeded"
    assert sorted(c.job_id or "" for c in executor.calls) == sorted(stored.values())


@pytest.mark.anyio
async def test_content_filtered_policies(write_workflow: Any, store: Store) -> None:
    def data(policy: str) -> dict[str, Any]:
        step = {"id": "one", "action": "gen", "inputs": {"prompt": "x"}, "content_filtered": policy}
        return {"name": policy, "retry": {"max_attempts": 3}, "steps": [step]}

    always = FakeExecutor(filtered=lambda action, inputs: True)
    kept = await runner_for(always, store).start(load(write_workflow, data("continue")), {})
    assert kept.status == "succeeded" and kept.outputs["one"]["filtered"] is True

    failed = await runner_for(always, store).start(load(write_workflow, data("fail")), {})
    assert failed.status == "paused" and failed.error is not None
    assert failed.error["type"] == "ContentFilteredError"

    once = FakeExecutor(filtered=lambda action, inputs: "seed" not in inputs)
    retried = await runner_for(once, store).start(load(write_workflow, data("retry")), {})
    assert retried.status == "succeeded"
    assert len(once.calls) == 2 and "seed" in once.calls[1].inputs
    assert store.spent(retried.run_id) == 6  # both sends were charged


@pytest.mark.anyio
async def test_large_base64_outputs_are_kept_as_their_file(
    write_workflow: Any, store: Store
) -> None:
    executor = FakeExecutor()
    data = {**LOOP, "steps": LOOP["steps"][:1]}
    outcome = await runner_for(executor, store).start(
        load(write_workflow, data), {"products": PRODUCTS[:2], "look": "warm"}
    )
    for out in outcome.outputs["shot"]:
        assert out["image"] == out["file"]
    assert all(len(str(i.outputs)) < LARGE_OUTPUT for i in store.items(outcome.run_id))


@pytest.mark.anyio
async def test_a_for_each_that_is_not_a_list_pauses_with_a_clear_error(
    write_workflow: Any, store: Store
) -> None:
    data = {**LOOP, "trigger": {"type": "object"}, "steps": LOOP["steps"][:1]}
    outcome = await runner_for(FakeExecutor(), store).start(
        load(write_workflow, data), {"products": "mug", "look": "warm"}
    )
    assert outcome.status == "paused" and outcome.error is not None
    assert "gave a str, not a list" in outcome.error["message"]


@pytest.mark.anyio
async def test_a_corrected_loop_step_keeps_its_succeeded_items(
    write_workflow: Any, store: Store
) -> None:
    def even_gif(action: str, inputs: dict[str, Any]) -> int | None:
        # The API takes gif only for some images: those made by an odd-numbered call.
        number = int(inputs.get("image", "0").rsplit("-", 1)[-1].split(".")[0])
        return 400 if inputs.get("format") == "gif" and number % 2 == 0 else None

    executor = FakeExecutor(fail=even_gif)
    data = copy.deepcopy(LOOP)
    data["steps"][1]["inputs"]["format"] = "gif"
    runner = runner_for(executor, store)
    outcome = await runner.start(load(write_workflow, data), {"products": PRODUCTS, "look": "x"})
    assert outcome.status == "paused" and outcome.error is not None
    failed = len(outcome.error["failed_items"])
    done = {i.outputs["echo"]["image"] for i in store.items(outcome.run_id, "big") if i.outputs}
    assert 0 < failed < 12 and len(done) == 12 - failed

    data["steps"][1]["inputs"]["format"] = "png"
    fixed = load(write_workflow, data)
    changes = revise_run(store, outcome.run_id, fixed)
    assert changes == [
        f"step big: {12 - failed} succeeded item(s) kept; the others run with the corrected "
        "definition"
    ]
    executor.calls.clear()
    outcome = await runner.resume(outcome.run_id, fixed)
    assert outcome.status == "succeeded", outcome.error
    resent = [c for c in executor.calls if c.action == "upscale"]
    assert len(resent) == failed + 1  # those that failed, then hero
    assert not {c.inputs["image"] for c in resent} & done
    assert {c.inputs.get("format") for c in resent[:failed]} == {"png"}
    assert not any(c.action == "gen" for c in executor.calls)
