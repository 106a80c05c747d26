"""One exception tree for everything the connector can refuse or fail at.

Every error carries a message that tells a user what to change, and a ``retryable``
flag the retry policy and workflow engines read. No error ever holds an API key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class ConnectorError(Exception):
    """Root of the tree. ``retryable`` says whether sending again may succeed."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form for run logs and ``--json`` output."""
        return {"type": type(self).__name__, "message": self.message, "retryable": self.retryable}


# --- definitions ---------------------------------------------------------------------


class DefinitionError(ConnectorError):
    """A catalog file (connector, action, workflow) is broken. Names the file and place."""

    def __init__(self, file: str, place: str, problem: str) -> None:
        self.file = file
        self.place = place
        self.problem = problem
        where = f"{file}: {place}" if place else file
        super().__init__(f"{where}: {problem}")


# --- inputs and templates ------------------------------------------------------------


@dataclass(frozen=True)
class FieldProblem:
    """One invalid input: where it is, what is wrong, and what would be accepted."""

    field: str
    problem: str
    allowed: str | None = None

    def __str__(self) -> str:
        text = f"{self.field}: {self.problem}"
        return f"{text} (allowed: {self.allowed})" if self.allowed else text


class InputValidationError(ConnectorError):
    """Inputs do not fit the action. Lists every problem at once; nothing was sent."""

    def __init__(self, action: str, problems: list[FieldProblem]) -> None:
        self.action = action
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(f"{action}: {count} with the inputs, nothing was sent:\n{lines}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "problems": [
                {"field": p.field, "problem": p.problem, "allowed": p.allowed}
                for p in self.problems
            ],
        }


class TemplateError(ConnectorError):
    """A ``<<template>>`` could not be resolved. Names the field and the expression."""

    def __init__(self, field: str, expression: str, problem: str) -> None:
        self.field = field
        self.expression = expression
        self.problem = problem
        super().__init__(f"{field}: template {expression!r} {problem}")


# --- execution -----------------------------------------------------------------------


class ExecutionError(ConnectorError):
    """Sending or receiving failed."""

    # The HTTP attempts that led here (transport.Attempt), set by the sender.
    attempts: tuple[Any, ...] = ()


class TransportError(ExecutionError):
    """No usable HTTP response: connection refused or reset, timeout, truncated body.

    ``may_have_been_charged`` is true when the request may have reached the API
    (a read timeout or a reset after sending), so a paid call may have been billed.
    """

    retryable = True

    def __init__(self, message: str, *, may_have_been_charged: bool = False) -> None:
        super().__init__(message)
        self.may_have_been_charged = may_have_been_charged

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "may_have_been_charged": self.may_have_been_charged}


class BlockedRequestError(ExecutionError):
    """A generic request tried to leave the configured base URL; nothing was sent."""


class JobTimeoutError(ExecutionError):
    """An asynchronous job did not finish before the deadline. It can be fetched later."""

    retryable = True

    def __init__(self, message: str, *, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class ContentFilteredError(ExecutionError):
    """Moderation blurred the result (finish reason CONTENT_FILTERED) and the run's
    ``content_filtered`` policy is "fail". The generation was charged; ``outputs``
    holds what came back (the blurred file included)."""

    def __init__(self, message: str, *, outputs: dict[str, Any]) -> None:
        super().__init__(message)
        self.outputs = outputs


@dataclass
class ApiErrorDetails:
    """What the API said, in its own words."""

    status: int
    name: str | None = None
    message: str | None = None
    #: The error body's ``id``: what Stability asks for in a support ticket.
    id: str | None = None
    errors: list[str] = field(default_factory=list)
    #: The response's ``x-request-id`` header, as each attempt of the run log shows it.
    request_id: str | None = None


class ApiError(ExecutionError):
    """The API answered with an error status. Subclasses name the kind."""

    hint = "Check the inputs against the action's documentation."

    def __init__(self, details: ApiErrorDetails) -> None:
        self.details = details
        said = details.message or "; ".join(details.errors) or "no message"
        name = f" {details.name}" if details.name else ""
        ids = [f"error id {details.id}"] if details.id else []
        ids += [f"request id {details.request_id}"] if details.request_id else []
        quoted = f" ({', '.join(ids)})" if ids else ""
        super().__init__(f"Stability API {details.status}{name}: {said}{quoted}. {self.hint}")

    @property
    def status(self) -> int:
        return self.details.status

    def to_dict(self) -> dict[str, Any]:
        d = self.details
        return {
            **super().to_dict(),
            "status": d.status,
            "name": d.name,
            "api_message": d.message,
            "error_id": d.id,
            "request_id": d.request_id,
            "errors": d.errors,
        }


class InvalidRequestError(ApiError):
    """400 or 422: the API refused the parameters."""

    hint = "Change the inputs the API names above."


class AuthenticationError(ApiError):
    """401: the API key is missing or wrong."""

    hint = "Set a valid API key (STABILITY_API_KEY or the connection's key)."


class PaymentRequiredError(ApiError):
    """402: not enough credits."""

    hint = "Add credits to the account, or lower the run's cost."


class ContentModerationError(ApiError):
    """403: the prompt or image was flagged. Nothing was charged."""

    hint = "Rephrase the prompt or use another image."


class NotFoundError(ApiError):
    """404: unknown path, or a job result that does not exist, expired or is another key's."""

    hint = "Results live 24 hours and only for the key that started the job."


class PayloadTooLargeError(ApiError):
    """413: the request body is over 10 MiB."""

    hint = "Send smaller files (the whole request must stay under 10 MiB)."


class RateLimitError(ApiError):
    """429: more than the allowed requests; the key is paused."""

    retryable = True
    hint = "The connector waits and retries; lower the concurrency if this persists."


class ServerError(ApiError):
    """5xx: a fault on the API's side."""

    retryable = True
    hint = "Try again later."


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: ContentModerationError,
    404: NotFoundError,
    408: ServerError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
}


def api_error_for(details: ApiErrorDetails) -> ApiError:
    """The error of the tree that matches an HTTP status."""
    cls = _BY_STATUS.get(details.status)
    if cls is None:
        cls = ServerError if details.status >= 500 else ApiError
    return cls(details)
