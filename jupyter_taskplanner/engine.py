"""The run engine: starts runs, queues them fairly under limits, executes jobs then actions.

A run is recorded when it starts; its jobs run concurrently through the executor, then every
action runs in the task's order with all job results.  With a series this happens once per
parameter set.  Overlap, timeout, retries, cancel and history retention are handled here.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import shutil
import socket
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import watchfiles

from .components.base import Action, Result, RunContext
from .errors import Conflict, InvalidConfig, PermissionDenied, Unavailable
from .logs import CappedLogHandler
from .model import component_classes
from .store import utcnow

ACTIVE = ("queued", "running")
FINISHED = ("succeeded", "failed", "cancelled", "timed_out", "interrupted", "skipped")
HOLDER = f"{socket.gethostname()}:{os.getpid()}"
EVENT_SCHEMA = "https://events.jupyter.org/jupyter_taskplanner/run/v1"


def qualifies(when: str, results: list[Result]) -> bool:
    """Whether an action's execution qualification holds for these results."""
    valid = [result.valid for result in results]
    return {
        "always": True,
        "any_valid": any(valid),
        "all_valid": bool(valid) and all(valid),
        "none_valid": not any(valid),
    }[when]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "step"


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


class RunEngine:
    """Owns the runs of this process: queue, limits, execution, cancellation."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.log: logging.Logger = app.log
        self.store = app.store
        self.registry = app.registry
        self._waiting: dict[str, deque[int]] = {}
        self._stopping = False
        self._last_start: dict[str, int] = {}
        self._starts = 0
        self._running: dict[int, asyncio.Task[None]] = {}
        self._finishing = 0
        """Runs that ended and whose ``on_finished`` callbacks (which may start runs) are going."""
        self._running_tasks: dict[int, int] = {}
        self._running_owners: dict[str, int] = {}
        self._cancelled: set[int] = set()
        self._dispatching = asyncio.Lock()
        self._background: set[asyncio.Future[None]] = set()
        self.on_finished: list[Callable[[dict[str, Any]], Awaitable[None] | None]] = []

    async def db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await self.app.in_db(fn, *args, **kwargs)

    @property
    def busy(self) -> bool:
        """Whether runs of this process are executing or waiting to start.

        A process that ends when its runs are done (the CLI) waits until this is false, so
        runs started along the way (next-task actions) are not left behind.
        """
        return bool(self._running) or self._finishing > 0 or any(self._waiting.values())

    # -- starting ------------------------------------------------------------------------------

    async def submit(
        self,
        task: dict[str, Any],
        *,
        trigger: str,
        started_by: str,
        parameters: dict[str, Any] | None = None,
        chain: list[int] | None = None,
        idempotency_key: str | None = None,
        overlap: str | None = None,
    ) -> dict[str, Any]:
        """Record a run of ``task`` and queue it; an overlapping ``skip`` run is only recorded."""
        if self._stopping:
            raise Unavailable("the task planner is shutting down; this run was not started")
        overlap = overlap or task["settings"]["overlap"]
        fields = {
            "task_id": task["id"],
            "owner": task["owner"],
            "task_name": task["name"],
            "trigger": trigger,
            "started_by": started_by,
            "parameters": parameters or {},
            "chain": [*(chain or []), task["id"]],
            "idempotency_key": idempotency_key,
            "status": "queued",
            "holder": HOLDER,
        }
        if overlap == "skip" and await self.db(self.store.active_runs, task["id"]):
            fields.update(status="skipped", finished=utcnow())
            fields["error"] = "the task was still running; this start was skipped (overlap: skip)"
            run = await self.db(self.store.create_run, fields)
            self.log.info("run %s of task %s skipped: still running", run["id"], task["id"])
            return run
        run = await self.db(self.store.create_run, fields)
        if run["status"] == "queued" and run["id"] not in self._running and run["holder"] == HOLDER:
            owner_queue = self._waiting.setdefault(task["owner"], deque())
            if run["id"] not in owner_queue:
                owner_queue.append(run["id"])
            self._dispatch_soon()
        return run

    def _dispatch_soon(self) -> None:
        future = asyncio.ensure_future(self._dispatch())
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def _dispatch(self) -> None:
        """Start waiting runs while the limits allow, taking owners in turn (fairness)."""
        if self._stopping:
            return
        async with self._dispatching:
            await self._dispatch_locked()

    async def _dispatch_locked(self) -> None:
        progress = True
        while progress and len(self._running) < self.app.max_concurrent_runs:
            progress = False
            # The owner who started a run least recently goes first.
            for owner in sorted(self._waiting, key=lambda name: self._last_start.get(name, -1)):
                if self._running_owners.get(owner, 0) >= self.app.max_runs_per_owner:
                    continue
                run_id = await self._next_startable(owner)
                if run_id is None:
                    continue
                self._start(run_id, owner)
                progress = True
                break
        for owner in [owner for owner, queue in self._waiting.items() if not queue]:
            del self._waiting[owner]

    async def _next_startable(self, owner: str) -> int | None:
        """The first waiting run of ``owner`` whose task may start now (overlap rules)."""
        for run_id in list(self._waiting.get(owner, ())):
            run = await self.db(self.store.get_run, run_id, None)
            if run["status"] != "queued":
                self._waiting[owner].remove(run_id)
                continue
            task_busy = self._running_tasks.get(run["task_id"], 0) > 0
            task = await self._task_or_none(run["task_id"])
            if task is None:
                self._waiting[owner].remove(run_id)
                await self._cancel_orphan(run_id)
                continue
            if task_busy and task["settings"]["overlap"] != "parallel":
                continue
            self._waiting[owner].remove(run_id)
            return run_id
        return None

    async def _cancel_orphan(self, run_id: int) -> None:
        await self.db(
            self.store.update_run,
            run_id,
            status="cancelled",
            finished=utcnow(),
            error="the task was deleted before the run started",
        )

    async def _task_or_none(self, task_id: int) -> dict[str, Any] | None:
        try:
            return await self.db(self.store.get_task, task_id, None)
        except Exception:
            return None

    def _start(self, run_id: int, owner: str) -> None:
        self._starts += 1
        self._last_start[owner] = self._starts
        self._running_owners[owner] = self._running_owners.get(owner, 0) + 1
        self._running[run_id] = asyncio.ensure_future(self._execute(run_id))

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, run_id: int) -> dict[str, Any]:
        """Cancel a queued or running run of this server; returns the run as it ended."""
        # Read here, not by the caller: the run may have ended since the caller looked.
        run = await self.db(self.store.get_run, run_id, None)
        if run["status"] not in ACTIVE:
            raise Conflict(f"run {run['id']} already ended ({run['status']}); nothing to cancel")
        self._cancelled.add(run["id"])
        if run["id"] in self._running:
            self._running[run["id"]].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._running[run["id"]])
        elif run["holder"] == HOLDER or holder_is_gone(run["holder"]):
            for queue in self._waiting.values():
                if run["id"] in queue:
                    queue.remove(run["id"])
            await self.db(
                self.store.update_run,
                run["id"],
                status="cancelled",
                finished=utcnow(),
                error="cancelled before it started",
            )
        else:
            raise Conflict(f"run {run['id']} is executed by another server ({run['holder']})")
        return await self.db(self.store.get_run, run["id"], None)

    async def stop(self) -> None:
        """End every run of this process (server shutdown): they are marked interrupted."""
        self._stopping = True
        for future in list(self._running.values()):
            future.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await future
        waiting = [run_id for queue in self._waiting.values() for run_id in queue]
        for run_id in waiting:
            await self.db(
                self.store.update_run,
                run_id,
                status="interrupted",
                finished=utcnow(),
                error="the server stopped before the run started",
            )

    async def recover(self) -> None:
        """Mark runs left running or queued by a dead server process as interrupted."""
        for run in await self.db(self.store.runs_with_status, ACTIVE):
            if holder_is_gone(run["holder"]):
                await self.db(
                    self.store.update_run,
                    run["id"],
                    status="interrupted",
                    finished=utcnow(),
                    error="the server running this run stopped before it finished",
                )

    # -- executing -----------------------------------------------------------------------------

    async def _execute(self, run_id: int) -> None:
        run = await self.db(self.store.get_run, run_id, None)
        task = await self._task_or_none(run["task_id"])
        if task is None:  # deleted since the run was picked from the queue
            self._running_owners[run["owner"]] -= 1
            self._running.pop(run_id, None)
            await self._cancel_orphan(run_id)
            await self._dispatch()
            return
        self._running_tasks[task["id"]] = self._running_tasks.get(task["id"], 0) + 1
        status, error = "failed", None
        try:
            await self.db(self.store.update_run, run_id, status="running", started=utcnow())
            run = await self.db(self.store.get_run, run_id, None)
            self._emit(run, "started")
            timeout = task["settings"].get("timeout")
            async with asyncio.timeout(timeout):
                status = await self._run_body(run, task)
            if status == "failed":
                error = await self.db(self._failure_summary, run_id)
        except TimeoutError:
            status = "timed_out"
            error = f"the run exceeded its timeout of {task['settings']['timeout']} s"
        except asyncio.CancelledError:
            status, error = "cancelled", "cancelled by a user"
            if run_id not in self._cancelled:
                status, error = "interrupted", "the server stopped while the run was running"
        except PermissionDenied as exc:
            error = exc.message
        except Exception as exc:
            self.log.exception("run %s failed", run_id)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._running_tasks[task["id"]] -= 1
            self._running_owners[task["owner"]] -= 1
            self._running.pop(run_id, None)
            self._cancelled.discard(run_id)
        self._finishing += 1
        try:
            run = await self.db(self._finish, run_id, status, error)
            self._emit(run, "finished")
            await self._prune(task["id"])
            for callback in self.on_finished:
                # One failing listener (or a server stopping) must not keep the queue waiting.
                try:
                    outcome = callback(run)
                    if outcome is not None:
                        await outcome
                except Unavailable:
                    pass
                except Exception:
                    self.log.exception("after run %s: a finish callback failed", run_id)
        finally:
            self._finishing -= 1
        await self._dispatch()

    def _finish(self, run_id: int, status: str, error: str | None) -> dict[str, Any]:
        """On the database thread: record how a run ended and read it back in one go.

        In one call, so the retention of another run finishing meanwhile cannot delete this
        one between the two.
        """
        self.store.update_run(run_id, status=status, finished=utcnow(), error=error)
        return self.store.get_run(run_id, None)

    def _failure_summary(self, run_id: int) -> str:
        """The run's error: which steps failed (the last attempt of each), and the first why."""
        last_attempts = {
            (step["kind"], step["name"], step["set_index"]): step
            for step in self.store.steps(run_id)
        }
        failed = [step for step in last_attempts.values() if step["status"] == "failed"]
        if not failed:
            return "a step failed"
        first = failed[0]
        where = "" if first["set_index"] is None else f" (set {first['set_index'] + 1})"
        why = (first["error"] or "").strip().splitlines()
        summary = f"{first['kind']} {first['name']!r}{where} failed" + (
            f": {why[-1]}" if why else ""
        )
        if len(failed) > 1:
            summary += f"; {len(failed) - 1} more step(s) failed"
        return summary

    async def _run_body(self, run: dict[str, Any], task: dict[str, Any]) -> str:
        # Checked at save time too; the owner may have lost a permission since.
        self.app.component_rules.check(task["owner"], component_classes(task, self.registry))
        folder = self.app.run_folder(task["owner"], run["id"])
        base = self._context(run, task, folder)
        sets: list[dict[str, Any] | None] = [None]
        if task["series"]:
            outcome = await self._step(
                run, "series", task["series"], None, None, base, folder / "series", attempt=1
            )
            if "error" in outcome:
                return "failed"
            sets = outcome["sets"]
        ok = True
        for index, values in enumerate(sets):
            set_folder = folder if values is None else folder / f"set-{index + 1}"
            ok = await self._run_set(run, task, index, values, set_folder) and ok
        return "succeeded" if ok else "failed"

    async def preview_series(self, task: dict[str, Any], count: int) -> dict[str, Any]:
        """The first ``count`` parameter sets of the task's series, computed by a worker."""
        folder = Path(self.app.runs_dir) / task["owner"] / "previews" / uuid.uuid4().hex
        ctx = self._context(
            {"id": 0, "started": None, "created": utcnow(), "parameters": {}}, task, folder
        )
        try:
            request = {**self._request("series", task["series"], ctx, folder), "limit": count}
        except InvalidConfig as exc:
            return {"error": exc.message}
        try:
            return await self.app.executor.run(request, folder, ctx.owner_root)
        finally:
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(shutil.rmtree, folder, ignore_errors=True)
            )

    def _request(
        self, kind: str, entry: dict[str, Any], ctx: RunContext, output: Path
    ) -> dict[str, Any]:
        """The worker request for a job or series (job configs get placeholders filled).

        Raises ``InvalidConfig`` when a path field, filled in, leads outside the owner's files.
        """
        config = entry.get("config") or {}
        filled = ctx.fill(config)
        self.registry.get(kind, entry["type"]).check_paths(filled, ctx.files, template=False)
        return {
            "kind": kind,
            "entry": {**entry, "config": filled if kind == "job" else config},
            "context": {
                "owner": ctx.owner,
                "owner_root": str(ctx.owner_root),
                "task_id": ctx.task_id,
                "task_name": ctx.task_name,
                "run_id": ctx.run_id,
                "started": ctx.started.isoformat(),
                "output_dir": str(output),
                "placeholders": {k: v for k, v in ctx.placeholders.items() if _jsonable(v)},
                "private_folders": [str(path) for path in ctx.private_folders],
                "max_filled": ctx.max_filled,
            },
        }

    def _context(self, run: dict[str, Any], task: dict[str, Any], folder: Path) -> RunContext:
        return RunContext(
            owner=task["owner"],
            owner_root=self.app.owner_root(task["owner"]),
            task_id=task["id"],
            task_name=task["name"],
            run_id=run["id"],
            started=datetime.fromisoformat(run["started"] or run["created"]).astimezone(
                ZoneInfo(task["settings"]["timezone"])
            ),
            output_dir=folder,
            placeholders=dict(run["parameters"]),
            private_folders=self.app.private_folders(task["owner"]),
            max_filled=self.app.max_filled_length,
        )

    async def _run_set(
        self,
        run: dict[str, Any],
        task: dict[str, Any],
        index: int,
        values: dict[str, Any] | None,
        folder: Path,
    ) -> bool:
        """Jobs (with retries), then actions, for one parameter set."""
        ctx = self._context(run, task, folder)
        ctx.placeholders.update(values or {})
        set_index = None if values is None else index
        settings = task["settings"]
        attempts = settings["retries"] + 1
        for attempt in range(1, attempts + 1):
            outcomes = await asyncio.gather(
                *(
                    self._step(
                        run,
                        "job",
                        job,
                        set_index,
                        values,
                        ctx,
                        folder / f"{position + 1}-{_slug(job.get('name') or job['type'])}",
                        attempt=attempt,
                    )
                    for position, job in enumerate(task["jobs"])
                )
            )
            jobs_ok = all("error" not in outcome for outcome in outcomes)
            if jobs_ok or attempt == attempts:
                break
            await asyncio.sleep(settings["retry_backoff"] * 2 ** (attempt - 1))
        results: list[Result] = []
        for job, outcome in zip(task["jobs"], outcomes, strict=True):
            if "error" in outcome:
                name = job.get("name") or job["type"]
                results.append(Result("none", None, False, name, {"error": outcome["error"]}))
            else:
                results.extend(Result.from_json(item) for item in outcome["results"])
        if not task["jobs"]:
            results.append(Result("none"))
        ctx.placeholders["run.status"] = "succeeded" if jobs_ok else "failed"
        for result in results:
            for key, value in result.metadata.items():
                ctx.placeholders[f"job.{result.job}.{key}"] = value
        actions_ok = True
        for position, action in enumerate(task["actions"]):
            step_folder = (
                folder / f"action-{position + 1}-{_slug(action.get('name') or action['type'])}"
            )
            actions_ok = (
                await self._action(run, action, set_index, values, ctx, results, step_folder)
                and actions_ok
            )
        return jobs_ok and actions_ok

    async def _step(
        self,
        run: dict[str, Any],
        kind: str,
        entry: dict[str, Any],
        set_index: int | None,
        values: dict[str, Any] | None,
        ctx: RunContext,
        folder: Path,
        *,
        attempt: int,
    ) -> dict[str, Any]:
        """Execute a job or series through the executor and record it as a step."""
        if attempt > 1:
            folder = folder.with_name(f"{folder.name}-attempt-{attempt}")
        output = folder / "output"
        output.mkdir(parents=True, exist_ok=True)
        step_id = await self.db(
            self.store.add_step,
            {
                "run_id": run["id"],
                "kind": kind,
                "name": entry.get("name") or entry["type"],
                "type": entry["type"],
                "set_index": set_index,
                "set_values": values,
                "attempt": attempt,
                "status": "running",
                "started": utcnow(),
                "folder": str(folder),
            },
        )
        try:
            request = self._request(kind, entry, ctx, output)
        except InvalidConfig as exc:
            outcome: dict[str, Any] = {"error": exc.message}
        else:
            outcome = await self._run_request(run, step_id, folder, request, ctx.owner_root)
        run_folder = self.app.run_folder(run["owner"], run["id"])
        for item in outcome.get("results", []):
            if item["flavor"] != "file":
                continue
            # Actions attach and copy these files: each must really be in the step's output.
            path = (output / str(item["value"])).resolve()
            if output.resolve() not in path.parents:
                outcome = {
                    "error": f"the job named a result file outside its output folder: "
                    f"{str(item['value'])[:200]!r}"
                }
                break
            item["value"] = str(path.relative_to(run_folder.resolve()))
        if "error" in outcome:
            # Keep what a failed job left (a partial notebook, say) downloadable.
            outcome["results"] = [
                Result(
                    "file", str(path.relative_to(run_folder)), False, entry.get("name") or ""
                ).to_json()
                for path in sorted(output.rglob("*"))
                if path.is_file()
            ]
        await self.db(
            self.store.update_step,
            step_id,
            status="failed" if "error" in outcome else "succeeded",
            finished=utcnow(),
            error=outcome.get("error"),
            results=outcome.get("results", []),
        )
        return outcome

    async def _run_request(
        self, run: dict[str, Any], step_id: int, folder: Path, request: dict[str, Any], cwd: Path
    ) -> dict[str, Any]:
        """Hand a worker request to the executor, relaying its progress as run events."""
        relaying = asyncio.Event()
        relay = asyncio.ensure_future(self._relay_progress(run, step_id, folder, relaying))
        try:
            return await self.app.executor.run(request, folder, cwd)
        except asyncio.CancelledError:
            await self.db(self.store.update_step, step_id, status="cancelled", finished=utcnow())
            raise
        except Exception as exc:
            return {"error": f"the executor failed: {exc}"}
        finally:
            relaying.set()
            with contextlib.suppress(Exception):
                await relay

    async def _action(
        self,
        run: dict[str, Any],
        entry: dict[str, Any],
        set_index: int | None,
        values: dict[str, Any] | None,
        ctx: RunContext,
        results: list[Result],
        folder: Path,
    ) -> bool:
        """Run one action in a thread of the server, if it qualifies; record it as a step."""
        cls = self.registry.get("action", entry["type"])
        accepted = [result for result in results if result.flavor in cls.accepts]
        qualified = qualifies(entry.get("when", "always"), results) and bool(accepted)
        folder.mkdir(parents=True, exist_ok=True)
        step = {
            "run_id": run["id"],
            "kind": "action",
            "name": entry.get("name") or entry["type"],
            "type": entry["type"],
            "set_index": set_index,
            "set_values": values,
            "status": "running" if qualified else "skipped",
            "started": utcnow(),
            "folder": str(folder),
        }
        step_id = await self.db(self.store.add_step, step)
        if not qualified:
            await self.db(self.store.update_step, step_id, finished=utcnow())
            return True
        action_ctx = RunContext(
            **{**ctx.__dict__, "output_dir": self.app.run_folder(run["owner"], run["id"])}
        )
        action_ctx.placeholders = dict(ctx.placeholders)
        action_ctx.settings = self.app.component_settings.get(cls)
        action_ctx.start_task = self._chain_starter(run)
        action_ctx.log = logging.getLogger(f"jupyter_taskplanner.run.{run['id']}.{step_id}")
        handler = CappedLogHandler(folder / "log.txt", self.app.max_log_bytes)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        action_ctx.log.addHandler(handler)
        action_ctx.log.setLevel(logging.INFO)
        error = None
        try:
            action: Action = cls.from_entry(entry)  # type: ignore[assignment]
            cls.check_paths(action_ctx.fill(action.config), action_ctx.files, template=False)
            await asyncio.get_running_loop().run_in_executor(None, action.run, action_ctx, accepted)
        except asyncio.CancelledError:
            # A thread cannot be killed: tell the action to stop at its next check.
            action_ctx.cancelled.set()
            raise
        except Exception as exc:
            action_ctx.log.error("%s", "".join(traceback.format_exception(exc)))
            error = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        finally:
            action_ctx.log.removeHandler(handler)
            handler.close()
        await self.db(
            self.store.update_step,
            step_id,
            status="failed" if error else "succeeded",
            finished=utcnow(),
            error=error,
        )
        return error is None

    def _chain_starter(self, run: dict[str, Any]) -> Callable[[int], None]:
        """A thread-safe ``start_task`` for next-task actions of ``run`` (loop protection)."""
        loop = asyncio.get_running_loop()

        def start(task_id: int) -> None:
            future = asyncio.run_coroutine_threadsafe(self.start_in_chain(run, task_id), loop)
            future.result(timeout=60)

        return start

    async def start_in_chain(self, run: dict[str, Any], task_id: int) -> dict[str, Any] | None:
        """Start ``task_id`` (same owner) as the next link of ``run``'s chain, at most once."""
        if self._stopping:
            self.log.info("the server is stopping; run %s starts no next task", run["id"])
            return None
        if task_id in run["chain"]:
            self.log.info(
                "chain of run %s already ran task %s; not starting it again", run["id"], task_id
            )
            return None
        task = await self.db(self.store.get_task, task_id, run["owner"])
        if await self.db(self.store.active_runs, task_id):
            self.log.info("task %s is already running; the chain does not start it again", task_id)
            return None
        return await self.submit(
            task,
            trigger=f"chain:{run['task_id']}",
            started_by=run["started_by"],
            chain=run["chain"],
            overlap="skip",
        )

    async def _prune(self, task_id: int) -> None:
        keep_days = self.app.keep_run_days
        before = None
        if keep_days:
            before = (datetime.now(UTC) - timedelta(days=keep_days)).isoformat()
        task = await self._task_or_none(task_id)
        removed = await self.db(self.store.prune_runs, task_id, self.app.keep_runs, before)
        for run_id in removed if task else []:
            folder = self.app.run_folder(task["owner"], run_id)
            await asyncio.get_running_loop().run_in_executor(
                None, functools.partial(shutil.rmtree, folder, ignore_errors=True)
            )

    async def _relay_progress(
        self, run: dict[str, Any], step_id: int, folder: Path, stop: asyncio.Event
    ) -> None:
        """Send a job's progress reports (the worker's progress.json) as run events."""
        async for _ in watchfiles.awatch(
            folder,
            stop_event=stop,
            recursive=False,
            debounce=100,
            watch_filter=lambda _, path: Path(path).name == "progress.json",
        ):
            with contextlib.suppress(OSError, ValueError):
                progress = json.loads((folder / "progress.json").read_text())
                self._emit(run, "progress", step_id=step_id, **progress)

    def _emit(self, run: dict[str, Any], what: str, **extra: Any) -> None:
        logger = getattr(self.app.serverapp, "event_logger", None)
        if logger is None:
            return
        logger.emit(
            schema_id=EVENT_SCHEMA,
            data={
                "action": what,
                "run_id": run["id"],
                "task_id": run["task_id"],
                "owner": run["owner"],
                "status": run["status"],
                "trigger": run["trigger"],
                **extra,
            },
        )


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))
