"""A run's followers (tasks started by its end, or by its next_task action) are never lost and
never started twice: the end of a run and its after_task followers are one write, and a
follower a dead server left waiting is started by one server after a restart.

The failing write is real: an SQLite trigger in the test's database refuses the follower's run
(as a full disk would stop the write midway).  Nothing here sleeps: a failed end write is tried
again when the test says so (``RunEngine.wait``).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.engine.engine import HOLDER
from jupyter_taskplanner.planner import Planner
from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import (
    ServerProcess,
    runs_of,
    saved_document,
    store_task,
    wait_idle,
    wait_until,
)

REFUSE = (
    "CREATE TRIGGER refuse_runs BEFORE INSERT ON runs WHEN NEW.task_id = {task_id} "
    "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)


def dead_holder() -> str:
    """The holder a server of this host that is gone left on its runs."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    return f"{socket.gethostname()}:{gone.pid}"


class Retries:
    """Stands in for ``RunEngine.wait``: records each wait and returns once released."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.go = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await self.go.wait()
        self.go.clear()


async def test_an_end_whose_follower_cannot_be_written_is_written_again_whole(api, planner):
    alice = api("alice")
    source = (await alice("POST", "/tasks", {"name": "source"})).body
    after = {"type": "after_task", "config": {"task_id": source["id"], "on": "always"}}
    follower = (await alice("POST", "/tasks", {"name": "follower", "triggers": [after]})).body
    retries = Retries()
    planner.engine.wait = retries
    await planner.db.call(planner.store.db.execute, REFUSE.format(task_id=follower["id"]))
    run = (await alice("POST", f"/tasks/{source['id']}/run")).body

    async def failed() -> bool:
        return bool(retries.delays)

    await wait_until(failed, within=10)
    # Nothing of the end was written: the run is still running, no follower exists.
    assert (await alice("GET", f"/runs/{run['id']}")).body["status"] == "running"
    assert await runs_of(alice, follower["id"]) == []

    await planner.db.call(planner.store.db.execute, "DROP TRIGGER refuse_runs")
    retries.go.set()
    await wait_idle(planner)
    assert (await alice("GET", f"/runs/{run['id']}")).body["status"] == "succeeded"
    (followed,) = await runs_of(alice, follower["id"])
    assert followed["status"] == "succeeded"
    assert followed["trigger"] == f"after_task:{source['id']}"
    assert followed["chain"] == [source["id"], follower["id"]]
    assert retries.delays == [1.0]


async def test_followers_a_dead_server_left_waiting_start_once_after_a_restart(
    db_path: Path, api, planner: Planner, start_planner
):
    source, after_end, by_action, plain = (
        store_task(db_path, {"name": name}) for name in ("source", "b", "c", "d")
    )
    dead = dead_holder()
    store = Store(db_path)
    try:

        def run(task: dict[str, Any], status: str, **fields: Any) -> int:
            return store.create_run(
                {
                    "task_id": task["id"],
                    "owner": "alice",
                    "task_name": task["name"],
                    "trigger": "manual",
                    "started_by": "alice",
                    "status": status,
                    "holder": dead,
                    **fields,
                }
            )["id"]

        # The source's end was written with its after_task follower, then the server died.
        ended = run(source, "succeeded", finished="2031-01-01T00:00:00+00:00")
        run(
            after_end,
            "queued",
            trigger=f"after_task:{source['id']}",
            idempotency_key=(f"follow:{ended}:end:1"),
        )
        # A run died after its next_task action had started the next task.
        running = run(source, "running", started="2031-01-01T00:00:00+00:00")
        run(
            by_action,
            "queued",
            trigger=f"chain:{source['id']}",
            idempotency_key=(f"follow:{running}:next:1"),
        )
        run(plain, "queued")
    finally:
        store.close()
    await start_planner()
    # A second server's recovery at the same time adopts nothing the first took.
    await planner.engine.recover()
    await wait_idle(planner)
    alice = api("alice")
    for task in (after_end, by_action):
        (followed,) = await runs_of(alice, task["id"])
        assert (followed["status"], followed["holder"]) == ("succeeded", HOLDER), followed
    (left,) = await runs_of(alice, plain["id"])
    assert left["status"] == "interrupted"
    statuses = {r["id"]: r["status"] for r in await runs_of(alice, source["id"])}
    assert statuses == {ended: "succeeded", running: "interrupted"}


def _queued_follower(store: Store, holder: str) -> int:
    (task,) = store.create_tasks([("alice", saved_document({"name": "t"}))])
    return store.create_run(
        {
            "task_id": task["id"],
            "owner": "alice",
            "task_name": "t",
            "trigger": "after_task:1",
            "started_by": "alice",
            "status": "queued",
            "holder": holder,
            "idempotency_key": "follow:1:end:1",
        }
    )["id"]


def test_of_two_servers_one_adopts_a_waiting_follower(tmp_path: Path) -> None:
    path = tmp_path / "tasks.db"
    dead = dead_holder()
    first, second = Store(path), Store(path)
    try:
        run_id = _queued_follower(first, dead)
        taken = [first.adopt_run(run_id, dead, "host:1"), second.adopt_run(run_id, dead, "host:2")]
        assert taken == [True, False]
        assert second.get_run(run_id, None)["holder"] == "host:1"
    finally:
        first.close()
        second.close()


def test_a_failed_end_write_writes_nothing_and_is_whole_when_written_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tasks.db"
    store = Store(path)
    try:
        source, target = store.create_tasks(
            [("alice", saved_document({"name": name})) for name in ("s", "t")]
        )
        base = {"owner": "alice", "started_by": "alice", "holder": "host:1"}
        run = store.create_run(
            {
                **base,
                "task_id": source["id"],
                "task_name": "s",
                "trigger": "manual",
                "status": "running",
            }
        )
        follower = {
            **base,
            "task_id": target["id"],
            "task_name": "t",
            "trigger": f"after_task:{source['id']}",
            "status": "queued",
            "chain": [source["id"], target["id"]],
            "idempotency_key": f"follow:{run['id']}:end:1",
        }
        store.db.execute(REFUSE.format(task_id=target["id"]))
        with pytest.raises(sqlite3.IntegrityError, match="disk is full"):
            store.end_run(run["id"], "succeeded", None, [(follower, None)])
    finally:
        store.close()
    store = Store(path)  # the server started again
    try:
        assert store.get_run(run["id"], None)["status"] == "running"
        assert store.list_runs(None, task_id=target["id"])[1] == 0
        store.db.execute("DROP TRIGGER refuse_runs")
        ended, (started,) = store.end_run(run["id"], "succeeded", None, [(follower, None)])
        assert (ended["status"], started["status"]) == ("succeeded", "queued")
        assert ended["finished"] is not None
        # Written again (a retry racing a first write that did commit), it is not doubled.
        _, (again,) = store.end_run(run["id"], "succeeded", None, [(follower, None)])
        assert again["id"] == started["id"]
        assert store.list_runs(None, task_id=target["id"])[1] == 1
    finally:
        store.close()


HOLD = """
import os, time

def hold():
    while os.path.exists("hold"):
        time.sleep(0.05)
    return "released"
"""


HELD_JOB = {"type": "python", "config": {"function": "tp_hold:hold"}}
"""A job that runs until the file ``hold`` in the root is deleted."""


@dataclass
class Held:
    """A root folder with ``tp_hold`` and its ``hold`` file, and servers on one database."""

    root: Path
    db: Path

    def server(self, name: str) -> ServerProcess:
        """A server on the database, logging to ``<name>.log`` beside the root."""
        return ServerProcess(self.root, self.db, self.root.parent / f"{name}.log")

    def release(self) -> None:
        """Let the held jobs end."""
        (self.root / "hold").unlink()

    def logged_no_traceback(self, *names: str) -> bool:
        return all(
            b"Traceback" not in (self.root.parent / f"{name}.log").read_bytes() for name in names
        )


@pytest.fixture
def held(tmp_path: Path) -> Held:
    root = tmp_path / "root"
    root.mkdir()
    (root / "tp_hold.py").write_text(HOLD)
    (root / "hold").write_text("")
    return Held(root, tmp_path / "planner" / "tasks.db")


def _until_running(server: ServerProcess, run: dict[str, Any]) -> None:
    _until(lambda: server.call("GET", f"/runs/{run['id']}")["status"] == "running")


def _until(check: Any, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def test_a_follower_waiting_when_the_server_stops_is_started_by_the_next_server(held: Held) -> None:
    job = HELD_JOB
    first = held.server("first")
    try:
        source = first.call("POST", "/tasks", {"name": "source"})
        after = {"type": "after_task", "config": {"task_id": source["id"], "on": "always"}}
        body = {"name": "f", "triggers": [after], "jobs": [job], "settings": {"overlap": "queue"}}
        follower = first.call("POST", "/tasks", body)
        # Follows the end of every run of the follower, the one the stop interrupts included.
        on_end = {"type": "after_task", "config": {"task_id": follower["id"], "on": "always"}}
        last = first.call("POST", "/tasks", {"name": "last", "triggers": [on_end]})
        busy = first.call("POST", f"/tasks/{follower['id']}/run")
        _until_running(first, busy)
        first.call("POST", f"/tasks/{source['id']}/run")

        def waiting() -> list[dict[str, Any]]:
            runs = first.call("GET", f"/tasks/{follower['id']}/runs")["runs"]
            return [run for run in runs if run["trigger"].startswith("after_task")]

        # The follower waits for the task's run before it (overlap: queue).
        [queued] = _until(waiting)
        assert queued["status"] == "queued"
    finally:
        first.stop()
    assert first.process.returncode == 0
    held.release()
    second = held.server("second")
    try:

        def ended() -> dict[str, Any] | None:
            run = second.call("GET", f"/runs/{queued['id']}")
            return run if run["status"] not in ("queued", "running") else None

        assert _until(ended)["status"] == "succeeded"
        assert second.call("GET", f"/runs/{busy['id']}")["status"] == "interrupted"

        def last_runs() -> list[dict[str, Any]] | None:
            runs = second.call("GET", f"/tasks/{last['id']}/runs")["runs"]
            done = [run for run in runs if run["status"] == "succeeded"]
            return runs if len(done) == 2 else None

        # One after the interrupted run (written with its end, started here), one after the
        # follower's run that this server started.
        assert len(_until(last_runs)) == 2
    finally:
        second.stop()
    assert held.logged_no_traceback("first", "second")


def test_a_run_a_killed_server_left_running_starts_its_followers_after_a_restart(
    held: Held,
) -> None:
    job = HELD_JOB
    first = held.server("first")
    try:
        source = first.call("POST", "/tasks", {"name": "source", "jobs": [job]})
        followers = {}
        for on in ("always", "failure", "success"):
            after = {"type": "after_task", "config": {"task_id": source["id"], "on": on}}
            followers[on] = first.call("POST", "/tasks", {"name": on, "triggers": [after]})
        run = first.call("POST", f"/tasks/{source['id']}/run")
        _until_running(first, run)
    finally:
        first.stop(signal.SIGKILL)
    held.release()
    second = held.server("second")
    try:
        assert second.call("GET", f"/runs/{run['id']}")["status"] == "interrupted"

        def ran(name: str) -> list[dict[str, Any]]:
            return second.call("GET", f"/tasks/{followers[name]['id']}/runs")["runs"]

        # An interrupted run ended as a failure does: "always" and "failure" follow it.
        for name in ("always", "failure"):
            [followed] = _until(lambda name=name: [r for r in ran(name) if r["finished"]])
            assert followed["status"] == "succeeded", followed
            assert followed["chain"] == [source["id"], followers[name]["id"]]
        assert ran("success") == []
    finally:
        second.stop()
    assert held.logged_no_traceback("second")
