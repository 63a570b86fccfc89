"""The errors a client raises: the server's answer, kept whole."""

from __future__ import annotations

from typing import Any

__all__ = ["BadRequest", "Conflict", "Forbidden", "NotFound", "PlannerError", "Unauthorized"]


class PlannerError(Exception):
    """The planner refused a request: its ``message``, the ``field`` to blame, every problem
    in ``errors`` (``{"field", "message"}``) and the HTTP ``status``."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str | None = None,
        field: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.field = field
        self.errors = errors or [{"field": field, "message": message}]


class BadRequest(PlannerError):
    """400: the input is wrong; ``field`` and ``errors`` say where."""


class Unauthorized(PlannerError):
    """401: no valid token (log in, or give ``token=``)."""


class Forbidden(PlannerError):
    """403: not authenticated, or a permission is missing."""


class NotFound(PlannerError):
    """404: no such task, run or file for this user."""


class Conflict(PlannerError):
    """409: the task changed since its revision was read, or the run already ended."""


_BY_STATUS: dict[int, type[PlannerError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def error_for(status: int, body: Any, text: str) -> PlannerError:
    """The exception for an error answer (a JSON error document, or any text)."""
    cls = _BY_STATUS.get(status, PlannerError)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return cls(
            body["message"],
            status=status,
            reason=body.get("reason"),
            field=body.get("field"),
            errors=body.get("errors"),
        )
    return cls(text.strip() or f"HTTP {status}", status=status)
