"""Group commit: task creations waiting for the database thread share one transaction, each
undone alone when it fails, each answered only once that transaction committed."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.database import Database
from jupyter_taskplanner.errors import Conflict
from jupyter_taskplanner.store import Store

DOCUMENT: dict[str, Any] = {
    "name": "t",
    "description": "",
    "enabled": True,
    "triggers": [],
    "jobs": [],
    "actions": [],
    "series": None,
    "settings": {},
}


@contextmanager
def statements(store: Store) -> Iterator[list[str]]:
    """The SQL statements the store's connection runs meanwhile."""
    seen: list[str] = []
    store.db.conn.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        store.db.conn.set_trace_callback(None)


async def held(db: Database, waiting: int, writes: Any) -> list[Any]:
    """Run ``writes`` (awaitables of ``db.write``) while the database thread is busy, so all
    of them wait for it at once; their answers (or exceptions)."""
    gate = threading.Event()
    db.submit(gate.wait)
    started = asyncio.gather(*writes, return_exceptions=True)
    for _ in range(500):
        if len(db._group) >= waiting:
            break
        await asyncio.sleep(0.01)
    gate.set()
    return list(await started)


def inserts_per_commit(seen: list[str]) -> list[int]:
    """How many tasks each committed transaction inserted (those inserting any)."""
    counts, inserted = [], 0
    for sql in seen:
        if sql.startswith("INSERT INTO tasks "):
            inserted += 1
        elif sql == "COMMIT" and inserted:
            counts, inserted = [*counts, inserted], 0
    return counts


def names_on_disk(path: Path) -> list[str]:
    """Task names as another connection reads them from the file (what is committed)."""
    with closing(sqlite3.connect(path)) as other:
        return [row[0] for row in other.execute("SELECT name FROM tasks ORDER BY id")]


async def test_writes_waiting_together_commit_once_and_a_failing_one_is_undone_alone(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path / "tasks.db")
    db = Database(store)

    def create_then_fail() -> None:
        store.create_task("alice", {**DOCUMENT, "name": "undone"})
        raise Conflict("this one fails after it wrote")

    try:
        writes = [
            db.write(store.create_task, "alice", {**DOCUMENT, "name": f"t{i}"}) for i in (0, 1)
        ]
        writes.append(db.write(create_then_fail))
        writes.append(db.write(store.create_task, "alice", {**DOCUMENT, "name": "t3"}))
        with statements(store) as seen:
            answers = await held(db, 4, writes)
        # One commit; the failed call's insert was undone by its savepoint.
        assert inserts_per_commit(seen) == [4]
        assert [answer["name"] for answer in answers if isinstance(answer, dict)] == [
            "t0",
            "t1",
            "t3",
        ]
        assert isinstance(answers[2], Conflict)
        # Committed when answered: another connection reads them, and not the failed one.
        assert names_on_disk(tmp_path / "tasks.db") == ["t0", "t1", "t3"]
        # A write alone still commits by itself.
        with statements(store) as seen:
            alone = await db.write(store.create_task, "alice", {**DOCUMENT, "name": "t4"})
        assert alone["name"] == "t4" and inserts_per_commit(seen) == [1]
        assert names_on_disk(tmp_path / "tasks.db")[-1] == "t4"
    finally:
        db.close()


async def test_a_write_after_close_is_refused(tmp_path: Path) -> None:
    db = Database(Store(tmp_path / "tasks.db"))
    db.close()
    with pytest.raises(Exception, match="shutting down"):
        await db.write(db.store.create_task, "alice", DOCUMENT)


async def test_creations_sent_at_once_commit_together_and_a_bad_one_is_refused_alone(
    planner: Any, api: Any
) -> None:
    alice = api("alice")
    await alice("GET", "/tasks")  # the planner is started
    bodies: list[Any] = [{"name": f"c{i}"} for i in range(5)]
    bodies.insert(2, {"name": "bad", "triggers": [{"type": "no such trigger"}]})
    with statements(planner.db.store) as seen:
        replies = await held(planner.db, len(bodies), [alice("POST", "/tasks", b) for b in bodies])
    assert [reply.status for reply in replies] == [201, 201, 400, 201, 201, 201]
    assert inserts_per_commit(seen) == [5]
    listed = (await alice("GET", "/tasks")).body
    assert [task["name"] for task in listed["tasks"]] == [f"c{i}" for i in range(5)]
    for reply in replies:
        if reply.status == 201:
            task = reply.body
            assert (await alice("GET", f"/tasks/{task['id']}")).body["name"] == task["name"]


def test_outside_a_group_a_write_never_nests_in_a_transaction_left_open(tmp_path: Path) -> None:
    # Nested silently, it would never be committed: BEGIN refuses it instead.
    store = Store(tmp_path / "tasks.db")
    try:
        store.db.execute("BEGIN")
        with pytest.raises(sqlite3.OperationalError, match="within a transaction"):
            store.create_task("alice", DOCUMENT)
        store.db.execute("ROLLBACK")
        assert store.create_task("alice", DOCUMENT)["name"] == "t"
    finally:
        store.close()
