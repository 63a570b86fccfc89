"""The default executor: one subprocess per job, in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from traitlets import Float

from .base import Executor


class LocalExecutor(Executor):
    """Runs each job in a fresh ``python -m jupyter_taskplanner.worker`` subprocess."""

    kill_grace = Float(
        3.0,
        config=True,
        help="Seconds a cancelled job gets after SIGTERM before its process group is killed.",
    )

    async def run(self, request: dict[str, Any], folder: Path, cwd: Path) -> dict[str, Any]:
        folder.mkdir(parents=True, exist_ok=True)
        request_path = folder / "request.json"
        request_path.write_text(json.dumps({**request, "folder": str(folder)}))
        with open(folder / "log.txt", "ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "jupyter_taskplanner.worker",
                str(request_path),
                cwd=str(cwd),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                await self._kill(process)
                raise
        outcome_path = folder / "outcome.json"
        if not outcome_path.exists():
            return {"error": f"the worker process ended with exit code {code} and no outcome"}
        return json.loads(outcome_path.read_text())

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
        """Stop the worker and every process it started (its whole session)."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), wait)
                return
            except TimeoutError:
                continue
