"""Races of the run engine: retention while runs finish, deletion while runs wait, shutdown."""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import ServerProcess, wait_for_run, wait_until

FUNCS = textwrap.dedent(
    """
    import time

    def nap(seconds=0.2):
        time.sleep(float(seconds))
        return "rested"
    """
)


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"keep_runs": 1, "max_concurrent_runs": 8, "max_runs_per_owner": 8}


@pytest.fixture
def funcs(jp_root_dir: Path) -> Path:
    (jp_root_dir / "tp_race.py").write_text(FUNCS)
    return jp_root_dir


def nap(seconds: float = 0.2) -> dict[str, Any]:
    return {"type": "python", "config": {"function": "tp_race:nap", "kwargs": {"seconds": seconds}}}


async def test_retention_between_a_runs_end_and_its_read_back(api, funcs, planner):
    """Another run's retention may delete a run the moment it ended (keep_runs is reached).

    The engine read the run back in a second database call, which then failed: its
    after_task followers never started and the queue was not dispatched.  Here the
    retention is made to come at exactly that moment.
    """
    alice = api("alice")
    first = (await alice("POST", "/tasks", {"name": "a", "jobs": [nap(0)]})).body
    after = {"type": "after_task", "config": {"task_id": first["id"], "on": "always"}}
    follower = (await alice("POST", "/tasks", {"name": "b", "triggers": [after]})).body
    end_run = planner.store.end_run

    def end_then_prune(run_id: int, status: str, *args: Any) -> Any:
        ended_now = end_run(run_id, status, *args)
        if status == "succeeded" and run_id == ended[0]:
            # Queued on the database thread right behind this call, as another run's is.
            planner.db.submit(planner.store.prune_runs, first["id"], 0, None)
        return ended_now

    planner.store.end_run = end_then_prune
    ended = [(await alice("POST", f"/tasks/{first['id']}/run")).body["id"]]

    async def followed() -> bool:
        runs = (await alice("GET", f"/tasks/{follower['id']}/runs")).body["runs"]
        return bool(runs) and runs[0]["status"] == "succeeded"

    await wait_until(followed, within=20)


async def test_a_task_deleted_as_its_run_starts_frees_the_slot(api, funcs, planner):
    alice = api("alice")
    engine = planner.engine
    doomed = (await alice("POST", "/tasks", {"name": "doomed", "jobs": [nap(0)]})).body
    start = engine.queue.start

    def delete_then_start(run_id: int, owner: str) -> None:
        # The task goes between the queue's last look at it and the run's start.
        planner.store.delete_task(doomed["id"], None)
        start(run_id, owner)

    engine.queue.start = delete_then_start
    run = (await alice("POST", f"/tasks/{doomed['id']}/run")).body
    await wait_until(lambda: _idle(engine), within=20)
    engine.queue.start = start
    assert engine.queue.running_owners.get("alice", 0) == 0
    stored = await planner.db.call(planner.store.get_run, run["id"], None)
    assert stored["status"] == "cancelled" and "deleted" in stored["error"]


async def test_a_run_that_cannot_be_marked_running_fails_saying_why_and_frees_the_slot(
    api, funcs, planner
):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "unlucky", "jobs": [nap(0)]})).body
    refuse = (
        "CREATE TRIGGER refuse_start BEFORE UPDATE OF status ON runs "
        f"WHEN NEW.status = 'running' AND NEW.task_id = {task['id']} "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    await planner.db.call(planner.store.db.execute, refuse)
    run = (await alice("POST", f"/tasks/{task['id']}/run")).body
    ended = await wait_for_run(alice, run["id"])
    assert ended["status"] == "failed" and "database or disk is full" in ended["error"], ended
    assert ended["started"] is None
    assert planner.engine.queue.running_owners.get("alice", 0) == 0
    await planner.db.call(planner.store.db.execute, "DROP TRIGGER refuse_start")
    again = (await alice("POST", f"/tasks/{task['id']}/run")).body
    assert (await wait_for_run(alice, again["id"]))["status"] == "succeeded"


async def test_a_run_picked_from_the_queue_as_the_server_stops_is_interrupted_not_run(
    api, funcs, planner
):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "late", "jobs": [nap(0)]})).body
    queue = planner.engine.queue
    read = queue._run_and_task
    reading, release = threading.Event(), threading.Event()

    def slow_read(run_id: int) -> Any:
        reading.set()
        release.wait(10)
        return read(run_id)

    queue._run_and_task = slow_read
    loop = asyncio.get_running_loop()
    run = (await alice("POST", f"/tasks/{task['id']}/run")).body
    assert await loop.run_in_executor(None, reading.wait, 10)
    # The server stops while the queue reads the run it is about to start.
    stopping = asyncio.ensure_future(planner.engine.stop())
    await asyncio.sleep(0)
    release.set()
    await stopping
    assert queue.running == {}
    stored = await planner.db.call(planner.store.get_run, run["id"], None)
    assert stored["status"] == "interrupted" and stored["started"] is None, stored
    assert stored["error"] == "the server stopped before the run started"


async def _idle(engine: Any) -> bool:
    return not engine.busy


def test_stopping_with_runs_and_requests_in_flight_logs_no_errors(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "tp_race.py").write_text(FUNCS)
    log = tmp_path / "server.log"
    server = ServerProcess(root, tmp_path / "db" / "tasks.db", log)
    try:
        task = server.call(
            "POST",
            "/tasks",
            {"name": "q", "jobs": [nap(0.3)], "settings": {"overlap": "parallel"}},
        )
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    server.call("POST", f"/tasks/{task['id']}/run")
                except Exception:
                    time.sleep(0.01)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in threads:
            thread.start()
        time.sleep(2)
    finally:
        server.stop()
        stop.set()
        for thread in threads:
            thread.join()
    assert server.process.returncode == 0
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "cannot schedule new futures" not in text


async def test_no_new_runs_once_the_engine_stops(api, funcs, planner):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "t", "jobs": [nap(0)]})).body
    await planner.engine.stop()
    reply = await alice("POST", f"/tasks/{task['id']}/run")
    assert reply.status == 503 and "shutting down" in reply.body["message"], reply


def test_a_run_cancelled_as_it_starts_ends_cancelled(tmp_path: Path) -> None:
    # Each cancel, sent the moment the run is started, may land while the run is picked from
    # the queue or begins: it must still end cancelled (never stay queued) and give back its
    # owner's slot.
    root = tmp_path / "root"
    root.mkdir()
    (root / "tp_race.py").write_text(FUNCS)
    server = ServerProcess(
        root,
        tmp_path / "p" / "tasks.db",
        tmp_path / "server.log",
        "--TaskPlannerApp.max_runs_per_owner=2",
    )
    try:
        body = {"name": "slow", "jobs": [nap(5)], "settings": {"overlap": "parallel"}}
        task = server.call("POST", "/tasks", body)
        answers = []
        for _ in range(40):
            run = server.call("POST", f"/tasks/{task['id']}/run")
            answers.append((run["id"], server.call("POST", f"/runs/{run['id']}/cancel")["status"]))
        assert {status for _, status in answers} == {"cancelled"}, answers
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            final = {server.call("GET", f"/runs/{run_id}")["status"] for run_id, _ in answers}
            if final == {"cancelled"}:
                break
            time.sleep(0.2)
        assert final == {"cancelled"}, final
        quick = server.call("POST", "/tasks", {"name": "quick", "jobs": [nap(0.1)]})
        run = server.call("POST", f"/tasks/{quick['id']}/run")
        while server.call("GET", f"/runs/{run['id']}")["status"] in ("queued", "running"):
            assert time.monotonic() < deadline + 20, "the owner's slots were never given back"
            time.sleep(0.2)
        assert server.call("GET", f"/runs/{run['id']}")["status"] == "succeeded"
    finally:
        server.stop()
    assert b"Traceback" not in (tmp_path / "server.log").read_bytes()
