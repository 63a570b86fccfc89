"""Scheduler behaviour across restarts and processes: misfire, interrupted runs, leases.

In the test server the scheduler runs on a fake clock (``planner_clock``); the tests with
real server processes wait on the wall clock.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.scheduler import BATCH
from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import (
    FakeClock,
    ServerProcess,
    create_task,
    runs_of,
    saved_document,
    schedule_as_stopped,
    store_task,
    wait_until,
)


def _hourly(name: str, now: datetime, settings: dict[str, Any]) -> dict[str, Any]:
    """An hourly task that fires at half past each hour."""
    start = (now - timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat()
    trigger = {"type": "interval", "config": {"every": 1, "unit": "hours", "start": start}}
    return {"name": name, "triggers": [trigger], "settings": settings}


async def _runs_past_the_catch_up(
    call: Any, clock: FakeClock, task_id: int, next_fire: datetime
) -> list[dict[str, Any]]:
    """The task's runs once its next fire on time, ``next_fire``, has started a run.

    The scheduler takes fires in order, so the catch-up after a downtime is complete then.
    """
    await clock.advance((next_fire - clock.now).total_seconds())

    async def fired_on_time() -> bool:
        return any(run["trigger"] != "misfire" for run in await runs_of(call, task_id))

    await wait_until(fired_on_time)
    return await runs_of(call, task_id)


def _misfired(runs: list[dict[str, Any]]) -> list[datetime]:
    """When the catch-up runs among ``runs`` were due, oldest first."""
    return sorted(
        datetime.fromisoformat(run["parameters"]["trigger.due"])
        for run in runs
        if run["trigger"] == "misfire"
    )


@pytest.fixture(params=["skip", "once", "all"])
def missed_task(request, db_path: Path, planner_clock: FakeClock) -> tuple[str, dict[str, Any]]:
    """An hourly task whose server stopped 3 hours ago: three fires were missed."""
    now = planner_clock.now
    task = store_task(
        db_path, _hourly("hourly", now, {"misfire": request.param, "overlap": "skip"})
    )
    schedule_as_stopped(db_path, task, now - timedelta(hours=3))
    return request.param, task


async def test_misfire_policy_after_downtime(missed_task, api, planner_clock):
    policy, task = missed_task
    now = planner_clock.now
    missed = [now - timedelta(minutes=minutes) for minutes in (150, 90, 30)]
    expected = {"skip": [], "once": missed[-1:], "all": missed}[policy]
    runs = await _runs_past_the_catch_up(
        api("alice"), planner_clock, task["id"], now + timedelta(minutes=30)
    )
    assert _misfired(runs) == expected, runs
    assert len(runs) == len(expected) + 1, runs


@pytest.fixture(params=[(60, 0), (7200, 1)], ids=["grace-60s", "grace-2h"])
def grace_task(request, db_path: Path, planner_clock: FakeClock) -> tuple[int, dict[str, Any]]:
    """Hourly fires at -30 min, -1 h 30 min, ... were missed; the grace period decides."""
    grace, expected = request.param
    now = planner_clock.now
    task = store_task(
        db_path, _hourly("graceful", now, {"misfire": "once", "misfire_grace": grace})
    )
    schedule_as_stopped(db_path, task, now - timedelta(hours=5))
    return expected, task


async def test_misfire_grace_drops_old_fires(grace_task, api, planner_clock):
    expected, task = grace_task
    now = planner_clock.now
    runs = await _runs_past_the_catch_up(
        api("alice"), planner_clock, task["id"], now + timedelta(minutes=30)
    )
    assert _misfired(runs) == [now - timedelta(minutes=30)] * expected, runs
    assert len(runs) == expected + 1, runs


@pytest.fixture
def five_hours_down(request, db_path: Path, planner_clock: FakeClock) -> dict[str, Any]:
    """A 1 s interval task whose stored next fire is 5 hours old."""
    task = store_task(
        db_path,
        {
            "name": "every second",
            "triggers": [{"type": "interval", "config": {"every": 1, "unit": "seconds"}}],
            "settings": {"overlap": "skip", **request.param},
        },
    )
    schedule_as_stopped(db_path, task, planner_clock.now - timedelta(hours=5))
    return task


@pytest.mark.parametrize(
    ("five_hours_down", "expected"),
    [({"misfire": "all", "misfire_limit": 5}, 5), ({"misfire": "once", "misfire_grace": 600}, 1)],
    ids=["all-limit-5", "once-grace-600"],
    indirect=["five_hours_down"],
)
async def test_catch_up_after_five_hours_replays_the_latest_fires(
    five_hours_down, expected, api, planner_clock
):
    started = planner_clock.now
    runs = await _runs_past_the_catch_up(
        api("alice"), planner_clock, five_hours_down["id"], started + timedelta(seconds=1)
    )
    dues = _misfired(runs)
    assert len(dues) == expected, dues
    # The fires just before the server started, one second apart: not hours-old ones.
    assert all(started - timedelta(seconds=30) < due <= started for due in dues), dues
    steps = [later - earlier for earlier, later in itertools.pairwise(dues)]
    assert steps == [timedelta(seconds=1)] * (expected - 1)
    assert dues[-1] == started


async def test_tasks_stored_while_no_server_ran_are_scheduled_in_batches(
    db_path, api, planner, planner_clock
):
    registry = Registry.from_entry_points()

    def document(name: str, trigger: dict[str, Any], timezone: str = "UTC") -> dict[str, Any]:
        body = {"name": name, "triggers": [trigger], "settings": {"overlap": "parallel"}}
        found = saved_document(body, registry)
        return {**found, "settings": {**found["settings"], "timezone": timezone}}

    yearly = document("yearly", {"type": "cron", "config": {"expression": "0 3 1 1 *"}})
    # Stored by an older version or by hand: a timezone this machine does not know.
    broken = document("broken", {"type": "interval", "config": {"every": 1}}, "Mars/Olympus")
    every_second = document(
        "every second", {"type": "interval", "config": {"every": 1, "unit": "seconds"}}
    )
    store = Store(db_path)
    try:
        # More than one batch, the broken task in the middle, the one due soon at the end.
        store.create_tasks(
            [("alice", yearly)] * 1500 + [("alice", broken)] + [("alice", yearly)] * 1000
        )
        (due_soon,) = store.create_tasks([("alice", every_second)])
    finally:
        store.close()

    alice = api("alice")
    # Each step first waits until the scheduler planned every stored task.
    await planner_clock.advance(1)
    await planner_clock.advance(1)
    await wait_until(lambda: _count_is(alice, due_soon["id"], 2))
    store = Store(db_path)
    try:
        assert store.tasks_to_schedule(10) == []
    finally:
        store.close()
    # 2,500 tasks share one fire time: the scheduler holds the earliest batch of them only
    # (beside the next fires of the task due every second).
    assert len(planner.scheduler._heap) < 2 * BATCH


def test_upcoming_fires_end_at_one_row_among_fires_at_the_same_time(tmp_path):
    store = Store(tmp_path / "tasks.db")
    try:
        tasks = store.create_tasks([("alice", saved_document({"name": f"t{i}"})) for i in range(5)])
        ids = [task["id"] for task in tasks]
        same = "2031-01-01T03:00:00.000000+00:00"
        store.set_schedules([(task_id, 1, {"0:k": (None, same)}) for task_id in ids])
        store.set_schedule(ids[4], 1, {"0:k": (None, "2030-06-01T00:00:00.000000+00:00")})
        rows, horizon = store.upcoming_fires(2)
        assert [row[0] for row in rows] == [ids[4], ids[0]]
        assert horizon == (same, ids[0], "0:k")
        # Once those fired, the next batch starts right after the horizon.
        for task_id, key, due in rows:
            assert store.fire(task_id, key, due, due, "2032-01-01T00:00:00.000000+00:00", []) == []
        rows, horizon = store.upcoming_fires(2)
        assert [row[0] for row in rows] == ids[1:3] and horizon == (same, ids[2], "0:k")
        rows, horizon = store.upcoming_fires(10)
        assert [row[0] for row in rows] == [*ids[1:4], ids[0], ids[4]] and horizon is None
    finally:
        store.close()


async def _count_is(call, task_id: int, count: int) -> bool:
    return len(await runs_of(call, task_id)) >= count


# -- real server processes -------------------------------------------------------------------


def _wait(predicate, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_run_of_a_killed_server_is_interrupted_after_restart(server_root, tmp_path, job):
    db_path = tmp_path / "shared.db"
    pidfile = tmp_path / "job.pid"
    first = ServerProcess(server_root, db_path, tmp_path / "first.log", owner="alice")
    try:
        task = first.call(
            "POST",
            "/tasks",
            {"name": "long", "jobs": [job("sleep", seconds=120, pidfile=str(pidfile))]},
        )
        run = first.call("POST", f"/tasks/{task['id']}/run")
        _wait(lambda: first.call("GET", f"/runs/{run['id']}")["status"] == "running")
        _wait(lambda: pidfile.exists() and pidfile.read_text() != "")  # created, then written
    finally:
        first.stop(signal.SIGKILL)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    second = ServerProcess(server_root, db_path, tmp_path / "second.log", owner="alice")
    try:
        detail = second.call("GET", f"/runs/{run['id']}")
        assert detail["status"] == "interrupted"
        assert "stopped" in detail["error"]
    finally:
        second.stop()


def test_two_servers_on_one_database_never_fire_twice(server_root, tmp_path, job):
    db_path = tmp_path / "shared.db"
    servers = [
        ServerProcess(server_root, db_path, tmp_path / f"server{i}.log", owner="alice")
        for i in range(2)
    ]
    try:
        task = servers[0].call(
            "POST",
            "/tasks",
            {
                "name": "every second",
                "jobs": [job("hello")],
                "triggers": [{"type": "interval", "config": {"every": 1, "unit": "seconds"}}],
                "settings": {"overlap": "parallel"},
            },
        )
        _wait(lambda: servers[1].call("GET", f"/tasks/{task['id']}/runs")["total"] >= 6, within=60)
        servers[0].call("POST", f"/tasks/{task['id']}/disable")
    finally:
        for server in servers:
            server.stop()
    store = Store(db_path)
    runs, _ = store.list_runs(None, task_id=task["id"], limit=1000)
    store.close()
    dues = Counter(run["parameters"]["trigger.due"] for run in runs)
    assert len(dues) >= 6 and max(dues.values()) == 1, dues


def test_two_servers_on_one_database_watch_files_once_and_take_over(server_root, tmp_path, job):
    db_path = tmp_path / "shared.db"
    inbox = server_root / "inbox"
    inbox.mkdir()
    first = ServerProcess(server_root, db_path, tmp_path / "first.log", owner="alice")
    second = ServerProcess(server_root, db_path, tmp_path / "second.log", owner="alice")
    try:
        task = first.call(
            "POST",
            "/tasks",
            {
                "name": "on new files",
                "jobs": [job("hello")],
                "triggers": [{"type": "file", "config": {"path": "inbox", "debounce": 0.3}}],
                "settings": {"overlap": "queue"},
            },
        )

        def runs() -> list[dict[str, Any]]:
            return second.call("GET", f"/tasks/{task['id']}/runs")["runs"]

        time.sleep(1)  # both servers have seen the new task
        (inbox / "one.csv").write_text("1")
        _wait(lambda: len(runs()) >= 1)
        time.sleep(1.5)
        assert len(runs()) == 1, runs()
        # The watching server ends (promptly: its file watch does not keep it alive); the
        # other one takes over at once.
        first.stop()
        assert first.process.returncode == 0, first.process.returncode
        second.wait_for_log("this server now watches event triggers", within=30)
        (inbox / "two.csv").write_text("2")
        _wait(lambda: len(runs()) >= 2)
        time.sleep(1.5)
        assert [run["parameters"]["trigger.file"] for run in runs()] == [
            "inbox/two.csv",
            "inbox/one.csv",
        ]
        second.stop()
        assert second.process.returncode == 0, second.process.returncode
    finally:
        first.stop()
        second.stop()


async def test_events_for_run_start_and_finish(api, run_events, funcs, job):
    seen = run_events
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_until(lambda: _finished_event(seen))
    assert [(event["action"], event["run_id"], event.get("step_status")) for event in seen] == [
        ("started", run_id, None),
        ("step", run_id, "running"),
        ("step", run_id, "succeeded"),
        ("finished", run_id, None),
    ]
    assert seen[1]["step_id"] == seen[2]["step_id"] and seen[1]["step_kind"] == "job"
    assert seen[-1]["status"] == "succeeded"


async def _finished_event(seen: list[dict[str, Any]]) -> bool:
    return any(event["action"] == "finished" for event in seen)
