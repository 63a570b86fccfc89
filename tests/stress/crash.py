"""Crash safety: the server killed (SIGKILL) at random moments while runs are in flight.

``crash_cycles`` runs one server on one database through ``cycles`` kills and restarts.
Between kills, timed tasks of each misfire policy fire, runs by hand of a long python job
and of a notebook are in flight, and an API client creates and edits tasks.  After each
kill the database must pass ``PRAGMA integrity_check``, the restarted server must have ended
the dead server's runs (interrupted, not left running or queued), its jobs and kernels must
be gone, and every task and every write the API acknowledged must be there as it was.  At
the end every fire is checked: none twice for one due time, and the fires missed while the
server was down handled by each task's misfire policy (``all``: none missing, ``once``:
each gap closed by one catch-up run, ``skip``: no catch-up run).

``kill_worker_and_kernel`` kills a job's worker process and a notebook's kernel mid-run.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from jupyter_taskplanner.testing import ServerProcess, code_notebook

from .common import (
    Figures,
    Workspace,
    alive,
    call,
    duplicates,
    holder,
    interval,
    kill,
    python_job,
    wait,
)

ACTIVE = ("queued", "running")
TOLERANCE = 1.5
"""The servers' misfire tolerance (seconds): a downtime of a few seconds is a misfire."""
NOTEBOOK = code_notebook(
    "import os, pathlib, time\n"
    "pathlib.Path(pidfile).write_text(str(os.getpid()))\n"
    "time.sleep(seconds)",
    parameters='pidfile = "kernel.pid"\nseconds = 60',
)
"""A notebook whose kernel writes its pid to ``pidfile`` and then sleeps."""


def _timed_tasks() -> dict[str, dict[str, Any]]:
    """The timed tasks, by misfire policy: each fires on a grid of whole seconds."""
    return {
        "all": {
            "name": "every 2 s, catch up all",
            "triggers": [interval(2)],
            "jobs": [{"type": "command", "config": {"program": "true"}}],
            "settings": {"misfire": "all", "misfire_limit": 1000, "overlap": "parallel"},
        },
        "once": {
            "name": "every 4 s, catch up once, a series",
            "triggers": [interval(4)],
            "series": {"type": "values", "config": {"values": [{"name": "a"}, {"name": "b"}]}},
            "jobs": [python_job("hello", name="{name}")],
            "settings": {"misfire": "once", "overlap": "skip"},
        },
        "skip": {
            "name": "every 3 s, skip missed fires, queued",
            "triggers": [interval(3)],
            "jobs": [python_job("nap", seconds=1)],
            "settings": {"misfire": "skip", "overlap": "queue", "retries": 1, "retry_backoff": 0.1},
        },
    }


class Writer(threading.Thread):
    """Creates and edits tasks through the API until the server goes away; remembers what
    the server acknowledged, and the one write in flight when it went."""

    def __init__(
        self, server: ServerProcess, rng: random.Random, acked: dict[int, tuple[int, str]]
    ) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.rng = rng
        self.acked = acked
        self.in_flight: tuple[int, str] | None = None
        self.writes = 0

    def run(self) -> None:
        try:
            while True:
                self._write()
                self.writes += 1
                time.sleep(0.01)
        except OSError:
            return  # the server was killed

    def _write(self) -> None:
        if not self.acked or self.rng.random() < 0.3:
            self.in_flight = None
            task = self.server.call("POST", "/tasks", {"name": f"written {len(self.acked)}"})
            self.acked[task["id"]] = (task["revision"], task["description"])
            return
        task_id = self.rng.choice(list(self.acked))
        text = f"edit {self.rng.random()}"
        self.in_flight = (task_id, text)
        task = self.server.call("PATCH", f"/tasks/{task_id}", {"description": text})
        self.acked[task_id] = (task["revision"], task["description"])
        self.in_flight = None


def crash_cycles(folder: Path, cycles: int, seed: int = 15) -> Figures:
    """Kill and restart one server ``cycles`` times while runs are in flight."""
    figures = Figures("crash safety: kill -9 and restart, runs in flight", unit="kills")
    started = time.monotonic()
    rng = random.Random(seed)
    ws = Workspace(folder)
    pids = ws.root / "pids"
    pids.mkdir()
    (ws.root / "sleeper.ipynb").write_text(json.dumps(NOTEBOOK))
    options = (f"--TaskPlannerApp.misfire_tolerance={TOLERANCE}",)
    server = ws.server(*options)
    timed = {
        policy: call(server, "POST", "/tasks", body) for policy, body in _timed_tasks().items()
    }
    long_job = call(
        server,
        "POST",
        "/tasks",
        {
            "name": "long, by hand",
            "jobs": [python_job("nap", seconds=60, pidfile=f"{pids}/{{run.id}}.job")],
        },
    )
    notebook = call(
        server,
        "POST",
        "/tasks",
        {
            "name": "notebook, by hand",
            "jobs": [
                {
                    "type": "notebook",
                    "config": {
                        "path": "sleeper.ipynb",
                        "parameters": {"pidfile": f"{pids}/{{run.id}}.kernel"},
                    },
                }
            ],
        },
    )
    seeded = {task["id"]: task for task in [*timed.values(), long_job, notebook]}
    acked: dict[int, tuple[int, str]] = {}
    writes = 0
    try:
        for cycle in range(cycles):
            writer = Writer(server, rng, acked)
            writer.start()
            for task in (long_job, notebook):
                call(server, "POST", f"/tasks/{task['id']}/run")
            time.sleep(rng.uniform(0.5, 4.0))
            dead = holder(server)
            kill(server)
            writer.join(30)
            writes += writer.writes
            figures.cases += 1
            where = f"after kill {cycle + 1}"
            integrity = ws.integrity()
            figures.expect(integrity == "ok", f"{where}: integrity_check says {integrity}")
            time.sleep(rng.uniform(0.0, 2.0))
            server = ws.server(*options)
            left = [r["id"] for r in ws.runs() if r["holder"] == dead and r["status"] in ACTIVE]
            figures.expect(not left, f"{where}: runs {left} of the killed server still active")
            orphans = [p.name for p in pids.iterdir() if alive(int(p.read_text() or 0))]
            if orphans and not wait(
                lambda: not [p for p in pids.iterdir() if alive(int(p.read_text() or 0))], 10
            ):
                figures.fail(f"{where}: jobs or kernels of the killed server still run: {orphans}")
            for path in pids.iterdir():
                path.unlink()
            _check_tasks(server, seeded, acked, writer.in_flight, where, figures)
        time.sleep(3)
        for task in timed.values():
            call(server, "POST", f"/tasks/{task['id']}/disable")
        for run in call(server, "GET", "/runs?limit=500")["runs"]:
            if run["status"] in ACTIVE and run["task_id"] in (long_job["id"], notebook["id"]):
                call(server, "POST", f"/runs/{run['id']}/cancel")
        if not wait(lambda: not [r for r in ws.runs() if r["status"] in ACTIVE], 60, 0.5):
            active = [r["id"] for r in ws.runs() if r["status"] in ACTIVE]
            figures.fail(f"runs still active a minute after the last restart: {active}")
    finally:
        server.stop()
    integrity = ws.integrity()
    figures.expect(integrity == "ok", f"at the end: integrity_check says {integrity}")
    runs = ws.runs()
    figures.failures.extend(duplicates(runs))
    for policy, task in timed.items():
        _check_policy(policy, task, runs, figures)
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    figures.notes.update(
        runs=len(runs),
        fires=sum(run["due"] is not None for run in runs),
        interrupted=sum(run["status"] == "interrupted" for run in runs),
        catch_up=sum(run["trigger"] == "misfire" for run in runs),
        writes=writes,
    )
    figures.seconds = time.monotonic() - started
    return figures


def _check_tasks(
    server: ServerProcess,
    seeded: dict[int, dict[str, Any]],
    acked: dict[int, tuple[int, str]],
    in_flight: tuple[int, str] | None,
    where: str,
    figures: Figures,
) -> None:
    """Every seeded task is as it was; every acknowledged write is there."""
    stored = {task["id"]: task for task in _all_tasks(server)}
    for task_id, task in seeded.items():
        now = stored.get(task_id)
        same = now is not None and all(now[k] == task[k] for k in task if k != "next_fires")
        figures.expect(same, f"{where}: task {task_id} changed: {task} -> {now}")
    for task_id, (revision, description) in acked.items():
        now = stored.get(task_id)
        if now is None:
            figures.fail(f"{where}: the acknowledged task {task_id} is lost")
            continue
        seen = (now["revision"], now["description"])
        if seen != (revision, description):
            if in_flight == (task_id, now["description"]) and now["revision"] == revision + 1:
                acked[task_id] = seen  # the write in flight was committed before the kill
            else:
                figures.fail(
                    f"{where}: task {task_id} is {seen}, acknowledged {(revision, description)}"
                )


def _all_tasks(server: ServerProcess) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    while True:
        page = call(server, "GET", f"/tasks?limit=500&offset={len(tasks)}")
        tasks.extend(page["tasks"])
        if len(tasks) >= page["total"] or not page["tasks"]:
            return tasks


def _check_policy(
    policy: str, task: dict[str, Any], runs: list[dict[str, Any]], figures: Figures
) -> None:
    """The task's fires over all the downtimes, as its misfire policy says."""
    step = task["triggers"][0]["config"]["every"]
    fires = sorted(
        (datetime.fromisoformat(run["due"]), run["trigger"])
        for run in runs
        if run["task_id"] == task["id"] and run["due"] is not None
    )
    name = f"{policy} task {task['id']}"
    figures.expect(bool(fires), f"{name}: never fired")
    catch_ups = sum(trigger == "misfire" for _, trigger in fires)
    if policy == "skip":
        figures.expect(not catch_ups, f"{name}: {catch_ups} catch-up runs")
    for (before, _), (due, trigger) in itertools.pairwise(fires):
        gap = (due - before).total_seconds()
        if gap % step:
            figures.fail(f"{name}: a fire off its grid at {due}")
        elif gap > step and policy == "all":
            figures.fail(f"{name}: the fires between {before} and {due} were lost")
        elif gap > step and policy == "once" and trigger != "misfire":
            figures.fail(f"{name}: the fires between {before} and {due} had no catch-up run")


def kill_worker_and_kernel(folder: Path) -> Figures:
    """Kill a python job's worker and a notebook job's kernel while they run."""
    figures = Figures("crash safety: a job's worker and a notebook's kernel killed mid-run")
    started = time.monotonic()
    ws = Workspace(folder)
    (ws.root / "sleeper.ipynb").write_text(json.dumps(NOTEBOOK))
    worker_pid, kernel_pid = ws.root / "worker.pid", ws.root / "kernel.pid"
    server = ws.server()
    try:
        job = python_job("nap", seconds=60, pidfile=str(worker_pid), counter=str(ws.root / "count"))
        task = call(
            server,
            "POST",
            "/tasks",
            {
                "name": "worker killed",
                "jobs": [job],
                "settings": {"retries": 1, "retry_backoff": 0.1},
            },
        )
        run = _run_and_kill(server, task, worker_pid, figures)
        figures.cases += 1
        steps = run.get("steps", [])
        figures.expect(
            run["status"] == "succeeded",
            f"killed worker: the run ended {run['status']}, not succeeded by its retry",
        )
        figures.expect(
            len(steps) == 2
            and steps[0]["status"] == "failed"
            and "died" in (steps[0]["error"] or ""),
            f"killed worker: the first attempt did not fail saying the worker died: {steps}",
        )
        notebook = call(
            server,
            "POST",
            "/tasks",
            {
                "name": "kernel killed",
                "jobs": [
                    {
                        "type": "notebook",
                        "config": {
                            "path": "sleeper.ipynb",
                            "parameters": {"pidfile": str(kernel_pid)},
                        },
                    }
                ],
            },
        )
        run = _run_and_kill(server, notebook, kernel_pid, figures)
        figures.cases += 1
        error = " ".join(str(step.get("error")) for step in run.get("steps", []))
        figures.expect(run["status"] == "failed", f"killed kernel: the run ended {run['status']}")
        figures.expect(
            "kernel" in error.lower() and "died" in error.lower(),
            f"killed kernel: the error does not say the kernel died: {error[:300]}",
        )
    finally:
        server.stop()
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    figures.seconds = time.monotonic() - started
    return figures


def _run_and_kill(
    server: ServerProcess, task: dict[str, Any], pidfile: Path, figures: Figures
) -> dict[str, Any]:
    """Run the task, SIGKILL the process that writes ``pidfile``; the run as it ended."""
    run = call(server, "POST", f"/tasks/{task['id']}/run")
    if not wait(lambda: pidfile.exists() and pidfile.read_text(), 60):
        figures.fail(f"{task['name']}: the job never started")
        return call(server, "GET", f"/runs/{run['id']}")
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGKILL)

    def ended() -> bool:
        return call(server, "GET", f"/runs/{run['id']}")["status"] not in ACTIVE

    if not wait(ended, 30):
        figures.fail(f"{task['name']}: the run still runs 30 s after the kill")
    return call(server, "GET", f"/runs/{run['id']}")
