"""A field's dropdown options, listed live where the definition says how.

A field whose ``x-ui.options_from`` names a listing action (the v1 engine, from
``v1_engines_list``) gets its options by running that action through the normal
runtime: the same sender, rate limiter, retry policy and connection as any run.
When that call fails, or lists nothing usable, the field's static options (its
``oneOf``/``anyOf`` constants) are returned instead, and the result says so and why.
A field without ``options_from`` simply has its static options.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .catalog import Catalog, describe_field, options_source
from .definitions import ActionSpec, ItemMatch, OptionsSource, PatternFilter
from .errors import ConnectorError, ExecutionError
from .retry import INTERACTIVE_POLICY, RetryPolicy

if TYPE_CHECKING:
    from .connection import Connection
    from .node import Runtime
    from .transport import Attempt


@dataclass
class FieldOptions:
    """The options of one field: ``[{value, label}]``, and where they came from.

    ``live``: listed just now by ``source`` (an action id). Otherwise the static
    options; ``fallback_reason`` says why when a live listing was tried and failed.
    """

    action: str
    field: str
    options: list[dict[str, Any]]
    live: bool
    source: str | None = None
    connection: str | None = None
    fallback_reason: str | None = None
    attempts: list[Attempt] = dataclasses.field(default_factory=list)

    @property
    def fell_back(self) -> bool:
        return self.fallback_reason is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_schema(spec: ActionSpec, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = spec.inputs.get("properties", {})
    schema = properties.get(name)
    if not isinstance(schema, dict):
        known = ", ".join(properties) or "none"
        raise ConnectorError(f"{spec.id} has no field {name!r}; its fields: {known}")
    return schema


def static_options(spec: ActionSpec, name: str) -> list[dict[str, Any]]:
    """The options written in the definition (``oneOf``/``anyOf`` constants, ``enum``)."""
    options: list[dict[str, Any]] = describe_field(name, field_schema(spec, name), False)["options"]
    return [{"value": o["value"], "label": o["label"]} for o in options]


def _matches(value: Any, wanted: ItemMatch) -> bool:
    if isinstance(wanted, PatternFilter):
        return isinstance(value, str) and re.search(wanted.pattern, value) is not None
    if isinstance(wanted, list):
        return value in wanted
    return bool(value == wanted)


def options_from_items(source: OptionsSource, items: Any) -> list[dict[str, Any]]:
    """The listing action's items as options: filtered, excluded, one per value."""
    if not isinstance(items, list):
        raise ValueError(
            f"{source.action}.{source.output} is {type(items).__name__}, not a list of items"
        )
    options: list[dict[str, Any]] = []
    seen: set[Any] = set()
    for item in items:
        if not isinstance(item, Mapping):
            continue
        if not all(_matches(item.get(k), w) for k, w in source.filter.items()):
            continue
        if any(_matches(item.get(k), w) for k, w in source.exclude.items()):
            continue
        value = item.get(source.value)
        if not isinstance(value, str | int) or isinstance(value, bool) or value in seen:
            continue
        seen.add(value)
        label = item.get(source.label) if source.label else None
        options.append({"value": value, "label": str(label) if label else str(value)})
    return options


async def live_options(
    runtime: Runtime | Catalog | None,
    action: str | ActionSpec,
    field: str,
    connection: Connection | str | None = None,
    *,
    policy: RetryPolicy | None = None,
) -> FieldOptions:
    """The options of ``action``'s ``field``: listed live when the field says where
    from (``x-ui.options_from``), else (or when the listing fails) its static options.

    ``runtime`` is the runtime to send with (its clients, limiters and clock); a
    catalog (or None: the packaged one) gets a one-shot runtime. ``policy`` defaults
    to :data:`~.retry.INTERACTIVE_POLICY`, so a failing API soon gives way to the static options.
    An unknown action or field raises ``ConnectorError``; a failed listing never does.
    """
    from .node import Runtime

    if isinstance(runtime, Runtime):
        return await _live_options(runtime, action, field, connection, policy)
    async with Runtime(runtime) as one_shot:
        return await _live_options(one_shot, action, field, connection, policy)


async def _live_options(
    runtime: Runtime,
    action: str | ActionSpec,
    name: str,
    connection: Connection | str | None,
    policy: RetryPolicy | None,
) -> FieldOptions:
    spec = runtime.action(action)
    schema = field_schema(spec, name)
    fixed = static_options(spec, name)
    source = options_source(schema)
    if source is None:
        if not fixed:
            raise ConnectorError(f"{spec.id}.{name} is not a dropdown: it has no options")
        return FieldOptions(spec.id, name, fixed, live=False)
    result = FieldOptions(spec.id, name, fixed, live=False, source=source.action)
    try:
        conn = runtime.connection(connection)
        result.connection = conn.name
        ran = await runtime.run(
            source.action, {}, connection=conn, policy=policy or INTERACTIVE_POLICY
        )
    except ConnectorError as error:
        if isinstance(error, ExecutionError):
            result.attempts = list(error.attempts)
        result.fallback_reason = f"{source.action} failed: {error.message}"
        return result
    result.attempts = list(ran.attempts)
    try:
        listed = options_from_items(source, ran.outputs.get(source.output))
    except ValueError as wrong:
        result.fallback_reason = str(wrong)
        return result
    if not listed:
        result.fallback_reason = f"{source.action} listed no items that fit this field"
        return result
    result.options = listed
    result.live = True
    return result


__all__ = ["FieldOptions", "live_options", "options_from_items", "static_options"]
