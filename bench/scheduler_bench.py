"""Scheduler figures, side by side: start-up time and idle CPU by store size, and fire delay.

Run with the project's venv:  .venv/bin/python bench/scheduler_bench.py [--quick]

Each case starts a real `jupyter server` process with the planner on 127.0.0.1 against a
store filled beforehand, and reads figures from the process (/proc) and from the run records.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.model import new_task_document, validate_components
from jupyter_taskplanner.store import Store

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A `jupyter server` process with the planner; measures start-up until scheduling."""

    def __init__(self, folder: Path, db_path: Path) -> None:
        self.port = free_port()
        self.log_path = folder / f"server-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                "--IdentityProvider.token=bench",
                f"--ServerApp.root_dir={folder}",
                f"--TaskPlannerApp.db_path={db_path}",
                "--TaskPlannerApp.single_user_name=bench",
                "--TaskPlannerApp.keep_runs=100000",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_DATA_DIR": str(folder / "data")},
        )
        while b"scheduler started" not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"server did not start; see {self.log_path}")
            time.sleep(0.05)
        self.startup = time.monotonic() - started

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def api(self, path: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/taskplanner/api{path}",
            headers={"Authorization": "token bench"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(60)
        self.log.close()


def idle_case(folder: Path, count: int, idle_seconds: float) -> dict:
    db_path = folder / f"idle-{count}.db"
    fill_store(db_path, count, {"type": "cron", "config": {"expression": "0 3 1 1 *"}})
    server = Server(folder, db_path)
    try:
        time.sleep(2)  # let start-up work settle before measuring idleness
        before, wall = server.cpu_seconds(), time.monotonic()
        time.sleep(idle_seconds)
        cpu = (server.cpu_seconds() - before) / (time.monotonic() - wall) * 100
        return {
            "tasks": count,
            "startup_s": server.startup,
            "idle_cpu_pct": cpu,
            "rss_mb": server.rss_mb(),
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
    server = Server(folder, db_path)
    try:
        while server.api("/runs?limit=1")["total"] < fires:
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
        print(f"{'enabled tasks':>14} {'start-up s':>11} {'idle CPU %':>11} {'RSS MB':>8}")
        for count in sizes:
            row = idle_case(folder, count, idle)
            print(
                f"{row['tasks']:>14,} {row['startup_s']:>11.2f} {row['idle_cpu_pct']:>11.2f} "
                f"{row['rss_mb']:>8.0f}"
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
