"""Run queries shared by the REST API and the CLI: scoping, detail, logs, result files."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import cast

from .errors import TaskNotFound, excerpt
from .logs import FileRange
from .permissions import Access
from .store import Store, StoredStep
from .vocabulary import RunDetail, RunRecord, StepRecord, StepStatus


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
        sort: str = "-id",
    ) -> tuple[builtins.list[RunRecord], int]:
        scope = access.task_scope() if task_id is not None else access.scope(owner)
        if task_id is not None:
            self.store.get_task(task_id, scope)
        return self.store.list_runs(
            scope, task_id=task_id, status=status, limit=limit, offset=offset, sort=sort
        )

    def get(self, access: Access, run_id: int) -> RunRecord:
        return self.store.get_run(run_id, access.task_scope())

    def detail(self, access: Access, run_id: int, *, limit: int = -1, offset: int = 0) -> RunDetail:
        """A run with its steps (results, errors, progress of running steps): all of them, or
        ``limit`` of them from ``offset``; with their number per status."""
        run = self.get(access, run_id)
        counts = self.store.step_counts(run_id)
        steps: builtins.list[StepRecord] = []
        for step in self.store.steps(run_id, limit=limit, offset=offset):
            folder = Path(step.pop("folder") or "")
            progress = folder / "progress.json"
            if step["status"] == StepStatus.RUNNING and progress.is_file():
                step["progress"] = json.loads(progress.read_text())
            steps.append(step)
        detail = {**run, "steps": steps, "steps_total": sum(counts.values()), "step_counts": counts}
        # A cast: mypy reads a ** of a record as leaving out the page fields only REST sets.
        return cast(RunDetail, detail)

    def log(
        self, access: Access, run_id: int, step_id: int | None = None, *, tail: int | None = None
    ) -> builtins.list[str | FileRange]:
        """The pieces of the run's log: each step's header, its captured output, its error.

        The output is a ``FileRange`` of the step's ``log.txt`` (its last ``tail`` bytes when
        given), read only when sent: ``logs.log_text`` turns the pieces into text.
        """
        pieces: list[str | FileRange] = []
        for step in self._steps(access, run_id, step_id):
            if pieces:
                pieces.append("\n")
            header = f"== {step['kind']} {step['name']} (step {step['id']}"
            if step["set_index"] is not None:
                header += f", set {step['set_index'] + 1}"
            if step["attempt"] > 1:
                header += f", attempt {step['attempt']}"
            pieces += [
                f"{header}): {step['status']} ==\n",
                FileRange.of(_log_path(step), tail=tail),
            ]
            if step["status"] == StepStatus.CANCELLED and step["error"]:
                pieces.append(f"\n{step['error']}\n")  # why it stopped, not an error of its own
            elif step["error"]:
                pieces.append(f"\nerror: {step['error']}\n")
        return pieces

    def log_range(
        self, access: Access, run_id: int, step_id: int, offset: int, length: int | None
    ) -> FileRange:
        """Bytes ``offset`` to ``offset + length`` of one step's ``log.txt`` (to follow it)."""
        (step,) = self._steps(access, run_id, step_id)
        return FileRange.of(_log_path(step), offset=offset, length=length)

    def _steps(self, access: Access, run_id: int, step_id: int | None) -> builtins.list[StoredStep]:
        """The run's steps, or its step ``step_id``; ``TaskNotFound`` when it has none such."""
        self.get(access, run_id)
        steps = [
            step for step in self.store.steps(run_id) if step_id is None or step["id"] == step_id
        ]
        if step_id is not None and not steps:
            raise TaskNotFound(f"run {run_id} has no step {step_id}")
        return steps

    def file(self, access: Access, run_id: int, run_folder: Path, relative: str) -> Path:
        """The result file ``relative`` of a run; refuses anything outside the run's folder."""
        self.get(access, run_id)
        missing = TaskNotFound(f"run {run_id} has no result file {excerpt(relative)}")
        root = run_folder.resolve()
        try:
            path = (root / relative).resolve()
            if root not in path.parents or not path.is_file():
                raise missing
        except (ValueError, OSError):  # a NUL in the path, a name too long for the system
            raise missing from None
        return path


def _log_path(step: StoredStep) -> Path:
    return Path(step["folder"] or "") / "log.txt"
