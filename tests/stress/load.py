"""Load: many API clients at once, reading and writing, while tasks fire.

``load`` starts one server with timed tasks firing every second or two, then ``clients``
threads, each on its own keep-alive connection, send a mix of requests for ``seconds``:
task and run lists, single tasks and runs, next fire times, components, creates, edits,
runs by hand and deletes.  Every reply must have its expected status; the latencies
(p50, p99, max) are recorded.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_taskplanner.testing import HOST, ServerProcess

from .common import Figures, Workspace, call, interval, python_job

API = "/taskplanner/api"


class Client(threading.Thread):
    """One API client sending a mix of requests until ``stop``; records every latency and
    every unexpected reply."""

    def __init__(
        self, server: ServerProcess, tasks: list[int], seed: int, stop: threading.Event
    ) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.tasks = tasks
        self.rng = random.Random(seed)
        self.stop = stop
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.mine: list[int] = []
        self.conn = http.client.HTTPConnection(HOST, server.port, timeout=60)

    def request(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Authorization": f"token {self.server.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.conn.request(method, API + path, data, headers)
            reply = self.conn.getresponse()
            text = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            self.conn.close()
            self.conn = http.client.HTTPConnection(HOST, self.server.port, timeout=60)
            self.errors.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            return None
        self.latencies.append(time.perf_counter() - started)
        if reply.status != expect:
            self.errors.append(f"{method} {path}: {reply.status} {text[:200]!r}")
            return None
        return json.loads(text) if text else None

    def run(self) -> None:
        while not self.stop.is_set():
            self.step()
        self.conn.close()

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        task = rng.choice(self.tasks)
        if roll < 0.25:
            self.request("GET", f"/tasks?limit=20&offset={rng.randrange(0, 40)}")
        elif roll < 0.40:
            self.request("GET", f"/tasks/{task}")
        elif roll < 0.55:
            runs = self.request("GET", "/runs?limit=20")
            if runs and runs["runs"]:
                self.request("GET", f"/runs/{rng.choice(runs['runs'])['id']}")
        elif roll < 0.62:
            self.request("GET", f"/tasks/{task}/next?count=5")
        elif roll < 0.67:
            self.request("GET", "/components")
        elif roll < 0.80:
            created = self.request("POST", "/tasks", {"name": f"load {rng.random()}"}, 201)
            if created:
                self.mine.append(created["id"])
        elif roll < 0.92 and self.mine:
            mine = rng.choice(self.mine)
            self.request("PATCH", f"/tasks/{mine}", {"description": str(rng.random())})
        elif roll < 0.96 and self.mine:
            self.request("POST", f"/tasks/{rng.choice(self.mine)}/run", expect=202)
        elif self.mine:
            self.request("DELETE", f"/tasks/{self.mine.pop()}", expect=204)


def _quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def load(folder: Path, clients: int, seconds: float, seed: int = 15) -> Figures:
    """``clients`` API clients for ``seconds`` while tasks fire."""
    figures = Figures(
        f"load: {clients} API clients for {seconds:g} s, tasks firing", unit="requests"
    )
    started = time.monotonic()
    ws = Workspace(folder)
    server = ws.server()
    stop = threading.Event()
    try:
        firing = [
            call(
                server,
                "POST",
                "/tasks",
                {
                    "name": f"firing {i}",
                    "triggers": [interval(1 + i % 2)],
                    "jobs": [python_job("hello")] if i % 3 == 0 else [],
                    "settings": {"overlap": "skip"},
                },
            )["id"]
            for i in range(6)
        ]
        seeded = [call(server, "POST", "/tasks", {"name": f"seeded {i}"})["id"] for i in range(40)]
        threads = [Client(server, firing + seeded, seed + i, stop) for i in range(clients)]
        fired_before = _fired(ws)
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join(90)
        fired = _fired(ws) - fired_before
    finally:
        stop.set()
        server.stop()
    latencies = sorted(x for thread in threads for x in thread.latencies)
    for thread in threads:
        figures.failures.extend(thread.errors)
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    figures.cases = len(latencies) + sum(len(thread.errors) for thread in threads)
    figures.expect(fired > 0, "no task fired during the load")
    if len(latencies) >= 2:
        figures.notes.update(
            p50_ms=round(_quantile(latencies, 0.50) * 1000, 1),
            p99_ms=round(_quantile(latencies, 0.99) * 1000, 1),
            max_ms=round(latencies[-1] * 1000, 1),
            per_second=round(len(latencies) / seconds, 1),
            fires=fired,
        )
    figures.seconds = time.monotonic() - started
    return figures


def _fired(ws: Workspace) -> int:
    return sum(run["due"] is not None for run in ws.runs())
