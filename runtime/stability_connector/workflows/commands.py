"""The workflow commands of ``stability-connector``:

    workflow run FILE [--trigger FILE.json] [--db PATH]
    workflow estimate FILE [--trigger FILE.json]
    workflow check FILE
    runs list | show RUN_ID | log RUN_ID [--json]
    runs retry RUN_ID [--budget CREDITS] [--workflow FILE]

Exit codes: 0 done, 1 the run failed or paused, 2 the input is wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from stability_connector.errors import DefinitionError, FieldProblem, InputValidationError
from stability_connector.workflows.estimate import WorkflowEstimate, estimate_workflow, fixed_costs
from stability_connector.workflows.progress import NullProgress, ProgressSink, progress_for
from stability_connector.workflows.runner import (
    RunOutcome,
    RunOverBudgetError,
    WorkflowRunner,
    default_resolver,
    revise_run,
)
from stability_connector.workflows.spec import (
    Workflow,
    WorkflowSpec,
    load_workflow,
    workflow_from_data,
)
from stability_connector.workflows.store import (
    PLAIN,
    ItemRow,
    Store,
    StoreError,
    default_db_path,
)

EXIT_DONE, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_workflow_commands(subparsers: Any) -> None:
    """Add ``workflow`` and ``runs`` to the command line's subparsers."""
    workflow = subparsers.add_parser("workflow", help="run workflow files (steps, loops, retry)")
    commands = workflow.add_subparsers(title="workflow commands", metavar="COMMAND")

    run = commands.add_parser("run", help="run a workflow file")
    run.add_argument("file", type=Path, metavar="FILE")
    _trigger_arg(run)
    _db_arg(run)
    run.add_argument(
        "--out", type=Path, metavar="DIR", help="where result files go (default: beside the db)"
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    _json_arg(run)
    run.set_defaults(handler=handle_run)

    estimate = commands.add_parser("estimate", help="credits the run will cost, per step")
    estimate.add_argument("file", type=Path, metavar="FILE")
    _trigger_arg(estimate)
    _json_arg(estimate)
    estimate.set_defaults(handler=handle_estimate)

    check = commands.add_parser("check", help="check a workflow file without running it")
    check.add_argument("file", type=Path, metavar="FILE")
    _trigger_arg(check)
    check.set_defaults(handler=handle_check)
    workflow.set_defaults(handler=lambda _args: _help(workflow))

    runs = subparsers.add_parser("runs", help="past workflow runs: list, show, log, retry")
    runs_commands = runs.add_subparsers(title="runs commands", metavar="COMMAND")
    listing = runs_commands.add_parser("list", help="recent runs")
    listing.add_argument("--limit", type=int, default=20)
    _db_arg(listing)
    _json_arg(listing)
    listing.set_defaults(handler=handle_list)
    for name, handler, text in (
        ("show", handle_show, "a run's steps and items"),
        ("log", handle_log, "a run's log: events and every HTTP attempt"),
    ):
        command = runs_commands.add_parser(name, help=text)
        command.add_argument("run_id", metavar="RUN_ID")
        _db_arg(command)
        _json_arg(command)
        command.set_defaults(handler=handler)
    retry = runs_commands.add_parser("retry", help="resume a paused run from its failed node")
    retry.add_argument("run_id", metavar="RUN_ID")
    retry.add_argument(
        "--budget", type=float, metavar="CREDITS", help="a new credit budget for the run"
    )
    retry.add_argument(
        "--workflow",
        type=Path,
        metavar="FILE",
        help="a corrected workflow file to resume with (default: the file the run started "
        "from, used when it changed)",
    )
    retry.add_argument("--out", type=Path, metavar="DIR")
    retry.add_argument("--quiet", action="store_true")
    _db_arg(retry)
    _json_arg(retry)
    retry.set_defaults(handler=handle_retry)
    runs.set_defaults(handler=lambda _args: _help(runs))


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return EXIT_BAD_INPUT


def _trigger_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--trigger", type=Path, metavar="FILE.json", help="the trigger payload (JSON)"
    )


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        metavar="PATH",
        help="the run store (default: $STABILITY_CONNECTOR_DB, else the user data directory)",
    )


def _json_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


# --- shared pieces ---------------------------------------------------------------------


def _catalog() -> Any:
    from stability_connector.catalog import default_catalog

    return default_catalog()


def _read_trigger(path: Path | None) -> Any:
    if path is None:
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputValidationError(
            "--trigger", [FieldProblem("--trigger", f"cannot read {path} ({exc.strerror})")]
        ) from None
    except json.JSONDecodeError as exc:
        raise InputValidationError(
            "--trigger",
            [FieldProblem("--trigger", f"{path} is not JSON ({exc.msg}, line {exc.lineno})")],
        ) from None


def _open_store(args: argparse.Namespace) -> Store:
    return Store(args.db if args.db is not None else default_db_path())


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at)) if at else "-"


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def _execute(
    store: Store,
    args: argparse.Namespace,
    workflow: Workflow,
    *,
    trigger: Any = None,
    run_id: str | None = None,
    budget: float | None = None,
) -> RunOutcome:
    """One Runtime for the process: its limiter is shared by every item and poll, and by
    other processes through a directory beside the run store."""
    from stability_connector.connection import resolve_connection
    from stability_connector.node import Runtime

    catalog = _catalog()
    connection = resolve_connection(catalog.connector, workflow.spec.connection)
    if connection.sandbox and not args.json:
        print(
            "No STABILITY_API_KEY set: running against the built-in sandbox (no credits spent).",
            file=sys.stderr,
        )
    base = store.path.parent
    out_dir = args.out if args.out is not None else base / "files"
    out_dir.mkdir(parents=True, exist_ok=True)
    progress: ProgressSink = NullProgress() if args.quiet or args.json else progress_for()
    limits = base / "ratelimit"
    limits.mkdir(parents=True, exist_ok=True)
    async with Runtime(catalog, out_dir=out_dir, shared_limit_dir=limits) as runtime:
        runner = WorkflowRunner(
            runtime,
            store,
            default_retry=catalog.connector.retry,
            progress=progress,
            files_dir=out_dir,
        )
        if run_id is None:
            return await runner.start(workflow, trigger)
        return await runner.resume(run_id, workflow, budget=budget)


def _report(
    outcome: RunOutcome, args: argparse.Namespace, extra: dict[str, Any] | None = None
) -> int:
    if args.json:
        _print_json(
            {
                "run_id": outcome.run_id,
                "status": outcome.status,
                "error": outcome.error,
                "outputs": outcome.outputs,
                **(extra or {}),
            }
        )
    elif outcome.status == "succeeded":
        print(f"run {outcome.run_id} succeeded")
        for step_id, outputs in outcome.outputs.items():
            print(f"  {step_id}: {_summary(outputs)}")
    else:
        error = outcome.error or {}
        print(f"run {outcome.run_id} paused at step {error.get('step')}: {error.get('message')}")
        print(f"  see:   stability-connector runs log {outcome.run_id}")
        print(f"  retry: stability-connector runs retry {outcome.run_id}")
    return EXIT_DONE if outcome.status == "succeeded" else EXIT_FAILED


def _summary(outputs: Any) -> str:
    if isinstance(outputs, list):
        files = [o.get("file") for o in outputs if isinstance(o, dict) and o.get("file")]
        return f"{len(outputs)} items" + (f", files like {files[0]}" if files else "")
    if isinstance(outputs, dict):
        shown = {k: v for k, v in outputs.items() if k in ("file", "seed", "finish_reason")}
        return _short(shown or outputs)
    return _short(outputs)


def _guard(handler: Any) -> Any:
    """A run store problem (unknown run id, unusable file) and a run refused before it
    starts (its estimate is over the budget) are bad input: exit 2, nothing was sent."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            result: int = handler(args)
        except (StoreError, RunOverBudgetError) as exc:
            if getattr(args, "json", False):
                _print_json({"error": exc.to_dict()})
            else:
                print(f"error: {exc.message}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return result

    return wrapped


# --- workflow ----------------------------------------------------------------------------


@_guard
def handle_run(args: argparse.Namespace) -> int:
    workflow = load_workflow(args.file, _catalog())
    trigger = _read_trigger(args.trigger)
    with _open_store(args) as store:
        outcome = asyncio.run(_execute(store, args, workflow, trigger=trigger))
        return _report(outcome, args)


def handle_check(args: argparse.Namespace) -> int:
    from stability_connector.workflows.spec import validate_trigger

    workflow = load_workflow(args.file, _catalog())
    if args.trigger is not None:
        validate_trigger(workflow, _read_trigger(args.trigger))
    print(f"{args.file}: OK ({len(workflow.spec.steps)} steps)")
    return EXIT_DONE


def handle_estimate(args: argparse.Namespace) -> int:
    from stability_connector.node import Runtime

    catalog = _catalog()
    workflow = load_workflow(args.file, catalog)
    trigger = _read_trigger(args.trigger)
    estimate = estimate_workflow(
        workflow, trigger, Runtime(catalog), default_resolver(), fixed_costs(catalog.actions)
    )
    if args.json:
        _print_json(estimate.to_dict())
    else:
        print(format_estimate(estimate))
    return EXIT_DONE if estimate.within_budget is not False else EXIT_FAILED


def format_estimate(estimate: WorkflowEstimate) -> str:
    lines = [f"{estimate.workflow}: estimated credits, before anything is sent"]
    for s in estimate.steps:
        count = "?" if s.items is None else str(s.items)
        per = "?" if s.per_item is None else f"{s.per_item:g}"
        total = "unknown" if s.total is None else f"{s.total:g}"
        line = f"  {s.step:<20} {s.action:<28} {count:>5} × {per:>5} = {total}"
        lines.append(line + (f"  ({s.note})" if s.note else ""))
    more = "" if estimate.complete else " + the unknown costs above"
    lines.append(f"  total: {estimate.total:g} credits{more}")
    if estimate.budget is not None:
        verdict = {True: "within", False: "OVER", None: "possibly over"}[estimate.within_budget]
        lines.append(f"  budget: {estimate.budget:g} credits ({verdict} budget)")
    return "\n".join(lines)


# --- runs ------------------------------------------------------------------------------------


@_guard
def handle_list(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        runs = store.runs(args.limit)
        if args.json:
            _print_json(
                [
                    {
                        "id": r.id,
                        "workflow": r.workflow,
                        "status": r.shown_status,
                        "created_at": r.created_at,
                        "file": r.file,
                    }
                    for r in runs
                ]
            )
            return EXIT_DONE
        if not runs:
            print(f"no runs in {store.path}")
        for r in runs:
            print(f"{r.id}  {r.shown_status:<11}  {_when(r.created_at)}  {r.workflow}")
    return EXIT_DONE


def _counts(items: list[ItemRow]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.status] = counts.get(item.status, 0) + 1
    return counts


def run_document(store: Store, run_id: str) -> dict[str, Any]:
    """Everything the store holds about a run, as JSON-able data."""
    run = store.run(run_id)
    items = store.items(run_id)
    return {
        "id": run.id,
        "workflow": run.workflow,
        "file": run.file,
        "status": run.shown_status,
        "error": run.error,
        "budget": run.budget,
        "spent": store.spent(run_id),
        "created_at": run.created_at,
        "updated_at": run.updated_at,
        "trigger": run.trigger,
        "steps": [
            {
                "id": s.step_id,
                "action": s.action,
                "loop": s.is_loop,
                "status": s.status,
                "error": s.error,
                "items": _counts([i for i in items if i.step_id == s.step_id]),
            }
            for s in store.steps(run_id)
        ],
        "items": [
            {
                "step": i.step_id,
                "index": None if i.index == PLAIN else i.index,
                "status": i.status,
                "sends": i.sends,
                "job_id": i.job_id,
                "credits": i.credits,
                "outputs": i.outputs,
                "error": i.error,
            }
            for i in items
        ],
    }


@_guard
def handle_show(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        doc = run_document(store, args.run_id)
    if args.json:
        _print_json(doc)
    else:
        budget = f" of {doc['budget']:g}" if doc["budget"] is not None else ""
        print(f"run {doc['id']}: {doc['status']} — workflow {doc['workflow']} ({doc['file']})")
        print(f"  started {_when(doc['created_at'])}, credits {doc['spent']:g}{budget}")
        for step in doc["steps"]:
            counts = ", ".join(f"{n} {status}" for status, n in sorted(step["items"].items()))
            loop = f" [{counts}]" if step["loop"] else ""
            print(f"  {step['id']:<20} {step['action']:<28} {step['status']}{loop}")
            if step["error"]:
                print(f"      {step['error'].get('message')}")
        if doc["status"] in ("paused", "interrupted"):
            print(f"  retry: stability-connector runs retry {doc['id']}")
    return EXIT_DONE if doc["status"] == "succeeded" else EXIT_FAILED


def _attempt_line(a: dict[str, Any]) -> str:
    outcome = str(a["status"]) if a["status"] is not None else (a["error"] or "no response")
    parts = [
        f"attempt {a['number']} ({a['kind']}) {a['method']} {a['path']} -> {outcome}",
        f"{a['duration']:.2f}s",
    ]
    if a["status"] is not None and a["error"]:
        parts.append(_short(a["error"], 160))
    if a["request_id"]:
        parts.append(f"request id {a['request_id']}")
    if a["wait_before_next"] is not None:
        parts.append(f"waited {a['wait_before_next']:.2f}s before the next")
    if a["may_have_been_charged"]:
        parts.append("MAY HAVE BEEN CHARGED")
    return ", ".join(parts)


# How an API error is quoted: the body's id (for support) and the request's id.
_IDS = (("error_id", "error id"), ("request_id", "request id"))


@_guard
def handle_log(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        doc = run_document(store, args.run_id)
        events = store.events(args.run_id)
        attempts = store.attempts(args.run_id)
    if args.json:
        _print_json({**doc, "events": events, "attempts": attempts})
        return EXIT_DONE if doc["status"] == "succeeded" else EXIT_FAILED
    entries: list[tuple[float, int, str]] = []
    for n, e in enumerate(events):
        where = _where(e["step"], e["item"])
        entries.append((e["at"], n, f"{e['level'].upper():<7} {where}{e['message']}"))
        data = e["data"] or {}
        if e["level"] == "error" and data.get("status") is not None:
            detail = f"API {data['status']}: {data.get('api_message') or data.get('name')}"
            ids = [f"{what} {data[key]}" for key, what in _IDS if data.get(key)]
            if ids:
                detail += f" ({', '.join(ids)})"
            entries.append((e["at"], n, f"{'':<7} {where}{detail}"))
    for n, a in enumerate(attempts):
        where = _where(a["step_id"], a["item_index"])
        entries.append((a["at"], len(events) + n, f"{'HTTP':<7} {where}{_attempt_line(a)}"))
    print(f"run {doc['id']}: {doc['status']} — workflow {doc['workflow']}")
    for at, _, text in sorted(entries, key=lambda e: (e[0], e[1])):
        print(f"{_when(at)}  {text}")
    return EXIT_DONE if doc["status"] == "succeeded" else EXIT_FAILED


def _where(step: str | None, item: int | None) -> str:
    if step is None:
        return ""
    return f"[{step}{'' if item in (None, PLAIN) else f' #{item}'}] "


def load_run_workflow(store: Store, run_id: str) -> Workflow:
    """The workflow as it was when the run started (checked again against the catalog)."""
    run = store.run(run_id)
    return workflow_from_data(run.spec, _catalog(), run.file)


def _retry_workflow(
    store: Store, run_id: str, corrected: Path | None
) -> tuple[Workflow, dict[str, Any]]:
    """The definition a retry resumes with, and what to tell about it.

    ``--workflow FILE``, else the file the run started from when it still exists: when
    its definition differs from the stored one, it is checked, checked against what the
    run already did (:func:`revise_run`) and stored for the run. Otherwise the stored
    definition is used."""
    run = store.run(run_id)
    source = corrected if corrected is not None else Path(run.file)
    if corrected is None and not source.is_file():
        info = {
            "source": "stored",
            "file": run.file,
            "note": f"{run.file} is gone; resuming with the definition stored when the run started",
        }
        return load_run_workflow(store, run_id), info
    try:
        workflow = load_workflow(source, _catalog())
        if workflow.spec == WorkflowSpec.model_validate(run.spec):
            return workflow, {"source": "stored", "file": run.file}
        changes = revise_run(store, run_id, workflow)
    except DefinitionError as exc:
        raise DefinitionError(
            exc.file,
            exc.place,
            f"{exc.problem} — run {run_id} is not resumed and nothing was sent; fix the "
            f"file, then `runs retry {run_id}` again",
        ) from None
    return workflow, {"source": "corrected", "file": str(source), "changes": changes}


@_guard
def handle_retry(args: argparse.Namespace) -> int:
    with _open_store(args) as store:
        run = store.run(args.run_id)
        if run.status == "succeeded":
            message = f"run {run.id} already succeeded; nothing to retry"
            if args.json:
                _print_json({"run_id": run.id, "status": "succeeded", "message": message})
            else:
                print(message)
            return EXIT_DONE
        if run.alive_elsewhere:
            raise StoreError(f"run {run.id} is still running (process {run.pid})")
        workflow, definition = _retry_workflow(store, args.run_id, args.workflow)
        if not args.json:
            if definition["source"] == "corrected":
                print(
                    f"run {run.id}: resuming with the corrected workflow definition from "
                    f"{definition['file']} (what succeeded is kept and not sent again)"
                )
                for change in definition["changes"]:
                    print(f"  - {change}")
            elif "note" in definition:
                print(f"run {run.id}: {definition['note']}")
        outcome = asyncio.run(
            _execute(store, args, workflow, run_id=args.run_id, budget=args.budget)
        )
        return _report(outcome, args, {"definition": definition})
