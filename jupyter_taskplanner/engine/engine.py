"""The run engine: records runs, queues them fairly, executes them, keeps their history."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import shutil
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from traitlets.config import Configurable

from ..bus import EventBus, RunFinished, RunStarted
from ..components.base import Component
from ..components.registry import Registry
from ..database import Database
from ..errors import Conflict, InvalidConfig, PermissionDenied, Unavailable
from ..executors import Executor, StepOutcome
from ..listeners import Follower
from ..owners import OwnerFolders
from ..permissions import ADMIN, ComponentRules
from ..store import Store, utcnow
from ..vocabulary import ACTIVE, RunRecord, RunStatus, StepStatus, TaskRecord
from .execution import RunExecution, RunStart, run_context
from .queue import RunQueue
from .settings import EngineSettings
from .steps import States, StepRunner, step_request

HOLDER = f"{socket.gethostname()}:{os.getpid()}"
"""Who executes a run: this host and process (recorded on each run it holds)."""


def holder_is_gone(holder: str | None) -> bool:
    """True when the process that held a run on this host no longer exists."""
    if not holder or holder == HOLDER:
        return holder != HOLDER
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return True
    except PermissionError:
        return False
    return False


BUSY = "the task was still running; this start was skipped (overlap: skip)"

FOLLOWER_KEY = "follow:"
"""How the ``idempotency_key`` of a follower begins: a run that another run's end (an
``after_task`` trigger) or its ``next_task`` action started."""

NOT_STARTED = "the server stopped before the run started"
"""The error of a run a server's stop kept from starting."""

END_RETRY = 1.0
"""Seconds before a run's end that could not be written is written again (doubling)."""

END_RETRY_MAX = 60.0


def is_follower(run: RunRecord) -> bool:
    """Whether ``run`` was started by another run (``FOLLOWER_KEY``)."""
    return (run["idempotency_key"] or "").startswith(FOLLOWER_KEY)


def busy_skip(task: TaskRecord, overlap: str | None = None) -> str | None:
    """Why a start of ``task`` is skipped while it has an active run, or None when it is
    not (``overlap``, else the task's setting, is not ``skip``): for ``Store.create_run``."""
    return BUSY if (overlap or task["settings"]["overlap"]) == "skip" else None


class RunEngine:
    """Owns the runs of this process: starting, queueing, execution, cancel, retention.

    A run is recorded when it starts; its jobs run concurrently through the executor, then
    every action in the task's order with all job results, once per parameter set of a
    series.  The life of each run is published on the bus (started, progress, finished).
    """

    def __init__(
        self,
        *,
        db: Database,
        registry: Registry,
        executor: Executor,
        owners: OwnerFolders,
        rules: ComponentRules,
        bus: EventBus,
        settings: EngineSettings,
        component_settings: dict[type[Component], Configurable] | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.db = db
        self.store = db.store
        self.registry = registry
        self.executor = executor
        self.owners = owners
        self.rules = rules
        self.bus = bus
        self.settings = settings
        self.log = log or logging.getLogger(__name__)
        self.queue = RunQueue(db, settings, self._execute, self._cancel_orphan)
        self.steps = StepRunner(
            db,
            registry,
            executor,
            bus,
            component_settings or {},
            lambda: self.settings.max_log_bytes,
        )
        self.followers: Callable[[RunRecord], list[Follower]] = lambda run: []
        """The starts a run's end asks for (``EventListeners.follow``, set by the
        scheduler): recorded in the write that records the end."""
        self.wait: Callable[[float], Awaitable[object]] = asyncio.sleep
        """Waits before a failed end write is tried again (a test's clock may stand in)."""
        self._hand_over = True
        """Whether a stop leaves followers for the next server (``stop``)."""
        self._finishing = 0
        """Runs that ended and whose finish (retention, listeners, which may start runs) goes on."""
        self._cancelled: dict[int, str] = {}
        """Runs being cancelled, with why (who asked)."""

    @property
    def busy(self) -> bool:
        """Whether runs of this process are executing, finishing or waiting to start.

        A process that ends when its runs are done (the CLI) waits until this is false, so
        runs started along the way (next tasks, tasks triggered by a run's end) are not left
        behind.
        """
        return self.queue.busy or self._finishing > 0

    # -- starting ------------------------------------------------------------------------------

    async def submit(
        self,
        task: TaskRecord,
        *,
        trigger: str,
        started_by: str,
        parameters: dict[str, Any] | None = None,
        chain: list[int] | tuple[int, ...] | None = None,
        idempotency_key: str | None = None,
        overlap: str | None = None,
        skip: str | None = None,
        refuse: bool = False,
    ) -> RunRecord:
        """Record a run of ``task`` and queue it; an overlapping ``skip`` run is only recorded.

        ``skip`` records the run as skipped for that reason without starting it (a start
        the planner suppresses, so the task's history says why it did not run).  A run past
        the owner's queue limit is recorded as skipped too, or with ``refuse`` (a caller's
        start) not recorded: ``TooManyRequests``.
        """
        self.check_open()
        fields = self.run_fields(
            task,
            trigger=trigger,
            started_by=started_by,
            parameters=parameters,
            chain=chain,
            idempotency_key=idempotency_key,
            skip=skip,
        )
        busy = busy_skip(task, overlap) if skip is None else None
        return self.accept(await self.db.call(self.store.create_run, fields, busy, refuse=refuse))

    def check_open(self) -> None:
        """Raise ``Unavailable`` once the server is stopping: no run starts any more."""
        if self.queue.stopping:
            raise Unavailable("the task planner is shutting down; this run was not started")

    def run_fields(
        self,
        task: TaskRecord,
        *,
        trigger: str,
        started_by: str,
        parameters: dict[str, Any] | None = None,
        chain: list[int] | tuple[int, ...] | None = None,
        idempotency_key: str | None = None,
        skip: str | None = None,
    ) -> dict[str, Any]:
        """The fields of a new run of ``task`` executed by this process (``submit``), for
        the store to record; ``accept`` the run it recorded."""
        fields: dict[str, Any] = {
            "task_id": task["id"],
            "owner": task["owner"],
            "task_name": task["name"],
            "trigger": trigger,
            "started_by": started_by,
            "parameters": parameters or {},
            "chain": [*(chain or []), task["id"]],
            "idempotency_key": idempotency_key,
            "status": RunStatus.QUEUED,
            "holder": HOLDER,
        }
        if skip is not None:
            fields.update(status=RunStatus.SKIPPED, finished=utcnow(), error=skip)
        return fields

    def accept(self, run: RunRecord) -> RunRecord:
        """Queue a run just recorded from ``run_fields`` (one recorded skipped is logged)."""
        if run["status"] == RunStatus.SKIPPED:
            self.log.info("run %s of task %s skipped: %s", run["id"], run["task_id"], run["error"])
        elif run["status"] == RunStatus.QUEUED and run["holder"] == HOLDER:
            self.queue.add(run["owner"], run["id"])
        return run

    async def execute(
        self,
        document: dict[str, Any],
        *,
        owner: str,
        started_by: str,
        parameters: dict[str, Any] | None = None,
    ) -> RunRecord:
        """Record and queue an ad-hoc run: a validated task ``document`` stored with the run,
        not as a task (no triggers, no overlap, no component state)."""
        self.check_open()
        run = await self.db.call(
            self.store.create_run,
            {
                "task_id": None,
                "owner": owner,
                "task_name": document["name"],
                "trigger": "execute",
                "started_by": started_by,
                "parameters": parameters or {},
                "chain": [],
                "status": RunStatus.QUEUED,
                "holder": HOLDER,
                "document": document,
            },
            refuse=True,
        )
        self.queue.add(owner, run["id"])
        return run

    async def start_in_chain(
        self, run: RunRecord, task_id: int, key: str | None = None
    ) -> RunRecord | None:
        """Start ``task_id`` as the next link of ``run``'s chain, at most once.

        The task is the run owner's (any owner's, for an admin).  A start the chain
        suppresses (the task already ran in it, or is still running) is recorded on that
        task as a skipped run saying why.  None when the server is stopping.  ``key``: the
        start's ``idempotency_key`` (a follower's, so a restart starts it if this server
        dies before it does).
        """
        if self.queue.stopping:
            self.log.info("the server is stopping; run %s starts no next task", run["id"])
            return None
        await self.rules.ready(run["owner"])
        admin = self.rules.owner_has(run["owner"], ADMIN)
        task = await self.db.call(self.store.get_task, task_id, None if admin else run["owner"])
        skip = None
        if task_id in run["chain"]:
            skip = (
                f"not started again: task {task_id} already ran in the chain of run "
                f"{run['id']} (a loop of next tasks)"
            )
        return await self.submit(
            task,
            trigger=f"chain:{run['task_id']}",
            started_by=run["started_by"],
            chain=run["chain"],
            idempotency_key=key,
            overlap="skip",
            skip=skip,
        )

    def _chain_starter(self, run: RunRecord) -> Callable[[int], RunRecord | None]:
        """A thread-safe ``start_task`` for next-task actions of ``run`` (loop protection)."""
        loop = asyncio.get_running_loop()

        starts = itertools.count(1)

        def start(task_id: int) -> RunRecord | None:
            key = f"{FOLLOWER_KEY}{run['id']}:next:{next(starts)}"
            future = asyncio.run_coroutine_threadsafe(self.start_in_chain(run, task_id, key), loop)
            return future.result(timeout=60)

        return start

    async def preview_series(self, task: TaskRecord, count: int) -> StepOutcome:
        """The first ``count`` parameter sets of the task's series, computed by the executor."""
        folder = self.owners.previews(task["owner"]) / uuid.uuid4().hex
        run: RunStart = {"id": 0, "started": None, "created": utcnow(), "parameters": {}}
        ctx = run_context(run, task, folder, self.owners, self.settings)
        series = task["series"]
        assert series is not None, "only a task with a series has a preview"  # callers check
        try:
            request = step_request(self.registry, "series", series, ctx, folder, count)
        except InvalidConfig as exc:
            return StepOutcome(error=exc.message)
        folder.mkdir(parents=True, exist_ok=True)
        try:
            return await self.executor.run_step(request, lambda *_: None)
        finally:
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(shutil.rmtree, folder, ignore_errors=True)
            )

    # -- cancelling and stopping -----------------------------------------------------------------

    async def cancel(self, run_id: int, by: str | None = None) -> RunRecord:
        """Cancel a queued or running run of this server (``by``: the user who asked, for
        the record); returns the run as it ended."""
        # Read here, not by the caller: the run may have ended since the caller looked.
        run = await self.db.call(self.store.get_run, run_id, None)
        if run["status"] not in ACTIVE:
            raise Conflict(f"run {run['id']} already ended ({run['status']}); nothing to cancel")
        self._cancelled[run_id] = f"cancelled by {by}" if by else "cancelled"
        running = self.queue.running.get(run_id)
        if running is not None:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(running)
        elif run["holder"] == HOLDER or holder_is_gone(run["holder"]):
            self.queue.remove(run_id)
            await self._record_end(run_id, RunStatus.CANCELLED, "cancelled before it started")
        else:
            raise Conflict(f"run {run_id} is executed by another server ({run['holder']})")
        return await self.db.call(self.store.get_run, run_id, None)

    async def stop(self, *, hand_over: bool = True) -> None:
        """End every run of this process (server shutdown): they are marked interrupted.

        ``hand_over``: a follower (a start in a chain) still waiting, or started by the end
        of a run the stop interrupts, is left queued instead, for the next server to start
        on the database to start it (``recover``), as after a crash; the command line,
        stopped by a signal, ends its followers too.
        """
        self._hand_over = hand_over
        await self.queue.halt()
        for future in list(self.queue.running.values()):
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await future
        waiting = self.queue.waiting_ids()
        if not waiting:  # also a second stop, the database closed by the first
            return
        keep = FOLLOWER_KEY if hand_over else None
        left = await self.db.call(self.store.end_waiting, waiting, NOT_STARTED, keep)
        if left:
            self.log.info("%d run(s) of chains wait for the next server start", left)

    async def recover(self, *, adopt: bool = True) -> None:
        """Mark runs left running or queued by a dead server process as interrupted.

        The end of each records the runs it starts, as any run's end does (``after_task``
        on failure or always), held by the dead process.  A follower it left queued
        (started by another run's end or next-task action), or recorded so, is started here
        instead, by one server alone (``Store.adopt_run``); ``adopt`` False (the command
        line) leaves it for a server.  Call it once the listeners are loaded.
        """
        error = "the server running this run stopped before it finished"
        for run in await self.db.call(self.store.runs_with_status, tuple(ACTIVE)):
            if not holder_is_gone(run["holder"]):
                continue
            if run["status"] == RunStatus.QUEUED and is_follower(run):
                await self._adopt(run, adopt)
                continue
            ended = cast(RunRecord, {**run, "status": RunStatus.INTERRUPTED, "error": error})
            followers = self._follower_fields(ended, holder=run["holder"])
            _, started = await self.db.call(
                self.store.end_run, run["id"], RunStatus.INTERRUPTED, error, followers
            )
            for follower in started:
                if follower["status"] == RunStatus.QUEUED:
                    await self._adopt(follower, adopt)

    async def _adopt(self, run: RunRecord, adopt: bool) -> None:
        """Start here a follower a dead process left queued, unless another server took it
        (or ``adopt`` is False)."""
        if adopt and await self.db.call(self.store.adopt_run, run["id"], run["holder"], HOLDER):
            self.log.info("run %s, left waiting by a server gone, starts here", run["id"])
            self.queue.add(run["owner"], run["id"])

    async def _record_end(self, run_id: int, status: RunStatus, error: str | None) -> None:
        await self.db.call(
            self.store.update_run, run_id, status=status, finished=utcnow(), error=error
        )

    async def _cancel_orphan(self, run_id: int) -> None:
        await self._record_end(
            run_id, RunStatus.CANCELLED, "the task was deleted before the run started"
        )

    # -- executing -------------------------------------------------------------------------------

    def _task_of(self, run: RunRecord) -> TaskRecord | None:
        """On the database thread: the task a run executes, the stored one or an ad-hoc
        run's own document."""
        if run["task_id"] is not None:
            return self.store.find_task(run["task_id"])
        document = self.store.run_document(run["id"])
        # The document was validated when the run was made; it stands for a task here.
        return cast(TaskRecord, {**(document or {}), "id": None, "owner": run["owner"]})

    def _begin(
        self, run_id: int
    ) -> tuple[RunRecord, TaskRecord | None, dict[str, Any] | None, Exception | None]:
        """On the database thread, in one call (a run's start waits for few calls): the run,
        marked running; its task (None, the run left as it was, when the run ended or its
        task was deleted since it was queued); the stored task's component state; and the
        error that kept the run from being marked running (a failed write: the run then
        fails, saying why)."""
        run = self.store.get_run(run_id, None)
        if run["status"] != RunStatus.QUEUED:
            return run, None, None, None
        task = self._task_of(run)
        if task is None:
            return run, None, None, None
        state = self.store.states(task["id"]) if run["task_id"] is not None else None
        started = utcnow()
        try:
            self.store.update_run(run_id, status=RunStatus.RUNNING, started=started)
        except Exception as exc:
            return run, task, state, exc
        return {**run, "status": RunStatus.RUNNING, "started": started}, task, state, None

    async def _execute(self, run_id: int) -> None:
        begin = asyncio.ensure_future(self.db.call(self._begin, run_id))
        try:
            run, task, state, not_started = await asyncio.shield(begin)
        except asyncio.CancelledError:
            # Cancelled (or the server stopping) as the run was picked from the queue: it
            # never began, but it must end and give its owner's slot back.
            run, _, _, _ = await begin
            self.queue.ended(run_id, run["owner"], None)
            if run_id in self._cancelled:
                await self._record_end(run_id, RunStatus.CANCELLED, "cancelled before it started")
            else:
                await self._record_end(run_id, RunStatus.INTERRUPTED, NOT_STARTED)
            self._cancelled.pop(run_id, None)
            self.queue.dispatch_soon()
            raise
        if task is None:
            self.queue.ended(run_id, run["owner"], None)
            if run["status"] == RunStatus.QUEUED:  # its task was deleted since it was picked
                await self._cancel_orphan(run_id)
            # Otherwise it ended since it was picked (a cancel, the server stopping).
            await self.queue.dispatch()
            return
        stored = run["task_id"] is not None
        if stored:
            self.queue.begin_task(task["id"])
        states = States(state or {}) if stored else None
        status, error = RunStatus.FAILED, None
        try:
            if not_started is not None:
                raise not_started
            await self.bus.publish(RunStarted(run))
            execution = RunExecution(
                run,
                task,
                registry=self.registry,
                owners=self.owners,
                rules=self.rules,
                settings=self.settings,
                steps=self.steps,
                start_task=self._chain_starter(run),
                states=states,
            )
            async with asyncio.timeout(task["settings"].get("timeout")):
                status = await execution.execute()
            if status == RunStatus.SUCCEEDED and states is not None and states.changed:
                await self.db.call(self.store.save_states, task["id"], states.changed)
            if status == RunStatus.FAILED:
                error = await self.db.call(failure_summary, self.store, run_id)
        except TimeoutError:
            status = RunStatus.TIMED_OUT
            error = f"the run exceeded its timeout of {task['settings']['timeout']} s"
        except asyncio.CancelledError:
            status, error = RunStatus.CANCELLED, self._cancelled.get(run_id)
            if error is None:
                status = RunStatus.INTERRUPTED
                error = "the server stopped while the run was running"
        except PermissionDenied as exc:
            error = exc.message
        except Exception as exc:
            self.log.exception("run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self.queue.ended(run_id, task["owner"], task["id"] if stored else None)
            self._cancelled.pop(run_id, None)
        self._finishing += 1
        try:
            ended = await self._end(cast(RunRecord, {**run, "status": status}), error, task)
            if ended is None:
                return
            run, followers, removed = ended
            for follower in followers:
                self.accept(follower)
            await self._remove_folders(task["owner"], removed)
            # Listeners (triggers on a run's end, the UI's events) may start runs: before the
            # dispatch below, so a process waiting for its runs sees them.
            await self.bus.publish(RunFinished(run))
        finally:
            self._finishing -= 1
        await self.queue.dispatch()

    async def _end(
        self, run: RunRecord, error: str | None, task: TaskRecord
    ) -> tuple[RunRecord, list[RunRecord], list[int]] | None:
        """Record how ``run`` ended (its new ``status``) with the runs its end starts; the
        run, its followers and the runs the retention deleted.

        A write that fails is tried again after ``END_RETRY`` seconds, doubling; until then
        the run stays running.  None when the server stops first: its next start marks
        the run interrupted, and nothing of its end was written.  A run the stop ended
        records its followers too, left queued for the next server (``stop``), unless the
        stop ends them as well.
        """
        followers: list[tuple[dict[str, Any], str | None]] = []
        if self.queue.stopping and not self._hand_over:
            self.log.info("run %s was stopped; it starts no follower", run["id"])
        else:
            followers = self._follower_fields({**run, "error": error})
        delay = END_RETRY
        while True:
            try:
                return await self.db.call(
                    self._finish, run["id"], run["status"], error, task, followers
                )
            except Exception as exc:
                if self.queue.stopping:
                    self.log.error("run %s: its end was not recorded (%s)", run["id"], exc)
                    return None
                self.log.error(
                    "run %s: cannot record its end (%s); trying again in %s s",
                    run["id"],
                    exc,
                    delay,
                )
                await self.wait(delay)
                delay = min(delay * 2, END_RETRY_MAX)

    def _follower_fields(
        self, run: RunRecord, holder: str | None = HOLDER
    ) -> list[tuple[dict[str, Any], str | None]]:
        """The runs the end of ``run`` (its final status and error) starts, as
        ``Store.end_run`` records them, held by ``holder``."""
        followers = []
        for index, follower in enumerate(self.followers(run), 1):
            fields = self.run_fields(
                follower.task,
                trigger=follower.trigger,
                started_by=follower.fire.started_by,
                parameters=follower.fire.placeholders,
                chain=follower.fire.chain,
                idempotency_key=f"{FOLLOWER_KEY}{run['id']}:end:{index}",
            )
            followers.append(({**fields, "holder": holder}, busy_skip(follower.task)))
        return followers

    def _finish(
        self,
        run_id: int,
        status: RunStatus,
        error: str | None,
        task: TaskRecord,
        followers: list[tuple[dict[str, Any], str | None]],
    ) -> tuple[RunRecord, list[RunRecord], list[int]]:
        """On the database thread: record how a run ended and the runs its end starts (one
        transaction), then delete the task's runs beyond the history settings, in one call
        (one hop to this thread per run end); the run, its followers, and the ids of the
        runs deleted.

        Read back in the end's own write, so the retention of another run finishing
        meanwhile cannot delete this one before it is read.
        """
        if status in (RunStatus.CANCELLED, RunStatus.TIMED_OUT, RunStatus.INTERRUPTED):
            why = error
            if status == RunStatus.TIMED_OUT:
                why = f"timed out after {task['settings']['timeout']} s"
            # A step the stop cut short says why, as the last line of its log (before the
            # run is seen ended).
            for step in self.store.steps(run_id):
                if step["status"] == StepStatus.CANCELLED and not step["error"]:
                    self.store.update_step(step["id"], error=why)
        run, started = self.store.end_run(run_id, status, error, followers)
        before = None
        if self.settings.keep_run_days:
            cutoff = datetime.now(UTC) - timedelta(days=self.settings.keep_run_days)
            before = cutoff.isoformat()
        removed = self.store.prune_runs(task["id"], self.settings.keep_runs, before, task["owner"])
        return run, started, removed

    async def _remove_folders(self, owner: str, run_ids: list[int]) -> None:
        """Delete the folders of runs the retention deleted."""
        loop = asyncio.get_running_loop()
        for run_id in run_ids:
            folder = self.owners.run_folder(owner, run_id)
            await loop.run_in_executor(
                None, functools.partial(shutil.rmtree, folder, ignore_errors=True)
            )


def failure_summary(store: Store, run_id: int) -> str:
    """A failed run's error: which steps failed (the last attempt of each), and the first why."""
    last_attempts = {
        (step["kind"], step["name"], step["set_index"]): step for step in store.steps(run_id)
    }
    failed = [step for step in last_attempts.values() if step["status"] == StepStatus.FAILED]
    if not failed:
        return "a step failed"
    first = failed[0]
    where = "" if first["set_index"] is None else f" (set {first['set_index'] + 1})"
    why = (first["error"] or "").strip().splitlines()
    summary = f"{first['kind']} {first['name']!r}{where} failed" + (f": {why[-1]}" if why else "")
    if len(failed) > 1:
        summary += f"; {len(failed) - 1} more step(s) failed"
    return summary
