"""Run a workflow: steps in order, loops with a concurrency bound, every state change in
the store as it happens, a failed node pausing the run, and resuming from it.

What the runner promises (and the tests check on the sandbox's journal):

- A node or loop item recorded as succeeded is never sent again, by a retry or by a
  resume after the process died. An item that was in flight when the process died is
  sent again on retry (its outcome is unknown; the run log says it may have been charged),
  unless it had started an asynchronous job: then the job is resumed by its stored id.
- The workflow's retry policy is handed to the node runtime, which is the only layer that
  retries a request. The runner never sends a failed item again on its own.
- Rate limiting lives in the runtime (one limiter per key per process, shared across
  processes through a directory); every loop item and poll of every run goes through it.
- A run whose estimate (known from the trigger) is over its credit budget is refused
  before it starts, and so is a retry (a corrected definition or budget may change
  it). The budget is also checked before a step (its whole loop) and before each item,
  for the costs the estimate could not know; the refused step sends nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stability_connector.errors import (
    AuthenticationError,
    ConnectorError,
    ContentFilteredError,
    DefinitionError,
    ExecutionError,
    PaymentRequiredError,
)
from stability_connector.workflows import estimate as estimate_mod
from stability_connector.workflows.estimate import WorkflowEstimate
from stability_connector.workflows.progress import NullProgress, ProgressSink
from stability_connector.workflows.spec import StepSpec, Workflow, WorkflowSpec, validate_trigger
from stability_connector.workflows.store import PLAIN, ItemRow, Store, StoreError

LARGE_OUTPUT = 64 * 1024
"""Output strings longer than this (base64 media) are kept as the path of the file that
holds the same media, so a long loop's memory and database stay flat."""

MAX_SEED = 4294967294


class NodeExecutor(Protocol):
    """What the runner needs from the node runtime (``node.Runtime`` satisfies it)."""

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
        out_dir: Path | None = None,
    ) -> Any: ...

    def estimate_credits(self, action: Any, inputs: Any, context: Any = None) -> float | None: ...


Resolver = Callable[[str, Mapping[str, Any], str], Any]
"""(template, context, field name) -> value; the runtime's template engine."""


class BudgetExceededError(ExecutionError):
    """The next step or item would take the run past its credit budget. Nothing was sent."""


class RunOverBudgetError(BudgetExceededError):
    """The estimate for the whole run, known from the trigger before anything runs, is
    over the budget: the run is refused before it starts (no run is recorded)."""

    def __init__(self, message: str, estimate: WorkflowEstimate) -> None:
        super().__init__(message)
        self.estimate = estimate

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "estimate": self.estimate.to_dict()}


class LoopError(ConnectorError):
    """``for_each`` did not yield a list."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # succeeded | paused
    error: dict[str, Any] | None = None
    outputs: dict[str, Any] = field(default_factory=dict)


class _StepFailed(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


def default_resolver() -> Resolver:
    from stability_connector.templates import render

    def resolve(template: str, context: Mapping[str, Any], field_name: str) -> Any:
        return render(field_name, template, context)

    return resolve


class _Budget:
    """Credits spent and reserved by items in flight, against the run's limit."""

    def __init__(self, limit: float | None, spent: float) -> None:
        self.limit = limit
        self.spent = spent
        self.reserved = 0.0

    def check(self, amount: float, what: str) -> None:
        if self.limit is None:
            return
        if self.spent + self.reserved + amount > self.limit + 1e-9:
            raise BudgetExceededError(
                f"{what} would cost about {amount:g} credits, and the run has spent "
                f"{self.spent:g} (+{self.reserved:g} in flight) of its budget of "
                f"{self.limit:g}; nothing was sent. Raise budget.credits (or retry with "
                f"--budget), or run fewer items."
            )

    def reserve(self, amount: float, what: str) -> None:
        self.check(amount, what)
        self.reserved += amount

    def settle(self, reserved: float, charged: float) -> None:
        self.reserved -= reserved
        self.spent += charged


class WorkflowRunner:
    """Runs workflows through one node executor (one per process: its rate limiter is
    shared by every step, item and poll of every run)."""

    def __init__(
        self,
        executor: NodeExecutor,
        store: Store,
        *,
        default_retry: Any = None,
        progress: ProgressSink | None = None,
        resolve: Resolver | None = None,
        policy_factory: Callable[[Any], Any] | None = None,
        rng: random.Random | None = None,
        files_dir: Path | None = None,
        fixed_costs: Mapping[str, float | None] | None = None,
    ) -> None:
        self.executor = executor
        catalog = getattr(executor, "catalog", None)
        if fixed_costs is None and catalog is not None:
            fixed_costs = estimate_mod.fixed_costs(catalog.actions)
        self.fixed_costs: Mapping[str, float | None] = fixed_costs or {}
        self.files_dir = files_dir
        self.store = store
        self.default_retry = default_retry
        self.progress = progress or NullProgress()
        self.resolve = resolve or default_resolver()
        self.policy_factory = policy_factory or _policy_from_spec
        self.rng = rng or random.Random()

    # --- entry points ------------------------------------------------------------------

    async def start(self, workflow: Workflow, trigger: Any) -> RunOutcome:
        """Validate the trigger, check the whole run's estimate against the budget,
        record a new run and execute it. Raises :class:`RunOverBudgetError` (nothing
        sent, no run recorded) when the estimate is over the budget."""
        validate_trigger(workflow, trigger)
        self.check_budget(workflow, trigger)
        spec = workflow.spec
        run_id = self.store.create_run(
            workflow=spec.name,
            file=workflow.file,
            spec=spec.model_dump(mode="json", by_alias=True, exclude_none=True),
            trigger=trigger,
            budget=spec.budget.credits if spec.budget else None,
            steps=[(s.id, s.action, s.for_each is not None) for s in spec.steps],
        )
        self.store.add_event(run_id, f"run started: workflow {spec.name} ({workflow.file})")
        return await self._execute(run_id, workflow, trigger)

    def check_budget(
        self, workflow: Workflow, trigger: Any, *, budget: float | None = None, run_id: str = ""
    ) -> WorkflowEstimate | None:
        """Refuse a run whose estimate, known from the trigger, is over its budget (the
        workflow's, or ``budget`` when given). Costs the estimate cannot know (a loop over
        a list only the run produces, a price the API does not publish) are left to the
        check before each step and item. ``run_id``: a retry of that run is refused."""
        spec = workflow.spec
        limit = budget if budget is not None else (spec.budget.credits if spec.budget else None)
        if limit is None:
            return None
        estimate = estimate_mod.estimate_workflow(
            workflow, trigger, self.executor, self.resolve, self.fixed_costs
        )
        if estimate.total > limit:
            known = "" if estimate.complete else "at least "
            what = f"the retry of run {run_id}" if run_id else "the run"
            raise_it = (
                f"`runs retry {run_id} --budget {estimate.total:g}`"
                if run_id
                else f"budget.credits to at least {estimate.total:g}"
            )
            raise RunOverBudgetError(
                f"{workflow.file}: budget.credits: {what} is estimated at {known}"
                f"{estimate.total:g} credits in all ({estimate.figures()}), over its budget "
                f"of {limit:g}; nothing was sent. Raise it ({raise_it}), or run fewer "
                "items (`workflow estimate` shows the figures).",
                estimate,
            )
        return estimate

    async def resume(
        self, run_id: str, workflow: Workflow, *, budget: float | None = None
    ) -> RunOutcome:
        """Resume a paused or interrupted run from its failed node. ``workflow`` is the
        run's stored definition: the one it started with (``commands.load_run_workflow``)
        or a corrected one stored by :func:`revise_run`."""
        run = self.store.run(run_id)
        if run.status == "succeeded":
            return RunOutcome(run_id, "succeeded", outputs=self._all_outputs(run_id, workflow))
        previous = run.shown_status
        # The whole run (what succeeded was spent from the same budget) must still fit:
        # a corrected definition or a lower budget may no longer.
        limit = budget if budget is not None else run.budget
        self.check_budget(workflow, run.trigger, budget=limit, run_id=run_id)
        run = self.store.claim_run(run_id)
        if budget is not None:
            self.store.set_budget(run_id, budget)
        self.store.add_event(
            run_id,
            f"retry: resuming the {previous} run"
            + (f" with a budget of {budget:g} credits" if budget is not None else ""),
        )
        return await self._execute(run_id, workflow, run.trigger)

    # --- the run -----------------------------------------------------------------------

    async def _execute(self, run_id: str, workflow: Workflow, trigger: Any) -> RunOutcome:
        spec = workflow.spec
        retry_spec = spec.retry or self.default_retry
        policy = self.policy_factory(retry_spec) if retry_spec is not None else None
        run = self.store.run(run_id)
        budget = _Budget(run.budget, self.store.spent(run_id))
        outputs: dict[str, Any] = {}
        rows = {row.step_id: row for row in self.store.steps(run_id)}
        for step in spec.steps:
            if rows[step.id].status == "succeeded":
                outputs[step.id] = self._step_outputs(run_id, step)
                continue
            self.store.set_step_status(run_id, step.id, "running")
            context = {"trigger": trigger, "steps": outputs, "vars": spec.vars}
            try:
                if step.for_each is None:
                    await self._run_plain(run_id, workflow, step, context, policy, budget)
                else:
                    await self._run_loop(run_id, workflow, step, context, policy, budget)
            except _StepFailed as failed:
                self.store.set_step_status(run_id, step.id, "failed", failed.error)
                self.store.set_run_status(run_id, "paused", {"step": step.id, **failed.error})
                self.store.add_event(
                    run_id,
                    f"paused at step {step.id}: {failed.error.get('message')}"
                    f" — fix the cause, then `runs retry {run_id}`",
                    level="error",
                    step_id=step.id,
                    data=failed.error,
                )
                self.progress.run_paused(run_id, step.id, failed.error)
                return RunOutcome(run_id, "paused", {"step": step.id, **failed.error}, outputs)
            self.store.set_step_status(run_id, step.id, "succeeded")
            outputs[step.id] = self._step_outputs(run_id, step)
            self.store.add_event(run_id, f"step {step.id} succeeded", step_id=step.id)
        self.store.set_run_status(run_id, "succeeded")
        self.store.add_event(run_id, f"run succeeded ({budget.spent:g} credits)")
        self.progress.run_finished(run_id)
        return RunOutcome(run_id, "succeeded", None, outputs)

    def _step_outputs(self, run_id: str, step: StepSpec) -> Any:
        items = self.store.items(run_id, step.id)
        if step.for_each is None:
            return items[0].outputs if items else None
        return [row.outputs for row in items]

    def _all_outputs(self, run_id: str, workflow: Workflow) -> dict[str, Any]:
        return {step.id: self._step_outputs(run_id, step) for step in workflow.spec.steps}

    async def _run_plain(
        self,
        run_id: str,
        workflow: Workflow,
        step: StepSpec,
        context: dict[str, Any],
        policy: Any,
        budget: _Budget,
    ) -> None:
        self.store.ensure_items(run_id, step.id, None)
        (row,) = self.store.items(run_id, step.id)
        self.progress.step_started(step.id, total=1, done=0, loop=False)
        error = await self._run_item(run_id, workflow, step, row, context, policy, budget)
        self.progress.step_finished(step.id)
        if error is not None:
            raise _StepFailed(error)

    async def _run_loop(
        self,
        run_id: str,
        workflow: Workflow,
        step: StepSpec,
        context: dict[str, Any],
        policy: Any,
        budget: _Budget,
    ) -> None:
        assert step.for_each is not None
        try:
            items = self.resolve(step.for_each, context, f"steps.{step.id}.for_each")
        except ConnectorError as exc:
            raise _StepFailed(exc.to_dict()) from None
        if not isinstance(items, list | tuple):
            error = LoopError(
                f"steps.{step.id}.for_each: {step.for_each!r} gave a {type(items).__name__}, "
                "not a list; point it at an array (e.g. <<trigger.products>>)"
            )
            raise _StepFailed(error.to_dict())
        self.store.ensure_items(run_id, step.id, list(items))
        rows = self.store.items(run_id, step.id)
        todo = [row for row in rows if row.status != "succeeded"]
        self._check_loop_budget(run_id, step, todo, context, budget)
        self.store.add_event(
            run_id,
            f"step {step.id}: {len(rows)} items, {len(rows) - len(todo)} already done, "
            f"{len(todo)} to run, {step.concurrency} at a time",
            step_id=step.id,
        )
        self.progress.step_started(step.id, total=len(rows), done=len(rows) - len(todo), loop=True)
        queue = iter(todo)
        failures: list[dict[str, Any]] = []
        stop = False

        async def worker() -> None:
            nonlocal stop
            for row in queue:
                if stop:
                    return
                error = await self._run_item(run_id, workflow, step, row, context, policy, budget)
                if error is not None:
                    failures.append({"item": row.index, **error})
                    # Key or credits problems fail every item alike: start no more.
                    if error.get("type") in _SYSTEMIC:
                        stop = True

        async with asyncio.TaskGroup() as group:
            for _ in range(min(step.concurrency, len(todo))):
                group.create_task(worker())
        self.progress.step_finished(step.id)
        if failures:
            failures.sort(key=lambda f: f["item"])
            first = failures[0]
            left = sum(1 for r in self.store.items(run_id, step.id) if r.status != "succeeded")
            raise _StepFailed(
                {
                    **first,
                    "message": f"{len(failures)} of {len(rows)} items failed "
                    f"({left} not done); first, item {first['item']}: {first.get('message')}",
                    "failed_items": [f["item"] for f in failures],
                }
            )

    def _check_loop_budget(
        self,
        run_id: str,
        step: StepSpec,
        todo: list[ItemRow],
        context: dict[str, Any],
        budget: _Budget,
    ) -> None:
        if budget.limit is None or not todo:
            return
        total, unknown = 0.0, 0
        for row in todo:
            cost = self._estimate(step, {**context, "item": row.item})
            if cost is None:
                unknown += 1
            else:
                total += cost
        if unknown:
            self._warn_unknown_cost(run_id, step, unknown)
        try:
            budget.check(total, f"step {step.id} ({len(todo)} items)")
        except BudgetExceededError as exc:
            raise _StepFailed(exc.to_dict()) from None

    def _warn_unknown_cost(self, run_id: str, step: StepSpec, count: int) -> None:
        self.store.add_event(
            run_id,
            f"step {step.id}: the cost of {count} send(s) is unknown before sending; "
            "the budget counts them once their cost is reported",
            level="warning",
            step_id=step.id,
        )

    def _estimate(self, step: StepSpec, context: Mapping[str, Any]) -> float | None:
        try:
            return self.executor.estimate_credits(step.action, step.inputs, context)
        except ConnectorError:
            return None  # the send reports the problem properly

    async def _run_item(
        self,
        run_id: str,
        workflow: Workflow,
        step: StepSpec,
        row: ItemRow,
        context: dict[str, Any],
        policy: Any,
        budget: _Budget,
    ) -> dict[str, Any] | None:
        """Run one node or loop item to its end; the error (as a dict) or None."""
        index = row.index
        item_context = dict(context)
        if index != PLAIN:
            item_context["item"] = row.item
        label = f"step {step.id}" + (f" item {index}" if index != PLAIN else "")
        inputs: dict[str, Any] = dict(step.inputs)
        charged = 0.0
        sends = 0
        job_id = row.job_id
        if row.status == "running" and job_id is None:
            self.store.add_event(
                run_id,
                f"{label} was in flight when the run stopped; sending it again "
                "(the earlier send may have been charged)",
                level="warning",
                step_id=step.id,
                index=index,
            )
        try:
            while True:
                estimate = self._estimate(step, item_context)
                budget.reserve(estimate or 0.0, label)
                self.store.item_started(run_id, step.id, index)
                if job_id is not None:
                    self.store.add_event(
                        run_id,
                        f"{label}: resuming job {job_id} (not started again)",
                        step_id=step.id,
                        index=index,
                    )
                sends += 1
                try:
                    result = await self.executor.run(
                        step.action,
                        inputs,
                        item_context,
                        workflow.spec.connection,
                        policy,
                        job_id=job_id,
                        on_job_started=lambda jid: self._job_started(run_id, step, index, jid),
                        on_attempt=lambda a: self.store.add_attempt(run_id, step.id, index, a),
                        out_dir=self._out_dir(run_id, step),
                    )
                except BaseException:
                    budget.settle(estimate or 0.0, 0.0)
                    raise
                cost = result.credits if result.credits is not None else estimate
                budget.settle(estimate or 0.0, cost or 0.0)
                charged += cost or 0.0
                job_id = None
                outputs = dict(result.outputs)
                if not outputs.get("filtered") or step.content_filtered == "continue":
                    break
                if step.content_filtered == "fail" or not self._can_reseed(step, sends, policy):
                    raise ContentFilteredError(
                        f"{label}: the API blurred the result (CONTENT_FILTERED; charged) and "
                        f"the step's content_filtered policy is {step.content_filtered!r}; "
                        "rephrase the prompt, or set content_filtered: continue to keep "
                        "blurred results",
                        outputs=compact_outputs(outputs),
                    )
                # As text: inputs are normalized, so "42" fits integer and string seeds.
                inputs["seed"] = str(self.rng.randint(1, MAX_SEED))
                self.store.add_event(
                    run_id,
                    f"{label}: result blurred (CONTENT_FILTERED); sending again with seed "
                    f"{inputs['seed']}",
                    level="warning",
                    step_id=step.id,
                    index=index,
                )
        except ConnectorError as exc:
            error = exc.to_dict()
        except Exception as exc:  # a defect must still pause the run, not lose it
            error = {"type": type(exc).__name__, "message": str(exc), "retryable": False}
        else:
            stored = compact_outputs(outputs)
            self.store.item_succeeded(run_id, step.id, index, stored, charged)
            self.progress.item_done(step.id, ok=True)
            return None
        self.store.item_failed(run_id, step.id, index, error)
        self.store.add_event(
            run_id,
            f"{label} failed: {error.get('message')}",
            level="error",
            step_id=step.id,
            index=index,
            data=error,
        )
        self.progress.item_done(step.id, ok=False)
        return error

    def _out_dir(self, run_id: str, step: StepSpec) -> Path | None:
        """Each run's files in their own folder, one per step."""
        return None if self.files_dir is None else self.files_dir / run_id / step.id

    def _can_reseed(self, step: StepSpec, sends: int, policy: Any) -> bool:
        limit = getattr(policy, "max_attempts", 3) if policy is not None else 3
        return sends < limit

    def _job_started(self, run_id: str, step: StepSpec, index: int, job_id: str) -> None:
        # Committed before the first poll: a crash from here on resumes this job.
        self.store.item_job_started(run_id, step.id, index, job_id)
        self.store.add_event(
            run_id,
            f"job {job_id} started",
            step_id=step.id,
            index=None if index == PLAIN else index,
        )


def revise_run(store: Store, run_id: str, workflow: Workflow) -> list[str]:
    """Store a corrected definition for a paused or interrupted run, so that a retry
    resumes with it; what changed, in words.

    What already succeeded stays as it is and is never sent again: its stored outputs feed
    the later steps. So a step with succeeded work must keep its id, its action and
    whether it is a loop (and, while some of its items are still to run, its for_each);
    otherwise :class:`DefinitionError` names the step and nothing is stored. Failed and
    not-yet-run steps and items run with the new definition; a changed step's items that
    did not succeed are made again from it (an asynchronous job they had started is let
    go: its inputs were the old ones)."""
    run = store.run(run_id)
    if run.alive_elsewhere:
        raise StoreError(f"run {run_id} is still running (process {run.pid}); wait for it to pause")
    validate_trigger(workflow, run.trigger)
    stored = WorkflowSpec.model_validate(run.spec)
    old = {step.id: step for step in stored.steps}
    new = {step.id: step for step in workflow.spec.steps}
    rows = {row.step_id: row for row in store.steps(run_id)}
    kept: dict[str, int] = {}
    for item in store.items(run_id):
        if item.status == "succeeded":
            kept[item.step_id] = kept.get(item.step_id, 0) + 1
    notes: list[str] = []
    reset: set[str] = set()
    for step_id, count in kept.items():
        before, after = old[step_id], new.get(step_id)
        done = rows[step_id].status == "succeeded"
        if done:
            what = f"step {step_id!r} succeeded in run {run_id} and is kept (never sent again)"
        else:
            what = (
                f"{count} item(s) of step {step_id!r} succeeded in run {run_id} and are kept "
                "(never sent again)"
            )

        def refuse(place: str, problem: str, what: str = what) -> DefinitionError:
            return DefinitionError(workflow.file, place, f"{what}; {problem}")

        if after is None:
            steps = ", ".join(new)
            raise refuse(
                f"steps.{step_id}",
                f"this file has no step {step_id!r} (renamed or removed; its steps: {steps}). "
                "Later steps read its stored outputs by that id: keep the step, with the "
                "same id and action",
            )
        if after.action != before.action:
            raise refuse(
                f"steps.{step_id}.action",
                f"its stored outputs are {before.action}'s, so its action must stay "
                f"{before.action} (not {after.action})",
            )
        if (after.for_each is None) != (before.for_each is None):
            kind = "a loop" if before.for_each is not None else "a single step (no for_each)"
            raise refuse(f"steps.{step_id}.for_each", f"it must stay {kind}")
        if not done and after.for_each != before.for_each:
            raise refuse(
                f"steps.{step_id}.for_each",
                f"for_each must stay {before.for_each!r}, so they remain the same items",
            )
    for step in workflow.spec.steps:
        previous = old.get(step.id)
        if previous is None:
            notes.append(f"step {step.id}: new")
        elif rows[step.id].status == "succeeded":
            if step != previous:
                notes.append(
                    f"step {step.id}: already succeeded; its stored outputs are kept and "
                    "its changes do not apply"
                )
        elif step != previous:
            reset.add(step.id)
            if step.id in kept:
                notes.append(
                    f"step {step.id}: {kept[step.id]} succeeded item(s) kept; the others run "
                    "with the corrected definition"
                )
            else:
                notes.append(f"step {step.id}: runs with the corrected definition")
    notes += [f"step {step_id}: removed" for step_id in old if step_id not in new]
    old_budget = stored.budget.credits if stored.budget else None
    new_budget = workflow.spec.budget.credits if workflow.spec.budget else None
    budget = run.budget
    if new_budget != old_budget:
        budget = new_budget
        notes.append("budget: " + (f"{new_budget:g} credits" if new_budget is not None else "none"))
    changed = [
        name
        for name in ("name", "description", "trigger", "retry", "connection", "vars")
        if getattr(workflow.spec, name) != getattr(stored, name)
    ]
    if changed:
        notes.append(f"{', '.join(changed)}: changed")
    store.replace_definition(
        run_id,
        workflow=workflow.spec.name,
        file=workflow.file,
        spec=workflow.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        budget=budget,
        steps=[(s.id, s.action, s.for_each is not None) for s in workflow.spec.steps],
        reset=reset,
    )
    store.add_event(
        run_id,
        f"retry: the workflow definition is replaced by the corrected one from {workflow.file}"
        + (f" ({'; '.join(notes)})" if notes else ""),
        level="warning",
        data={"file": workflow.file, "changes": notes},
    )
    return notes


_SYSTEMIC = {
    AuthenticationError.__name__,
    PaymentRequiredError.__name__,
    BudgetExceededError.__name__,
}


def _policy_from_spec(spec: Any) -> Any:
    from stability_connector.retry import RetryPolicy

    return RetryPolicy.from_spec(spec)


def compact_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """Outputs as stored and offered downstream: a base64 string larger than
    ``LARGE_OUTPUT`` is replaced by the path of the file holding the same media (media
    inputs accept a path), so 300 items cost no more memory than 50."""
    path = outputs.get("file")
    if not isinstance(path, str):
        return dict(outputs)
    return {
        key: path if isinstance(value, str) and len(value) > LARGE_OUTPUT else value
        for key, value in outputs.items()
    }
