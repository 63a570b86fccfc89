"""The executor contract: how one job or series step is executed, wherever that is."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from traitlets.config import LoggingConfigurable

from ..logs import DEFAULT_MAX_LOG_BYTES

Progress = Callable[[int, int, str], None]
"""Receives a running step's progress reports: (done, total, message)."""


@dataclass(frozen=True)
class StepRequest:
    """One job or series step, as the engine hands it to an executor.

    ``entry`` is the component's stored entry (a job's config with its placeholders filled),
    ``context`` the run context as JSON (see ``worker.execute``).  ``folder`` is the step's
    folder on the server, ``output`` the folder its result files belong in, ``cwd`` the
    owner's root.  ``limit`` asks a series for its first sets only (a preview).
    ``resources`` are the task's worker resources (``{"GPU": 1}``), for executors that
    place steps on workers which declare them; others ignore them.
    """

    kind: Literal["job", "series"]
    entry: dict[str, Any]
    context: dict[str, Any]
    folder: Path
    output: Path
    cwd: Path
    limit: int | None = None
    resources: dict[str, float] = field(default_factory=dict)

    def document(self, folder: Path, output: Path) -> dict[str, Any]:
        """The JSON request ``jupyter_taskplanner.worker`` executes, for folders where it runs."""
        document: dict[str, Any] = {
            "kind": self.kind,
            "entry": self.entry,
            "context": {**self.context, "output_dir": str(output)},
            "folder": str(folder),
        }
        if self.limit is not None:
            document["limit"] = self.limit
        return document


@dataclass
class StepOutcome:
    """How a step ended.

    ``error`` is None for success; else it says why, in words for the user (a worker that
    died says so).  ``results`` are result documents (``Result.to_json()``), file values
    relative to the request's ``output``; after a failure they are the files the step left
    there, marked invalid.  ``sets`` are a series' parameter sets.
    """

    results: list[dict[str, Any]] = field(default_factory=list)
    sets: list[dict[str, Any]] | None = None
    error: str | None = None
    state: dict[str, Any] | None = None
    """The component's state as the step left it (``RunContext.state``); None: unknown."""

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> StepOutcome:
        """The outcome a worker wrote (``{"results"}``, ``{"sets"}`` or ``{"error"}``)."""
        return cls(
            results=list(document.get("results", [])),
            sets=document.get("sets"),
            error=document.get("error"),
            state=document.get("state"),
        )


class Executor(LoggingConfigurable):
    """Runs job and series steps somewhere: in local processes, on a cluster, ...

    The contract of ``run_step(request, progress)``, which an executor owns whole:

    - **Start** the step: execute ``request.document(...)`` with ``jupyter_taskplanner.worker``
      (or the same function in-process on a worker machine), with the owner's root as the
      working folder.
    - **Log**: write what the step prints to ``request.folder / "log.txt"`` through a
      ``logs.CappedLog`` of ``max_log_bytes``, readable while the step runs.
    - **Progress**: call ``progress(done, total, message)`` for each report of the job
      (``RunContext.report_progress``), from the event loop.
    - **Cancel**: when the awaiting task is cancelled (a cancel, a timeout, the server
      stopping), stop the work where it runs, then let ``CancelledError`` propagate.
    - **Result files**: make every result file available under ``request.output`` before
      returning; after a failure, also the files the step left there (a partial notebook).
    - **How it ended**: return a ``StepOutcome``; a worker that died or vanished is an
      outcome with an ``error`` naming it ("the worker ... died"), never an exception.

    Executors never see the store: the engine records the step.
    """

    runs_as_owner: ClassVar[bool] = False
    """True when every job runs under its owner's own system account, so the owner's code
    cannot read other users' files; components that run code then need no extra permission
    (see ``permissions.ComponentRules``)."""

    concurrent_sets: int = 1
    """How many parameter sets of one run may execute at once (each with its jobs and
    actions); 1: one after the other."""

    @property
    def max_log_bytes(self) -> int:
        """The cap on each step's ``log.txt``: ``TaskPlannerApp.max_log_bytes``, the one setting."""
        return getattr(self.parent, "max_log_bytes", DEFAULT_MAX_LOG_BYTES)

    async def run_step(self, request: StepRequest, progress: Progress) -> StepOutcome:
        """Execute one step as the class docstring says."""
        raise NotImplementedError

    async def close(self) -> None:
        """Release resources (connections, pools) when the server stops."""
