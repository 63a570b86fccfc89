"""The scheduler loop: fires triggers of enabled tasks, with no fixed-interval polling.

The next fire time of every timed trigger is kept in the store (indexed), so start-up reads
only the earliest batch instead of computing every task's schedule.  The loop keeps that batch
in a heap and sleeps until its earliest entry or until it is woken: a task changed in this
process, or the database file was written by another process (seen through a file watch).

Firing moves the stored schedule on with a compare-and-set and records the fire's runs in the
same transaction (``Store.fire``): only one process wins each fire, a fire is never taken
without its runs, and a fire found late (server down, machine asleep) is handled by the
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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import watchfiles

from .bus import EventBus
from .components.base import TimedTrigger, next_fire_or_none
from .components.registry import Registry
from .database import Database
from .engine import RunEngine, busy_skip
from .errors import TooManyRequests, Unavailable
from .listeners import EventListeners
from .owners import OwnerFolders
from .store import Horizon, ScheduledTask, stamp
from .vocabulary import RunRecord, TaskRecord

BATCH = 1000
CATCH_UP_BATCH = 250
"""Tasks scheduled per database call while catching up: small enough that API calls queued
behind one on the database thread wait a few milliseconds only."""
MAX_NEXT_FIRE_CALLS = 10_000
"""The most ``next_fire`` calls one misfire computation makes: it runs in the event loop, and a
plugin trigger may fire far more densely than the search expects (10 times the largest limit)."""
FIRE_RETRY = 1.0
"""Seconds before a fire that failed (e.g. the database could not be written) is tried again;
doubled after each further failure, up to ``FIRE_RETRY_MAX``."""
FIRE_RETRY_MAX = 60.0
_FIRST_SPAN = timedelta(seconds=1)
_TICK = timedelta(microseconds=1)


def trigger_key(index: int, entry: Mapping[str, Any]) -> str:
    """A stable key of one trigger: its position and config (editing it starts anew)."""
    digest = hashlib.sha1(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:12]
    return f"{index}:{digest}"


def missed_fires(
    trigger: TimedTrigger,
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
            nxt = next_fire_or_none(trigger, when, tz)
            if nxt is None or nxt.astimezone(UTC) > end or nxt <= when:
                break
            when = nxt.astimezone(UTC)
            window.append(when)
        fires[:0] = window
        end, span = start, span * 2
    if first_qualifies and end == first and len(fires) < limit:
        fires.insert(0, first)
    return fires


class Scheduler:
    """Starts runs through the engine when triggers fire.

    Timed triggers are kept here (the heap); tasks with event triggers are registered with
    ``listeners``, which this scheduler keeps in step with the stored tasks.
    """

    def __init__(
        self,
        *,
        db: Database,
        registry: Registry,
        engine: RunEngine,
        bus: EventBus,
        owners: OwnerFolders,
        misfire_tolerance: float = 30.0,
        now: Callable[[], datetime] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.db = db
        self.store = db.store
        self.registry = registry
        self.engine = engine
        self.bus = bus
        self.misfire_tolerance = misfire_tolerance
        self.now = now or (lambda: datetime.now(UTC))
        self.log = log or logging.getLogger(__name__)
        self.listeners = EventListeners(db, registry, bus, owners.files, self._submit, self.log)
        engine.followers = self.listeners.follow
        self._heap: list[tuple[datetime, int, int, str, str]] = []
        self._horizon: Horizon | None = None
        """Where the fires loaded into the heap end (None: every fire is in it)."""
        self._counter = 0
        self._failures: dict[tuple[int, str], int] = {}
        """Fires that failed in a row, by task id and trigger key (``_retry_later``)."""
        self._wake = asyncio.Event()
        self._seq = 0
        self._loop_task: asyncio.Task[None] | None = None
        self._db_watch: asyncio.Task[None] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Schedule new or changed tasks, load the earliest fires, watch the event triggers'
        sources, loop (after ``listen``)."""
        await self.db.call(self.store.drop_unscheduled)
        self.listeners.watch_sources()
        await self._load_batch()
        self._loop_task = asyncio.ensure_future(self._loop())
        if str(self.store.path) != ":memory:":
            self._db_watch = asyncio.ensure_future(self._watch_database())
        self.log.info(
            "scheduler started: %d fires loaded, %d tasks listening to events",
            len(self._heap),
            self.listeners.count,
        )
        self._catching_up = asyncio.ensure_future(self._catch_up())

    async def listen(self) -> None:
        """Follow the planner's events: a run that ends here starts the tasks triggered by
        its end.  The command line does only this; a server then ``start``s."""
        # Changes from here on are reloaded by the loop ``start`` begins.
        self._seq = await self.db.call(self.store.last_change)
        await self.listeners.load()

    async def _catch_up(self) -> None:
        """Schedule tasks written while no scheduler ran (imports, other versions), in batches.

        Runs beside the loop, so a large backlog does not delay the server's start.
        """
        scheduled = after = 0
        while stale := await self.db.call(self.store.tasks_to_schedule, CATCH_UP_BATCH, after):
            await self._schedule(stale)
            scheduled += len(stale)
            after = stale[-1]["id"]
            if self._horizon is None and len(self._heap) > BATCH:
                # Started with fewer fires than a batch: keep the earliest batch only, as a
                # start with these tasks already scheduled would.
                await self._load_batch()
        if scheduled:
            self.log.info("scheduler: %d new or changed tasks scheduled", scheduled)

    async def stop(self) -> None:
        self._stopping.set()
        await self.listeners.stop()
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

    def _timed(
        self, task: ScheduledTask, loaded: dict[str, TimedTrigger | None] | None = None
    ) -> dict[str, TimedTrigger]:
        """The task's timed triggers by key.

        ``loaded``: triggers already made from identical entries (by digest; None for one that
        is not timed or cannot be loaded), shared across the tasks of one batch.
        """
        found = {}
        for index, entry in enumerate(task["triggers"]):
            key = trigger_key(index, entry)
            digest = key.partition(":")[2]
            if loaded is not None and digest in loaded:
                trigger = loaded[digest]
            else:
                trigger = self._load_trigger(task, entry)
                if loaded is not None:
                    loaded[digest] = trigger
            if trigger is not None:
                found[key] = trigger
        return found

    def _load_trigger(self, task: ScheduledTask, entry: Mapping[str, Any]) -> TimedTrigger | None:
        try:
            trigger = self.registry.instantiate("trigger", dict(entry))
        except Exception:
            self.log.exception("task %s: cannot load trigger %s", task["id"], entry["type"])
            return None
        return trigger if isinstance(trigger, TimedTrigger) else None

    async def _schedule(self, tasks: Sequence[ScheduledTask]) -> None:
        """Compute and store the next fire of each timed trigger of new or changed tasks."""
        planned = await self.db.call(self._plan, tasks, self.now())
        for task, rows in zip(tasks, planned, strict=True):
            for key, (_, nxt) in rows.items():
                if nxt is not None and self._within(nxt, task["id"], key):
                    self._push(task, key, nxt)

    def _plan(
        self, tasks: Sequence[ScheduledTask], now: datetime
    ) -> list[dict[str, tuple[str | None, str | None]]]:
        """On the database thread: each task's schedule rows, computed and stored at once."""
        previous = self.store.schedules_of([task["id"] for task in tasks])
        planned = []
        # Tasks imported together often share triggers.  At one moment a trigger's next fire
        # follows from its entry, the timezone and the time asked from alone, so each
        # distinct one is loaded and computed once per batch.
        loaded: dict[str, TimedTrigger | None] = {}
        fires: dict[tuple[str, str, datetime], str | None] = {}
        # Tasks read together with the same triggers share one list (``tasks_to_schedule``):
        # their keys and triggers are worked out once.
        timed: dict[int, dict[str, TimedTrigger]] = {}
        for task in tasks:
            rows: dict[str, tuple[str | None, str | None]] = {}
            try:
                zone = task["settings"]["timezone"]
                tz = ZoneInfo(zone)
                shared = id(task["triggers"])
                if shared not in timed:
                    timed[shared] = self._timed(task, loaded)
                for key, trigger in timed[shared].items():
                    last = previous.get(task["id"], {}).get(key, {}).get("last_fire")
                    since = max(now, datetime.fromisoformat(last)) if last else now
                    known = (key.partition(":")[2], zone, since)
                    if known not in fires:
                        nxt = next_fire_or_none(trigger, since, tz)
                        fires[known] = stamp(nxt) if nxt else None
                    rows[key] = (last, fires[known])
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

    def _within(self, due: str, task_id: int, key: str) -> bool:
        """Whether a fire belongs in the heap: up to the horizon of the loaded batch."""
        return self._horizon is None or (due, task_id, key) <= self._horizon

    async def _load_batch(self) -> None:
        rows, self._horizon = await self.db.call(self.store.upcoming_fires, BATCH)
        self._heap = []
        for task_id, key, due in rows:
            self._push_entry(task_id, key, due, 0)

    def _push(self, task: ScheduledTask, key: str, due: str) -> None:
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
                self._retry_later(task_id, key, due)
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
            self.engine.check_open()
        except Unavailable:
            return  # stopping: the fire stays due, for the next start to take
        fired = await self.db.call(self._take, task_id, key, due, self.now())
        self._failures.pop((task_id, key), None)
        if fired is None:
            return
        task, runs, next_stamp = fired
        if next_stamp is not None and self._within(next_stamp, task_id, key):
            self._push(task, key, next_stamp)
        for run in runs:
            self.engine.accept(run)

    def _take(
        self, task_id: int, key: str, due: str, now: datetime
    ) -> tuple[TaskRecord, list[RunRecord], str | None] | None:
        """On the database thread, in one call: read the task, work out the fires to start
        (the one ``due``, or those missed when it is late) and its next fire, then take the
        fire's lease and record its runs in one transaction (``Store.fire``).

        (task, runs recorded, next fire), or None when there is nothing to fire (the task
        is gone, disabled, changed, or another process took the fire).
        """
        task = self.store.find_task(task_id)
        if task is None:
            return None
        trigger = self._timed(task).get(key)
        if trigger is None or not task["enabled"]:
            return None
        settings = task["settings"]
        tz = ZoneInfo(settings["timezone"])
        due_at = datetime.fromisoformat(due)
        late = (now - due_at).total_seconds() > self.misfire_tolerance
        label = f"{trigger.type_name}:{trigger.name}"
        missed = fires = [due_at]
        overlap = None
        if late:
            # Only ``all`` runs more than the latest; the latest is the stored last fire.
            limit = settings.get("misfire_limit", 10) if settings["misfire"] == "all" else 1
            missed = missed_fires(trigger, tz, due_at, now, settings.get("misfire_grace"), limit)
            fires = [] if settings["misfire"] == "skip" else missed
            overlap = "queue" if len(fires) > 1 else None
        nxt = next_fire_or_none(trigger, now if late else due_at, tz)
        next_stamp = stamp(nxt) if nxt else None
        last = stamp(missed[-1] if missed else now)
        runs = [
            self.engine.run_fields(
                task,
                trigger="misfire" if late else label,
                started_by="scheduler",
                parameters=self._fire_values(trigger, when, tz),
            )
            for when in fires
        ]
        recorded = self.store.fire(
            task_id, key, due, last, next_stamp, runs, busy_skip(task, overlap)
        )
        if recorded is None:
            return None
        if late:
            self.log.info(
                "task %s missed the fires of %s since %s; %d catch-up runs started",
                task_id,
                label,
                due,
                len(recorded),
            )
        return task, recorded, next_stamp

    def _retry_later(self, task_id: int, key: str, due: str) -> None:
        """Try a fire that failed again later, waiting longer after each failure.

        Its lease and its runs are written in one transaction, so a failed fire wrote
        nothing: the stored schedule still has it due (a restart takes it too).
        """
        failures = self._failures[(task_id, key)] = self._failures.get((task_id, key), 0) + 1
        delay = min(FIRE_RETRY * 2 ** (failures - 1), FIRE_RETRY_MAX)
        self.log.exception(
            "task %s: firing trigger %s failed; trying again in %g s", task_id, key, delay
        )
        self._counter += 1
        start_at = self.now() + timedelta(seconds=delay)
        heapq.heappush(self._heap, (start_at, self._counter, task_id, key, due))

    def _fire_values(self, trigger: TimedTrigger, due: datetime, tz: ZoneInfo) -> dict[str, Any]:
        """The placeholders of a timed fire: ``trigger.due`` and what the trigger adds."""
        try:
            extra = trigger.fire_placeholders(due, tz)
        except Exception:
            self.log.exception("trigger %s: cannot describe its fire at %s", trigger.name, due)
            extra = {}
        return {**extra, "trigger.due": due.isoformat()}

    async def _submit(
        self,
        task: TaskRecord,
        trigger: str,
        parameters: dict[str, Any],
        overlap: str | None = None,
        *,
        chain: tuple[int, ...] = (),
        started_by: str = "scheduler",
        refuse: bool = False,
    ) -> RunRecord | None:
        """Start a run of ``task``; the run, or None (logged) when it could not start
        (``refuse``: past the owner's queue limit, ``TooManyRequests``)."""
        try:
            return await self.engine.submit(
                task,
                trigger=trigger,
                started_by=started_by,
                parameters=parameters,
                overlap=overlap,
                chain=chain,
                refuse=refuse,
            )
        except Unavailable:
            return None
        except TooManyRequests:
            raise  # only with refuse: the caller is answered 429
        except Exception:
            self.log.exception("cannot start task %s from trigger %s", task["id"], trigger)
            return None

    async def _reload_changes(self) -> None:
        changed, self._seq = await self.db.call(self.store.changes_since, self._seq)
        if not changed:
            return
        stale = []
        for task_id, task, rows in await self.db.call(self._read_changes, changed):
            self.listeners.unlisten(task_id)
            if task is None:
                continue
            if rows is None:
                stale.append(task)
            else:
                for key, row in rows.items():  # scheduled by another process
                    nxt = row["next_fire"]
                    if nxt is not None and self._within(nxt, task_id, key):
                        self._push(task, key, nxt)
            self.listeners.listen(task)
        for start in range(0, len(stale), CATCH_UP_BATCH):
            await self._schedule(stale[start : start + CATCH_UP_BATCH])

    def _read_changes(
        self, task_ids: list[int]
    ) -> list[tuple[int, TaskRecord | None, dict[str, dict[str, Any]] | None]]:
        """On the database thread, in one call for a burst of changes: each changed task
        with its schedule rows when another process already scheduled its revision (None:
        to schedule here).  A task deleted, disabled or left without triggers comes as None,
        its schedule cleared."""
        found: list[tuple[int, TaskRecord | None, dict[str, dict[str, Any]] | None]] = []
        for task_id in task_ids:
            task = self.store.find_task(task_id)
            if task is None or not task["enabled"] or not task["triggers"]:
                self.store.clear_schedule(task_id)
                found.append((task_id, None, None))
                continue
            rows = self.store.schedule_rows(task_id)
            current = any(row["revision"] == task["revision"] for row in rows.values())
            found.append((task_id, task, rows if current else None))
        return found

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
