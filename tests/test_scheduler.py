"""Scheduler behaviour across restarts and processes: misfire, interrupted runs, leases."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import wait_until
from test_runs import FUNCS, create, job, runs_of

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.model import SaveContext, prepare
from jupyter_taskplanner.paths import OwnerFiles
from jupyter_taskplanner.permissions import ComponentRules
from jupyter_taskplanner.scheduler import trigger_key
from jupyter_taskplanner.store import Store, stamp
from jupyter_taskplanner.testing import ServerProcess


def _validated(body: dict[str, Any], registry: Registry, owner: str = "alice") -> dict[str, Any]:
    """A task document as saving makes it, for tasks stored without a server."""
    rules = ComponentRules(lambda owner, resource: True, False)
    context = SaveContext(registry, owner, rules, OwnerFiles(Path.cwd()), Path.cwd() / ".snapshots")
    return prepare(body, context)


def _stored_task(db_path: Path, body: dict[str, Any], owner: str = "alice") -> dict[str, Any]:
    store = Store(db_path)
    try:
        return store.create_task(owner, _validated(body, Registry.from_entry_points(), owner))
    finally:
        store.close()


@pytest.fixture(params=["skip", "once", "all"])
def missed_task(request, db_path: Path) -> tuple[str, dict[str, Any]]:
    """An hourly task whose last fire was 3 hours ago: two fires were missed."""
    now = datetime.now(UTC)
    start = (now - timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat()
    task = _stored_task(
        db_path,
        {
            "name": "hourly",
            "triggers": [
                {"type": "interval", "config": {"every": 1, "unit": "hours", "start": start}}
            ],
            "settings": {"misfire": request.param, "overlap": "skip"},
        },
    )
    _stopped_at(db_path, task, now - timedelta(hours=3))
    return request.param, task


def _stopped_at(db_path: Path, task: dict[str, Any], moment: datetime) -> None:
    """Leave the schedule a server stopped at ``moment`` would have left behind."""
    trigger = Registry.from_entry_points().instantiate("trigger", task["triggers"][0])
    nxt = trigger.next_fire(moment, ZoneInfo("UTC"))
    store = Store(db_path)
    key = trigger_key(0, task["triggers"][0])
    store.set_schedule(task["id"], task["revision"], {key: (None, stamp(nxt))})
    store.close()


async def test_misfire_policy_after_downtime(missed_task, api):
    policy, task = missed_task
    alice = api("alice")
    expected = {"skip": 0, "once": 1, "all": 3}[policy]
    if expected:
        await wait_until(lambda: _count_is(alice, task["id"], expected))
    await asyncio.sleep(1)
    runs = await runs_of(alice, task["id"])
    assert len(runs) == expected, runs
    assert all(run["trigger"] == "misfire" for run in runs)


async def _count_is(call, task_id: int, count: int) -> bool:
    return len(await runs_of(call, task_id)) >= count


@pytest.fixture(params=[(60, 0), (7200, 1)], ids=["grace-60s", "grace-2h"])
def grace_task(request, db_path: Path) -> tuple[int, dict[str, Any]]:
    """Hourly fires at -30 min, -1 h 30 min, ... were missed; the grace period decides."""
    grace, expected = request.param
    now = datetime.now(UTC)
    start = (now - timedelta(hours=5, minutes=30)).replace(tzinfo=None).isoformat()
    task = _stored_task(
        db_path,
        {
            "name": "graceful",
            "triggers": [
                {"type": "interval", "config": {"every": 1, "unit": "hours", "start": start}}
            ],
            "settings": {"misfire": "once", "misfire_grace": grace},
        },
    )
    _stopped_at(db_path, task, now - timedelta(hours=5))
    return expected, task


async def test_misfire_grace_drops_old_fires(grace_task, api):
    expected, task = grace_task
    alice = api("alice")
    if expected:
        await wait_until(lambda: _count_is(alice, task["id"], expected))
    await asyncio.sleep(1)
    assert len(await runs_of(alice, task["id"])) == expected


async def test_tasks_stored_while_no_server_ran_are_scheduled_in_batches(db_path, api):
    registry = Registry.from_entry_points()

    def document(name: str, trigger: dict[str, Any], timezone: str = "UTC") -> dict[str, Any]:
        body = {"name": name, "triggers": [trigger], "settings": {"overlap": "parallel"}}
        found = _validated(body, registry)
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
    await wait_until(lambda: _count_is(alice, due_soon["id"], 2))
    store = Store(db_path)
    try:
        assert store.tasks_to_schedule(10) == []
    finally:
        store.close()


# -- real server processes -------------------------------------------------------------------


@pytest.fixture
def server_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    (root / "tp_funcs.py").write_text(FUNCS)
    return root


def _wait(predicate, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


def test_run_of_a_killed_server_is_interrupted_after_restart(server_root, tmp_path):
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
        _wait(pidfile.exists)
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


def test_two_servers_on_one_database_never_fire_twice(server_root, tmp_path):
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


def test_two_servers_on_one_database_watch_files_once_and_take_over(server_root, tmp_path):
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


async def test_events_for_run_start_and_finish(api, run_events, jp_root_dir):
    (jp_root_dir / "tp_funcs.py").write_text(FUNCS)
    seen = run_events
    alice = api("alice")
    task = await create(alice, jobs=[job("hello")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_until(lambda: _finished_event(seen))
    assert [(event["action"], event["run_id"]) for event in seen] == [
        ("started", run_id),
        ("finished", run_id),
    ]
    assert seen[-1]["status"] == "succeeded"


async def _finished_event(seen: list[dict[str, Any]]) -> bool:
    return any(event["action"] == "finished" for event in seen)
