"""Executor figures, side by side: short python jobs and notebook jobs, local vs two Dask workers.

Run with the project's venv:  .venv/bin/python bench/dask_bench.py [--quick] [--json FILE]

One ``LocalCluster(processes=True)`` of two workers runs for the whole bench. Each case
starts a real ``jupyter server`` with the planner on 127.0.0.1, once with the local executor
and once with the Dask executor on that cluster, interleaved (local, dask, local, dask, ...)
so both see the same machine; both get the same number of job slots (``--slots``: the
server's run limits, and the workers' threads). A case starts all its runs at once through
the REST API (one job per run) and waits until the last ended; the figures come from the run
records. Workers do not share the server's files here: every Dask job takes its inputs along.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from distributed import LocalCluster

from jupyter_taskplanner.testing import ServerProcess, code_notebook
from jupyter_taskplanner.vocabulary import FINISHED

JOBS = """
def quick(number):
    return f"job {number}"
"""
NOTEBOOK = code_notebook("print(f'notebook {number}')", parameters="number = 0")
CASES: dict[str, Callable[[], dict[str, Any]]] = {
    "python": lambda: {
        "type": "python",
        "config": {"function": "bench_jobs:quick", "kwargs": {"number": "{n}"}},
    },
    "notebook": lambda: {
        "type": "notebook",
        "config": {"path": "bench.ipynb", "parameters": {"number": "{n}"}, "formats": ["ipynb"]},
    },
}


def parse(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def run_case(server: ServerProcess, case: str, count: int) -> dict[str, Any]:
    """Start ``count`` runs of a one-job task at once; figures once every run ended."""
    body = {"name": case, "jobs": [CASES[case]()], "settings": {"overlap": "parallel"}}
    task = server.call("POST", "/tasks", body)
    began = time.time()
    for number in range(count):
        server.call("POST", f"/tasks/{task['id']}/run", {"parameters": {"n": number}})
    while True:
        runs = server.call("GET", f"/tasks/{task['id']}/runs?limit=500")["runs"]
        if len(runs) == count and all(run["status"] in FINISHED for run in runs):
            break
        time.sleep(0.5)
    ended = max(parse(run["finished"]) for run in runs)
    steps = [
        step
        for run in runs
        for step in server.call("GET", f"/runs/{run['id']}")["steps"]
        if step["started"] and step["finished"]
    ]
    durations = sorted(parse(step["finished"]) - parse(step["started"]) for step in steps)
    errors = sorted({run["error"] for run in runs if run["status"] != "succeeded"}, key=str)
    waits = sorted(parse(run["started"]) - parse(run["created"]) for run in runs if run["started"])
    return {
        "jobs": count,
        "failed": sum(run["status"] != "succeeded" for run in runs),
        "wall_s": ended - began,
        "jobs_per_s": count / (ended - began),
        "step_p50_s": statistics.median(durations),
        "step_p90_s": durations[int(0.9 * (len(durations) - 1))],
        "queued_p50_s": statistics.median(waits),
        "errors": errors,
    }


def serve(root: Path, folder: Path, name: str, options: list[str]) -> ServerProcess:
    db_path = folder / name / "tasks.db"
    return ServerProcess(root, db_path, folder / f"{name}.log", *options, owner="bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 python and 6 notebook jobs")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of every case")
    parser.add_argument("--slots", type=int, default=4, help="jobs at once on each executor")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    counts = {"python": 50, "notebook": 6} if args.quick else {"python": 200, "notebook": 20}
    limits = [
        f"--TaskPlannerApp.max_concurrent_runs={args.slots}",
        f"--TaskPlannerApp.max_runs_per_owner={args.slots}",
        "--TaskPlannerApp.keep_runs=1000",
    ]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {case: {} for case in CASES}
    with tempfile.TemporaryDirectory(prefix="dask-bench-") as tmp:
        folder = Path(tmp)
        root = folder / "root"
        root.mkdir()
        (root / "bench_jobs.py").write_text(JOBS)
        (root / "bench.ipynb").write_text(json.dumps(NOTEBOOK))
        with LocalCluster(
            n_workers=2,
            threads_per_worker=args.slots // 2,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster:
            executors = {
                "local": [],
                "dask": [
                    "--TaskPlannerApp.executor_class=jupyter_taskplanner.executors.DaskExecutor",
                    f"--DaskExecutor.scheduler_address={cluster.scheduler_address}",
                    f"--DaskExecutor.concurrent_sets={args.slots}",
                ],
            }
            for repeat in range(args.repeats):
                for case, count in counts.items():
                    for executor, options in executors.items():
                        name = f"{case}-{executor}-{repeat}"
                        server = serve(root, folder, name, [*limits, *options])
                        try:
                            figures = run_case(server, case, count)
                        finally:
                            server.stop()
                        results[case].setdefault(executor, []).append(figures)
                        print(name, json.dumps(figures), flush=True)
    print()
    print(table(results, args.slots))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def table(results: dict[str, dict[str, list[dict[str, Any]]]], slots: int) -> str:
    """The median of each figure over the rounds, local and Dask side by side."""
    lines = [
        f"| case ({slots} jobs at once) | executor | wall s | jobs/s | job step p50 s "
        "| job step p90 s | queued p50 s | failed | Dask / local wall |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for case, by_executor in results.items():
        walls = {
            name: statistics.median(r["wall_s"] for r in rounds)
            for name, rounds in by_executor.items()
        }
        for executor, rounds in by_executor.items():
            figure = {
                key: statistics.median(r[key] for r in rounds)
                for key in rounds[0]
                if key != "errors"
            }
            ratio = f"{walls['dask'] / walls['local']:.2f}" if executor == "dask" else ""
            lines.append(
                f"| {int(figure['jobs'])} {case} jobs | {executor} | {figure['wall_s']:.1f} "
                f"| {figure['jobs_per_s']:.2f} | {figure['step_p50_s']:.2f} "
                f"| {figure['step_p90_s']:.2f} | {figure['queued_p50_s']:.1f} "
                f"| {int(figure['failed'])} | {ratio} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
