"""The executor contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from traitlets.config import LoggingConfigurable


class Executor(LoggingConfigurable):
    """Runs one worker request (a job or a series) somewhere and returns its outcome.

    ``request`` is the JSON document ``jupyter_taskplanner.worker`` understands; ``folder`` is the
    step's folder, where the worker writes ``outcome.json``, ``progress.json`` and the executor
    writes ``log.txt``.  Cancelling the awaiting task must stop the work (kill the process).
    The outcome is ``{"results": [...]}``, ``{"sets": [...]}`` or ``{"error": "..."}``.
    """

    async def run(self, request: dict[str, Any], folder: Path, cwd: Path) -> dict[str, Any]:
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources (connections, pools) when the server stops."""
