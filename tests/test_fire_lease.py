"""A timed fire's lease and its runs are one write: a fire is never taken without its runs.

The failing write is real: an SQLite trigger in the test's database refuses the runs of one
task (as a full disk or a dying process would stop the write midway).  The scheduler runs
on a fake clock (``planner_clock``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.planner import Planner
from jupyter_taskplanner.scheduler import FIRE_RETRY
from jupyter_taskplanner.store import Store, stamp
from jupyter_taskplanner.testing import (
    FakeClock,
    runs_of,
    saved_document,
    schedule_as_stopped,
    store_task,
    wait_until,
)

REFUSE = (
    "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs WHEN NEW.task_id = {task_id} "
    "AND (SELECT count(*) FROM runs WHERE task_id = {task_id}) >= {after} "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
"""Refuse every run of a task after its first ``after`` ones."""


def refuse_runs(db_path: Path, task_id: int, after: int = 0) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(REFUSE.format(task_id=task_id, after=after))
    conn.close()


async def accept_runs(planner: Planner) -> None:
    """Drop the trigger, on the server's own connection (its database thread)."""
    await planner.db.call(planner.store.db.execute, "DROP TRIGGER refuse_runs")


class Failures(logging.Handler):
    """The errors the scheduler reports (a fire that failed)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def failures(planner: Planner) -> Iterator[Failures]:
    handler = Failures()
    planner.scheduler.log.addHandler(handler)
    yield handler
    planner.scheduler.log.removeHandler(handler)


async def schedule(planner: Planner, task_id: int) -> dict[str, Any]:
    (row,) = (await planner.db.call(planner.store.schedule_rows, task_id)).values()
    return row


async def retry(planner: Planner, clock: FakeClock) -> None:
    """Let the retry of a failed fire come due.  Not ``clock.advance``: that first waits
    until every due fire was taken, and the failed one is still due."""
    clock.now += timedelta(seconds=FIRE_RETRY)
    planner.scheduler.notify()


async def test_a_fire_whose_run_cannot_be_written_stays_due_and_is_taken_again(
    db_path, api, planner, planner_clock, failures
):
    # Fires at 30 s past each minute of the clock's start.
    start = (planner_clock.now - timedelta(seconds=30)).replace(tzinfo=None).isoformat()
    every_minute = {"every": 1, "unit": "minutes", "start": start}
    task = store_task(
        db_path,
        {"name": "every minute", "triggers": [{"type": "interval", "config": every_minute}]},
    )
    refuse_runs(db_path, task["id"])
    await planner_clock.advance(0)
    due = (await schedule(planner, task["id"]))["next_fire"]
    await planner_clock.advance(30)
    assert datetime.fromisoformat(due) == planner_clock.now
    alice = api("alice")

    async def failed() -> bool:
        return bool(failures.messages)

    await wait_until(failed)
    # The run could not be written, so neither was the lease: the schedule did not move on.
    row = await schedule(planner, task["id"])
    assert (row["next_fire"], row["last_fire"]) == (due, None)
    assert await runs_of(alice, task["id"]) == []

    await accept_runs(planner)
    await retry(planner, planner_clock)

    async def fired() -> bool:
        return bool(await runs_of(alice, task["id"]))

    await wait_until(fired)
    await planner_clock.advance(0)  # every due fire taken: the one that failed, once
    (run,) = await runs_of(alice, task["id"])
    assert run["trigger"] == "interval:interval"
    assert datetime.fromisoformat(run["parameters"]["trigger.due"]) == datetime.fromisoformat(due)
    row = await schedule(planner, task["id"])
    assert row["last_fire"] == due
    assert datetime.fromisoformat(row["next_fire"]) == datetime.fromisoformat(due) + timedelta(
        minutes=1
    )
    assert len(failures.messages) == 1 and "trying again" in failures.messages[0], failures.messages


async def test_a_catch_up_that_cannot_be_written_whole_writes_nothing_and_is_taken_again(
    db_path, api, planner, planner_clock, start_planner, failures
):
    task = store_task(
        db_path,
        {
            "name": "every second",
            "triggers": [{"type": "interval", "config": {"every": 1, "unit": "seconds"}}],
            "settings": {"misfire": "all", "misfire_limit": 5, "overlap": "skip"},
        },
    )
    schedule_as_stopped(db_path, task, planner_clock.now - timedelta(hours=5))
    # The third of the five catch-up runs of the first fire cannot be written.
    refuse_runs(db_path, task["id"], after=2)
    await start_planner()
    alice = api("alice")

    async def failed() -> bool:
        return bool(failures.messages)

    await wait_until(failed)
    assert await runs_of(alice, task["id"]) == []
    row = await schedule(planner, task["id"])
    assert row["last_fire"] is None
    assert datetime.fromisoformat(row["next_fire"]) < planner_clock.now - timedelta(hours=4)

    await accept_runs(planner)
    await retry(planner, planner_clock)

    async def caught_up() -> bool:
        return len(await runs_of(alice, task["id"])) >= 5

    await wait_until(caught_up)
    await planner_clock.advance(0)
    runs = await runs_of(alice, task["id"])
    dues = sorted(run["parameters"]["trigger.due"] for run in runs if run["trigger"] == "misfire")
    assert len(dues) == len(set(dues)) == 5, dues
    assert len(failures.messages) == 1, failures.messages


def _fields(task_id: int) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "owner": "alice",
        "task_name": "t",
        "trigger": "interval:interval",
        "started_by": "scheduler",
        "status": "queued",
        "holder": "elsewhere:1",
    }


def test_a_fire_left_due_by_a_failed_write_is_taken_once_after_a_restart(tmp_path):
    path = tmp_path / "tasks.db"
    due, nxt = (stamp(datetime(2031, 1, 1, hour)) for hour in (3, 4))
    store = Store(path)
    try:
        (task,) = store.create_tasks([("alice", saved_document({"name": "t"}))])
        store.set_schedule(task["id"], 1, {"0:k": (None, due)})
        store.db.execute(REFUSE.format(task_id=task["id"], after=0))
        with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
            store.fire(task["id"], "0:k", due, due, nxt, [_fields(task["id"])])
    finally:
        store.close()
    # Started again (the database opened anew), the planner finds the fire still due.
    store = Store(path)
    try:
        assert store.upcoming_fires(10) == ([(task["id"], "0:k", due)], None)
        store.db.execute("DROP TRIGGER refuse_runs")
        (run,) = store.fire(task["id"], "0:k", due, due, nxt, [_fields(task["id"])]) or []
        # A second process finding the same fire takes nothing and writes nothing.
        assert store.fire(task["id"], "0:k", due, due, nxt, [_fields(task["id"])]) is None
        runs, total = store.list_runs(None, task_id=task["id"])
        assert total == 1 and runs[0]["id"] == run["id"]
        assert store.upcoming_fires(10) == ([(task["id"], "0:k", nxt)], None)
    finally:
        store.close()


def test_overlap_skip_is_decided_in_the_fire_s_own_write(tmp_path):
    store = Store(tmp_path / "tasks.db")
    try:
        (task,) = store.create_tasks([("alice", saved_document({"name": "t"}))])
        first, second, third = (stamp(datetime(2031, 1, 1, hour)) for hour in (3, 4, 5))
        store.set_schedule(task["id"], 1, {"0:k": (None, first)})
        busy = "still running"
        (run,) = store.fire(task["id"], "0:k", first, first, second, [_fields(task["id"])], busy)
        (skipped,) = store.fire(
            task["id"], "0:k", second, second, third, [_fields(task["id"])], busy
        )
        assert (run["status"], skipped["status"], skipped["error"]) == ("queued", "skipped", busy)
        assert skipped["finished"] is not None
    finally:
        store.close()
