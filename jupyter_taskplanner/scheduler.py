"""The scheduler loop: fires triggers of enabled tasks, with no fixed-interval polling.

Timed triggers sit in a heap ordered by their next fire time; the loop sleeps until the
earliest one or until it is woken (a task changed in this process, or the database file was
written by another process, seen through a file watch).  Each fire is claimed through a lease
row in the store, so two servers sharing one database never fire the same trigger twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import watchfiles

from .components.base import Trigger
from .errors import TaskNotFound

log = logging.getLogger(__name__)


def trigger_key(index: int, entry: dict[str, Any]) -> str:
    """A stable key of one trigger: its position and config (editing it starts anew)."""
    digest = hashlib.sha1(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:12]
    return f"{index}:{digest}"


@dataclass
class Scheduled:
    """The scheduler's view of one enabled task."""

    task: dict[str, Any]
    timed: dict[str, Trigger] = field(default_factory=dict)
    events: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    watchers: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    generation: int = 0


class Scheduler:
    """Keeps the next fire time of every timed trigger and starts runs through the engine."""

    def __init__(self, app: Any, now: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.engine = app.engine
        self.store = app.store
        self.now = now or (lambda: datetime.now(UTC))
        self._tasks: dict[int, Scheduled] = {}
        self._heap: list[tuple[datetime, int, int, str, int]] = []
        self._counter = 0
        self._wake = asyncio.Event()
        self._seq = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._db_watch: asyncio.Task[None] | None = None
        self._db_stop = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load enabled tasks, catch up missed fires, fire server_start, then loop."""
        self._seq = await self.app.in_db(self.store.last_change)
        rows = await self.app.in_db(lambda: list(self.store.scheduled_tasks()))
        now = self.now()
        for row in rows:
            await self._load(row, now, catch_up=True)
        for scheduled in list(self._tasks.values()):
            for trigger_type, config in scheduled.events.values():
                if trigger_type == "server_start":
                    delay = config.get("delay", 0)
                    scheduled.watchers.append(
                        asyncio.ensure_future(
                            self._fire_later(scheduled.task, "server_start", delay)
                        )
                    )
        self.engine.on_finished.append(self.on_run_finished)
        self._loop_task = asyncio.ensure_future(self._loop())
        if str(self.store.path) != ":memory:":
            self._db_watch = asyncio.ensure_future(self._watch_database())
        log.info("scheduler started with %d enabled tasks", len(self._tasks))

    async def stop(self) -> None:
        self._db_stop.set()
        for scheduled in self._tasks.values():
            scheduled.stop.set()
        for task in [self._loop_task, self._db_watch] + [
            w for s in self._tasks.values() for w in s.watchers
        ]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def notify(self) -> None:
        """Wake the loop to reload changed tasks (thread-safe)."""
        loop = self._loop_task.get_loop() if self._loop_task else None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # -- loading -----------------------------------------------------------------------------

    async def _load(self, task: dict[str, Any], now: datetime, *, catch_up: bool) -> None:
        self._unload(task["id"])
        if not task["enabled"] or not task["triggers"]:
            return
        scheduled = Scheduled(task=task)
        self._tasks[task["id"]] = scheduled
        tz = ZoneInfo(task["settings"]["timezone"])
        last_fires = await self.app.in_db(self.store.last_fires, task["id"])
        baseline = datetime.fromisoformat(task["updated"])
        for index, entry in enumerate(task["triggers"]):
            key = trigger_key(index, entry)
            try:
                trigger = self.app.registry.instantiate("trigger", entry)
            except Exception:
                log.exception("task %s: cannot load trigger %s", task["id"], entry["type"])
                continue
            if type(trigger).next_fire is not Trigger.next_fire:
                scheduled.timed[key] = trigger
                since = datetime.fromisoformat(last_fires[key]) if key in last_fires else baseline
                if catch_up:
                    await self._catch_up(task, key, trigger, tz, since, now)
                self._push(task["id"], key, trigger.next_fire(max(since, now), tz), scheduled)
            else:
                scheduled.events[key] = (entry["type"], entry.get("config") or {})
                if entry["type"] == "file":
                    scheduled.watchers.append(
                        asyncio.ensure_future(self._watch_files(scheduled, trigger))
                    )

    def _unload(self, task_id: int) -> None:
        scheduled = self._tasks.pop(task_id, None)
        if scheduled is not None:
            scheduled.generation = -1
            scheduled.stop.set()
            for watcher in scheduled.watchers:
                watcher.cancel()

    def _push(self, task_id: int, key: str, due: datetime | None, scheduled: Scheduled) -> None:
        if due is None:
            return
        jitter = scheduled.task["settings"].get("jitter") or 0
        self._counter += 1
        start_at = due + timedelta(seconds=random.uniform(0, jitter)) if jitter else due
        heapq.heappush(self._heap, (start_at, self._counter, task_id, key, scheduled.generation))
        self._wake.set()

    async def _catch_up(
        self,
        task: dict[str, Any],
        key: str,
        trigger: Trigger,
        tz: ZoneInfo,
        since: datetime,
        now: datetime,
    ) -> None:
        """Handle fires missed while no server ran, per the task's misfire setting."""
        settings = task["settings"]
        grace = settings.get("misfire_grace")
        earliest = max(since, now - timedelta(seconds=grace)) if grace is not None else since
        limit = settings.get("misfire_limit", 10)
        missed: list[datetime] = []
        when = earliest
        while len(missed) < limit:
            nxt = trigger.next_fire(when, tz)
            if nxt is None or nxt > now:
                break
            missed.append(nxt)
            when = nxt
        if not missed or not await self.app.in_db(
            self.store.claim_fire, task["id"], key, now.isoformat()
        ):
            return
        count = {"skip": 0, "once": 1, "all": len(missed)}[settings["misfire"]]
        log.info(
            "task %s missed %d fires; starting %d catch-up runs", task["id"], len(missed), count
        )
        for due in missed[-count:] if count else []:
            await self.engine.submit(
                task,
                trigger="misfire",
                started_by="scheduler",
                parameters={"trigger.due": due.isoformat()},
                overlap="queue" if count > 1 else None,
            )

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            await self._reload_changes()
            now = self.now()
            while self._heap and self._heap[0][0] <= now:
                due, _, task_id, key, generation = heapq.heappop(self._heap)
                scheduled = self._tasks.get(task_id)
                if scheduled is None or scheduled.generation != generation:
                    continue
                await self._fire_timed(scheduled, key, due)
            timeout = (self._heap[0][0] - self.now()).total_seconds() if self._heap else None
            if timeout is None or timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)

    async def _fire_timed(self, scheduled: Scheduled, key: str, due: datetime) -> None:
        task = scheduled.task
        trigger = scheduled.timed[key]
        tz = ZoneInfo(task["settings"]["timezone"])
        self._push(task["id"], key, trigger.next_fire(due, tz), scheduled)
        if await self.app.in_db(self.store.claim_fire, task["id"], key, due.isoformat()):
            await self._submit(
                task, f"{trigger.type_name}:{trigger.name}", {"trigger.due": due.isoformat()}
            )

    async def _submit(self, task: dict[str, Any], trigger: str, parameters: dict[str, Any]) -> None:
        try:
            await self.engine.submit(
                task, trigger=trigger, started_by="scheduler", parameters=parameters
            )
        except Exception:
            log.exception("cannot start task %s from trigger %s", task["id"], trigger)

    async def _fire_later(self, task: dict[str, Any], trigger: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await self._submit(task, trigger, {})

    async def _reload_changes(self) -> None:
        changed, self._seq = await self.app.in_db(self.store.changes_since, self._seq)
        now = self.now()
        for task_id in changed:
            try:
                task = await self.app.in_db(self.store.get_task, task_id, None)
            except TaskNotFound:
                self._unload(task_id)
                continue
            await self._load(task, now, catch_up=False)

    async def _watch_database(self) -> None:
        """Wake on writes by other processes sharing the database (e.g. the CLI)."""
        folder = Path(self.store.path).parent
        names = {Path(self.store.path).name, Path(self.store.path).name + "-wal"}
        async for _ in watchfiles.awatch(
            folder,
            stop_event=self._db_stop,
            debounce=50,
            step=20,
            recursive=False,
            watch_filter=lambda _, path: Path(path).name in names,
        ):
            self._wake.set()

    # -- event triggers ----------------------------------------------------------------------

    async def _watch_files(self, scheduled: Scheduled, trigger: Any) -> None:
        root = self.app.owner_root(scheduled.task["owner"])
        try:
            async for placeholders in trigger.watch(root, scheduled.stop):
                await self._submit(scheduled.task, f"file:{trigger.name}", placeholders)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s: file trigger stopped", scheduled.task["id"])

    async def on_run_finished(self, run: dict[str, Any]) -> None:
        """Start tasks whose after_task trigger listens to the finished run's task."""
        if run["status"] == "skipped":
            return
        succeeded = run["status"] == "succeeded"
        for scheduled in list(self._tasks.values()):
            task = scheduled.task
            if task["owner"] != run["owner"]:
                continue
            for trigger_type, config in scheduled.events.values():
                if trigger_type != "after_task" or config.get("task_id") != run["task_id"]:
                    continue
                on = config.get("on", "success")
                if on == "always" or (on == "success") == succeeded:
                    if task["id"] in run["chain"]:
                        log.info("task %s already ran in this chain; not again", task["id"])
                        continue
                    await self.engine.submit(
                        task,
                        trigger=f"after_task:{run['task_id']}",
                        started_by="scheduler",
                        chain=run["chain"],
                    )

    async def fire_http(self, task: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.submit(
            task, trigger="http", started_by="http", parameters=parameters
        )
