"""The task store: every SQL statement of the planner lives in this module.

SQLite through sqlite-utils, WAL mode, a ``schema_version`` table and forward migrations.
Every query that reads or writes a user's rows takes the owner scope (``None`` = every owner,
only ever passed for admins) so rows of other users are excluded in SQL, not afterwards.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict, TypeVar, cast

import sqlite_utils

from .errors import Conflict, InvalidConfig, StoreError, TaskNotFound, TooManyRequests, excerpt
from .vocabulary import ACTIVE, ComponentEntry, RunRecord, RunStatus, StepRecord, TaskRecord

_ACTIVE_SQL = ", ".join(f"'{status}'" for status in sorted(ACTIVE))
"""The active run statuses as an SQL list (constants of the vocabulary, not input)."""

T = TypeVar("T")

JSON_COLUMNS = ("triggers", "jobs", "actions", "series", "settings")


class StoredStep(StepRecord):
    """A step as the store reads it: the record plus the step's folder on the server."""

    folder: NotRequired[str | None]
    """Always read from the store; ``RunService.detail`` removes it from what it returns."""


class ScheduledTask(TypedDict):
    """The fields of a task the scheduler computes its schedule from (``tasks_to_schedule``)."""

    id: int
    revision: int
    triggers: list[ComponentEntry]
    settings: dict[str, Any]


Horizon = tuple[str, int, str]
"""A place in fire order: (next fire, task id, trigger key)."""


def utcnow() -> str:
    """The current time as stored: ISO 8601, UTC, microseconds."""
    return stamp(datetime.now(UTC))


def stamp(moment: datetime) -> str:
    """An aware datetime as stored: UTC ISO 8601 with microseconds, so text order is time order."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


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
    db.table("tasks").create_index(["owner", "name"], index_name="tasks_owner_name")
    db.table("tasks").create_index(["enabled"], index_name="tasks_enabled")


def _migration_2(db: sqlite_utils.Database) -> None:
    db.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id INTEGER NOT NULL,
            owner TEXT NOT NULL,
            task_name TEXT NOT NULL,
            status TEXT NOT NULL,
            trigger TEXT NOT NULL,
            started_by TEXT NOT NULL,
            parameters TEXT NOT NULL DEFAULT '{}',
            chain TEXT NOT NULL DEFAULT '[]',
            idempotency_key TEXT,
            holder TEXT,
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            error TEXT
        )
        """
    )
    db.table("runs").create_index(["task_id", "id"], index_name="runs_task")
    db.table("runs").create_index(["owner", "id"], index_name="runs_owner")
    db.table("runs").create_index(["status"], index_name="runs_status")
    db.table("runs").create_index(
        ["task_id", "idempotency_key"], index_name="runs_idempotency", unique=True
    )
    db.execute(
        """
        CREATE TABLE run_steps (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            type TEXT NOT NULL,
            set_index INTEGER,
            set_values TEXT,
            attempt INTEGER NOT NULL DEFAULT 1,
            status TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            error TEXT,
            results TEXT NOT NULL DEFAULT '[]',
            folder TEXT
        )
        """
    )
    db.table("run_steps").create_index(["run_id"], index_name="run_steps_run")
    db.execute(
        """
        CREATE TABLE trigger_state (
            task_id INTEGER NOT NULL,
            trigger_key TEXT NOT NULL,
            revision INTEGER NOT NULL,
            last_fire TEXT,
            next_fire TEXT,
            PRIMARY KEY (task_id, trigger_key)
        )
        """
    )
    db.table("trigger_state").create_index(["next_fire"], index_name="trigger_state_next_fire")
    db.execute("CREATE TABLE task_changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id INTEGER)")


RUN_COLUMNS = (
    "id, task_id, owner, task_name, status, trigger, started_by, parameters, chain, "
    "idempotency_key, holder, created, started, finished, error"
)


def _migration_3(db: sqlite_utils.Database) -> None:
    """Runs without a stored task (ad-hoc executions), and the state components keep.

    SQLite cannot drop a NOT NULL in place, so ``runs`` is rebuilt (foreign keys are off
    while migrating: dropping the old table must not cascade to its steps).
    """
    db.execute(
        """
        CREATE TABLE runs_new (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            task_id INTEGER,
            owner TEXT NOT NULL,
            task_name TEXT NOT NULL,
            status TEXT NOT NULL,
            trigger TEXT NOT NULL,
            started_by TEXT NOT NULL,
            parameters TEXT NOT NULL DEFAULT '{}',
            chain TEXT NOT NULL DEFAULT '[]',
            idempotency_key TEXT,
            holder TEXT,
            created TEXT NOT NULL,
            started TEXT,
            finished TEXT,
            error TEXT,
            document TEXT
        )
        """
    )
    db.execute(f"INSERT INTO runs_new ({RUN_COLUMNS}) SELECT {RUN_COLUMNS} FROM runs")
    db.execute("DROP TABLE runs")
    db.execute("ALTER TABLE runs_new RENAME TO runs")
    db.table("runs").create_index(["task_id", "id"], index_name="runs_task")
    db.table("runs").create_index(["owner", "id"], index_name="runs_owner")
    db.table("runs").create_index(["status"], index_name="runs_status")
    db.table("runs").create_index(
        ["task_id", "idempotency_key"], index_name="runs_idempotency", unique=True
    )
    db.execute(
        """
        CREATE TABLE component_state (
            task_id INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated TEXT NOT NULL,
            PRIMARY KEY (task_id, key)
        )
        """
    )


def _migration_4(db: sqlite_utils.Database) -> None:
    """An index matching the order of the task list, so a page far down the list costs
    what the first does (no sort of all the owner's tasks before skipping to the page)."""
    db.table("tasks").create_index(["owner", "id"], index_name="tasks_owner_id")


def _migration_5(db: sqlite_utils.Database) -> None:
    """Fires ordered by (time, task, trigger): the scheduler's batch ends at one row even when
    thousands of tasks share a fire time, so it never holds more than a batch in memory."""
    db.execute("DROP INDEX IF EXISTS trigger_state_next_fire")
    db.table("trigger_state").create_index(
        ["next_fire", "task_id", "trigger_key"], index_name="trigger_state_fire_order"
    )


def _migration_6(db: sqlite_utils.Database) -> None:
    """Indexes for the orders a listing may ask for (``sort``): per owner, ending in the id
    that breaks ties, so a page of a sorted list is read in index order where SQLite can."""
    for statement in (
        "CREATE INDEX tasks_owner_name_nocase ON tasks (owner, name COLLATE NOCASE, id)",
        "CREATE INDEX tasks_owner_enabled ON tasks (owner, enabled, id)",
        "CREATE INDEX runs_owner_status ON runs (owner, status, id)",
        "CREATE INDEX runs_owner_task_name ON runs (owner, task_name COLLATE NOCASE, id)",
        "CREATE INDEX runs_owner_started ON runs (owner, started, id)",
        "CREATE INDEX runs_owner_finished ON runs (owner, finished, id)",
    ):
        db.execute(statement)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
]
SCHEMA_VERSION = len(MIGRATIONS)


TASK_SORTS: dict[str, tuple[str, bool]] = {
    "id": ("id", False),
    "name": ("name COLLATE NOCASE", False),
    "owner": ("owner", False),
    "enabled": ("enabled", False),
    "next_fire": (
        "(SELECT min(s.next_fire) FROM trigger_state s WHERE s.task_id = tasks.id)",
        True,
    ),
    "last_run": ("(SELECT max(r.id) FROM runs r WHERE r.task_id = tasks.id)", True),
}
"""What ``GET /tasks?sort`` may name: key -> (SQL expression, whether it can be null)."""

RUN_SORTS: dict[str, tuple[str, bool]] = {
    "id": ("id", False),
    "task_name": ("task_name COLLATE NOCASE", False),
    "status": ("status", False),
    "started": ("started", True),
    "finished": ("finished", True),
}
"""What ``GET /runs?sort`` may name: key -> (SQL expression, whether it can be null)."""


def sort_keys(sorts: dict[str, tuple[str, bool]]) -> list[str]:
    """Every value ``sort`` may take for a listing: each key, ascending and descending."""
    return [f"{prefix}{key}" for key in sorts for prefix in ("", "-")]


def order_by(sorts: dict[str, tuple[str, bool]], sort: str) -> str:
    """The ORDER BY of ``sort`` (a key, or ``-key`` for descending): a total order, its ties
    broken by id in the same direction, rows without a value last either way.

    ``InvalidConfig`` at field ``sort`` naming the keys for any other value.
    """
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in sorts:
        raise InvalidConfig(
            f"sort: unknown {excerpt(sort)}; one of {', '.join(sort_keys(sorts))}", field="sort"
        )
    expression, nullable = sorts[key]
    direction = "DESC" if descending else "ASC"
    nulls = " NULLS LAST" if nullable else ""
    if key == "id":
        return f"id {direction}"
    return f"{expression} {direction}{nulls}, id {direction}"


def _row_to_task(row: dict[str, Any]) -> TaskRecord:
    task = dict(row)
    for column in JSON_COLUMNS:
        task[column] = json.loads(task[column]) if task[column] is not None else None
    task["enabled"] = bool(task["enabled"])
    # The columns of the tasks table are the fields of the record (its JSON ones decoded).
    return cast(TaskRecord, task)


def _task_columns(document: dict[str, Any]) -> dict[str, Any]:
    columns = {key: document[key] for key in ("name", "description", "enabled") if key in document}
    if "enabled" in columns:
        columns["enabled"] = int(columns["enabled"])
    for column in JSON_COLUMNS:
        if column in document:
            value = document[column]
            columns[column] = None if value is None else json.dumps(value)
    return columns


def check_database(path: Path) -> int:
    """The schema version of the SQLite file ``path``, checked whole and known to this version.

    ``StoreError`` for a file that is not a database, is damaged (``PRAGMA integrity_check``)
    or was written by a newer jupyter-taskplanner.  Opened read-only: nothing is changed.
    """
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from None
    try:
        (result,) = conn.execute("PRAGMA integrity_check").fetchone()
        if result != "ok":
            raise StoreError(f"{path} is damaged (integrity check: {result})")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "schema_version" not in tables:
            raise StoreError(f"{path} is not a task planner database")
        version = int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a task planner database: {exc}") from None
    finally:
        conn.close()
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this jupyter-taskplanner knows "
            f"({SCHEMA_VERSION}); upgrade the package"
        )
    return version


def copy_database(source: Path, target: Path) -> None:
    """Copy the database ``source`` into ``target`` with SQLite's online backup.

    Safe while servers use ``source``: the copy is a consistent snapshot.  ``target`` is
    replaced whole (its other connections must be closed).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as reading, closing(sqlite3.connect(target)) as writing:
        reading.backup(writing)


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
        self._savepoints = itertools.count()
        self._grouping = False
        self.on_change: Callable[[], None] = lambda: None
        """Called after a task is created, changed or deleted (wakes the scheduler)."""
        self.max_queued_runs = 0
        """The most runs one owner may have queued (``TaskPlannerApp.max_queued_runs``; 0:
        no limit): a start past it is refused (``create_run(refuse=True)``) or recorded as
        skipped, saying why."""
        try:
            self.db.execute("PRAGMA busy_timeout = 30000")
            if str(path) != ":memory:":
                self.db.enable_wal()
            # In WAL mode NORMAL syncs at checkpoints, not on every commit: the file is never
            # damaged, and only a power cut or a crash of the system (not of the server) can
            # undo the last commits.  A commit then costs microseconds, not a disk flush.
            self.db.execute("PRAGMA synchronous = NORMAL")
            # Off while migrating (a rebuilt table must not cascade), on for everything else.
            self.db.execute("PRAGMA foreign_keys = OFF")
            self._migrate()
            self.db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            # A damaged file is never written to: refused as it is, to be restored by hand.
            conn.close()
            raise StoreError(
                f"the task database {path} cannot be used ({exc}); restore a backup with "
                "`jupyter taskplanner restore BACKUP`"
            ) from None

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite_utils.Database]:
        """A read-modify-write transaction holding the write lock from its start.

        Inside ``write_group`` it is a savepoint of the group's transaction instead: what it
        wrote is undone alone when it fails, and kept by the group's commit.  Anywhere else
        a transaction still open is a mistake, which BEGIN refuses.
        """
        if self._grouping:
            with self._savepoint():
                yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextlib.contextmanager
    def _savepoint(self) -> Iterator[None]:
        name = f"write_{next(self._savepoints)}"
        self.db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.db.execute(f"ROLLBACK TO {name}")
            self.db.execute(f"RELEASE {name}")
            raise
        self.db.execute(f"RELEASE {name}")

    def write_group(self, calls: Sequence[Callable[[], T]]) -> list[T | Exception]:
        """Run ``calls`` in one write transaction, one commit for all (group commit).

        Each call runs in a savepoint of its own: one that raises is undone alone and its
        exception stands in its place in the answer, while the others' writes are kept.
        Nothing is committed, and every call fails, when the commit fails.
        """
        outcomes: list[T | Exception] = []
        with self._write():
            self._grouping = True
            try:
                for call in calls:
                    try:
                        with self._savepoint():
                            outcomes.append(call())
                    except Exception as exc:
                        outcomes.append(exc)
            finally:
                self._grouping = False
        return outcomes

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
        sort: str = "id",
    ) -> tuple[list[TaskRecord], int]:
        """A page of tasks in the order ``sort`` names (``TASK_SORTS``; by id unless it says),
        and the total count matching the filters."""
        where: list[str] = ["1 = 1"]
        params: list[str | int] = []
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
            f"SELECT * FROM tasks WHERE {clause} ORDER BY {order_by(TASK_SORTS, sort)} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row_to_task(row) for row in rows], total

    def get_task(self, task_id: int, owner: str | None) -> TaskRecord:
        """One task; ``TaskNotFound`` also when it belongs to someone outside ``owner``."""
        sql = "SELECT * FROM tasks WHERE id = ?"
        params: list[str | int] = [task_id]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = list(self.db.query(sql, params))
        if not rows:
            raise TaskNotFound(f"no task with id {task_id}")
        return _row_to_task(rows[0])

    def find_task(self, task_id: int) -> TaskRecord | None:
        """The task of any owner, or None when there is none with this id."""
        try:
            return self.get_task(task_id, None)
        except TaskNotFound:
            return None

    def create_task(self, owner: str, document: dict[str, Any]) -> TaskRecord:
        return self.create_tasks([(owner, document)])[0]

    def create_tasks(self, items: list[tuple[str, dict[str, Any]]]) -> list[TaskRecord]:
        """Insert (owner, document) pairs in one transaction: all or none."""
        return self.import_tasks(items, [])[0]

    def import_tasks(
        self,
        creates: list[tuple[str, dict[str, Any]]],
        updates: list[tuple[int, dict[str, Any], int | None]],
    ) -> tuple[list[TaskRecord], list[TaskRecord]]:
        """Insert (owner, document) pairs and apply (id, document, expected revision)
        updates in one transaction: all or none (``Conflict`` on a stale revision)."""
        now = utcnow()
        ids: list[int] = []
        with self._write() as db:
            for task_id, document, expected in updates:
                self._replace(task_id, document, expected)
            for owner, document in creates:
                columns = {
                    **_task_columns(document),
                    "owner": owner,
                    "created": now,
                    "updated": now,
                }
                names = ", ".join(columns)
                marks = ", ".join("?" for _ in columns)
                cursor = db.execute(
                    f"INSERT INTO tasks ({names}) VALUES ({marks})", list(columns.values())
                )
                ids.append(_inserted(cursor))
            db.execute(
                "INSERT INTO task_changes (task_id) SELECT value FROM json_each(?)",
                [json.dumps(ids)],
            )
        self.on_change()
        created = [self.get_task(task_id, None) for task_id in ids]
        return created, [self.get_task(task_id, None) for task_id, _, _ in updates]

    def update_task(
        self,
        task_id: int,
        owner: str | None,
        changes: dict[str, Any],
        expected_revision: int | None = None,
    ) -> TaskRecord:
        """Apply ``changes``; ``Conflict`` if the stored revision is not ``expected_revision``."""
        with self._write():
            self.get_task(task_id, owner)
            self._replace(task_id, changes, expected_revision)
        return self.get_task(task_id, None)

    def _replace(self, task_id: int, changes: dict[str, Any], expected: int | None) -> None:
        """Inside a write transaction: apply ``changes`` if the revision is ``expected``."""
        current = self.get_task(task_id, None)
        if expected is not None and current["revision"] != expected:
            raise Conflict(
                f"task {task_id} was changed by someone else (revision "
                f"{current['revision']}, you sent {expected}); reload it and apply your "
                "change again"
            )
        columns = _task_columns(changes)
        assignments = [f"{name} = ?" for name in columns]
        assignments += ["updated = ?", "revision = revision + 1"]
        self.db.execute(
            f"UPDATE tasks SET {', '.join(assignments)} WHERE id = ?",
            [*columns.values(), utcnow(), task_id],
        )
        self._changed(task_id)

    def delete_task(self, task_id: int, owner: str | None) -> None:
        with self._write():
            self.get_task(task_id, owner)
            self.db.execute("DELETE FROM tasks WHERE id = ?", [task_id])
            self._changed(task_id)

    def _changed(self, task_id: int) -> None:
        """Record a task change so schedulers of every process sharing the file reload it."""
        self.db.execute("INSERT INTO task_changes (task_id) VALUES (?)", [task_id])
        self.db.execute(
            "DELETE FROM task_changes WHERE seq < (SELECT max(seq) FROM task_changes) - 10000"
        )
        self.on_change()

    def changes_since(self, seq: int) -> tuple[list[int], int]:
        """Ids of tasks changed after change number ``seq``, and the newest change number."""
        rows = self.db.execute(
            "SELECT seq, task_id FROM task_changes WHERE seq > ? ORDER BY seq", [seq]
        ).fetchall()
        if not rows:
            return [], max(seq, self.last_change())
        return sorted({task_id for _, task_id in rows}), rows[-1][0]

    def last_change(self) -> int:
        row = self.db.execute("SELECT coalesce(max(seq), 0) FROM task_changes").fetchone()
        return int(row[0])

    # -- schedules: next fire times and the fire lease ------------------------------------

    def tasks_to_schedule(self, limit: int, after: int = 0) -> list[ScheduledTask]:
        """Enabled tasks with triggers whose schedule rows are missing or of an older revision,
        by id from ``after`` on (the last id of the previous batch: each batch starts where the
        last ended instead of passing over every task scheduled so far)."""
        rows = self.db.execute(
            "SELECT id, revision, triggers, settings FROM tasks t WHERE id > ? AND enabled = 1 "
            "AND triggers != '[]' AND NOT EXISTS (SELECT 1 FROM trigger_state s WHERE "
            "s.task_id = t.id AND s.revision = t.revision) ORDER BY id LIMIT ?",
            [after, limit],
        ).fetchall()
        # Tasks imported together mostly have the same triggers and settings: each distinct
        # text is decoded once, and the tasks sharing it share the (read-only) value.
        decoded: dict[str, Any] = {}

        def load(text: str) -> Any:
            if text not in decoded:
                decoded[text] = json.loads(text)
            return decoded[text]

        return [
            {
                "id": task_id,
                "revision": revision,
                "triggers": load(triggers),
                "settings": load(settings),
            }
            for task_id, revision, triggers, settings in rows
        ]

    def drop_unscheduled(self) -> None:
        """Forget schedule rows of tasks that were deleted or disabled."""
        with self._write() as db:
            db.execute(
                "DELETE FROM trigger_state WHERE task_id NOT IN "
                "(SELECT id FROM tasks WHERE enabled = 1)"
            )

    def schedule_rows(self, task_id: int) -> dict[str, dict[str, Any]]:
        return self.schedules_of([task_id]).get(task_id, {})

    def schedules_of(self, task_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
        """Schedule rows of several tasks: task id -> trigger key -> row."""
        found: dict[int, dict[str, dict[str, Any]]] = {}
        for start in range(0, len(task_ids), 500):  # SQLite caps the number of parameters
            chunk = task_ids[start : start + 500]
            rows = self.db.query(
                f"SELECT * FROM trigger_state WHERE task_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                found.setdefault(row["task_id"], {})[row["trigger_key"]] = row
        return found

    def set_schedule(
        self, task_id: int, revision: int, rows: dict[str, tuple[str | None, str | None]]
    ) -> None:
        """Replace a task's schedule rows: trigger key -> (last fire, next fire)."""
        self.set_schedules([(task_id, revision, rows)])

    def set_schedules(
        self, schedules: list[tuple[int, int, dict[str, tuple[str | None, str | None]]]]
    ) -> None:
        """Replace the schedule rows of several tasks in one transaction."""
        with self._write() as db:
            db.conn.executemany(
                "DELETE FROM trigger_state WHERE task_id = ?",
                [(task_id,) for task_id, _, _ in schedules],
            )
            db.conn.executemany(
                "INSERT INTO trigger_state (task_id, trigger_key, revision, last_fire, next_fire)"
                " VALUES (?, ?, ?, ?, ?)",
                [
                    (task_id, key, revision, last, nxt)
                    for task_id, revision, rows in schedules
                    for key, (last, nxt) in rows.items()
                ],
            )

    def clear_schedule(self, task_id: int) -> None:
        with self._write() as db:
            db.execute("DELETE FROM trigger_state WHERE task_id = ?", [task_id])

    def upcoming_fires(self, batch: int) -> tuple[list[tuple[int, str, str]], Horizon | None]:
        """The earliest ``batch`` (task id, key, next fire) rows in fire order, and the
        horizon they reach: the (next fire, task id, key) of the last, or None when these
        are all the rows with a next fire.

        The order is total, so a batch ends at one row even when many share a fire time.
        """
        rows = self.db.execute(
            "SELECT task_id, trigger_key, next_fire FROM trigger_state WHERE next_fire IS NOT "
            "NULL ORDER BY next_fire, task_id, trigger_key LIMIT ?",
            [batch + 1],
        ).fetchall()
        if len(rows) <= batch:
            return [tuple(row) for row in rows], None
        task_id, key, due = rows[batch - 1]
        return [tuple(row) for row in rows[:batch]], (due, task_id, key)

    def fire(
        self,
        task_id: int,
        key: str,
        due: str,
        last_fire: str,
        next_fire: str | None,
        runs: Sequence[dict[str, Any]],
        busy_skip: str | None = None,
    ) -> list[RunRecord] | None:
        """Take the lease on the fire at ``due``, move the schedule on and record the fire's
        ``runs`` (their fields, as ``create_run`` takes them), in one transaction.

        The lease is a compare-and-set: only the one caller that finds the row still due at
        ``due`` wins; a second process (or a stale heap entry after the task changed) gets
        None and nothing is written.  The winner gets the runs recorded (none for a missed
        fire the misfire policy skips).

        Either both the schedule moves on and the runs exist, or neither: a process that dies
        or a write that fails midway leaves the fire due, to be taken again.  ``busy_skip``:
        as for ``create_run``.
        """
        with self._write() as db:
            cursor = db.execute(
                "UPDATE trigger_state SET last_fire = ?, next_fire = ? "
                "WHERE task_id = ? AND trigger_key = ? AND next_fire = ?",
                [last_fire, next_fire, task_id, key, due],
            )
            if cursor.rowcount != 1:
                return None
            ids = [self._insert_run(db, fields, busy_skip) for fields in runs]
        return [self.get_run(run_id, None) for run_id in ids]

    def tasks_with_trigger_types(self, types: list[str]) -> list[TaskRecord]:
        """Enabled tasks having at least one trigger of the given types."""
        marks = ", ".join("?" for _ in types)
        rows = self.db.query(
            "SELECT * FROM tasks WHERE enabled = 1 AND EXISTS (SELECT 1 FROM json_each(triggers)"
            f" WHERE json_extract(value, '$.type') IN ({marks}))",
            types,
        )
        return [_row_to_task(row) for row in rows]

    # -- runs --------------------------------------------------------------------------------

    def create_run(
        self, fields: dict[str, Any], busy_skip: str | None = None, *, refuse: bool = False
    ) -> RunRecord:
        """Insert a run; with an idempotency key already used, return that run instead.

        ``busy_skip``: when the task has an active run, record this one as skipped for that
        reason (overlap ``skip``), checked in the same transaction as the insert.  A queued
        run past ``max_queued_runs`` is recorded as skipped, or with ``refuse`` (a caller
        waiting for the answer) not at all: ``TooManyRequests``.
        """
        with self._write() as db:
            run_id = self._insert_run(db, fields, busy_skip, refuse=refuse)
        return self.get_run(run_id, None)

    def _queue_is_full(self, db: sqlite_utils.Database, owner: str) -> bool:
        """Whether ``owner`` has ``max_queued_runs`` runs queued (an indexed count that stops
        there); never with no limit."""
        if not self.max_queued_runs:
            return False
        row = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM runs WHERE owner = ? AND status = ? LIMIT ?)",
            [owner, RunStatus.QUEUED, self.max_queued_runs],
        ).fetchone()
        return int(row[0]) >= self.max_queued_runs

    def _insert_run(
        self,
        db: sqlite_utils.Database,
        fields: dict[str, Any],
        busy_skip: str | None,
        *,
        refuse: bool = False,
    ) -> int:
        """In a write transaction: insert a run (see ``create_run``); its id."""
        columns = {
            **fields,
            "parameters": json.dumps(fields.get("parameters") or {}),
            "chain": json.dumps(fields.get("chain") or []),
            "created": utcnow(),
        }
        if fields.get("document") is not None:
            columns["document"] = json.dumps(fields["document"])
        if columns.get("idempotency_key"):
            existing = db.execute(
                "SELECT id FROM runs WHERE task_id = ? AND idempotency_key = ?",
                [columns["task_id"], columns["idempotency_key"]],
            ).fetchone()
            if existing:
                return int(existing[0])
        if busy_skip is not None and self._has_active_run(db, columns["task_id"]):
            columns.update(status=RunStatus.SKIPPED, finished=columns["created"], error=busy_skip)
        owner = columns["owner"]
        if columns["status"] == RunStatus.QUEUED and self._queue_is_full(db, owner):
            if refuse:
                raise queue_refused(self.max_queued_runs, owner)
            why = f"{queue_full(self.max_queued_runs, owner)}; this start was skipped"
            columns.update(status=RunStatus.SKIPPED, finished=columns["created"], error=why)
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        cursor = db.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", list(columns.values()))
        return _inserted(cursor)

    @staticmethod
    def _has_active_run(db: sqlite_utils.Database, task_id: int | None) -> bool:
        row = db.execute(
            f"SELECT 1 FROM runs WHERE task_id = ? AND status IN ({_ACTIVE_SQL}) LIMIT 1",
            [task_id],
        ).fetchone()
        return row is not None

    def update_run(self, run_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as db:
            db.execute(f"UPDATE runs SET {assignments} WHERE id = ?", [*fields.values(), run_id])

    def end_run(
        self,
        run_id: int,
        status: str,
        error: str | None,
        followers: Sequence[tuple[dict[str, Any], str | None]] = (),
    ) -> tuple[RunRecord, list[RunRecord]]:
        """Record how a run ended and the runs its end starts (``followers``: the fields and
        ``busy_skip`` of each, as ``create_run`` takes them), in one transaction; the run
        and the followers, read back in it.

        Either the end and every follower are written, or nothing is: a write that fails
        leaves the run active, so its end is recorded again (or, its server gone, the run
        is interrupted) and no follower is lost or started twice.
        """
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, finished = ?, error = ? WHERE id = ?",
                [status, utcnow(), error, run_id],
            )
            ids = [self._insert_run(db, fields, busy) for fields, busy in followers]
            run = self.get_run(run_id, None)
            return run, [self.get_run(follower, None) for follower in ids]

    def end_waiting(
        self, run_ids: Sequence[int], error: str, keep_key_prefix: str | None = None
    ) -> int:
        """Mark the queued runs among ``run_ids`` interrupted, saying ``error``, in one
        transaction, but leave queued those whose ``idempotency_key`` begins with
        ``keep_key_prefix``; how many were left queued."""
        keep, kept = "", []
        if keep_key_prefix is not None:
            keep = " AND coalesce(idempotency_key, '') NOT LIKE ?"
            kept = [f"{keep_key_prefix}%"]
        left = 0
        with self._write() as db:
            for start in range(0, len(run_ids), 500):
                chunk = list(run_ids[start : start + 500])
                among = f"id IN ({', '.join('?' for _ in chunk)}) AND status = ?"
                db.execute(
                    f"UPDATE runs SET status = ?, finished = ?, error = ? WHERE {among}{keep}",
                    [RunStatus.INTERRUPTED, utcnow(), error, *chunk, RunStatus.QUEUED, *kept],
                )
                row = db.execute(
                    f"SELECT COUNT(*) FROM runs WHERE {among}", [*chunk, RunStatus.QUEUED]
                ).fetchone()
                left += int(row[0])
        return left

    def adopt_run(self, run_id: int, holder: str | None, new_holder: str) -> bool:
        """Take over a queued run that ``holder`` (a process gone) never started: a
        compare-and-set, so of several servers finding it one gets it."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE runs SET holder = ? WHERE id = ? AND holder IS ? AND status = ? "
                "AND started IS NULL",
                [new_holder, run_id, holder, RunStatus.QUEUED],
            )
        return cursor.rowcount == 1

    def get_run(self, run_id: int, owner: str | None) -> RunRecord:
        sql = "SELECT * FROM runs WHERE id = ?"
        params: list[str | int] = [run_id]
        if owner is not None:
            sql += " AND owner = ?"
            params.append(owner)
        rows = list(self.db.query(sql, params))
        if not rows:
            raise TaskNotFound(f"no run with id {run_id}")
        return _row_to_run(rows[0])

    def list_runs(
        self,
        owner: str | None,
        *,
        task_id: int | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        sort: str = "-id",
    ) -> tuple[list[RunRecord], int]:
        """A page of runs in the order ``sort`` names (``RUN_SORTS``; newest first unless it
        says), and the total matching."""
        where: list[str] = ["1 = 1"]
        params: list[str | int] = []
        for column, value in (("owner", owner), ("task_id", task_id), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = " AND ".join(where)
        total = self.db.execute(f"SELECT count(*) FROM runs WHERE {clause}", params).fetchone()[0]
        rows = self.db.query(
            f"SELECT * FROM runs WHERE {clause} ORDER BY {order_by(RUN_SORTS, sort)} "
            "LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        return [_row_to_run(row) for row in rows], total

    def last_runs(self, task_ids: Sequence[int]) -> dict[int, RunRecord]:
        """The newest run of each of these tasks (a task without runs is left out)."""
        if not task_ids:
            return {}
        marks = ", ".join("?" for _ in task_ids)
        rows = self.db.query(
            f"SELECT * FROM runs WHERE id IN (SELECT max(id) FROM runs WHERE task_id IN ({marks})"
            " GROUP BY task_id)",
            list(task_ids),
        )
        return {run["task_id"]: run for run in map(_row_to_run, rows) if run["task_id"]}

    def active_runs(self, task_id: int) -> list[RunRecord]:
        rows = self.db.query(
            f"SELECT * FROM runs WHERE task_id = ? AND status IN ({_ACTIVE_SQL})", [task_id]
        )
        return [_row_to_run(row) for row in rows]

    def runs_with_status(self, statuses: tuple[str, ...]) -> list[RunRecord]:
        marks = ", ".join("?" for _ in statuses)
        rows = self.db.query(f"SELECT * FROM runs WHERE status IN ({marks})", list(statuses))
        return [_row_to_run(row) for row in rows]

    def add_step(self, fields: dict[str, Any]) -> int:
        columns = {**fields}
        if "set_values" in columns:
            columns["set_values"] = json.dumps(columns["set_values"])
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        with self._write() as db:
            cursor = db.execute(
                f"INSERT INTO run_steps ({names}) VALUES ({marks})", list(columns.values())
            )
        return _inserted(cursor)

    def update_step(self, step_id: int, **fields: Any) -> None:
        if "results" in fields:
            fields["results"] = json.dumps(fields["results"])
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self._write() as db:
            db.execute(
                f"UPDATE run_steps SET {assignments} WHERE id = ?", [*fields.values(), step_id]
            )

    def steps(self, run_id: int, *, limit: int = -1, offset: int = 0) -> list[StoredStep]:
        """The run's steps in the order they started; a page of them with ``limit`` (-1: all)."""
        # run_steps_run (run_id, and the rowid every index ends in) serves the order and offset.
        rows = self.db.query(
            "SELECT * FROM run_steps WHERE run_id = ? ORDER BY id LIMIT ? OFFSET ?",
            [run_id, limit, offset],
        )
        steps = []
        for row in rows:
            row["results"] = json.loads(row["results"])
            row["set_values"] = json.loads(row["set_values"]) if row["set_values"] else None
            # The columns of run_steps are the fields of the record (its JSON ones decoded).
            steps.append(cast(StoredStep, row))
        return steps

    def step_counts(self, run_id: int) -> dict[str, int]:
        """How many steps of the run have each status (statuses with none left out)."""
        rows = self.db.execute(
            "SELECT status, count(*) FROM run_steps WHERE run_id = ? GROUP BY status", [run_id]
        ).fetchall()
        return dict(rows)

    def run_document(self, run_id: int) -> dict[str, Any] | None:
        """The task document an ad-hoc run executes (None for a run of a stored task)."""
        row = self.db.execute("SELECT document FROM runs WHERE id = ?", [run_id]).fetchone()
        return json.loads(row[0]) if row and row[0] else None

    def prune_runs(
        self, task_id: int | None, keep: int, before: str | None, owner: str = ""
    ) -> list[int]:
        """Delete finished runs of a task beyond the newest ``keep`` or older than ``before``.

        ``task_id`` None: the owner's ad-hoc runs, kept under the same rule.
        """
        scope = "task_id = ?" if task_id is not None else "task_id IS NULL AND owner = ?"
        values: list[int | str] = [task_id if task_id is not None else owner]
        with self._write() as db:
            finished = f"status NOT IN ({_ACTIVE_SQL})"
            rows = db.execute(
                f"SELECT id FROM runs WHERE {scope} AND {finished} AND (id NOT IN "
                f"(SELECT id FROM runs WHERE {scope} ORDER BY id DESC LIMIT ?)"
                " OR (? IS NOT NULL AND created < ?))",
                [*values, *values, keep, before, before],
            ).fetchall()
            ids = [row[0] for row in rows]
            for run_id in ids:
                db.execute("DELETE FROM run_steps WHERE run_id = ?", [run_id])
                db.execute("DELETE FROM runs WHERE id = ?", [run_id])
        return ids

    # -- component state -------------------------------------------------------------------

    def states(self, task_id: int) -> dict[str, Any]:
        """The state each component of a task kept from its last successful run, by key."""
        rows = self.db.execute(
            "SELECT key, value FROM component_state WHERE task_id = ?", [task_id]
        ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def save_states(self, task_id: int, states: dict[str, Any]) -> None:
        """Store components' state (a task deleted meanwhile keeps nothing)."""
        now = utcnow()
        with self._write() as db:
            if db.execute("SELECT 1 FROM tasks WHERE id = ?", [task_id]).fetchone() is None:
                return
            for key, value in states.items():
                db.execute(
                    "INSERT INTO component_state (task_id, key, value, updated) "
                    "VALUES (?, ?, ?, ?) ON CONFLICT (task_id, key) DO UPDATE SET "
                    "value = excluded.value, updated = excluded.updated",
                    [task_id, key, json.dumps(value), now],
                )


def queue_full(cap: int, owner: str) -> str:
    """Why a run of ``owner`` does not join the queue: ``cap`` runs already wait."""
    return f"{owner} already has {cap} runs queued, the most TaskPlannerApp.max_queued_runs allows"


def queue_refused(cap: int, owner: str) -> TooManyRequests:
    """The answer to a caller whose run would be one too many in ``owner``'s queue."""
    return TooManyRequests(
        f"{queue_full(cap, owner)}; this run was not started: wait until some have "
        "started, or cancel some",
        retry_after=10,
    )


def _row_to_run(row: dict[str, Any]) -> RunRecord:
    run = dict(row)
    # The document of an ad-hoc run may hold secrets: it is read on its own (run_document).
    run.pop("document", None)
    run["parameters"] = json.loads(run["parameters"])
    run["chain"] = json.loads(run["chain"])
    # The columns of the runs table are the fields of the record (its JSON ones decoded).
    return cast(RunRecord, run)


def _inserted(cursor: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added (``lastrowid`` is None only for other statements)."""
    row_id = cursor.lastrowid
    assert row_id is not None
    return row_id
