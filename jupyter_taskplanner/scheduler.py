"""The scheduler loop: fires triggers of enabled tasks, with no fixed-interval polling.

The next fire time of every timed trigger is kept in the store (indexed), so start-up reads
only the earliest batch instead of computing every task's schedule.  The loop keeps that batch
in a heap and sleeps until its earliest entry or until it is woken: a task changed in this
process, or the database file was written by another process (seen through a file watch).

Firing moves the stored schedule on with a compare-and-set (``Store.advance_fire``): only one
process wins each fire, and a fire found late (server down, machine asleep) is handled by the
task's misfire policy.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import watchfiles

from .components.base import Trigger
from .errors import TaskNotFound
from .process_lock import ProcessLock
from .store import stamp
from .triggers.events import AfterTaskTrigger

BATCH = 1000
MAX_NEXT_FIRE_CALLS = 10_000
"""The most ``next_fire`` calls one misfire computation makes: it runs in the event loop, and a
plugin trigger may fire far more densely than the search expects (10 times the largest limit)."""
_FIRST_SPAN = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)


def trigger_key(index: int, entry: dict[str, Any]) -> str:
    """A stable key of one trigger: its position and config (editing it starts anew)."""
    digest = hashlib.sha1(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:12]
    return f"{index}:{digest}"


def is_timed(trigger: Trigger) -> bool:
    """Whether a trigger has fire times (otherwise the scheduler fires it on events)."""
    return type(trigger).next_fire is not Trigger.next_fire


def watches(trigger: Trigger) -> bool:
    """Whether a trigger is an event source the scheduler iterates (``Trigger.watch``)."""
    return type(trigger).watch is not Trigger.watch


def missed_fires(
    trigger: Trigger,
    tz: ZoneInfo,
    first: datetime,
    now: datetime,
    grace: float | None,
    limit: int,
) -> list[datetime]:
    """The latest fires from ``first`` (itself a fire) up to ``now``, oldest first, in UTC: at
    most ``limit``, and none more than ``grace`` seconds old when ``grace`` is set.

    Triggers only tell the next fire and a downtime can hold millions, so this searches back
    from ``now`` in windows that double in length, each adding only its older, unsearched
    part: the cost follows ``limit``, not the length of the downtime.
    """
    first, now = first.astimezone(UTC), now.astimezone(UTC)
    # Fires strictly after ``lower`` qualify, and ``first`` itself unless grace excludes it.
    lower, first_qualifies = first, True
    if grace is not None and grace < (now - first).total_seconds():
        # One tick less: the datetimes' resolution, so a fire exactly ``grace`` old counts.
        lower, first_qualifies = max(first, now - timedelta(seconds=grace) - _TICK), False
    fires: list[datetime] = []
    calls, end, span = 0, now, _FIRST_SPAN
    while len(fires) < limit and end > lower:
        start = lower if end - lower <= span else end - span
        window: deque[datetime] = deque(maxlen=limit - len(fires))
        when = start
        while True:
            if calls >= MAX_NEXT_FIRE_CALLS:
                # The window's unsearched end holds newer fires than those kept: drop it.
                return fires
            calls += 1
            nxt = trigger.next_fire(when, tz)
            if nxt is None or nxt.astimezone(UTC) > end or nxt <= when:
                break
            when = nxt.astimezone(UTC)
            window.append(when)
        fires[:0] = window
        end, span = start, span * 2
    if first_qualifies and end == first and len(fires) < limit:
        fires.insert(0, first)
    return fires


@dataclass
class Listening:
    """An enabled task with event triggers, and the watchers started for it."""

    task: dict[str, Any]
    events: list[Trigger] = field(default_factory=list)
    watchers: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)


async def start_after_task(
    engine: Any, run: dict[str, Any], candidates: Iterable[tuple[dict[str, Any], list[Trigger]]]
) -> None:
    """Start each candidate task (with its triggers) that an after_task trigger ties to ``run``.

    Only tasks of the run's owner follow it, and none that already ran in its chain.
    """
    for task, triggers in candidates:
        if task["owner"] != run["owner"]:
            continue
        if not any(isinstance(t, AfterTaskTrigger) and t.fires_after(run) for t in triggers):
            continue
        if task["id"] in run["chain"]:
            engine.log.info("task %s already ran in this chain; not again", task["id"])
            continue
        await engine.submit(
            task, trigger=f"after_task:{run['task_id']}", started_by="scheduler", chain=run["chain"]
        )


class Scheduler:
    """Starts runs through the engine when triggers fire."""

    def __init__(self, app: Any, now: Callable[[], datetime] | None = None) -> None:
        self.app = app
        self.log: logging.Logger = app.log
        self.engine = app.engine
        self.store = app.store
        self.registry = app.registry
        self.now = now or (lambda: datetime.now(UTC))
        self._heap: list[tuple[datetime, int, int, str, str]] = []
        self._horizon: str | None = None
        self._counter = 0
        self._listening: dict[int, Listening] = {}
        self._wake = asyncio.Event()
        self._seq = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._db_watch: asyncio.Task[None] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._watching = False
        """Whether this process watches event sources (one process per database does)."""
        self._watch_lock: ProcessLock | None = None
        self._event_types = [
            cls.type_name
            for cls in self.registry.of_kind("trigger")
            if cls.next_fire is Trigger.next_fire
        ]

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.app.in_db(fn, *args, **kwargs)

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Schedule new or changed tasks, load the earliest fires and event triggers, loop."""
        self._seq = await self.db(self.store.last_change)
        await self.db(self.store.drop_unscheduled)
        self._watching = self._take_watch_lock()
        for task in await self.db(self.store.tasks_with_trigger_types, self._event_types):
            self._listen(task, starting=True)
        await self._load_batch()
        self.engine.on_finished.append(self.on_run_finished)
        self._loop_task = asyncio.ensure_future(self._loop())
        if str(self.store.path) != ":memory:":
            self._db_watch = asyncio.ensure_future(self._watch_database())
        self.log.info(
            "scheduler started: %d fires loaded, %d tasks listening to events",
            len(self._heap),
            len(self._listening),
        )
        self._catching_up = asyncio.ensure_future(self._catch_up())

    def _take_watch_lock(self) -> bool:
        """Whether this process may watch event sources now; if not, it takes over later.

        Two servers sharing a database would both see a changed file and start two runs, so
        only the holder of a lock next to the database watches (the lease of timed fires does
        not cover events).
        """
        if str(self.store.path) == ":memory:":
            return True
        path = Path(self.store.path)
        self._watch_lock = ProcessLock(path.with_name(f"{path.name}.watch-lock"))
        taken = self._watch_lock.acquire_then(asyncio.get_running_loop(), self._take_over_watching)
        if not taken:
            self.log.info("another server on this database watches event triggers; waiting")
        return taken

    def _take_over_watching(self) -> None:
        """The server that watched event sources ended: watch them here from now on."""
        if self._stopping.is_set():
            return
        self._watching = True
        self.log.info("this server now watches event triggers")
        for listening in self._listening.values():
            self._start_watches(listening)

    def _start_watches(self, listening: Listening) -> None:
        for trigger in listening.events:
            if watches(trigger):
                listening.watchers.append(asyncio.ensure_future(self._watch(listening, trigger)))

    async def _catch_up(self) -> None:
        """Schedule tasks written while no scheduler ran (imports, other versions), in batches.

        Runs beside the loop, so a large backlog does not delay the server's start.
        """
        scheduled = 0
        while stale := await self.db(self.store.tasks_to_schedule, BATCH):
            await self._schedule(stale)
            scheduled += len(stale)
        if scheduled:
            self.log.info("scheduler: %d new or changed tasks scheduled", scheduled)

    async def stop(self) -> None:
        self._stopping.set()
        watchers = [w for task_id in list(self._listening) for w in self._unlisten(task_id)]
        # Let them finish: watchfiles waits in anyio worker threads, which end only with the
        # task that started them, and a thread left waiting keeps the process from exiting.
        await asyncio.gather(*watchers, return_exceptions=True)
        if self._watch_lock is not None:
            self._watch_lock.release()
        for task in (self._catching_up, self._loop_task, self._db_watch):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def notify(self) -> None:
        """Wake the loop to reload changed tasks (thread-safe)."""
        loop = self._loop_task.get_loop() if self._loop_task else None
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    # -- schedules ---------------------------------------------------------------------------

    def _timed(self, task: dict[str, Any]) -> dict[str, Trigger]:
        """The task's timed triggers by key."""
        found = {}
        for index, entry in enumerate(task["triggers"]):
            try:
                trigger = self.registry.instantiate("trigger", entry)
            except Exception:
                self.log.exception("task %s: cannot load trigger %s", task["id"], entry["type"])
                continue
            if is_timed(trigger):
                found[trigger_key(index, entry)] = trigger
        return found

    async def _schedule(self, tasks: list[dict[str, Any]]) -> None:
        """Compute and store the next fire of each timed trigger of new or changed tasks."""
        planned = await self.db(self._plan, tasks, self.now())
        for task, rows in zip(tasks, planned, strict=True):
            for key, (_, nxt) in rows.items():
                if nxt is not None and (self._horizon is None or nxt <= self._horizon):
                    self._push(task, key, nxt)

    def _plan(
        self, tasks: list[dict[str, Any]], now: datetime
    ) -> list[dict[str, tuple[str | None, str | None]]]:
        """On the database thread: each task's schedule rows, computed and stored at once."""
        previous = self.store.schedules_of([task["id"] for task in tasks])
        planned = []
        for task in tasks:
            rows: dict[str, tuple[str | None, str | None]] = {}
            try:
                tz = ZoneInfo(task["settings"]["timezone"])
                for key, trigger in self._timed(task).items():
                    last = previous.get(task["id"], {}).get(key, {}).get("last_fire")
                    since = max(now, datetime.fromisoformat(last)) if last else now
                    nxt = trigger.next_fire(since, tz)
                    rows[key] = (last, stamp(nxt) if nxt else None)
            except Exception:
                # One broken stored task must not stop the others from being scheduled.
                self.log.exception("task %s: cannot compute its next fire times", task["id"])
                rows = {}
            planned.append(rows)
        # Event-only tasks get a row too, so the task counts as scheduled at this revision.
        self.store.set_schedules(
            [
                (task["id"], task["revision"], rows or {"-": (None, None)})
                for task, rows in zip(tasks, planned, strict=True)
            ]
        )
        return planned

    async def _load_batch(self) -> None:
        rows, self._horizon = await self.db(self.store.upcoming_fires, BATCH)
        self._heap = []
        for task_id, key, due in rows:
            self._push_entry(task_id, key, due, 0)

    def _push(self, task: dict[str, Any], key: str, due: str) -> None:
        jitter = task["settings"].get("jitter") or 0
        self._push_entry(task["id"], key, due, random.uniform(0, jitter) if jitter else 0)

    def _push_entry(self, task_id: int, key: str, due: str, jitter: float) -> None:
        self._counter += 1
        start_at = datetime.fromisoformat(due) + timedelta(seconds=jitter)
        heapq.heappush(self._heap, (start_at, self._counter, task_id, key, due))
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------------

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self._step()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad task must not stop scheduling for everyone; retry after a pause.
                self.log.exception("scheduler error")
                await asyncio.sleep(1)

    async def _step(self) -> None:
        """Reload changes, fire what is due, then sleep until the next fire or a wake-up."""
        self._wake.clear()
        await self._reload_changes()
        while self._heap and self._heap[0][0] <= self.now():
            _, _, task_id, key, due = heapq.heappop(self._heap)
            try:
                await self._fire(task_id, key, due)
            except Exception:
                self.log.exception("task %s: firing trigger %s failed", task_id, key)
        if not self._heap and self._horizon is not None:
            await self._load_batch()
            return
        timeout = (self._heap[0][0] - self.now()).total_seconds() if self._heap else None
        if timeout is None or timeout > 0:
            # Not asyncio.wait_for: on Python 3.11 it can swallow a cancellation that comes
            # as the event is set, and stop() would then wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()

    async def _fire(self, task_id: int, key: str, due: str) -> None:
        """Fire one due trigger, or catch up per the misfire policy when it is late."""
        try:
            task = await self.db(self.store.get_task, task_id, None)
        except TaskNotFound:
            return
        trigger = self._timed(task).get(key)
        if trigger is None or not task["enabled"]:
            return
        settings = task["settings"]
        tz = ZoneInfo(settings["timezone"])
        now = self.now()
        due_at = datetime.fromisoformat(due)
        late = (now - due_at).total_seconds() > self.app.misfire_tolerance
        policy = settings["misfire"]
        missed = [due_at]
        if late:
            # Only ``all`` runs more than the latest; the latest is the stored last fire.
            limit = settings.get("misfire_limit", 10) if policy == "all" else 1
            missed = missed_fires(trigger, tz, due_at, now, settings.get("misfire_grace"), limit)
        nxt = trigger.next_fire(now if late else due_at, tz)
        next_stamp = stamp(nxt) if nxt else None
        if not await self.db(
            self.store.advance_fire,
            task_id,
            key,
            due,
            stamp(missed[-1] if missed else now),
            next_stamp,
        ):
            return
        if next_stamp is not None and (self._horizon is None or next_stamp <= self._horizon):
            self._push(task, key, next_stamp)
        label = f"{trigger.type_name}:{trigger.name}"
        if not late:
            await self._submit(task, label, {"trigger.due": due_at.isoformat()})
            return
        catch_up = [] if policy == "skip" else missed
        self.log.info(
            "task %s missed the fires of %s since %s; starting %d catch-up runs",
            task_id,
            label,
            due,
            len(catch_up),
        )
        for when in catch_up:
            await self._submit(
                task,
                "misfire",
                {"trigger.due": when.isoformat()},
                "queue" if len(catch_up) > 1 else None,
            )

    async def _submit(
        self,
        task: dict[str, Any],
        trigger: str,
        parameters: dict[str, Any],
        overlap: str | None = None,
    ) -> None:
        try:
            await self.engine.submit(
                task,
                trigger=trigger,
                started_by="scheduler",
                parameters=parameters,
                overlap=overlap,
            )
        except Exception:
            self.log.exception("cannot start task %s from trigger %s", task["id"], trigger)

    async def _reload_changes(self) -> None:
        changed, self._seq = await self.db(self.store.changes_since, self._seq)
        for task_id in changed:
            self._unlisten(task_id)
            try:
                task = await self.db(self.store.get_task, task_id, None)
            except TaskNotFound:
                await self.db(self.store.clear_schedule, task_id)
                continue
            if not task["enabled"] or not task["triggers"]:
                await self.db(self.store.clear_schedule, task_id)
                continue
            rows = await self.db(self.store.schedule_rows, task_id)
            if any(row["revision"] == task["revision"] for row in rows.values()):
                for key, row in rows.items():  # scheduled by another process
                    nxt = row["next_fire"]
                    if nxt is not None and (self._horizon is None or nxt <= self._horizon):
                        self._push(task, key, nxt)
            else:
                await self._schedule([task])
            self._listen(task, starting=False)

    async def _watch_database(self) -> None:
        """Wake on writes by other processes sharing the database (e.g. the CLI)."""
        folder = Path(self.store.path).parent
        names = {Path(self.store.path).name, Path(self.store.path).name + "-wal"}
        async for _ in watchfiles.awatch(
            folder,
            stop_event=self._stopping,
            debounce=50,
            step=20,
            recursive=False,
            watch_filter=lambda _, path: Path(path).name in names,
        ):
            self._wake.set()

    # -- event triggers ----------------------------------------------------------------------

    def _listen(self, task: dict[str, Any], *, starting: bool) -> None:
        """Register a task's event triggers (file watches, after_task, server_start)."""
        events = []
        for entry in task["triggers"]:
            if entry["type"] in self._event_types:
                with contextlib.suppress(Exception):
                    events.append(self.registry.instantiate("trigger", entry))
        if not events:
            return
        listening = Listening(task=task, events=events)
        self._listening[task["id"]] = listening
        if self._watching:
            self._start_watches(listening)
        for trigger in events:
            if trigger.type_name == "server_start" and starting:
                listening.watchers.append(
                    asyncio.ensure_future(self._fire_later(task, trigger.config.get("delay", 0)))
                )

    def _unlisten(self, task_id: int) -> list[asyncio.Task[None]]:
        """Stop a task's event triggers; returns their watchers, which end soon after."""
        listening = self._listening.pop(task_id, None)
        if listening is None:
            return []
        listening.stop.set()
        for watcher in listening.watchers:
            watcher.cancel()
        return listening.watchers

    async def _fire_later(self, task: dict[str, Any], delay: float) -> None:
        await asyncio.sleep(delay)
        await self._submit(task, "server_start", {})

    async def _watch(self, listening: Listening, trigger: Trigger) -> None:
        """Start a run of the task per event of one event trigger, until it is unlistened."""
        root = self.app.owner_root(listening.task["owner"])
        label = f"{trigger.type_name}:{trigger.name}"
        try:
            async for placeholders in trigger.watch(root, listening.stop):
                await self._submit(listening.task, label, dict(placeholders or {}))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("task %s: trigger %s stopped", listening.task["id"], label)

    async def on_run_finished(self, run: dict[str, Any]) -> None:
        """Start tasks whose after_task trigger listens to the finished run's task."""
        listening = [(item.task, item.events) for item in self._listening.values()]
        await start_after_task(self.engine, run, listening)

    async def fire_http(self, task: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        return await self.engine.submit(
            task, trigger="http", started_by="http", parameters=parameters
        )
