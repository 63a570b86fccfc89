"""Crash safety, small: a few kills of a server with runs in flight, a killed worker and
kernel (the long version runs in ``make stress``; see tests/stress/crash.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stress.common import FUNCS, alive, python_job, wait
from stress.crash import crash_cycles, kill_worker_and_kernel


@pytest.mark.timeout(300)
def test_kills_while_runs_are_in_flight_lose_and_repeat_nothing(tmp_path: Path) -> None:
    figures = crash_cycles(tmp_path, cycles=2, seed=3)
    assert not figures.failures, figures.summary
    # The kills came while runs were in flight, and downtimes were caught up.
    assert figures.notes["interrupted"] >= 2 and figures.notes["catch_up"] >= 1, figures.notes


@pytest.mark.timeout(300)
def test_a_killed_worker_and_a_killed_kernel_end_their_runs(tmp_path: Path) -> None:
    figures = kill_worker_and_kernel(tmp_path)
    assert (figures.cases, figures.failures) == (2, []), figures.summary


def _worker(tmp_path: Path, executor_pid: int) -> tuple[subprocess.Popen[bytes], Path]:
    """A worker of a job napping a minute, told to stop when ``executor_pid`` is gone."""
    root, folder = tmp_path / "root", tmp_path / "step"
    root.mkdir(exist_ok=True)
    (root / "stress_funcs.py").write_text(FUNCS)
    pidfile = tmp_path / f"{executor_pid}.pid"
    request = {
        "kind": "job",
        "entry": {**python_job("nap", seconds=60, pidfile=str(pidfile)), "version": 1},
        "context": {
            "owner": "alice",
            "owner_root": str(root),
            "task_id": 1,
            "task_name": "t",
            "run_id": 1,
            "started": "2026-01-01T00:00:00+00:00",
            "placeholders": {},
            "private_folders": [],
            "max_filled": 1000,
            "state": {},
            "output_dir": str(folder / "output"),
        },
        "folder": str(folder),
        "stop_when_orphaned": 0.5,
        "executor_pid": executor_pid,
    }
    (folder / "output").mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"request-{executor_pid}.json"
    path.write_text(json.dumps(request))
    worker = subprocess.Popen(
        [sys.executable, "-m", "jupyter_taskplanner.worker", str(path)],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return worker, pidfile


def test_a_worker_whose_executor_died_while_it_started_stops(tmp_path: Path) -> None:
    # Killed while its worker was still starting, the executor was gone before the worker
    # could note its parent: the worker's parent was already the new one (found by the
    # crash cycles: such jobs ran on unobserved after a crash).
    gone = subprocess.Popen(["true"])
    gone.wait()
    orphan, _ = _worker(tmp_path, gone.pid)
    watched, pidfile = _worker(tmp_path, os.getpid())
    try:
        assert wait(lambda: pidfile.exists() and pidfile.read_text() != "", 60), (
            "the job never started"
        )
        orphan.wait(10)
        time.sleep(1)
        assert alive(int(pidfile.read_text())), "a worker whose executor lives was stopped"
    finally:
        for process in (orphan, watched):
            process.kill()
            process.wait()
