"""The ``stability-connector`` command.

Every subcommand turns a :class:`~stability_connector.errors.ConnectorError` into a
plain message on stderr and a non-zero exit: people see what to change, never a
traceback. Exit codes: 0 done, 1 the work failed, 2 the input or definition is wrong.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import ConnectorError, DefinitionError, InputValidationError, TemplateError

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except (InputValidationError, TemplateError, DefinitionError) as error:
        _fail(error, args)
        return 2
    except ConnectorError as error:
        _fail(error, args)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _fail(error: ConnectorError, args: argparse.Namespace) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": error.to_dict()}, indent=2))
    else:
        print(f"error: {error.message}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stability-connector",
        description="Stability AI actions for workflow automation: browse the catalog, "
        "run an action, run workflows, or serve the offline sandbox.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    actions = commands.add_parser("actions", help="browse the action catalog")
    actions_commands = actions.add_subparsers(title="actions commands", metavar="COMMAND")
    listing = actions_commands.add_parser("list", help="every action, by group")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_actions_list)
    show = actions_commands.add_parser("show", help="one action's form: fields, options, example")
    show.add_argument("action", metavar="ACTION")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(handler=_actions_show)
    options = actions_commands.add_parser(
        "options",
        help="a dropdown's options (label → value), listed live where the field allows it",
    )
    options.add_argument("action", metavar="ACTION")
    options.add_argument("field", metavar="FIELD")
    options.add_argument("--connection", metavar="NAME", help="a named connection (connector.yaml)")
    options.add_argument("--json", action="store_true", help="machine-readable output")
    options.set_defaults(handler=_actions_options)
    actions.set_defaults(handler=lambda _args: _help(actions))

    connection = commands.add_parser("connection", help="check a connection")
    connection_commands = connection.add_subparsers(title="connection commands", metavar="COMMAND")
    test = connection_commands.add_parser(
        "test", help="send the connection test (GET /v1/user/account): is the key accepted?"
    )
    test.add_argument("--connection", metavar="NAME", help="a named connection (connector.yaml)")
    test.add_argument("--json", action="store_true", help="machine-readable output")
    test.set_defaults(handler=_connection_test)
    connection.set_defaults(handler=lambda _args: _help(connection))

    run = commands.add_parser("run", help="run one action")
    run.add_argument("action", metavar="ACTION")
    run.add_argument(
        "-i",
        "--input",
        dest="inputs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an input value (repeatable); values may map from the context: <<trigger.x>>",
    )
    run.add_argument("--inputs", dest="inputs_file", type=Path, metavar="FILE.json")
    run.add_argument(
        "--context", type=Path, metavar="FILE.json", help="{trigger, steps, vars} to map from"
    )
    run.add_argument("--connection", metavar="NAME", help="a named connection (connector.yaml)")
    run.add_argument("--out", type=Path, default=Path("."), metavar="DIR", help="where files go")
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="for asynchronous actions: return the job id at once instead of waiting",
    )
    run.add_argument(
        "--resume-id", metavar="JOB_ID", help="pick up an asynchronous job started earlier"
    )
    run.add_argument("--json", action="store_true", help="machine-readable output")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check the catalog")
    validate.set_defaults(handler=_validate)

    schema = commands.add_parser("schema", help="the whole catalog as one JSON document")
    schema.add_argument("-o", "--output", type=Path, metavar="FILE")
    schema.set_defaults(handler=_schema)

    from .sandbox.server import add_sandbox_command
    from .workflows.commands import add_workflow_commands

    add_sandbox_command(commands)
    add_workflow_commands(commands)
    return parser


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


# --- actions -------------------------------------------------------------------------


def _actions_list(args: argparse.Namespace) -> int:
    from .catalog import default_catalog, describe_action

    catalog = default_catalog()
    summaries = [describe_action(spec, brief=True) for spec in catalog.actions.values()]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return 0
    group = None
    for summary in summaries:
        if summary["group"] != group:
            group = summary["group"]
            print(f"\n{group}")
        status = "" if summary["status"] == "current" else f" [{summary['status']}]"
        credits = _credits_text(summary["credits"])
        print(f"  {summary['id']:<34} {summary['title']}{status}{credits}")
    return 0


def _credits_text(credits: str) -> str:
    return "" if credits == "not stated" else f" — {credits}"


def _actions_show(args: argparse.Namespace) -> int:
    from .catalog import default_catalog, describe_action

    described = describe_action(default_catalog().action(args.action))
    if args.json:
        print(json.dumps(described, indent=2, default=str))
        return 0
    print(f"{described['title']} ({described['id']}) — {described['group']}")
    print(described["description"])
    print(f"Cost: {described['credits']}")
    print("\nInputs:")
    for field in described["fields"]:
        required = "required" if field["required"] else "optional"
        print(f"  {field['name']} ({field['type']}, {required}) — {field['title']}")
        if field.get("description"):
            print(f"      {field['description']}")
        if field.get("options"):
            options = ", ".join(f"{o['label']} → {o['value']}" for o in field["options"])
            print(f"      options: {options}")
        if field.get("range"):
            print(f"      range: {field['range']}")
        if field.get("default") is not None:
            print(f"      default: {field['default']}")
    print("\nOutputs:")
    for name, title in described.get("outputs", {}).items():
        print(f"  {name} — {title}")
    if described.get("example"):
        print("\nExample inputs:")
        print("  " + json.dumps(described["example"]["inputs"]))
    return 0


def _sandbox_notice(connection: Any) -> None:
    if connection.sandbox:
        print(
            "No STABILITY_API_KEY set: running against the built-in sandbox (no credits spent).",
            file=sys.stderr,
        )


def _actions_options(args: argparse.Namespace) -> int:
    import anyio

    from .catalog import default_catalog
    from .connection import resolve_connection
    from .options import live_options

    catalog = default_catalog()
    spec = catalog.action(args.action)
    try:
        connection: Any = resolve_connection(catalog.connector, args.connection)
    except ConnectorError:
        connection = args.connection  # live_options falls back and says why
    else:
        _sandbox_notice(connection)
    found = anyio.run(live_options, catalog, spec, args.field, connection)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2, default=str))
        return 0
    if found.live:
        print(f"{spec.id}.{found.field}: listed live by {found.source} ({found.connection})")
    elif found.fell_back:
        print(f"{spec.id}.{found.field}: static fallback options ({found.fallback_reason})")
    else:
        print(f"{spec.id}.{found.field}: fixed options")
    width = max((len(str(o["label"])) for o in found.options), default=0)
    for option in found.options:
        print(f"  {option['label']:<{width}} → {option['value']}")
    return 0


# --- connection ----------------------------------------------------------------------


def _connection_test(args: argparse.Namespace) -> int:
    import anyio

    from .catalog import default_catalog
    from .connection_check import ConnectionCheck
    from .node import Runtime

    catalog = default_catalog()

    async def check() -> ConnectionCheck:
        async with Runtime(catalog) as runtime:
            return await runtime.test_connection(args.connection)

    found = anyio.run(check)
    if args.json:
        print(json.dumps(found.to_dict(), indent=2, default=str))
        return 0 if found.ok else 1
    where = found.base_url or "no base URL"
    sandbox = " (the built-in sandbox: no API key is set)" if found.sandbox else ""
    print(f"connection {found.connection} at {where}{sandbox}: {found.request}")
    if found.ok:
        account = ", ".join(f"{k} {v}" for k, v in found.account.items()) or "no details"
        print(f"OK: the key is accepted ({account})")
        return 0
    print(f"FAILED: {found.error}", file=sys.stderr)
    if found.hint:
        print(f"to fix: {found.hint}", file=sys.stderr)
    return 1


# --- run -----------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as missing:
        raise InputValidationError(
            what, [_problem(what, f"file {path} does not exist")]
        ) from missing
    except json.JSONDecodeError as broken:
        raise InputValidationError(
            what, [_problem(what, f"{path} is not valid JSON ({broken.msg}, line {broken.lineno})")]
        ) from broken


def _problem(field: str, problem: str) -> Any:
    from .errors import FieldProblem

    return FieldProblem(field=field, problem=problem)


def _collect_inputs(args: argparse.Namespace) -> dict[str, Any]:
    inputs: dict[str, Any] = {}
    if args.inputs_file is not None:
        loaded = _read_json(args.inputs_file, "--inputs")
        if not isinstance(loaded, dict):
            raise InputValidationError(
                "--inputs", [_problem("--inputs", "must hold a JSON object")]
            )
        inputs.update(loaded)
    for item in args.inputs:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputValidationError(
                args.action,
                [_problem(f"-i {item}", 'write it as KEY=VALUE, e.g. -i prompt="a fox"')],
            )
        inputs[key.strip()] = value
    return inputs


def _run(args: argparse.Namespace) -> int:
    import anyio

    from .catalog import default_catalog
    from .connection import resolve_connection
    from .node import ActionResult, Runtime
    from .transport import Attempt

    catalog = default_catalog()
    spec = catalog.action(args.action)
    inputs = _collect_inputs(args)
    context = _read_json(args.context, "--context") if args.context else None
    connection = resolve_connection(catalog.connector, args.connection)
    if connection.sandbox:
        print(
            "No STABILITY_API_KEY set: running against the built-in sandbox (no credits spent).",
            file=sys.stderr,
        )
    args.out.mkdir(parents=True, exist_ok=True)

    polls = 0

    def report(attempt: Attempt) -> None:
        """One line per event a person waiting at a terminal wants to see."""
        nonlocal polls
        if args.json:
            return
        if attempt.kind == "poll" and attempt.status == 202:
            polls += 1
            print(f"  {spec.id}: still in progress (check {polls})", file=sys.stderr)
        elif attempt.wait_before_next is not None:
            outcome = attempt.error or f"HTTP {attempt.status}"
            print(
                f"  attempt {attempt.number} failed ({outcome}); "
                f"trying again in {attempt.wait_before_next:.1f} s",
                file=sys.stderr,
            )

    async def execute() -> ActionResult:
        async with Runtime(catalog, out_dir=args.out) as runtime:
            return await runtime.run(
                spec,
                inputs,
                context,
                connection,
                wait=not args.no_wait,
                job_id=args.resume_id,
                on_attempt=report,
            )

    result = anyio.run(execute)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, default=str))
        return 0
    _print_outputs(result.outputs)
    if result.status == "pending":
        print(
            f"\nStarted job {result.job_id}. Fetch it later with:\n"
            f"  stability-connector run {spec.id} --resume-id {result.job_id}"
        )
    return 0


def _print_outputs(outputs: dict[str, Any]) -> None:
    width = max((len(name) for name in outputs), default=0)
    for name, value in outputs.items():
        print(f"{name:<{width}}  {_display(value)}")


def _display(value: Any) -> str:
    """Values as a person reads them: long base64 is summarised, not dumped."""
    if isinstance(value, str) and len(value) > 200:
        return f"<{len(value)} characters of base64>" if " " not in value else value[:200] + "…"
    if isinstance(value, list | dict):
        text = json.dumps(value, default=str)
        return text if len(text) <= 400 else text[:400] + "…"
    return str(value)


# --- catalog -------------------------------------------------------------------------


def _validate(args: argparse.Namespace) -> int:
    from .catalog import load_catalog

    catalog = load_catalog()
    print(f"catalog OK: {len(catalog.actions)} actions in {catalog.root}")
    return 0


def _schema(args: argparse.Namespace) -> int:
    from .catalog import default_catalog

    text = json.dumps(default_catalog().document(), indent=2, ensure_ascii=False)
    if args.output is None:
        print(text)
    else:
        args.output.write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover - exercised through the console script
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    sys.exit(main())
