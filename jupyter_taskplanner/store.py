"""The task store: every SQL statement of the planner lives in this module.

SQLite through sqlite-utils, WAL mode, a ``schema_version`` table and forward migrations.
Every query that reads or writes a user's rows takes the owner scope (``None`` = every owner,
only ever passed for admins) so rows of other users are excluded in SQL, not afterwards.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from .errors import Conflict, StoreError, TaskNotFound

JSON_COLUMNS = ("triggers", "jobs", "actions", "series", "settings")


def utcnow() -> str:
    """The current time as stored: ISO 8601, UTC, microseconds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _migration_1(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            owner TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            enabled INTEGER NOT NULL DEFAULT 1,
            triggers TEXT NOT NULL DEFAULT '[]',
            jobs TEXT NOT NULL DEFAULT '[]',
            actions TEXT NOT NULL DEFAULT '[]',
            series TEXT,
            settings TEXT NOT NULL DEFAULT '{}',
            created TEXT NOT NULL,
            updated TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 1
        )
        """
    )
    db["tasks"].create_index(["owner", "name"], index_name="tasks_owner_name")
    db["tasks"].create_index(["enabled"], index_name="tasks_enabled")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1]
SCHEMA_VERSION = len(MIGRATIONS)


def _row_to_task(row: dict[str, Any]) -> dict[str, Any]:
    task = dict(row)
    for column in JSON_COLUMNS:
        task[column] = json.loads(task[column]) if task[column] is not None else None
    task["enabled"] = bool(task["enabled"])
    return task


def _task_columns(document: dict[str, Any]) -> dict[str, Any]:
    columns = {key: document[key] for key in ("name", "description", "enabled") if key in document}
    if "enabled" in columns:
        columns["enabled"] = int(columns["enabled"])
    for column in JSON_COLUMNS:
        if column in document:
            value = document[column]
            columns[column] = None if value is None else json.dumps(value)
    return columns


class Store:
    """Tasks in one SQLite file; safe for several processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(
                str(path), check_same_thread=False, isolation_level=None, timeout=30
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the task database {path}: {exc}") from exc
        self.db = sqlite_utils.Database(conn)
        self.db.execute("PRAGMA busy_timeout = 30000")
        self.db.execute("PRAGMA foreign_keys = ON")
        if str(path) != ":memory:":
            self.db.enable_wal()
        self._migrate()

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """A read-modify-write transaction holding the write lock from its start."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def schema_version(self) -> int:
        if "schema_version" not in self.db.table_names():
            return 0
        row = self.db.execute("SELECT version FROM schema_version").fetchone()
        return row[0] if row else 0

    def _migrate(self) -> None:
        with self._write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"the task database {self.path} has schema version {current}, newer than "
                    f"this jupyter-taskplanner knows ({SCHEMA_VERSION}); upgrade the package"
                )
            for migration in MIGRATIONS[current:]:
                migration(db)
            db.execute("DELETE FROM schema_version")
            db.execute("INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION])

    # -- tasks -------------------------------------------------------------------------------

    def list_tasks(
        self,
        owner: str | None,
        *,
        enabled: bool | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of tasks ordered by id, and the total count matching the filters."""
        where, params = ["1 = 1"], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if enabled is not None:
            where.append("enabled = ?")
            params.append(int(enabled))
        if search:
            where.append("name LIKE ? ESCAPE '\\'")
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        clause = " AND ".join(where)
        total = self.db.execute(f"SELECT count(*) FROM tasks WHERE {clause}", params).fetchone()[0]
        rows = self.db.query(
            f"SELECT * FROM tasks WHERE {clause} ORDER BY id LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row_to_task(row) for row in rows], total

    def get_task(self, task_id: int, owner: str | None) -> dict[str, Any]:
        """One task; ``TaskNotFound`` also when it belongs to someone outside ``owner``."""
        sql, params = "SELECT * FROM tasks WHERE id = ?", [task_id]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = list(self.db.query(sql, params))
        if not rows:
            raise TaskNotFound(f"no task with id {task_id}")
        return _row_to_task(rows[0])

    def create_task(self, owner: str, document: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        columns = {**_task_columns(document), "owner": owner, "created": now, "updated": now}
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO tasks ({names}) VALUES ({marks})", list(columns.values())
            )
            task_id = cursor.lastrowid
        return self.get_task(task_id, None)

    def update_task(
        self,
        task_id: int,
        owner: str | None,
        changes: dict[str, Any],
        expected_revision: int | None = None,
    ) -> dict[str, Any]:
        """Apply ``changes``; ``Conflict`` if the stored revision is not ``expected_revision``."""
        columns = _task_columns(changes)
        with self._write():
            current = self.get_task(task_id, owner)
            if expected_revision is not None and current["revision"] != expected_revision:
                raise Conflict(
                    f"task {task_id} was changed by someone else (revision "
                    f"{current['revision']}, you sent {expected_revision}); reload it and "
                    "apply your change again"
                )
            assignments = [f"{name} = ?" for name in columns]
            assignments += ["updated = ?", "revision = revision + 1"]
            self.db.execute(
                f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ?",
                [*columns.values(), utcnow(), task_id],
            )
        return self.get_task(task_id, None)

    def delete_task(self, task_id: int, owner: str | None) -> None:
        with self._write():
            self.get_task(task_id, owner)
            self.db.execute("DELETE FROM tasks WHERE id = ?", [task_id])
