"""What the reliability checks share: figures, server processes, reading the database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import textwrap
import time
import urllib.error
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_taskplanner.testing import ServerProcess

OWNER = "alice"
SERVER_OPTIONS = (
    # Every run is kept, so every fire can be counted afterwards.
    "--TaskPlannerApp.keep_runs=1000000",
    "--LocalExecutor.stop_when_orphaned=True",
    "--LocalExecutor.kill_grace=1",
)
FUNCS = textwrap.dedent(
    """
    import os, pathlib, time

    def hello(name="world"):
        print(f"hello {name}")
        return f"hello {name}"

    def nap(seconds=1.0, pidfile=None, counter=None):
        # With a counter, only the first attempt naps (a retry after a killed worker is quick).
        if counter:
            path = pathlib.Path(counter)
            count = int(path.read_text()) if path.exists() else 0
            path.write_text(str(count + 1))
            if count:
                return "woke up"
        if pidfile:
            pathlib.Path(pidfile).write_text(str(os.getpid()))
        time.sleep(float(seconds))
        return "napped"
    """
)
"""The module ``stress_funcs`` the python jobs of these checks call."""


@dataclass
class Figures:
    """What one check tried and what went wrong."""

    check: str
    cases: int = 0
    """What was tried, counted in ``unit``."""
    unit: str = "cases"
    failures: list[str] = field(default_factory=list)
    """One line per failure found."""
    seconds: float = 0.0
    notes: dict[str, Any] = field(default_factory=dict)
    """Other figures (latencies, splits), for the report."""

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.failures.append(message)

    @property
    def summary(self) -> str:
        """The figures and the first failures, for an assertion message."""
        shown = "\n".join(self.failures[:20])
        return f"{self.check}: {self.cases} {self.unit}, {len(self.failures)} failures\n{shown}"


def python_job(function: str, **kwargs: Any) -> dict[str, Any]:
    """A python job entry calling ``stress_funcs.<function>``."""
    return {
        "type": "python",
        "name": function,
        "config": {"function": f"stress_funcs:{function}", "kwargs": kwargs},
    }


def interval(seconds: int, start: str = "2026-01-01T00:00:00") -> dict[str, Any]:
    """A trigger firing every ``seconds`` on a grid from ``start`` (UTC)."""
    return {"type": "interval", "config": {"every": seconds, "unit": "seconds", "start": start}}


class Workspace:
    """A folder with a server root (holding ``stress_funcs.py``), a database and logs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.root = folder / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "stress_funcs.py").write_text(FUNCS)
        self.db = folder / "planner" / "tasks.db"
        self.logs = folder / "logs"
        self.logs.mkdir(exist_ok=True)
        self._started = 0

    def server(self, *options: str) -> ServerProcess:
        """Start a server on the database (its log numbered in order of starts)."""
        self._started += 1
        log = self.logs / f"server{self._started}.log"
        return ServerProcess(self.root, self.db, log, *SERVER_OPTIONS, *options, owner=OWNER)

    def tracebacks(self) -> list[str]:
        """The logs holding a traceback."""
        return [p.name for p in sorted(self.logs.glob("*.log")) if b"Traceback" in p.read_bytes()]

    @contextmanager
    def database(self) -> Iterator[sqlite3.Connection]:
        """A connection to the database for reading it directly (never for writing)."""
        with closing(sqlite3.connect(self.db, timeout=30)) as conn:
            conn.row_factory = sqlite3.Row
            yield conn

    def integrity(self) -> str:
        """What ``PRAGMA integrity_check`` says ("ok" for a whole file)."""
        with self.database() as conn:
            rows = conn.execute("PRAGMA integrity_check").fetchall()
        return "; ".join(str(row[0]) for row in rows)

    def runs(self) -> list[dict[str, Any]]:
        """Every run (id, task, trigger, its due time, status, holder, error), oldest first."""
        with self.database() as conn:
            rows = conn.execute(
                "SELECT id, task_id, trigger, parameters, status, holder, error, created "
                "FROM runs ORDER BY id"
            ).fetchall()
        runs = []
        for row in rows:
            run = dict(row)
            run["due"] = json.loads(run.pop("parameters") or "{}").get("trigger.due")
            runs.append(run)
        return runs


def kill(server: ServerProcess) -> None:
    """End the server at once (SIGKILL), as a crash does."""
    server.stop(signal.SIGKILL)


def holder(server: ServerProcess) -> str:
    """How the runs a server executes name it (host:pid)."""
    return f"{os.uname().nodename}:{server.process.pid}"


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def wait(predicate: Callable[[], bool], within: float, step: float = 0.1) -> bool:
    """Poll until ``predicate`` holds; whether it did within ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """``server.call`` whose HTTP error includes the server's message."""
    try:
        return server.call(method, path, body)
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:300]!r}") from None


def duplicates(runs: list[dict[str, Any]]) -> list[str]:
    """A line per (task, due time) that more than one run was started for."""
    seen: dict[tuple[int, str], int] = {}
    for run in runs:
        if run["due"] is not None:
            key = (run["task_id"], run["due"])
            seen[key] = seen.get(key, 0) + 1
    return [f"task {t} fired {n} times for {due}" for (t, due), n in seen.items() if n > 1]
