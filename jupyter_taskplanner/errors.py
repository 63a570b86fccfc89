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
