"""What a workflow run will cost, per step, before anything is spent.

Loops cost items × the per-item cost. A step whose inputs come from earlier steps is
estimated with those inputs unknown: when its cost depends on them, the action's fixed
cost is used if it has one, otherwise the cost is reported as unknown (and why).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from stability_connector.errors import ConnectorError
from stability_connector.workflows.spec import StepSpec, Workflow, validate_trigger


class CreditEstimator(Protocol):
    def estimate_credits(self, action: Any, inputs: Any, context: Any = None) -> float | None: ...


Resolver = Callable[[str, Mapping[str, Any], str], Any]


@dataclass(frozen=True)
class StepEstimate:
    step: str
    action: str
    items: int | None  # None: a loop whose length is known only when the run gets there
    per_item: float | None
    total: float | None
    note: str = ""


@dataclass(frozen=True)
class WorkflowEstimate:
    workflow: str
    steps: list[StepEstimate]
    budget: float | None

    @property
    def total(self) -> float:
        """The sum of the known step costs."""
        return sum(s.total for s in self.steps if s.total is not None)

    @property
    def complete(self) -> bool:
        return all(s.total is not None for s in self.steps)

    @property
    def within_budget(self) -> bool | None:
        if self.budget is None:
            return None
        if self.total > self.budget:
            return False
        return True if self.complete else None

    def figures(self) -> str:
        """The per-step figures on one line: ``shot: 6 × 3.5 = 21; big: 6 × 2 = 12``."""
        parts = []
        for s in self.steps:
            count = "?" if s.items is None else str(s.items)
            per = "?" if s.per_item is None else f"{s.per_item:g}"
            total = "unknown" if s.total is None else f"{s.total:g}"
            parts.append(f"{s.step}: {count} × {per} = {total}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "steps": [asdict(s) for s in self.steps],
            "total": self.total,
            "complete": self.complete,
            "budget": self.budget,
            "within_budget": self.within_budget,
        }


def estimate_workflow(
    workflow: Workflow,
    trigger: Any,
    estimator: CreditEstimator,
    resolve: Resolver,
    fixed_costs: Mapping[str, float | None],
) -> WorkflowEstimate:
    """Estimate every step. ``fixed_costs``: action id -> its credits when they do not
    depend on the inputs (``ActionSpec.credits`` when a number)."""
    validate_trigger(workflow, trigger)
    spec = workflow.spec
    # Stand-ins for earlier steps' outputs: a loop is a list as long as its items (so
    # for_each over it counts right); the fields themselves are unknown.
    steps: dict[str, Any] = {}
    estimates = []
    for step in spec.steps:
        context: dict[str, Any] = {"trigger": trigger, "steps": steps, "vars": spec.vars}
        fixed = fixed_costs.get(step.action)
        if step.for_each is None:
            cost, note = _cost(step, context, estimator, fixed)
            estimates.append(StepEstimate(step.id, step.action, 1, cost, cost, note))
            steps[step.id] = {}
            continue
        items = _loop_items(step, context, resolve)
        if items is None:
            note = "the list it loops over is known only when the run gets there"
            if fixed is not None:
                note += f"; {fixed:g} credits per item"
            estimates.append(StepEstimate(step.id, step.action, None, fixed, None, note))
            steps[step.id] = []
            continue
        costs = [_cost(step, {**context, "item": item}, estimator, fixed) for item in items]
        known = [c for c, _ in costs if c is not None]
        notes = sorted({n for _, n in costs if n})
        per_item = known[0] if known and all(k == known[0] for k in known) else None
        total = sum(known) if len(known) == len(costs) else None
        estimates.append(
            StepEstimate(step.id, step.action, len(items), per_item, total, "; ".join(notes))
        )
        steps[step.id] = [{} for _ in items]
    return WorkflowEstimate(spec.name, estimates, spec.budget.credits if spec.budget else None)


def _loop_items(step: StepSpec, context: Mapping[str, Any], resolve: Resolver) -> list[Any] | None:
    assert step.for_each is not None
    try:
        items = resolve(step.for_each, context, f"steps.{step.id}.for_each")
    except ConnectorError:
        return None
    return list(items) if isinstance(items, list | tuple) else None


def _cost(
    step: StepSpec, context: Mapping[str, Any], estimator: CreditEstimator, fixed: float | None
) -> tuple[float | None, str]:
    try:
        cost = estimator.estimate_credits(step.action, step.inputs, context)
    except ConnectorError:
        # Inputs from earlier steps are not known yet.
        if fixed is not None:
            return fixed, ""
        return None, "depends on inputs known only during the run"
    if cost is None:
        return None, "this action's cost is not published; see the API's pricing"
    return cost, ""


def fixed_costs(actions: Mapping[str, Any]) -> dict[str, float | None]:
    """Action id -> credits when the catalog states a number."""
    return {
        action_id: float(spec.credits) if isinstance(spec.credits, int | float) else None
        for action_id, spec in actions.items()
    }
