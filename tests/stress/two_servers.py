"""Two servers on one database: every fire taken by exactly one of them.

``two_servers`` starts two servers on one database, stores ``tasks`` tasks there (as an
import from the command line does) whose one-off time triggers come due over a window, and
waits until every fire was recorded.  Each
trigger fires once, so the runs must be exactly one per (task, due time): a second run is a
duplicate, a missing one a lost fire.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import saved_document

from .common import OWNER, Figures, Workspace, duplicates, wait

LEAD = timedelta(seconds=10)
"""Time given to both servers to schedule the new tasks before the first fire comes due."""


def _once(at: datetime) -> dict[str, Any]:
    return {
        "type": "time",
        "config": {"start_date": at.date().isoformat(), "time": at.strftime("%H:%M:%S")},
    }


def _store_tasks(
    db: Path, tasks: int, fires: int, spread: int
) -> tuple[set[tuple[int, str]], datetime]:
    """Store the tasks: task j's trigger i comes due at first + (j % spread) + i * spread
    seconds, so ``tasks / spread`` fires come due each second; the expected (task, due)
    pairs and the last due time."""
    first = (datetime.now(UTC) + LEAD).replace(microsecond=0)
    registry = Registry.from_entry_points()
    items, dues = [], []
    for j in range(tasks):
        at = [first + timedelta(seconds=j % spread + i * spread) for i in range(fires)]
        body = {
            "name": f"fires {j}",
            "triggers": [_once(when) for when in at],
            "settings": {"timezone": "UTC", "misfire": "all", "overlap": "parallel"},
        }
        items.append((OWNER, saved_document(body, registry, OWNER)))
        dues.append(at)
    store = Store(db)
    try:
        created = store.create_tasks(items)
    finally:
        store.close()
    expected = {
        (task["id"], when.isoformat())
        for task, at in zip(created, dues, strict=True)
        for when in at
    }
    return expected, max(max(at) for at in dues)


def two_servers(folder: Path, tasks: int, fires: int, spread: int) -> Figures:
    """``tasks * fires`` fires, ``tasks / spread`` a second, taken by two servers."""
    figures = Figures("two servers on one database", unit="fires")
    started = time.monotonic()
    ws = Workspace(folder)
    servers = [ws.server(), ws.server()]
    try:
        expected, last = _store_tasks(ws.db, tasks, fires, spread)

        def recorded() -> int:
            return len({(r["task_id"], r["due"]) for r in ws.runs() if r["due"]})

        ahead = (last - datetime.now(UTC)).total_seconds()
        # Every fire comes due by ``last``; late ones are caught up (misfire: all).
        wait(lambda: recorded() >= len(expected), ahead + 120, 1.0)
        time.sleep(3)  # time for a duplicate to appear
    finally:
        for server in servers:
            server.stop()
    runs = ws.runs()
    found = Counter((run["task_id"], run["due"]) for run in runs if run["due"])
    lost = expected - set(found)
    extra = set(found) - expected
    figures.cases = len(expected)
    figures.failures.extend(duplicates(runs))
    figures.failures.extend(f"task {t}: the fire at {due} was lost" for t, due in sorted(lost))
    figures.failures.extend(f"task {t}: a fire at {due} never set" for t, due in sorted(extra))
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    by_server = Counter(run["holder"] for run in runs)
    late = sum(run["trigger"] == "misfire" for run in runs)
    figures.notes.update(
        duplicates=sum(n - 1 for n in found.values() if n > 1),
        lost=len(lost),
        per_server=sorted(by_server.values()),
        caught_up_late=late,
        rate=round(tasks / spread, 1),
    )
    figures.expect(len(by_server) == 2, f"one server took every fire: {dict(by_server)}")
    figures.seconds = time.monotonic() - started
    return figures
