"""Tasks that start on events: outside sources they watch, and the planner's own events."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .bus import EventBus, PlannerEvent, RunFinished
from .components.base import EventTrigger, Fire, PlannerEventTrigger, Trigger
from .components.registry import Registry
from .database import Database
from .errors import InvalidConfig
from .paths import OwnerFiles
from .process_lock import ProcessLock
from .vocabulary import RunRecord, TaskRecord


class Submit(Protocol):
    """Starts a run of ``task`` (``Scheduler._submit``): the run, or None when it did not start."""

    def __call__(
        self,
        task: TaskRecord,
        trigger: str,
        parameters: dict[str, Any],
        overlap: str | None = None,
        *,
        chain: tuple[int, ...] = (),
        started_by: str = "scheduler",
        refuse: bool = False,
    ) -> Awaitable[RunRecord | None]: ...


@dataclass(frozen=True)
class Follower:
    """A start of ``task`` that another run's end asks for (``EventListeners.follow``)."""

    task: TaskRecord
    trigger: str
    """What the run records as its ``trigger``."""
    fire: Fire


@dataclass
class Listening:
    """An enabled task with event triggers, and the watches started for it."""

    task: TaskRecord
    sources: list[EventTrigger] = field(default_factory=list)
    planner: list[PlannerEventTrigger] = field(default_factory=list)
    watchers: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def end_watches(self) -> list[asyncio.Task[None]]:
        """Stop the watches of outside sources; their watchers, which end soon after."""
        self.stop.set()
        for watcher in self.watchers:
            watcher.cancel()
        return self.watchers


class EventListeners:
    """Starts tasks on events: each enabled task with ``EventTrigger``s or
    ``PlannerEventTrigger``s is registered here.

    Outside sources (``EventTrigger.watch``) are watched by one process per database (a lock
    next to it; a waiting process takes over when the holder ends), so a changed file starts
    one run.  Planner events come from this process's bus and are handled here.
    """

    def __init__(
        self,
        db: Database,
        registry: Registry,
        bus: EventBus,
        files: Callable[[str], OwnerFiles],
        submit: Submit,
        log: logging.Logger,
    ) -> None:
        self.db = db
        self.registry = registry
        self.bus = bus
        self.files = files
        self.submit = submit
        self.log = log
        self.types = [
            cls.type_name
            for cls in registry.of_kind("trigger")
            if issubclass(cls, (EventTrigger, PlannerEventTrigger))
        ]
        """The trigger types that make a task listen."""
        self._listening: dict[int, Listening] = {}
        self._watching = False
        self._watch_lock: ProcessLock | None = None
        self._stopping = False
        self._later: set[asyncio.Task[None]] = set()
        for event in {event for cls in self._planner_classes() for event in cls.events}:
            bus.subscribe(event, self.on_event)

    def _planner_classes(self) -> list[type[PlannerEventTrigger]]:
        return [
            cls for cls in self.registry.of_kind("trigger") if issubclass(cls, PlannerEventTrigger)
        ]

    @property
    def count(self) -> int:
        return len(self._listening)

    async def load(self) -> None:
        """Register every enabled task with event triggers (``watch_sources`` watches their
        outside sources)."""
        for task in await self.db.call(self.db.store.tasks_with_trigger_types, self.types):
            self.listen(task)

    def watch_sources(self) -> None:
        """Watch the outside sources of the tasks listening, and of those that listen later,
        once this process holds the watch lock (now, or when the process holding it ends)."""
        if self._take_watch_lock():
            self._watching = True
            for listening in self._listening.values():
                self._start_watches(listening)

    def _take_watch_lock(self) -> bool:
        """Whether this process may watch outside sources now; if not, it takes over later."""
        path = self.db.store.path
        if str(path) == ":memory:":
            return True
        self._watch_lock = ProcessLock(path.with_name(f"{path.name}.watch-lock"))
        taken = self._watch_lock.acquire_then(asyncio.get_running_loop(), self._take_over)
        if not taken:
            self.log.info("another server on this database watches event triggers; waiting")
        return taken

    def _take_over(self) -> None:
        """The server that watched outside sources ended: watch them here from now on."""
        if self._stopping:
            return
        self._watching = True
        self.log.info("this server now watches event triggers")
        for listening in self._listening.values():
            self._start_watches(listening)

    def listen(self, task: TaskRecord) -> None:
        """Register (or re-register) an enabled task's event triggers."""
        self.unlisten(task["id"])
        if not task["enabled"]:
            return
        listening = Listening(task=task)
        for entry in task["triggers"]:
            if entry["type"] not in self.types:
                continue
            try:
                trigger: Trigger = self.registry.instantiate("trigger", entry)
            except InvalidConfig:
                self.log.exception("task %s: cannot load trigger %s", task["id"], entry["type"])
                continue
            if isinstance(trigger, EventTrigger):
                listening.sources.append(trigger)
            elif isinstance(trigger, PlannerEventTrigger):
                listening.planner.append(trigger)
        if listening.sources or listening.planner:
            self._listening[task["id"]] = listening
            if self._watching:
                self._start_watches(listening)

    def unlisten(self, task_id: int) -> list[asyncio.Task[None]]:
        """Stop a task's event triggers; returns their watchers, which end soon after."""
        listening = self._listening.pop(task_id, None)
        return [] if listening is None else listening.end_watches()

    async def stop(self) -> None:
        """Stop watching outside sources and starting delayed fires.  The tasks' planner
        triggers stay known: the runs the server's stop ends still record their followers
        (``follow``)."""
        self._stopping = True
        watchers = [w for listening in self._listening.values() for w in listening.end_watches()]
        watchers.extend(self._later)
        for waiting in self._later:
            waiting.cancel()
        # Let them finish: watchfiles waits in anyio worker threads, which end only with the
        # task that started them, and a thread left waiting keeps the process from exiting.
        await asyncio.gather(*watchers, return_exceptions=True)
        if self._watch_lock is not None:
            self._watch_lock.release()

    # -- outside sources -------------------------------------------------------------------------

    def _start_watches(self, listening: Listening) -> None:
        if self._stopping:  # a task reloaded while the listeners stop watches nothing new
            return
        for trigger in listening.sources:
            listening.watchers.append(asyncio.ensure_future(self._watch(listening, trigger)))

    async def _watch(self, listening: Listening, trigger: EventTrigger) -> None:
        """Start a run of the task per event of one source, until it is unlistened."""
        label = f"{trigger.type_name}:{trigger.name}"
        try:
            # The trigger checks the paths it resolves against all of these (see ``files``).
            trigger.files = self.files(listening.task["owner"])
            async for placeholders in trigger.watch(trigger.files.root, listening.stop):
                await self.submit(listening.task, label, dict(placeholders or {}))
        except asyncio.CancelledError:
            raise
        except Exception:
            self.log.exception("task %s: trigger %s stopped", listening.task["id"], label)

    # -- planner events --------------------------------------------------------------------------

    def fires(
        self, event: PlannerEvent, task: TaskRecord
    ) -> list[tuple[PlannerEventTrigger, Fire]]:
        """What ``event`` asks of ``task``'s planner-event triggers (enabled or not)."""
        found = []
        for entry in task["triggers"]:
            cls = self.registry.get("trigger", entry["type"])
            if issubclass(cls, PlannerEventTrigger) and type(event) in cls.events:
                trigger = self.registry.instantiate("trigger", entry)
                assert isinstance(trigger, PlannerEventTrigger)
                fire = trigger.fire_on(event, task)
                if fire is not None:
                    found.append((trigger, fire))
        return found

    def follow(self, run: RunRecord) -> list[Follower]:
        """The starts the end of ``run`` asks for at once (its ``RunFinished``): the engine
        records them in the write that records the end, so none is lost or made twice.

        A task already in the run's chain is left out (loop protection); a fire with a
        delay is not here (``on_event`` starts it after its delay).
        """
        followers = []
        for task, trigger, fire in self._fires(RunFinished(run)):
            if fire.delay:
                continue
            if task["id"] in fire.chain:
                self.log.info("task %s already ran in this chain; not again", task["id"])
                continue
            label = fire.trigger or f"{trigger.type_name}:{trigger.name}"
            followers.append(Follower(task, label, fire))
        return followers

    def _fires(self, event: PlannerEvent) -> list[tuple[TaskRecord, PlannerEventTrigger, Fire]]:
        return [
            (listening.task, trigger, fire)
            for listening in list(self._listening.values())
            for trigger in listening.planner
            if type(event) in trigger.events
            and (fire := trigger.fire_on(event, listening.task)) is not None
        ]

    async def on_event(self, event: PlannerEvent) -> list[RunRecord]:
        """Start every listening task one of whose triggers fires on ``event``; the runs.

        A run's end (``RunFinished``) starts here only the fires with a delay: the others
        were recorded with the end (``follow``).
        """
        runs: list[RunRecord] = []
        if self._stopping:
            return runs
        for task, trigger, fire in self._fires(event):
            if isinstance(event, RunFinished) and not fire.delay:
                continue
            runs.extend(await self.start(task, [(trigger, fire)]))
        return runs

    async def start(
        self,
        task: TaskRecord,
        fires: list[tuple[PlannerEventTrigger, Fire]],
        *,
        refuse: bool = False,
    ) -> list[RunRecord]:
        """Start ``task`` once per fire (none already in its chain); the runs started now.

        ``refuse``: a start past the owner's queue limit raises ``TooManyRequests`` (a
        caller is waiting for the answer) instead of being recorded as skipped.
        """
        runs = []
        for trigger, fire in fires:
            run = await self._start(task, trigger, fire, refuse)
            if run is not None:
                runs.append(run)
        return runs

    async def _start(
        self, task: TaskRecord, trigger: PlannerEventTrigger, fire: Fire, refuse: bool = False
    ) -> RunRecord | None:
        if task["id"] in fire.chain:
            self.log.info("task %s already ran in this chain; not again", task["id"])
            return None
        label = fire.trigger or f"{trigger.type_name}:{trigger.name}"
        if fire.delay:
            waiting = asyncio.ensure_future(self._start_later(task, label, fire))
            self._later.add(waiting)
            waiting.add_done_callback(self._later.discard)
            return None
        return await self.submit(
            task,
            label,
            fire.placeholders,
            chain=fire.chain,
            started_by=fire.started_by,
            refuse=refuse,
        )

    async def _start_later(self, task: TaskRecord, label: str, fire: Fire) -> None:
        await asyncio.sleep(fire.delay)
        await self.submit(
            task, label, fire.placeholders, chain=fire.chain, started_by=fire.started_by
        )
