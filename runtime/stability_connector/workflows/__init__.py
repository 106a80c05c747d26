"""Workflows: steps mapped with templates, loops over arrays, a SQLite run store, and
resuming a paused run from its failed node.

Public names: :func:`load_workflow`, :class:`WorkflowSpec`, :class:`Store`,
:class:`WorkflowRunner`, :func:`revise_run`, :func:`estimate_workflow`.
"""

from stability_connector.workflows.estimate import StepEstimate, WorkflowEstimate, estimate_workflow
from stability_connector.workflows.runner import (
    BudgetExceededError,
    RunOutcome,
    RunOverBudgetError,
    WorkflowRunner,
    revise_run,
)
from stability_connector.workflows.spec import (
    StepSpec,
    Workflow,
    WorkflowSpec,
    load_workflow,
    validate_trigger,
    workflow_from_data,
)
from stability_connector.workflows.store import Store, default_db_path

__all__ = [
    "BudgetExceededError",
    "RunOutcome",
    "RunOverBudgetError",
    "StepEstimate",
    "StepSpec",
    "Store",
    "Workflow",
    "WorkflowEstimate",
    "WorkflowRunner",
    "WorkflowSpec",
    "default_db_path",
    "estimate_workflow",
    "load_workflow",
    "revise_run",
    "validate_trigger",
    "workflow_from_data",
]
