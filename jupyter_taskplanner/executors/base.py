"""The executor contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from traitlets.config import LoggingConfigurable

from ..logs import DEFAULT_MAX_LOG_BYTES


class Executor(LoggingConfigurable):
    """Runs one worker request (a job or a series) somewhere and returns its outcome.

    ``request`` is the JSON document ``jupyter_taskplanner.worker`` understands; ``folder`` is the
    step's folder, where the worker writes ``outcome.json``, ``progress.json`` and the executor
    writes ``log.txt`` through a ``CappedLog`` of ``max_log_bytes``.  Cancelling the awaiting
    task must stop the work (kill the process).
    The outcome is ``{"results": [...]}``, ``{"sets": [...]}`` or ``{"error": "..."}``.
    """

    runs_as_owner: ClassVar[bool] = False
    """True when every job runs under its owner's own system account, so the owner's code
    cannot read other users' files; components that run code then need no extra permission
    (see ``permissions.ComponentRules``)."""

    @property
    def max_log_bytes(self) -> int:
        """The cap on each step's ``log.txt``: ``TaskPlannerApp.max_log_bytes``, the one setting."""
        return getattr(self.parent, "max_log_bytes", DEFAULT_MAX_LOG_BYTES)

    async def run(self, request: dict[str, Any], folder: Path, cwd: Path) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources (connections, pools) when the server stops."""
