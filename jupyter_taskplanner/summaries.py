"""What a task list shows per row besides the task: its next start and its latest run.

``GET /tasks?include=next,last_run`` answers both for a whole page in one call (one query
for the latest runs, the next fires computed here), so a list of 50 tasks is not 100
requests more.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from .components.base import TimedTrigger
from .components.registry import Registry
from .errors import InvalidConfig
from .timezones import local_timezone
from .vocabulary import RunRecord, TaskRecord

INCLUDES = ("next", "last_run")
"""What ``include`` may name."""


def parse_include(raw: str | None) -> set[str]:
    """The summary fields ``include`` asks for (``next,last_run``); 400 for anything else."""
    if raw is None:
        return set()
    names = raw.split(",")
    unknown = sorted(set(names) - set(INCLUDES))
    if unknown:
        raise InvalidConfig(
            f"include: unknown {', '.join(map(repr, unknown))}; name any of "
            f"{', '.join(INCLUDES)}, separated by commas",
            field="include",
        )
    return set(names)


def next_start(registry: Registry, task: TaskRecord, now: datetime, server: ZoneInfo) -> str | None:
    """The earliest coming fire of the task's timed triggers, in server time (as the first
    entry of ``GET /tasks/{id}/next`` gives it), or None."""
    zone = ZoneInfo(task["settings"]["timezone"])
    earliest: datetime | None = None
    for entry in task["triggers"]:
        try:
            if not issubclass(registry.get("trigger", entry["type"]), TimedTrigger):
                continue
            trigger = registry.instantiate("trigger", entry)
        except InvalidConfig:
            continue  # a type whose plugin is gone: it fires nothing here
        assert isinstance(trigger, TimedTrigger)
        # OverflowError: the last instants of year 9999.  InvalidConfig: a trigger that
        # cannot say now (a calendar file gone since): one task's problem, not the page's.
        with contextlib.suppress(OverflowError, InvalidConfig):
            for when in trigger.fire_times(now, zone, 1):
                if earliest is None or when < earliest:
                    earliest = when
    return None if earliest is None else earliest.astimezone(server).isoformat()


def summaries(
    registry: Registry,
    tasks: Sequence[TaskRecord],
    include: set[str],
    last_runs: dict[int, RunRecord],
) -> dict[str, dict[str, Any]]:
    """``{task id (as text): {"next_start": ..., "last_run": ...}}`` for each task, with the
    fields ``include`` names."""
    now, server = datetime.now(UTC), ZoneInfo(local_timezone())
    found: dict[str, dict[str, Any]] = {}
    for task in tasks:
        summary: dict[str, Any] = {}
        if "next" in include:
            summary["next_start"] = next_start(registry, task, now, server)
        if "last_run" in include:
            summary["last_run"] = last_runs.get(task["id"])
        found[str(task["id"])] = summary
    return found
