"""REST API figures: pages of a large task list, task creation, many clients at once.

Run with the project's venv:  .venv/bin/python bench/api_bench.py [--size quick]
(or all figures at once: ``make bench``).

One real ``jupyter server`` process with the planner on 127.0.0.1, its store filled
beforehand; clients keep their HTTP connection open, as browsers and scripts do.  The
reference is ``/api/status`` of the same server, measured interleaved.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import (
    SIZES,
    Client,
    Documents,
    Row,
    Server,
    Sizes,
    fill,
    in_threads,
    median,
    ms,
    quantile,
    running,
    stamp_at,
)

TASK_BODY: dict[str, Any] = {
    "name": "created",
    "triggers": [{"type": "cron", "config": {"expression": "0 7 * * 1-5"}}],
    "jobs": [{"type": "python", "name": "noop", "config": {"function": "trivial:noop"}}],
}
"""What the creation figures create: a weekday schedule and one job."""


def page_case(client: Client, sizes: Sizes) -> Row:
    """The first and the last page of 100 of the task list, and ``/api/status``, in turn."""
    count = sizes.page_tasks
    last_offset = max(0, count - 100)
    first_page = client.api("GET", "/tasks?limit=100")
    assert first_page["total"] == count, first_page["total"]
    # The last page as a client reaches it by following ``next``, and by its offset.
    page, followed = first_page, 0
    while "next" in page:
        path = page["next"].split("/taskplanner/api", 1)[1]
        page, followed = client.api("GET", path), followed + 1
    last_next = path if followed else "/tasks?limit=100"
    paths = {
        "first": "/taskplanner/api/tasks?limit=100",
        "last": f"/taskplanner/api/tasks?limit=100&offset={last_offset}",
        "last_next": f"/taskplanner/api{last_next}",
        "status": "/api/status",
    }
    samples: dict[str, list[float]] = {key: [] for key in paths}
    for _ in range(10):  # warm-up
        for path in paths.values():
            client.timed("GET", path)
    for _ in range(sizes.page_samples):
        for key, path in paths.items():
            took, status = client.timed("GET", path)
            assert status == 200, (path, status)
            samples[key].append(took)
    p99 = {key: ms(quantile(values, 0.99)) for key, values in samples.items()}
    p50 = {key: ms(median(values)) for key, values in samples.items()}
    bound = 2 * p99["status"] + 5
    worst = max(p99["first"], p99["last"], p99["last_next"])
    return Row(
        f"page of 100 tasks out of {count:,}, first and last page",
        f"p99 first {p99['first']:.1f} ms, last (offset) {p99['last']:.1f} ms, last (next "
        f"link) {p99['last_next']:.1f} ms; p50 {p50['first']:.1f} / {p50['last']:.1f} / "
        f"{p50['last_next']:.1f} ms",
        f"p99 <= 2x /api/status + 5 ms = {bound:.1f} ms at every page",
        f"/api/status p99 {p99['status']:.1f} ms (p50 {p50['status']:.1f} ms)",
        worst <= bound,
        {"p99_ms": p99, "p50_ms": p50, "bound_ms": bound, "samples": sizes.page_samples},
    )


def create_case(server: Server, sizes: Sizes) -> Row:
    """Tasks created one after the other by one client, then by several at once."""
    per_client = sizes.create_per_client

    def create(index: int) -> float:
        client = server.client()
        try:
            began = time.perf_counter()
            for number in range(per_client):
                client.api("POST", "/tasks", {**TASK_BODY, "name": f"c{index}-{number}"})
            return time.perf_counter() - began
        finally:
            client.close()

    sequential = per_client / create(-1)
    began = time.perf_counter()
    in_threads(sizes.create_clients, create)
    concurrent = sizes.create_clients * per_client / (time.perf_counter() - began)
    return Row(
        f"task creation, {sizes.create_clients} clients",
        f"{concurrent:.0f} tasks/s",
        ">= 500/s with 8 clients",
        f"one client: {sequential:.0f} tasks/s",
        concurrent >= 500 if sizes.create_clients == 8 else None,
        {"concurrent_per_s": concurrent, "sequential_per_s": sequential},
    )


MIX = [
    ("list", 40),
    ("read", 20),
    ("runs", 10),
    ("create", 10),
    ("update", 10),
    ("status", 10),
]
"""What a client of the mixed case asks, and how often (weights)."""


def mixed_case(server: Server, sizes: Sizes) -> Row:
    """``mixed_clients`` clients, each one request after another with a short pause (a UI
    refreshing), reads and writes mixed, while tasks fire every second."""
    setup = server.client()
    first = time.time() + 1
    for index in range(20):
        trigger = {
            "type": "interval",
            "config": {"every": 1, "unit": "seconds", "start": stamp_at(first + index / 20)},
        }
        setup.api("POST", "/tasks", {"name": f"firing {index}", "triggers": [trigger]})
    python_trigger = {"type": "interval", "config": {"every": 2, "unit": "seconds"}}
    setup.api(
        "POST",
        "/tasks",
        {"name": "firing python", "triggers": [python_trigger], "jobs": TASK_BODY["jobs"]},
    )
    ids = [task["id"] for task in setup.api("GET", "/tasks?limit=500")["tasks"]]
    runs_before = setup.api("GET", "/runs?limit=1")["total"]
    setup.close()
    kinds = [kind for kind, weight in MIX for _ in range(weight)]
    deadline = time.monotonic() + sizes.mixed_seconds
    lock = threading.Lock()
    latencies: dict[str, list[float]] = {kind: [] for kind, _ in MIX}
    errors: list[str] = []

    def client_loop(index: int) -> None:
        client = server.client()
        chooser = random.Random(index)
        try:
            while time.monotonic() < deadline:
                kind = chooser.choice(kinds)
                task_id = chooser.choice(ids)
                method, path, body = {
                    "list": ("GET", "/taskplanner/api/tasks?limit=20", None),
                    "read": ("GET", f"/taskplanner/api/tasks/{task_id}", None),
                    "runs": ("GET", "/taskplanner/api/runs?limit=20", None),
                    "create": ("POST", "/taskplanner/api/tasks", {**TASK_BODY, "name": "m"}),
                    "update": (
                        "PATCH",
                        f"/taskplanner/api/tasks/{task_id}",
                        {"description": f"changed by {index}"},
                    ),
                    "status": ("GET", "/api/status", None),
                }[kind]
                took, status = client.timed(method, path, body)
                with lock:
                    latencies[kind].append(took)
                    if status >= 400:
                        errors.append(f"{method} {path}: {status}")
                time.sleep(0.1)
        finally:
            client.close()

    in_threads(sizes.mixed_clients, client_loop)
    check = server.client()
    fired = check.api("GET", "/runs?limit=1")["total"] - runs_before
    check.close()
    every = [took for values in latencies.values() for took in values]
    p99 = ms(quantile(every, 0.99))
    per_kind = {kind: ms(quantile(values, 0.99)) for kind, values in latencies.items()}
    return Row(
        f"{sizes.mixed_clients} concurrent clients, mixed, tasks firing",
        f"p99 {p99:.1f} ms, max {ms(max(every)):.0f} ms, {len(errors)} errors "
        f"({len(every)} requests, {fired} runs fired meanwhile)",
        "p99 <= 100 ms, 0 errors",
        f"/api/status p99 {per_kind['status']:.1f} ms in the same mix",
        p99 <= 100 and not errors,
        {
            "p99_ms": p99,
            "p50_ms": ms(median(every)),
            "max_ms": ms(max(every)),
            "p99_ms_by_kind": per_kind,
            "requests": len(every),
            "errors": errors[:20],
            "runs_fired": fired,
        },
    )


def api_case(folder: Path, sizes: Sizes, docs: Documents) -> list[Row]:
    server = Server(folder, "api")
    (server.root / "trivial.py").write_text("def noop():\n    return None\n")
    template = docs.document({"name": "listed"})
    fill(server.db_path, ({**template, "name": f"listed {i}"} for i in range(sizes.page_tasks)))
    with running(server):
        client = server.client()
        rows = [page_case(client, sizes)]
        client.close()
        rows.append(create_case(server, sizes))
        rows.append(mixed_case(server, sizes))
    return rows


def main() -> None:
    from report import print_rows

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = api_case(folder, SIZES[args.size], Documents(folder))
    print_rows(rows)


if __name__ == "__main__":
    main()
