"""Stability AI actions for workflow automation engines.

The public API, for engines that embed the connector::

    from stability_connector import Runtime, RunContext, RetryPolicy, load_catalog

    async with Runtime() as runtime:
        result = await runtime.run("generate_image", {"prompt": "<<trigger.idea>>"},
                                   RunContext(trigger={"idea": "a lighthouse at dusk"}))
        result.outputs["file"], result.outputs["seed"], result.attempts

``run`` / ``run_sync`` do the same for a single node. With no ``STABILITY_API_KEY`` the
runtime talks to the built-in sandbox. Errors are one tree rooted at
:class:`ConnectorError`.

Names are imported on first use, so ``import stability_connector`` (and the command
line) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the private module that defines it
_EXPORTS = {
    "Runtime": "node",
    "RunContext": "node",
    "ActionResult": "node",
    "Artifact": "node",
    "run": "node",
    "run_sync": "node",
    "Catalog": "catalog",
    "load_catalog": "catalog",
    "default_catalog": "catalog",
    "ActionSpec": "definitions",
    "ConnectorSpec": "definitions",
    "Connection": "connection",
    "Secret": "connection",
    "resolve_connection": "connection",
    "RetryPolicy": "retry",
    "Attempt": "transport",
    "Clock": "clock",
    "SystemClock": "clock",
    "FakeClock": "clock",
    "ConnectorError": "errors",
    "DefinitionError": "errors",
    "InputValidationError": "errors",
    "FieldProblem": "errors",
    "TemplateError": "errors",
    "ExecutionError": "errors",
    "TransportError": "errors",
    "BlockedRequestError": "errors",
    "JobTimeoutError": "errors",
    "ContentFilteredError": "errors",
    "ApiError": "errors",
    "InvalidRequestError": "errors",
    "AuthenticationError": "errors",
    "PaymentRequiredError": "errors",
    "ContentModerationError": "errors",
    "NotFoundError": "errors",
    "PayloadTooLargeError": "errors",
    "RateLimitError": "errors",
    "ServerError": "errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'stability_connector' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what __getattr__ provides, for type checkers (explicit re-exports)
    from .catalog import Catalog as Catalog
    from .catalog import default_catalog as default_catalog
    from .catalog import load_catalog as load_catalog
    from .clock import Clock as Clock
    from .clock import FakeClock as FakeClock
    from .clock import SystemClock as SystemClock
    from .connection import Connection as Connection
    from .connection import Secret as Secret
    from .connection import resolve_connection as resolve_connection
    from .definitions import ActionSpec as ActionSpec
    from .definitions import ConnectorSpec as ConnectorSpec
    from .errors import ApiError as ApiError
    from .errors import AuthenticationError as AuthenticationError
    from .errors import BlockedRequestError as BlockedRequestError
    from .errors import ConnectorError as ConnectorError
    from .errors import ContentFilteredError as ContentFilteredError
    from .errors import ContentModerationError as ContentModerationError
    from .errors import DefinitionError as DefinitionError
    from .errors import ExecutionError as ExecutionError
    from .errors import FieldProblem as FieldProblem
    from .errors import InputValidationError as InputValidationError
    from .errors import InvalidRequestError as InvalidRequestError
    from .errors import JobTimeoutError as JobTimeoutError
    from .errors import NotFoundError as NotFoundError
    from .errors import PayloadTooLargeError as PayloadTooLargeError
    from .errors import PaymentRequiredError as PaymentRequiredError
    from .errors import RateLimitError as RateLimitError
    from .errors import ServerError as ServerError
    from .errors import TemplateError as TemplateError
    from .errors import TransportError as TransportError
    from .node import ActionResult as ActionResult
    from .node import Artifact as Artifact
    from .node import RunContext as RunContext
    from .node import Runtime as Runtime
    from .node import run as run
    from .node import run_sync as run_sync
    from .retry import RetryPolicy as RetryPolicy
    from .transport import Attempt as Attempt
