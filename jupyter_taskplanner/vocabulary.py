"""The run vocabulary: run and step statuses, and the task, run and step records of the API.

The engine, the REST handlers, the CLI and the tests name statuses through this module, and
``jupyter_taskplanner.openapi`` builds the document's status enums and record schemas from
it. It imports only the standard library, so workers and the CLI can import it cheaply.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NotRequired, TypedDict

MAX_ID = 2**63 - 1
"""The largest id of a task, run or step (SQLite's largest integer)."""
MAX_SECONDS = 315_360_000
"""The longest duration (ten years, in seconds) a setting or a component's config takes:
longer ones overflow the clocks and timers a run and the scheduler use."""


class RunStatus(StrEnum):
    """The status of a run, as stored and as the API and the CLI show it."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    INTERRUPTED = "interrupted"
    SKIPPED = "skipped"


STATUSES: tuple[RunStatus, ...] = tuple(RunStatus)
"""Every run status in declaration order, for messages and listings."""
ACTIVE: frozenset[RunStatus] = frozenset({RunStatus.QUEUED, RunStatus.RUNNING})
"""A run in one of these has not ended: it can be cancelled, and holds its task's slot."""
FINISHED: frozenset[RunStatus] = frozenset(RunStatus) - ACTIVE
"""A run in one of these has ended and changes no more."""
STOPPED: frozenset[RunStatus] = frozenset({RunStatus.CANCELLED, RunStatus.SKIPPED})
"""Someone or something stopped the run, or did not start it: its error is the reason, not a
failure."""


class StepStatus(StrEnum):
    """The status of one step (job, action or series) of a run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class StepKind(StrEnum):
    """What a step of a run executes."""

    JOB = "job"
    ACTION = "action"
    SERIES = "series"


class ComponentEntry(TypedDict):
    """A trigger, job, action or series of a task as the API returns it (secrets removed)."""

    type: str
    version: int
    config: dict[str, Any]
    name: NotRequired[str]
    when: NotRequired[str]
    """Actions only."""
    secrets: NotRequired[list[str]]
    """The names of the secret config fields that are set, whose values are left out."""


class TaskRecord(TypedDict):
    """A task as the API returns it; its fields are those of ``model.TASK_SCHEMA``."""

    id: int
    owner: str
    name: str
    description: str
    enabled: bool
    triggers: list[ComponentEntry]
    jobs: list[ComponentEntry]
    actions: list[ComponentEntry]
    series: ComponentEntry | None
    settings: dict[str, Any]
    created: str
    updated: str
    revision: int


class RunRecord(TypedDict):
    """A run as the API returns it (listings, ``POST /tasks/{id}/run``, cancel)."""

    id: int
    task_id: int | None
    """None for an ad-hoc execution (``POST /execute``), which belongs to no stored task."""
    owner: str
    task_name: str
    status: RunStatus
    trigger: str
    started_by: str
    parameters: dict[str, Any]
    chain: list[int]
    idempotency_key: str | None
    holder: str | None
    created: str
    started: str | None
    finished: str | None
    error: str | None


class StepRecord(TypedDict):
    """One step of a run as ``GET /runs/{id}`` returns it."""

    id: int
    run_id: int
    kind: StepKind
    name: str
    type: str
    set_index: int | None
    set_values: dict[str, Any] | None
    attempt: int
    status: StepStatus
    started: str | None
    finished: str | None
    error: str | None
    results: list[dict[str, Any]]
    progress: NotRequired[dict[str, Any]]
    """Only while the step runs and its job has reported progress."""


class RunDetail(RunRecord):
    """A run with its steps (a page of them over REST), as ``GET /runs/{id}`` returns it."""

    steps: list[StepRecord]
    steps_total: int
    """How many steps the run has (``steps`` may hold a page of them)."""
    step_counts: dict[str, int]
    """The run's steps per status."""
    steps_limit: NotRequired[int]
    """REST only: the page of steps asked for, as in listings' ``limit`` and ``offset``."""
    steps_offset: NotRequired[int]
    steps_next: NotRequired[str]
    """REST only: the URL of the next page of steps, when there is one."""
