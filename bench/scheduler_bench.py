"""Scheduler figures, side by side: start-up time and idle CPU by store size, and fire delay.

Run with the project's venv:  .venv/bin/python bench/scheduler_bench.py [--quick]

Each case starts a real `jupyter server` process with the planner on 127.0.0.1 against a
store filled beforehand, and reads figures from the process (/proc) and from the run records.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.model import new_task_document, validate_components
from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import ServerProcess

TICKS = os.sysconf("SC_CLK_TCK")


def fill_store(db_path: Path, count: int, trigger: dict, settings: dict | None = None) -> None:
    """Create ``count`` enabled tasks with one trigger and no jobs, in bulk."""
    registry = Registry.from_entry_points()
    body = {"name": "bench", "triggers": [trigger], "settings": settings or {}}
    document = validate_components(new_task_document(body, "UTC"), registry)
    store = Store(db_path)
    for start in range(0, count, 5000):
        batch = min(5000, count - start)
        store.create_tasks(
            [("bench", {**document, "name": f"bench {start + i}"}) for i in range(batch)]
        )
    store.close()


def cpu_seconds(server: ServerProcess) -> float:
    fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(server: ServerProcess) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024


def start_server(folder: Path, db_path: Path) -> ServerProcess:
    log = folder / f"server-{time.monotonic_ns()}.log"
    return ServerProcess(folder, db_path, log, "--TaskPlannerApp.keep_runs=100000", owner="bench")


def timed_call(server: ServerProcess, method: str, path: str) -> float:
    """Milliseconds one REST call takes."""
    began = time.monotonic()
    server.call(method, path)
    return (time.monotonic() - began) * 1000


def idle_case(folder: Path, count: int, idle_seconds: float) -> dict:
    """First start (schedules every imported task), then a restart, then idle CPU."""
    db_path = folder / f"idle-{count}.db"
    fill_store(db_path, count, {"type": "cron", "config": {"expression": "0 3 1 1 *"}})
    first = start_server(folder, db_path)
    # The API while the scheduler schedules every imported task beside the loop.
    api_ms = timed_call(first, "GET", "/tasks?limit=1")
    scheduled = first.wait_for_log("tasks scheduled") if count else first.startup
    first.stop()
    server = start_server(folder, db_path)
    try:
        time.sleep(2)  # let start-up work settle before measuring idleness
        before, wall = cpu_seconds(server), time.monotonic()
        time.sleep(idle_seconds)
        cpu = (cpu_seconds(server) - before) / (time.monotonic() - wall) * 100
        return {
            "tasks": count,
            "first_start_s": first.startup,
            "all_scheduled_s": scheduled,
            "api_ms_meanwhile": api_ms,
            "restart_s": server.startup,
            "idle_cpu_pct": cpu,
            "rss_mb": rss_mb(server),
        }
    finally:
        server.stop()


def fire_delay_case(folder: Path, tasks: int, fires: int) -> list[float]:
    """Delays (ms) from due time to run start over ``fires`` fires of 1-second intervals."""
    db_path = folder / "fires.db"
    fill_store(
        db_path,
        tasks,
        {"type": "interval", "config": {"every": 1, "unit": "seconds"}},
        {"overlap": "parallel"},
    )
    server = start_server(folder, db_path)
    try:
        while server.call("GET", "/runs?limit=1")["total"] < fires:
            time.sleep(0.5)
    finally:
        server.stop()
    store = Store(db_path)
    runs, _ = store.list_runs(None, limit=fires * 2)
    store.close()
    delays = []
    for run in runs:
        if run["started"] and "trigger.due" in run["parameters"]:
            due = datetime.fromisoformat(run["parameters"]["trigger.due"])
            delays.append((datetime.fromisoformat(run["started"]) - due).total_seconds() * 1000)
    return sorted(delays)[:fires]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller stores, shorter idle")
    args = parser.parse_args()
    sizes = [0, 1_000, 10_000] if args.quick else [0, 10_000, 100_000]
    idle = 10.0 if args.quick else 30.0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"Idle scheduler ({idle:.0f} s idle each), targets: start in seconds, ~0 % CPU idle")
        print(
            "(first start: the tasks were imported while no server ran; the server starts, then"
            " schedules them all beside its loop, answering the API meanwhile)"
        )
        print(
            f"{'enabled tasks':>14} {'first start s':>14} {'all scheduled s':>16} "
            f"{'API ms meanwhile':>17} {'restart s':>10} {'idle CPU %':>11} {'RSS MB':>8}"
        )
        for count in sizes:
            row = idle_case(folder, count, idle)
            print(
                f"{row['tasks']:>14,} {row['first_start_s']:>14.2f} "
                f"{row['all_scheduled_s']:>16.2f} {row['api_ms_meanwhile']:>17.0f} "
                f"{row['restart_s']:>10.2f} {row['idle_cpu_pct']:>11.2f} {row['rss_mb']:>8.0f}"
            )
        delays = fire_delay_case(folder, tasks=20, fires=200)
        quantiles = statistics.quantiles(delays, n=100)
        print()
        print(f"Fire delay, due -> run started, {len(delays)} fires (20 tasks every 1 s)")
        print(f"{'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        print(
            f"{statistics.median(delays):>10.1f} {quantiles[89]:>8.1f} {quantiles[98]:>8.1f} "
            f"{max(delays):>8.1f}"
        )
        print("(a 1-second polling loop, as in jupyter-scheduler, averages ~500 ms by design)")


if __name__ == "__main__":
    main()
