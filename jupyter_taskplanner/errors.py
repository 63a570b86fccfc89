"""Domain errors; the REST layer maps each to an HTTP status with a JSON message."""

from __future__ import annotations


class TaskPlannerError(Exception):
    """Base of every error the planner reports to a user."""

    status = 400
    reason = "Bad Request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def within(self, where: str) -> TaskPlannerError:
        """This error restated for a field inside ``where`` (such as ``jobs[0].config``)."""
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


def schema_message(error: object) -> str:
    """A jsonschema error's message, quoting at most an excerpt of the offending value."""
    message = str(getattr(error, "message", error))
    quoted = repr(getattr(error, "instance", None))
    if len(quoted) > 80 and quoted in message:
        message = message.replace(quoted, excerpt(getattr(error, "instance", None)))
    return message[:MAX_MESSAGE]
