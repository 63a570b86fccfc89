"""Scheduler and engine figures: first start after a bulk import, memory, fire delay, bursts.

Run with the project's venv:  .venv/bin/python bench/scheduler_bench.py [--quick]
(or all figures at once: ``make bench``).

Each case starts real ``jupyter server`` processes with the planner on 127.0.0.1 and reads
its figures from the processes (/proc), the REST API and the run records.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    SIZES,
    WARM_WORKERS,
    Client,
    Documents,
    Row,
    Server,
    Sizes,
    cpu_seconds,
    fill,
    median,
    ms,
    parse_time,
    quantile,
    rss_mb,
    running,
    stamp_at,
    wait_until,
)


def warm_up(client: Client) -> None:
    """The same few API calls on every server whose memory is compared."""
    for _ in range(20):
        client.api("GET", "/tasks?limit=100")
        client.api("GET", "/runs?limit=100")
        client.api("GET", "/components")


def all_runs(client: Client, status: str | None = None) -> list[dict[str, Any]]:
    """Every run of the server (newest first), page by page."""
    runs: list[dict[str, Any]] = []
    query = f"&status={status}" if status else ""
    while True:
        page = client.api("GET", f"/runs?limit=500&offset={len(runs)}{query}")
        runs += page["runs"]
        if len(runs) >= page["total"] or not page["runs"]:
            return runs


def finished_count(client: Client) -> int:
    """Runs that ended (any way) so far."""
    page = client.api("GET", "/runs?limit=1")
    active = sum(
        client.api("GET", f"/runs?limit=1&status={status}")["total"]
        for status in ("queued", "running")
    )
    return int(page["total"]) - int(active)


# -- first start after a bulk import, memory, fire delay ---------------------------------------


def sample_api(client: Client, stop: threading.Event, samples: dict[str, list[float]]) -> None:
    """Alternate a page of tasks and ``/api/status`` until ``stop``; latencies in seconds."""
    while not stop.is_set():
        took, status = client.timed("GET", "/taskplanner/api/tasks?limit=20")
        samples["tasks" if status == 200 else "errors"].append(took)
        took, _ = client.timed("GET", "/api/status")
        samples["status"].append(took)


def startup_case(folder: Path, sizes: Sizes, docs: Documents) -> list[Row]:
    """An empty server, then one started on a store of ``bulk_tasks`` imported tasks: how
    soon every task is scheduled, the API meanwhile, memory, then the fire delay there."""
    count = sizes.bulk_tasks
    empty = Server(folder, "empty")
    with running(empty):
        client = empty.client()
        warm_up(client)
        time.sleep(1)
        empty_rss = rss_mb(empty.pid)
        assert empty.process is not None
        empty_startup = empty.process.startup
        client.close()

    bulk = Server(folder, "bulk")
    template = docs.document(
        {"name": "bulk", "triggers": [{"type": "cron", "config": {"expression": "0 3 1 1 *"}}]}
    )
    fill(bulk.db_path, ({**template, "name": f"bulk {i}"} for i in range(count)))
    rows: list[Row] = []
    with running(bulk):
        assert bulk.process is not None
        samples: dict[str, list[float]] = {"tasks": [], "status": [], "errors": []}
        stop = threading.Event()
        client = bulk.client()
        sampler = threading.Thread(target=sample_api, args=(client, stop, samples))
        sampler.start()
        try:
            scheduled = bulk.process.wait_for_log("tasks scheduled")
        finally:
            stop.set()
            sampler.join()
        from_scheduler = scheduled - bulk.process.startup
        api_p99 = ms(quantile(samples["tasks"], 0.99))
        status_p99 = ms(quantile(samples["status"], 0.99))
        rows.append(
            Row(
                f"first start after a bulk import of {count:,} tasks",
                f"all scheduled {from_scheduler:.2f} s after the server was up (its scheduler"
                f" started, {bulk.process.startup:.2f} s after the process did); API p99 "
                f"{api_p99:.1f} ms ({len(samples['tasks'])} calls, {len(samples['errors'])} "
                "errors)",
                "all scheduled within 5 s; API p99 <= 50 ms meanwhile",
                f"/api/status p99 {status_p99:.1f} ms meanwhile; an empty server is up after "
                f"{empty_startup:.2f} s",
                from_scheduler <= 5 and api_p99 <= 50 and not samples["errors"],
                {
                    "tasks": count,
                    "all_scheduled_s": scheduled,
                    "after_scheduler_s": from_scheduler,
                    "startup_s": bulk.process.startup,
                    "api_p99_ms": api_p99,
                    "api_p50_ms": ms(median(samples["tasks"])),
                    "api_calls": len(samples["tasks"]),
                    "errors": len(samples["errors"]),
                    "status_p99_ms": status_p99,
                },
            )
        )
        warm_up(client)
        time.sleep(1)
        bulk_rss = rss_mb(bulk.pid)
        rows.append(
            Row(
                f"server RSS with {count:,} tasks",
                f"{bulk_rss:.0f} MB, {bulk_rss / empty_rss:.2f}x an empty server",
                "<= 1.3x an empty server",
                f"empty server {empty_rss:.0f} MB",
                bulk_rss <= 1.3 * empty_rss,
                {"rss_mb": bulk_rss, "empty_rss_mb": empty_rss, "ratio": bulk_rss / empty_rss},
            )
        )
        rows.append(fire_delay(client, sizes, count))
        client.close()
    return rows


def fire_delay(client: Client, sizes: Sizes, others: int) -> Row:
    """Delays from due time to run start over ``fires`` fires: ``fire_tasks`` tasks every
    second, their phases spread evenly so no two fires are due at once."""
    tasks = sizes.fire_tasks
    first = time.time() + 3
    for index in range(tasks):
        start = stamp_at(first + index / tasks)
        trigger = {"type": "interval", "config": {"every": 1, "unit": "seconds", "start": start}}
        client.api("POST", "/tasks", {"name": f"fire {index}", "triggers": [trigger]})
    wait_until(
        lambda: finished_count(client) >= sizes.fires,
        sizes.fires / tasks + 60,
        f"{sizes.fires} fires",
        pause=0.5,
    )
    delays = []
    for run in all_runs(client):
        due = run["parameters"].get("trigger.due")
        if run["started"] and due:
            delays.append(ms(parse_time(run["started"]) - parse_time(due)))
    delays = sorted(delays)[: sizes.fires]
    p99 = quantile(delays, 0.99)
    return Row(
        f"fire delay, {others:,} enabled tasks, {len(delays)} fires",
        f"p99 {p99:.1f} ms (p50 {median(delays):.1f} ms, max {max(delays):.1f} ms)",
        "p99 <= 10 ms",
        "a polling scheduler (jupyter-scheduler: every 10 s) is late by half its period on average",
        p99 <= 10,
        {
            "fires": len(delays),
            "p50_ms": median(delays),
            "p99_ms": p99,
            "max_ms": max(delays),
            "tasks": others,
        },
    )


# -- bursts: many runs due in one second --------------------------------------------------------


def burst(
    client: Client, pid: int, count: int, jobs: list[dict[str, Any]], sizes: Sizes, target: float
) -> dict[str, Any]:
    """``count`` tasks due once each, spread over one second; until every run ended, or until
    six times ``target`` seconds passed after the first was due (then the figure says how far
    it got)."""
    first = time.time() + sizes.lead
    tasks = [
        {
            "name": f"burst {index}",
            "triggers": [
                {
                    "type": "interval",
                    "config": {
                        "every": 1,
                        "unit": "days",
                        "start": stamp_at(first + index / count),
                    },
                }
            ],
            "jobs": jobs,
        }
        for index in range(count)
    ]
    before = len(all_runs(client))
    for start in range(0, count, 250):
        client.api("POST", "/tasks/import", tasks[start : start + 250])
    imported = time.time()
    cpu_before = cpu_seconds(pid)
    give_up = first + max(6 * target, 30)
    while finished_count(client) - before < count and time.time() < give_up:
        time.sleep(0.2)
    waited = time.time() - first
    cpu = cpu_seconds(pid) - cpu_before
    current = all_runs(client)
    runs = current[: len(current) - before]
    ended = [parse_time(run["finished"]) for run in runs if run["finished"]]
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    complete = len(ended) == count
    elapsed = max(ended) - first if complete else math.nan
    return {
        "runs": count,
        "finished": len(ended),
        "all_finished_s": elapsed,
        "waited_s": waited,
        "runs_per_s": len(ended) / max(waited if not complete else elapsed, 1e-9),
        "statuses": statuses,
        "server_cpu_s": cpu,
        "server_cpu_ms_per_run": ms(cpu / max(1, len(ended))),
        "server_busy_pct": 100 * cpu / max(waited, 1e-9),
        "imported_before_due": imported < first,
    }


def _finished_text(result: dict[str, Any]) -> str:
    if result["finished"] < result["runs"]:
        return (
            f"only {result['finished']:,} of {result['runs']:,} finished "
            f"{result['waited_s']:.0f} s after the first was due ({result['runs_per_s']:.1f} "
            f"runs/s; {_statuses(result)})"
        )
    return (
        f"all finished {result['all_finished_s']:.2f} s after the first was due "
        f"({_statuses(result)})"
    )


def burst_case(folder: Path, sizes: Sizes) -> list[Row]:
    """Runs without jobs, then with one trivial python job each, due within one second."""
    server = Server(folder, "burst")
    (server.root / "trivial.py").write_text("def noop():\n    return None\n")
    rows = []
    with running(server):
        client = server.client()
        empty = burst(client, server.pid, sizes.burst_runs, [], sizes, 2)
        rows.append(
            Row(
                f"{sizes.burst_runs:,} runs with no jobs due in one second",
                _finished_text(empty),
                "all finished within 2 s",
                f"server CPU {empty['server_cpu_ms_per_run']:.1f} ms per run, "
                f"{empty['server_busy_pct']:.0f} % busy",
                empty["all_finished_s"] <= 2 and _all_succeeded(empty),
                empty,
            )
        )
        job = {"type": "python", "name": "noop", "config": {"function": "trivial:noop"}}
        python = burst(client, server.pid, sizes.burst_jobs, [job], sizes, 10)
        rows.append(
            Row(
                f"{sizes.burst_jobs:,} trivial python jobs due in one second",
                _finished_text(python),
                "all finished within 10 s",
                f"server itself {python['server_busy_pct']:.0f} % busy "
                f"({python['server_cpu_ms_per_run']:.1f} ms CPU per run); warm workers "
                f"{'on (the default)' if WARM_WORKERS else 'not available'}",
                python["all_finished_s"] <= 10 and _all_succeeded(python),
                {**python, "warm_workers": WARM_WORKERS},
            )
        )
        client.close()
    return rows


def _statuses(result: dict[str, Any]) -> str:
    return ", ".join(f"{count} {status}" for status, count in sorted(result["statuses"].items()))


def _all_succeeded(result: dict[str, Any]) -> bool:
    return set(result["statuses"]) == {"succeeded"} and not math.isnan(result["all_finished_s"])


def main() -> None:
    from report import print_rows

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    sizes = SIZES[args.size]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = startup_case(folder, sizes, Documents(folder)) + burst_case(folder, sizes)
    print_rows(rows)


if __name__ == "__main__":
    main()
