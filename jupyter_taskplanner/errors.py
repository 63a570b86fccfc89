"""Domain errors; the REST layer maps each to an HTTP status with a JSON message."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError, best_match, relevance
from jsonschema.protocols import Validator


class TaskPlannerError(Exception):
    """Base of every error the planner reports to a user."""

    status = 400
    reason = "Bad Request"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        others: Sequence[TaskPlannerError] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.others = tuple(others)
        """Further problems found together with this one (see ``combine``)."""

    @property
    def errors(self) -> list[dict[str, str | None]]:
        """Every problem, this one first, as the API lists them: ``{"field", "message"}``."""
        return [
            {"field": error.field, "message": error.message[:MAX_MESSAGE]}
            for error in (self, *self.others)
        ]

    def within(self, where: str) -> TaskPlannerError:
        """This error restated for a field inside ``where`` (such as ``jobs[0].config``)."""
        restated = self._single_within(where)
        restated.others = tuple(other._single_within(where) for other in self.others)
        return restated

    def within_source(self, source: str) -> TaskPlannerError:
        """This error as found in the file ``source``: its first message says so."""
        return type(self)(f"{source}: {self.message}", field=self.field, others=self.others)

    def _single_within(self, where: str) -> TaskPlannerError:
        field = f"{where}.{self.field}" if self.field else where
        message = self.message
        if self.field and message.startswith(f"{self.field}:"):
            message = message[len(self.field) + 1 :].lstrip()
        return type(self)(f"{field}: {message}", field=field)


class InvalidConfig(TaskPlannerError):
    """A task, component config or request body does not validate."""

    status = 400
    reason = "Invalid"


class TaskNotFound(TaskPlannerError):
    """No task (or run) with that id exists for this user."""

    status = 404
    reason = "Not Found"


class PermissionDenied(TaskPlannerError):
    """The user lacks a permission the operation needs."""

    status = 403
    reason = "Forbidden"


class Conflict(TaskPlannerError):
    """The stored state changed since the client read it, or the request clashes with it."""

    status = 409
    reason = "Conflict"


class StoreError(TaskPlannerError):
    """The database cannot be opened or is of an unknown newer schema."""

    status = 500
    reason = "Store Error"


class Unavailable(TaskPlannerError):
    """The planner is shutting down and takes no more work."""

    status = 503
    reason = "Service Unavailable"


class TooManyRequests(TaskPlannerError):
    """A caller sent more requests than a documented rate allows (answered with 429)."""

    status = 429
    reason = "Too Many Requests"

    def __init__(self, message: str, retry_after: float = 1.0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after
        """Seconds until a call would be taken (the ``Retry-After`` header, rounded up)."""


class TooLarge(TaskPlannerError):
    """A request body (or another input) exceeds a documented size limit."""

    status = 413
    reason = "Payload Too Large"


MAX_MESSAGE = 2000
"""The longest error message the API returns; longer ones are cut (they may quote input)."""


def excerpt(value: object, limit: int = 80) -> str:
    """A short ``repr`` of a value for a message: never the whole of a huge input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} characters)"


PRINTABLE = "^[^\\u0000-\\u001f\\u007f]*$"
"""The schema pattern of a name: no control characters (NUL, line breaks, terminal escapes),
which cut a name short in the store's searches and break mail headers and log lines."""


def schema_message(error: object) -> str:
    """A jsonschema error's message, quoting at most an excerpt of the offending value."""
    message = str(getattr(error, "message", error))
    if getattr(error, "validator", None) == "pattern" and (
        getattr(error, "validator_value", None) == PRINTABLE
    ):
        return "may not hold control characters (such as NUL, a line break or an escape)"
    quoted = repr(getattr(error, "instance", None))
    if len(quoted) > 80 and quoted in message:
        message = message.replace(quoted, excerpt(getattr(error, "instance", None)))
    return message[:MAX_MESSAGE]


MAX_ERRORS = 100
"""The most problems one error lists (a body of many broken components could have thousands)."""


def combine(problems: Iterable[TaskPlannerError]) -> TaskPlannerError:
    """One error to raise for several problems (each may hold ``others`` of its own).

    Bad input wins over a missing permission: every other problem comes before the
    ``PermissionDenied`` ones, so the error is a 403 only when nothing else is wrong.  Its
    message and field are those of the first problem; ``others`` holds the rest, up to
    ``MAX_ERRORS`` in all, in the order they were found.
    """
    found = [error for problem in problems for error in (problem, *problem.others)]
    found.sort(key=lambda error: isinstance(error, PermissionDenied))
    first, *rest = found[:MAX_ERRORS]
    singles = [type(error)(error.message, field=error.field) for error in rest]
    return type(first)(first.message, field=first.field, others=singles)


def schema_errors(validator: Validator, instance: Mapping[str, Any]) -> list[ValidationError]:
    """Every way ``instance`` fails ``validator``'s schema, each by its most specific cause.

    The one ``jsonschema.exceptions.best_match`` picks comes first, the others follow in the
    schema's order.
    """
    errors = list(validator.iter_errors(instance))
    best = max(errors, key=relevance, default=None)
    errors.sort(key=lambda error: error is not best)
    return [best_match([error]) or error for error in errors]
