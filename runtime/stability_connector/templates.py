"""``<<templates>>``: sandboxed Jinja2 with our delimiters, type-keeping references and bounds.

Two kinds of templates pass through here:

- **node inputs** a workflow author writes (``"<<trigger.prompt>>, oil painting"``),
  rendered against the run context ``trigger``, ``steps``, ``vars`` and, inside a loop,
  ``item`` (:func:`resolve_inputs`);
- **definition templates** of our own YAML (``request``, ``outputs``, ``credits``),
  rendered against ``inputs``, ``response``, ``job`` and ``artifact``
  (:func:`render_definition`).

A value that is exactly one reference keeps the referenced object and its type (a
list stays a list, bytes stay bytes); anything else renders to a string. The
reference is evaluated as an expression rather than through Jinja's native types,
which would turn the user string ``"[1, 2]"`` into a list. Values taken from the
context are never rendered again: only the node's own input strings are templates.

Every failure is a :class:`TemplateError` naming the field and the expression.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import TemplateError

MAX_TEMPLATE_CHARS = 20_000
"""Longest template source; plain text without ``<<`` is not a template and not limited here."""
MAX_OUTPUT_CHARS = 1_000_000
"""Longest rendered text (or repeated string/list built by an expression)."""
MAX_DEPTH = 16
"""Deepest nesting of lists and objects in a node's inputs."""
MAX_LOOP_ITERATIONS = 10_000
"""Total loop iterations one template may run (nested loops multiply quickly)."""
MAX_EXPONENT = 64

CONTEXT_NAMES = ("trigger", "steps", "vars", "item")

_MARKERS = ("<<", "<%", "<#")
_WHOLE = re.compile(r"^<<(?P<expr>.*)>>$", re.DOTALL)
# A plain dotted reference; names starting with "_" are left to the sandbox to refuse.
_SIMPLE = re.compile(r"^<<\s*(?P<path>[A-Za-z]\w*(\.[A-Za-z]\w*)*)\s*>>$")

# Pure filters with output bounded by their input. Gone: attr/format (sandbox escapes
# in the past), center/indent (grow without limit), random (not reproducible), and the
# HTML helpers (nothing here is HTML).
_FILTERS = {
    "abs", "batch", "capitalize", "count", "d", "default", "dictsort", "first", "float",
    "groupby", "int", "items", "join", "last", "length", "list", "lower", "map", "max",
    "min", "reject", "rejectattr", "replace", "reverse", "round", "select", "selectattr",
    "slice", "sort", "string", "sum", "title", "tojson", "trim", "truncate", "unique",
    "upper", "urlencode", "wordcount", "wordwrap",
}  # fmt: skip
# Methods a template may call on data; everything else callable is refused.
_METHODS = {
    "upper", "lower", "strip", "lstrip", "rstrip", "title", "capitalize", "startswith",
    "endswith", "split", "splitlines", "isdigit", "isalpha", "get", "keys", "values", "items",
}  # fmt: skip
_LOOP_FILTER = "_bounded_loop"
_loop_budget: contextvars.ContextVar[list[int]] = contextvars.ContextVar("loop_budget")


class _Missing(dict[str, Any]):
    """``inputs`` in definition templates: an absent optional input reads as None."""

    def __missing__(self, key: str) -> None:
        return None


class _Environment(ImmutableSandboxedEnvironment):
    """The sandbox plus bounds on what operators, filters and loops may build."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context: Any, operator_: str, left: Any, right: Any) -> Any:
        if operator_ == "*":
            for seq, times in ((left, right), (right, left)):
                sized = isinstance(seq, str | bytes | list | tuple) and isinstance(times, int)
                if sized and len(seq) * times > MAX_OUTPUT_CHARS:
                    raise SecurityError(f"would build more than {MAX_OUTPUT_CHARS} items")
        elif operator_ == "**":
            if isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
                raise SecurityError(f"exponents above {MAX_EXPONENT} are not allowed")
        elif operator_ == "%" and isinstance(left, str | bytes):
            raise SecurityError("'%' string formatting is not allowed; use ~ to join text")
        return super().call_binop(context, operator_, left, right)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # Data first: a payload field named "items" or "count" is the field, not the method.
        if isinstance(obj, dict | Mapping) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def wrap_str_format(self, value: Any) -> None:
        # str.format / format_map are refused outright (padding can build any size).
        return None

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if callable(value) and attr not in _METHODS:
            return False
        return bool(super().is_safe_attribute(obj, attr, value))


def _bounded_loop(value: Any) -> Iterator[Any]:
    """Wraps the iterable of every ``<% for %>``: all loops of one render share a budget."""
    budget = _loop_budget.get()
    items: Iterable[Any] = value
    for entry in items:
        budget[0] -= 1
        if budget[0] < 0:
            raise SecurityError(f"loops ran more than {MAX_LOOP_ITERATIONS} times")
        yield entry


def _bounded_join(value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = [str(v if attribute is None else v[attribute]) for v in value]
    if sum(map(len, items)) + len(d) * len(items) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"join would build more than {MAX_OUTPUT_CHARS} characters")
    return d.join(items)


def _bounded_replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * max(0, len(new) - len(old)) > MAX_OUTPUT_CHARS:
        raise SecurityError(f"replace would build more than {MAX_OUTPUT_CHARS} characters")
    return text.replace(old, new, -1 if count is None else count)


def _make_environment() -> _Environment:
    env = _Environment(
        variable_start_string="<<",
        variable_end_string=">>",
        block_start_string="<%",
        block_end_string="%>",
        comment_start_string="<#",
        comment_end_string="#>",
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.globals.clear()
    env.filters = {name: env.filters[name] for name in _FILTERS}
    env.filters["join"] = _bounded_join
    env.filters["replace"] = _bounded_replace
    env.filters[_LOOP_FILTER] = _bounded_loop
    return env


_ENV = _make_environment()

# --- compiling ---------------------------------------------------------------------


class _Refused(Exception):
    """A construct templates may not use (found before anything runs)."""


_REFUSED_NODES: dict[type[nodes.Node], str] = {
    nodes.Macro: "macros are not allowed",
    nodes.CallBlock: "call blocks are not allowed",
    nodes.Include: "includes are not allowed",
    nodes.Import: "imports are not allowed",
    nodes.FromImport: "imports are not allowed",
    nodes.Extends: "extends is not allowed",
}


@lru_cache(maxsize=2048)
def _parse(source: str) -> nodes.Template:
    """Parse and check a template; each ``for`` gets the loop budget (cached per source)."""
    tree = _ENV.parse(source)
    for node_type, problem in _REFUSED_NODES.items():
        if next(tree.find_all(node_type), None) is not None:
            raise _Refused(problem)
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise _Refused("recursive loops are not allowed")
        wrapped = nodes.Filter(loop.iter, _LOOP_FILTER, [], [], None, None, lineno=loop.lineno)
        wrapped.set_environment(_ENV)
        loop.iter = wrapped
    return tree


@lru_cache(maxsize=2048)
def _template(source: str) -> jinja2.Template:
    tree = _parse(source)
    code = _ENV.compile(tree)
    return _ENV.template_class.from_code(_ENV, code, _ENV.make_globals(None))


@lru_cache(maxsize=2048)
def _whole_reference(source: str) -> str | None:
    """The expression when ``source`` is exactly one ``<<expression>>``, else None."""
    match = _WHOLE.match(source)
    if match is None:
        return None
    body = _parse(source).body
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    parts = body[0].nodes
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return match.group("expr")


@lru_cache(maxsize=2048)
def _expression(expr: str) -> Any:
    return _ENV.compile_expression(expr, undefined_to_none=False)


# --- a fast path for simple expressions ----------------------------------------------
# Evaluating a compiled Jinja expression builds a render context each time, which
# costs more than the expressions our definitions hold (a conditional, a comparison,
# a dict lookup). Templates made only of the constructs below are turned into plain
# closures once; they do what Jinja's generated code does (the environment's own
# getattr / getitem, Python's operators), and give up on anything else: an undefined
# value, an error, a construct not listed. Jinja then evaluates the template from the
# start (expressions have no side effects) and gives its own result or error.

Evaluator = Callable[[Mapping[str, Any]], Any]


class _GiveUp(Exception):
    """The fast path cannot say what Jinja would: Jinja evaluates the template."""


class _Fast:
    """A template as a closure; ``whole``: one expression whose value keeps its type."""

    __slots__ = ("evaluate", "whole")

    def __init__(self, evaluate: Evaluator, whole: bool) -> None:
        self.evaluate = evaluate
        self.whole = whole

    def __call__(self, context: Mapping[str, Any]) -> Any:
        return self.evaluate(context)


# The str methods the fast path calls itself (all in _METHODS, none with side effects).
_STR_METHODS = frozenset({"startswith", "endswith", "upper", "lower", "strip", "lstrip", "rstrip"})
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "lteq": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gteq": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


def _defined(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise _GiveUp
    return value


def _closure(node: nodes.Node) -> Evaluator:
    """The closure for one expression node; :class:`_GiveUp` for anything not listed."""
    if isinstance(node, nodes.Const):
        constant = node.value
        return lambda context: constant
    if isinstance(node, nodes.Name) and node.ctx == "load":
        name = node.name

        def load(context: Mapping[str, Any]) -> Any:
            if name not in context:
                raise _GiveUp
            return context[name]

        return load
    if isinstance(node, nodes.Getattr) and node.ctx == "load":
        owner, attribute = _closure(node.node), node.attr
        # ``inputs.x`` of a definition: no attribute of that name, so Jinja reads the key
        # (an absent one is None).
        read_key = not hasattr(_Missing, attribute)

        def get(context: Mapping[str, Any]) -> Any:
            value = owner(context)
            if read_key and type(value) is _Missing:
                return value[attribute]
            return _defined(_ENV.getattr(value, attribute))

        return get
    if isinstance(node, nodes.Getitem) and node.ctx == "load":
        if isinstance(node.arg, nodes.Slice):
            raise _GiveUp
        owner, key = _closure(node.node), _closure(node.arg)
        return lambda context: _defined(_ENV.getitem(owner(context), key(context)))
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        test, yes, no = _closure(node.test), _closure(node.expr1), _closure(node.expr2)
        return lambda context: yes(context) if test(context) else no(context)
    if isinstance(node, nodes.And):
        left, right = _closure(node.left), _closure(node.right)
        return lambda context: left(context) and right(context)
    if isinstance(node, nodes.Or):
        left, right = _closure(node.left), _closure(node.right)
        return lambda context: left(context) or right(context)
    if isinstance(node, nodes.Not):
        operand = _closure(node.node)
        return lambda context: not operand(context)
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
        left, right = _closure(node.expr), _closure(node.ops[0].expr)
        compare = _COMPARE[node.ops[0].op]
        return lambda context: compare(left(context), right(context))
    if isinstance(node, nodes.Dict):
        pairs = [(_closure(pair.key), _closure(pair.value)) for pair in node.items]
        return lambda context: {key(context): value(context) for key, value in pairs}
    if isinstance(node, nodes.List):
        entries = [_closure(entry) for entry in node.items]
        return lambda context: [entry(context) for entry in entries]
    if isinstance(node, nodes.Call) and _plain_method_call(node):
        assert isinstance(node.node, nodes.Getattr)
        owner, method = _closure(node.node.node), node.node.attr
        arguments = [_closure(argument) for argument in node.args]

        def call(context: Mapping[str, Any]) -> Any:
            value = owner(context)
            if type(value) is not str:
                raise _GiveUp
            return getattr(value, method)(*(argument(context) for argument in arguments))

        return call
    raise _GiveUp


def _plain_method_call(node: nodes.Call) -> bool:
    return (
        isinstance(node.node, nodes.Getattr)
        and node.node.attr in _STR_METHODS
        and not node.kwargs
        and node.dyn_args is None
        and node.dyn_kwargs is None
    )


@lru_cache(maxsize=2048)
def _fast(source: str) -> _Fast | None:
    """The template as a closure, or None when it holds anything the fast path leaves
    to Jinja (blocks, filters, tests, loops, other operators)."""
    try:
        body = _parse(source).body
    except Exception:
        return None  # Jinja reports the problem
    if len(body) != 1 or not isinstance(body[0], nodes.Output):
        return None
    try:
        parts = [
            part.data if isinstance(part, nodes.TemplateData) else _closure(part)
            for part in body[0].nodes
        ]
    except _GiveUp:
        return None
    if _whole_reference(source) is not None and len(parts) == 1 and callable(parts[0]):
        return _Fast(parts[0], whole=True)

    def text(context: Mapping[str, Any]) -> str:
        chunks = [part if isinstance(part, str) else str(part(context)) for part in parts]
        if sum(map(len, chunks)) > MAX_OUTPUT_CHARS:
            raise _GiveUp  # Jinja refuses it with its words
        return "".join(chunks)

    return _Fast(text, whole=False)


# --- rendering ---------------------------------------------------------------------


def is_template(value: Any) -> bool:
    """Whether a value holds template syntax (plain strings are used as they are)."""
    return isinstance(value, str) and "<" in value and any(marker in value for marker in _MARKERS)


def _check_value(value: Any, depth: int = 0) -> None:
    """Raise the undefined error hidden in a value an expression returned."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises the real error (undefined or unsafe)
    if depth > MAX_DEPTH:
        return
    if isinstance(value, list | tuple):
        for entry in value:
            _check_value(entry, depth + 1)
    elif isinstance(value, dict):
        for entry in value.values():
            _check_value(entry, depth + 1)
    if callable(value) and not isinstance(value, type):
        raise SecurityError("refers to a function, not a value")


_MISSING = object()


@lru_cache(maxsize=2048)
def _simple_path(source: str) -> tuple[str, ...] | None:
    """``<<a.b.c>>`` as ("a", "b", "c"): the common case, resolved without Jinja."""
    match = _SIMPLE.match(source)
    return tuple(match.group("path").split(".")) if match else None


def _lookup(path: tuple[str, ...], context: Mapping[str, Any]) -> Any:
    """Follow a dotted path through mappings only; anything else is Jinja's to decide."""
    value: Any = context
    for key in path:
        if not isinstance(value, dict | Mapping):
            return _MISSING
        try:
            value = value[key]
        except (KeyError, TypeError):
            return _MISSING
    return value


def _render(source: str, context: Mapping[str, Any]) -> Any:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise _Refused(f"is longer than {MAX_TEMPLATE_CHARS} characters")
    path = _simple_path(source)
    if path is not None:
        value = _lookup(path, context)
        if value is not _MISSING and not callable(value):
            return value
    fast = _fast(source)
    if fast is not None:
        try:
            value = fast(context)
        except Exception:
            pass  # undefined, an error or any doubt: Jinja decides (and words the error)
        else:
            if fast.whole:
                _check_value(value)
            return value
    expr = _whole_reference(source)
    token = _loop_budget.set([MAX_LOOP_ITERATIONS])
    try:
        if expr is not None:
            value = _expression(expr)(**context)
            _check_value(value)
            return value
        size = 0
        chunks: list[str] = []
        for chunk in _template(source).generate(**context):
            size += len(chunk)
            if size > MAX_OUTPUT_CHARS:
                raise _Refused(f"renders more than {MAX_OUTPUT_CHARS} characters")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _loop_budget.reset(token)


def render(field: str, source: str, context: Mapping[str, Any]) -> Any:
    """Render one template string; :class:`TemplateError` on any failure, never a traceback."""
    if not is_template(source):
        return source
    try:
        return _render(source, context)
    except TemplateError:
        raise
    except jinja2.UndefinedError as exc:
        problem = _explain_undefined(source, context) or str(exc)
    except jinja2.TemplateSyntaxError as exc:
        problem = f"has a syntax error: {exc.message}"
    except (SecurityError, _Refused) as exc:
        problem = f"is not allowed: {exc}"
    except RecursionError:
        problem = "is nested too deeply"
    except MemoryError:
        problem = "needs too much memory"
    except Exception as exc:  # a template must never surface as a traceback
        problem = f"failed: {type(exc).__name__}: {exc}"
    raise TemplateError(field, _shorten(source), problem) from None


def _shorten(source: str, limit: int = 200) -> str:
    return source if len(source) <= limit else source[:limit] + "…"


def context_names(
    trigger: Mapping[str, Any] | None = None,
    steps: Mapping[str, Any] | None = None,
    vars: Mapping[str, Any] | None = None,
    item: Any = None,
    *,
    in_loop: bool = False,
) -> dict[str, Any]:
    """The names node templates see; ``item`` exists only inside a loop."""
    names: dict[str, Any] = {"trigger": trigger or {}, "steps": steps or {}, "vars": vars or {}}
    if in_loop:
        names["item"] = item
    return names


def resolve_inputs(inputs: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render every template string in a node's inputs (through nested lists and objects).

    The results are final: a value that came from the context is never rendered again.
    """
    return {name: _resolve(name, value, context, 0) for name, value in inputs.items()}


def _resolve(field: str, value: Any, context: Mapping[str, Any], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise TemplateError(field, "…", f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        return render(field, value, context)
    if isinstance(value, list | tuple):
        return [_resolve(f"{field}[{i}]", v, context, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return {k: _resolve(f"{field}.{k}", v, context, depth + 1) for k, v in value.items()}
    return value


def definition_scope(inputs: Mapping[str, Any] | None = None, **names: Any) -> dict[str, Any]:
    """The names definition templates see; absent optional inputs read as None."""
    return {"inputs": _Missing(inputs or {}), **names}


def render_definition(place: str, template: Any, scope: Mapping[str, Any]) -> Any:
    """Render a definition value (a string, or a JSON value holding templates).

    Entries of objects and lists that render to None are left out: they are not sent.
    A definition rendered on every run is better compiled once (:func:`compile_definition`).
    """
    return compile_definition(place, template)(scope)


def compile_definition(place: str, template: Any) -> Evaluator:
    """``template`` (a string, or a JSON value holding templates) as a function of the
    scope, with the walk through the definition, the place names and the choice of how
    each string is evaluated done once. Entries that render to None are left out."""
    if isinstance(template, str):
        return _compile_string(place, template)
    if isinstance(template, Mapping):
        entries = [(key, compile_definition(f"{place}.{key}", v)) for key, v in template.items()]

        def mapping(scope: Mapping[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for key, entry in entries:
                value = entry(scope)
                if value is not None:
                    out[key] = value
            return out

        return mapping
    if isinstance(template, list):
        items = [compile_definition(f"{place}[{i}]", v) for i, v in enumerate(template)]

        def sequence(scope: Mapping[str, Any]) -> list[Any]:
            rendered = (item(scope) for item in items)
            return [v for v in rendered if v is not None]

        return sequence
    return lambda scope: template


def _compile_string(place: str, source: str) -> Evaluator:
    if not is_template(source):
        return lambda scope: source
    if len(source) > MAX_TEMPLATE_CHARS:
        return lambda scope: render(place, source, scope)
    path = _simple_path(source)
    if path is None:
        fast = _fast(source)
        if fast is None:
            return lambda scope: render(place, source, scope)
        evaluate, whole = fast.evaluate, fast.whole

        def expression(scope: Mapping[str, Any]) -> Any:
            try:
                value = evaluate(scope)
                if whole:
                    _check_value(value)
            except Exception:
                return render(place, source, scope)  # Jinja's answer (or its error)
            return value

        return expression

    def reference(scope: Mapping[str, Any]) -> Any:
        value = _lookup(path, scope)
        if value is _MISSING or callable(value):
            return render(place, source, scope)  # Jinja's answer (or its error)
        return value

    return reference


# --- explaining undefined names ----------------------------------------------------


def _chain(node: nodes.Node) -> list[Any] | None:
    """``trigger.a[0]`` as ["trigger", "a", 0]; None when not a plain reference."""
    keys: list[Any] = []
    while True:
        if isinstance(node, nodes.Getattr):
            keys.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            keys.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            keys.append(node.name)
            return keys[::-1]
        else:
            return None


def _text(chain: list[Any]) -> str:
    out = str(chain[0])
    for key in chain[1:]:
        is_name = isinstance(key, str) and key.isidentifier()
        out += f".{key}" if is_name else f"[{key!r}]"
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "is empty (None)"
    if isinstance(value, list | tuple):
        return f"is a list of {len(value)} items"
    if isinstance(value, str):
        return "is text"
    return f"is a {type(value).__name__}"


def _explain_undefined(source: str, context: Mapping[str, Any]) -> str | None:
    """Find the first reference that does not resolve and say what exists instead."""
    try:
        tree = _parse(source)
    except Exception:
        return None
    local: set[str] = set()
    for found in tree.find_all((nodes.For, nodes.Assign)):
        if isinstance(found, nodes.For | nodes.Assign):
            target = found.target  # a Name, or a Tuple of them (find_all skips the node itself)
            names = [target] if isinstance(target, nodes.Name) else target.find_all(nodes.Name)
            local.update(n.name for n in names)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Name)):
        chain = _chain(node)
        if chain is None or chain[0] in local:
            continue
        root = chain[0]
        if root not in context:
            if root == "item":
                return "— 'item' exists only inside a loop"
            return f"— '{root}' is not defined; names: {', '.join(sorted(context))}"
        value: Any = context[root]
        for i, key in enumerate(chain[1:], start=1):
            parent = _text(chain[:i])
            if isinstance(value, Mapping):
                if key in value:
                    value = value[key]
                    continue
                fields = ", ".join(str(k) for k in list(value)[:30]) or "no fields"
                return f"— '{parent}' has no field {key!r}; it has: {fields}"
            if isinstance(value, list | tuple) and isinstance(key, int):
                if -len(value) <= key < len(value):
                    value = value[key]
                    continue
                return f"— '{parent}' has {len(value)} items; there is no item {key}"
            return f"— '{parent}' {_describe(value)}, it has no field {key!r}"
    return None


__all__ = [
    "CONTEXT_NAMES",
    "MAX_DEPTH",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_TEMPLATE_CHARS",
    "context_names",
    "definition_scope",
    "is_template",
    "render",
    "render_definition",
    "resolve_inputs",
]
