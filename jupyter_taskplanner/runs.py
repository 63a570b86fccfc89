"""Run queries shared by the REST API and the CLI: scoping, detail, logs, result files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import TaskNotFound
from .permissions import Access
from .store import Store

LOG_LIMIT = 5_000_000


class RunService:
    """Read access to runs, each call scoped by the caller's ``Access``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list(
        self,
        access: Access,
        *,
        owner: str | None = None,
        task_id: int | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        scope = access.task_scope() if task_id is not None else access.scope(owner)
        if task_id is not None:
            self.store.get_task(task_id, scope)
        return self.store.list_runs(
            scope, task_id=task_id, status=status, limit=limit, offset=offset
        )

    def get(self, access: Access, run_id: int) -> dict[str, Any]:
        return self.store.get_run(run_id, access.task_scope())

    def detail(self, access: Access, run_id: int) -> dict[str, Any]:
        """A run with its steps (results, errors, progress of running steps)."""
        run = self.get(access, run_id)
        steps = []
        for step in self.store.steps(run_id):
            folder = Path(step.pop("folder") or "")
            progress = folder / "progress.json"
            if step["status"] == "running" and progress.is_file():
                step["progress"] = json.loads(progress.read_text())
            steps.append(step)
        return {**run, "steps": steps}

    def log(self, access: Access, run_id: int, step_id: int | None = None) -> str:
        """The run's log: every step's captured output, each under a header."""
        self.get(access, run_id)
        parts = []
        for step in self.store.steps(run_id):
            if step_id is not None and step["id"] != step_id:
                continue
            path = Path(step["folder"] or "") / "log.txt"
            text = path.read_text(errors="replace")[-LOG_LIMIT:] if path.is_file() else ""
            header = f"== {step['kind']} {step['name']} (step {step['id']}"
            if step["set_index"] is not None:
                header += f", set {step['set_index'] + 1}"
            if step["attempt"] > 1:
                header += f", attempt {step['attempt']}"
            parts.append(f"{header}): {step['status']} ==\n{text}")
            if step["error"]:
                parts.append(f"error: {step['error']}\n")
        if step_id is not None and not parts:
            raise TaskNotFound(f"run {run_id} has no step {step_id}")
        return "\n".join(parts)

    def file(self, access: Access, run_id: int, run_folder: Path, relative: str) -> Path:
        """The result file ``relative`` of a run; refuses anything outside the run's folder."""
        self.get(access, run_id)
        root = run_folder.resolve()
        path = (root / relative).resolve()
        if root not in path.parents or not path.is_file():
            raise TaskNotFound(f"run {run_id} has no result file {relative!r}")
        return path
