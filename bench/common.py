"""What the bench scripts share: sizes, servers, a keep-alive HTTP client, quantiles, rows.

Every figure is measured on real ``jupyter server`` processes on 127.0.0.1 (started here,
always stopped here) and compared in the same run with its reference.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.executors import LocalExecutor
from jupyter_taskplanner.model import SaveContext, prepare
from jupyter_taskplanner.paths import OwnerFiles
from jupyter_taskplanner.permissions import ComponentRules
from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import HOST, ServerProcess

OWNER = "bench"
TICKS = os.sysconf("SC_CLK_TCK")

_EXECUTOR_TRAITS = LocalExecutor.class_traits()
WARM_WORKERS = bool(
    "warm_workers" in _EXECUTOR_TRAITS and _EXECUTOR_TRAITS["warm_workers"].default_value
)
"""Whether jobs start in warm workers by default (every server of the bench then uses them)."""
WARM_OPTIONS: tuple[str, ...] = (
    ("--LocalExecutor.kernel_pool={'python3': 2}",) if "kernel_pool" in _EXECUTOR_TRAITS else ()
)
"""The server options that turn the warm kernel pool on, for the row "with the warm kernel
pool"; empty while the planner has no such setting (that row then measures the cold path)."""


OTHER_EXTENSIONS = ("jupyterlab", "jupyter_lsp", "jupyter_server_terminals", "notebook_shim")
PLANNER_ONLY = "--ServerApp.jpserver_extensions=" + repr(
    {"jupyter_taskplanner": True, **dict.fromkeys(OTHER_EXTENSIONS, False)}
)
"""Servers measured run the planner as their only extension: what is measured is the planner,
and each starts seconds sooner."""


@dataclass(frozen=True)
class Sizes:
    """How big each case is: ``full`` for the figures, ``quick`` for a smoke run, ``tiny`` for
    the test that keeps the scripts working."""

    name: str
    page_tasks: int
    page_samples: int
    create_clients: int
    create_per_client: int
    mixed_clients: int
    mixed_seconds: float
    bulk_tasks: int
    fires: int
    burst_runs: int
    burst_jobs: int
    notebook_rounds: int
    peer: bool
    lead: float
    """Seconds from creating a burst's tasks to the first due time (scheduled meanwhile)."""

    @property
    def fire_tasks(self) -> int:
        """Tasks firing every second in the fire-delay case (20, or fewer for few fires)."""
        return min(20, self.fires)


SIZES = {
    "full": Sizes("full", 10_000, 300, 8, 250, 30, 20, 100_000, 200, 1000, 1000, 7, True, 5),
    "quick": Sizes("quick", 2_000, 100, 8, 60, 30, 5, 10_000, 60, 200, 100, 2, True, 5),
    "tiny": Sizes("tiny", 200, 10, 2, 5, 3, 1, 200, 3, 5, 2, 1, False, 2),
}


@dataclass
class Row:
    """One figure of the target table, measured, with its target and its reference."""

    figure: str
    measured: str
    target: str
    reference: str
    passed: bool | None
    """None: cannot be judged in this run (a reference was not measured)."""
    values: dict[str, Any] = field(default_factory=dict)
    """The raw numbers (seconds, milliseconds, counts) behind the texts."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def verdict(passed: bool | None) -> str:
    return {True: "pass", False: "miss", None: "n/a"}[passed]


# -- numbers -----------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by nearest rank: p99 of 200 samples is the 198th smallest."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def ms(seconds: float) -> float:
    return seconds * 1000


# -- the machine -------------------------------------------------------------------------------


def machine(load: tuple[float, float]) -> dict[str, Any]:
    """What the figures were measured on; ``load``: the 1-minute load average at start and end."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        model = found.group(1).strip() if found else model
    import platform

    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": f"{load[0]:.1f} at the start, {load[1]:.1f} at the end",
    }


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmRSS:\s+(\d+)", status)
    assert found is not None
    return int(found.group(1)) / 1024


class Server:
    """A planner server for one case: its folder, database, process and clients."""

    def __init__(self, folder: Path, name: str, *options: str) -> None:
        self.folder = folder / name
        self.root = self.folder / "root"
        self.root.mkdir(parents=True, exist_ok=True)
        self.db_path = self.folder / "tasks.db"
        self.options = options
        self.process: ServerProcess | None = None

    def start(self) -> ServerProcess:
        log = self.folder / f"server-{time.monotonic_ns()}.log"
        self.process = ServerProcess(
            self.root,
            self.db_path,
            log,
            "--TaskPlannerApp.keep_runs=100000",
            PLANNER_ONLY,
            *self.options,
            owner=OWNER,
        )
        return self.process

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.process.pid

    @property
    def port(self) -> int:
        assert self.process is not None
        return self.process.port

    def client(self) -> Client:
        assert self.process is not None
        return Client(self.process.port, self.process.token)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


@contextmanager
def running(server: Server) -> Iterator[Server]:
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Client:
    """One keep-alive HTTP connection to a server, as a browser or script keeps one."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        self.conn = http.client.HTTPConnection(HOST, port, timeout=60)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Send one request; (status, decoded JSON or None).  Reconnects once if dropped."""
        data = None if body is None else json.dumps(body)
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=self.headers)
                response = self.conn.getresponse()
                raw = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(HOST, self.port, timeout=60)
                if attempt == 2:
                    raise
        return response.status, json.loads(raw) if raw else None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A planner API call that must succeed; its JSON."""
        status, reply = self.request(method, f"/taskplanner/api{path}", body)
        if status >= 400:
            raise RuntimeError(f"{method} {path}: {status} {reply}")
        return reply

    def timed(self, method: str, path: str, body: Any = None) -> tuple[float, int]:
        """(seconds, status) of one request."""
        began = time.perf_counter()
        status, _ = self.request(method, path, body)
        return time.perf_counter() - began, status

    def close(self) -> None:
        self.conn.close()


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(index)`` in ``count`` threads started together; their results in order."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # re-raised below, in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def wait_until(check: Callable[[], bool], within: float, what: str, pause: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {within:.0f} s")
        time.sleep(pause)


# -- tasks -------------------------------------------------------------------------------------


class Documents:
    """Validated task documents, made once by the planner's own ``prepare`` and varied."""

    def __init__(self, root: Path) -> None:
        self.registry = Registry.from_entry_points()
        self.context = SaveContext(
            self.registry,
            OWNER,
            ComponentRules(lambda owner, resource: True, False),
            OwnerFiles(root),
            root / ".snapshots",
        )

    def document(self, body: dict[str, Any]) -> dict[str, Any]:
        return prepare(body, self.context)


def fill(db_path: Path, documents: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> int:
    """Insert task documents straight into the store in batches (a bulk import)."""
    store = Store(db_path)
    count, batch = 0, []
    try:
        for document in documents:
            batch.append((OWNER, document))
            if len(batch) == 5000:
                store.create_tasks(batch)
                count, batch = count + len(batch), []
        if batch:
            store.create_tasks(batch)
            count += len(batch)
    finally:
        store.close()
    return count


def stamp_at(moment: float) -> str:
    """A UNIX time as an ISO date-time with offset (an interval trigger's ``start``)."""
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="microseconds")


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
