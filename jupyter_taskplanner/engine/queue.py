"""Which waiting run starts next: limits per server and per owner, owners in turn."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from ..database import Database
from ..vocabulary import RunRecord, RunStatus, TaskRecord
from .settings import EngineSettings

log = logging.getLogger(__name__)


class RunQueue:
    """The runs of this process: those waiting to start and those executing.

    A run waits in its owner's queue until the server-wide and the per-owner limit allow it;
    then the owner who started a run least recently goes first, so one user's many runs
    cannot starve the others.  ``execute(run_id)`` is the coroutine that runs one.
    """

    def __init__(
        self,
        db: Database,
        settings: EngineSettings,
        execute: Callable[[int], Awaitable[None]],
        cancel_orphan: Callable[[int], Awaitable[None]],
    ) -> None:
        self.db = db
        self.settings = settings
        self.execute = execute
        self.cancel_orphan = cancel_orphan
        self.waiting: dict[str, deque[int]] = {}
        self.running: dict[int, asyncio.Task[None]] = {}
        self.running_tasks: dict[int, int] = {}
        self.running_owners: dict[str, int] = {}
        self.stopping = False
        self._last_start: dict[str, int] = {}
        self._starts = 0
        self._dispatching = asyncio.Lock()
        self._background: set[asyncio.Future[None]] = set()

    def add(self, owner: str, run_id: int) -> None:
        """Queue a recorded run and start what the limits allow."""
        owner_queue = self.waiting.setdefault(owner, deque())
        if run_id not in owner_queue and run_id not in self.running:
            owner_queue.append(run_id)
        self.dispatch_soon()

    def remove(self, run_id: int) -> bool:
        """Take a run out of the queue (cancelled before it started); whether it was there."""
        for owner_queue in self.waiting.values():
            if run_id in owner_queue:
                owner_queue.remove(run_id)
                return True
        return False

    def waiting_ids(self) -> list[int]:
        return [run_id for owner_queue in self.waiting.values() for run_id in owner_queue]

    @property
    def busy(self) -> bool:
        return bool(self.running) or any(self.waiting.values())

    def dispatch_soon(self) -> None:
        future = asyncio.ensure_future(self.dispatch())
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def dispatch(self) -> None:
        """Start waiting runs while the limits allow, taking owners in turn."""
        if self.stopping:
            return
        async with self._dispatching:
            progress = True
            while progress and len(self.running) < self.settings.max_concurrent_runs:
                progress = False
                # The owner who started a run least recently goes first.
                for owner in sorted(self.waiting, key=lambda name: self._last_start.get(name, -1)):
                    if self.running_owners.get(owner, 0) >= self.settings.max_runs_per_owner:
                        continue
                    run_id = await self._next_startable(owner)
                    if run_id is None:
                        continue
                    if self.stopping:  # since it was read: it waits, for stop() to end it
                        self.waiting[owner].appendleft(run_id)
                        return
                    self.start(run_id, owner)
                    progress = True
                    break
            for owner in [owner for owner, queue in self.waiting.items() if not queue]:
                del self.waiting[owner]

    async def halt(self) -> None:
        """Start no more runs; returns once a dispatch under way has ended."""
        self.stopping = True
        async with self._dispatching:
            pass

    async def _next_startable(self, owner: str) -> int | None:
        """The first waiting run of ``owner`` whose task may start now (overlap rules)."""
        for run_id in list(self.waiting.get(owner, ())):
            run, task = await self.db.call(self._run_and_task, run_id)
            if run_id not in self.waiting.get(owner, ()):
                continue  # cancelled while it was read: the cancel ended it
            if run["status"] != RunStatus.QUEUED:
                self.waiting[owner].remove(run_id)
                continue
            if run["task_id"] is None:  # an ad-hoc run: no task, no overlap
                self.waiting[owner].remove(run_id)
                return run_id
            if task is None:
                self.waiting[owner].remove(run_id)
                await self.cancel_orphan(run_id)
                continue
            busy = self.running_tasks.get(run["task_id"], 0) > 0
            if busy and task["settings"]["overlap"] != "parallel":
                continue
            self.waiting[owner].remove(run_id)
            return run_id
        return None

    def _run_and_task(self, run_id: int) -> tuple[RunRecord, TaskRecord | None]:
        """On the database thread, in one call: a waiting run and its stored task (None for
        an ad-hoc run, a run no longer queued or a task deleted since)."""
        store = self.db.store
        run = store.get_run(run_id, None)
        if run["status"] != RunStatus.QUEUED or run["task_id"] is None:
            return run, None
        return run, store.find_task(run["task_id"])

    def start(self, run_id: int, owner: str) -> None:
        """Count a run against the limits and start executing it."""
        self._starts += 1
        self._last_start[owner] = self._starts
        self.running_owners[owner] = self.running_owners.get(owner, 0) + 1
        self.running[run_id] = asyncio.ensure_future(self.execute(run_id))

    def begin_task(self, task_id: int) -> None:
        """A run of ``task_id`` is executing (the overlap rules look at this)."""
        self.running_tasks[task_id] = self.running_tasks.get(task_id, 0) + 1

    def ended(self, run_id: int, owner: str, task_id: int | None) -> None:
        """A run stopped executing: free its places (``task_id`` None if it never began)."""
        if task_id is not None:
            self.running_tasks[task_id] -= 1
        self.running_owners[owner] -= 1
        self.running.pop(run_id, None)
