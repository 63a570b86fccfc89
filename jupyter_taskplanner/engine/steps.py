"""One step of a run: a job or series through the executor, an action in a server thread."""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from traitlets.config import Configurable

from ..bus import EventBus, RunProgress, StepChanged
from ..components.base import Component, Result, RunContext
from ..components.registry import Registry
from ..database import Database
from ..errors import InvalidConfig
from ..executors import Executor, StepOutcome, StepRequest
from ..logs import CappedLogHandler
from ..store import utcnow
from ..vocabulary import ComponentEntry, RunRecord, StepStatus


def slug(text: str) -> str:
    """A step folder's name from a component's name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "step"


def qualifies(when: str, results: list[Result]) -> bool:
    """Whether an action's execution qualification holds for these results."""
    valid = [result.valid for result in results]
    return {
        "always": True,
        "any_valid": any(valid),
        "all_valid": bool(valid) and all(valid),
        "none_valid": not any(valid),
    }[when]


def _jsonable(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool, type(None), list, dict))


def step_request(
    registry: Registry,
    kind: str,
    entry: Mapping[str, Any],
    ctx: RunContext,
    folder: Path,
    limit: int | None = None,
    state: dict[str, Any] | None = None,
    resources: Mapping[str, float] | None = None,
) -> StepRequest:
    """The executor request for a job or series (a job's config gets its placeholders filled).

    Raises ``InvalidConfig`` when a path field, filled in, leads outside the owner's files.
    """
    config = entry.get("config") or {}
    filled = ctx.fill(config)
    registry.get(kind, entry["type"]).check_paths(filled, ctx.files, template=False)
    return StepRequest(
        kind="job" if kind == "job" else "series",
        entry={**entry, "config": filled if kind == "job" else config},
        context={
            "owner": ctx.owner,
            "owner_root": str(ctx.owner_root),
            "task_id": ctx.task_id,
            "task_name": ctx.task_name,
            "run_id": ctx.run_id,
            "started": ctx.started.isoformat(),
            "placeholders": {k: v for k, v in ctx.placeholders.items() if _jsonable(v)},
            "private_folders": [str(path) for path in ctx.private_folders],
            "max_filled": ctx.max_filled,
            "max_sets": ctx.max_sets,
            "state": state or {},
        },
        folder=folder,
        output=folder / "output",
        cwd=ctx.owner_root,
        limit=limit,
        resources=dict(resources or {}),
    )


def state_key(slot: str, position: int, entry: ComponentEntry) -> str:
    """Where a component's state is kept: by its name (or place) and type, so reordering
    named components keeps their state and a changed type starts afresh."""
    return f"{slot}/{entry.get('name') or position}/{entry['type']}"


@dataclass
class States:
    """The state of a run's components: as kept from the last successful run, and as its
    steps leave it (saved only when the run succeeds)."""

    kept: dict[str, Any] = field(default_factory=dict)
    changed: dict[str, Any] = field(default_factory=dict)

    def of(self, key: str) -> dict[str, Any]:
        """A copy of the component's current state (empty when it has none)."""
        return copy.deepcopy(self.changed.get(key, self.kept.get(key, {})))

    def keep(self, key: str, state: dict[str, Any] | None) -> None:
        """Note what a step left as its component's state."""
        if isinstance(state, dict) and state != self.of(key):
            self.changed[key] = copy.deepcopy(state)


class StepRunner:
    """Executes and records the steps of runs (the store sees each step begin and end)."""

    def __init__(
        self,
        db: Database,
        registry: Registry,
        executor: Executor,
        bus: EventBus,
        component_settings: dict[type[Component], Configurable],
        max_log_bytes: Callable[[], int],
    ) -> None:
        self.db = db
        self.registry = registry
        self.executor = executor
        self.bus = bus
        self.component_settings = component_settings
        self.max_log_bytes = max_log_bytes
        self._publishing: set[asyncio.Future[list[object]]] = set()

    async def work(
        self,
        run: RunRecord,
        kind: str,
        entry: ComponentEntry,
        ctx: RunContext,
        folder: Path,
        run_folder: Path,
        *,
        set_index: int | None,
        values: dict[str, Any] | None,
        attempt: int,
        states: States | None = None,
        key: str = "",
        resources: Mapping[str, float] | None = None,
    ) -> StepOutcome:
        """Execute a job or series through the executor and record it as a step.

        ``states`` and ``key``: where the component's state is read and, after a success,
        noted (a preview or an ad-hoc run keeps none).  ``resources``: the task's worker
        resources (``StepRequest.resources``).
        """
        store = self.db.store
        if attempt > 1:
            folder = folder.with_name(f"{folder.name}-attempt-{attempt}")
        folder.mkdir(parents=True, exist_ok=True)
        step_id = await self.db.call(
            store.add_step,
            {
                "run_id": run["id"],
                "kind": kind,
                "name": entry.get("name") or entry["type"],
                "type": entry["type"],
                "set_index": set_index,
                "set_values": values,
                "attempt": attempt,
                "status": StepStatus.RUNNING,
                "started": utcnow(),
                "folder": str(folder),
            },
        )
        name = entry.get("name") or entry["type"]
        await self.bus.publish(StepChanged(run, step_id, kind, name, StepStatus.RUNNING))

        def progress(done: int, total: int, message: str) -> None:
            publishing = asyncio.ensure_future(
                self.bus.publish(RunProgress(run, step_id, done, total, message))
            )
            self._publishing.add(publishing)
            publishing.add_done_callback(self._publishing.discard)

        try:
            state = states.of(key) if states is not None else {}
            request = step_request(
                self.registry, kind, entry, ctx, folder, state=state, resources=resources
            )
        except InvalidConfig as exc:
            outcome = StepOutcome(error=exc.message)
        else:
            try:
                outcome = await self.executor.run_step(request, progress)
            except asyncio.CancelledError:
                await self.db.call(
                    store.update_step, step_id, status=StepStatus.CANCELLED, finished=utcnow()
                )
                await self.bus.publish(StepChanged(run, step_id, kind, name, StepStatus.CANCELLED))
                raise
            except Exception as exc:
                outcome = StepOutcome(error=f"the executor failed: {exc}")
            outcome = _placed(outcome, request.output, run_folder)
        if outcome.error is None and states is not None:
            states.keep(key, outcome.state)
        status = StepStatus.FAILED if outcome.error else StepStatus.SUCCEEDED
        await self.db.call(
            store.update_step,
            step_id,
            status=status,
            finished=utcnow(),
            error=outcome.error,
            results=outcome.results,
        )
        await self.bus.publish(StepChanged(run, step_id, kind, name, status))
        return outcome

    async def act(
        self,
        run: RunRecord,
        entry: ComponentEntry,
        ctx: RunContext,
        results: list[Result],
        folder: Path,
        start_task: Callable[[int], RunRecord | None],
        *,
        set_index: int | None,
        values: dict[str, Any] | None,
        states: States | None = None,
        key: str = "",
    ) -> bool:
        """Run one action in a thread of the server, if it qualifies; record it as a step."""
        store = self.db.store
        cls = self.registry.get("action", entry["type"])
        when = entry.get("when", "always")
        accepted = [result for result in results if result.flavor in cls.accepts]
        if when == "any_valid":
            # "Processes only those results": the invalid ones are not handed over.
            accepted = [result for result in accepted if result.valid]
        qualified = qualifies(when, results) and bool(accepted)
        folder.mkdir(parents=True, exist_ok=True)
        name = entry.get("name") or entry["type"]
        status = StepStatus.RUNNING if qualified else StepStatus.SKIPPED
        step = {
            "run_id": run["id"],
            "kind": "action",
            "name": name,
            "type": entry["type"],
            "set_index": set_index,
            "set_values": values,
            "status": status,
            "started": utcnow(),
            "folder": str(folder),
        }
        step_id = await self.db.call(store.add_step, step)
        await self.bus.publish(StepChanged(run, step_id, "action", name, status))
        if not qualified:
            await self.db.call(store.update_step, step_id, finished=utcnow())
            return True
        action_ctx = RunContext(**{**ctx.__dict__, "placeholders": dict(ctx.placeholders)})
        action_ctx.settings = self.component_settings.get(cls)
        action_ctx.state = states.of(key) if states is not None else {}
        action_ctx.start_task = start_task
        # Not logging.getLogger: that registers a logger per step for the life of the process.
        action_ctx.log = logging.Logger(f"jupyter_taskplanner.run.{run['id']}.{step_id}")
        handler = CappedLogHandler(folder / "log.txt", self.max_log_bytes())
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        action_ctx.log.addHandler(handler)
        action_ctx.log.setLevel(logging.INFO)
        error = None
        try:
            action = cls.from_entry(entry)
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
        if error is None and states is not None:
            states.keep(key, action_ctx.state)
        status = StepStatus.FAILED if error else StepStatus.SUCCEEDED
        await self.db.call(
            store.update_step, step_id, status=status, finished=utcnow(), error=error
        )
        await self.bus.publish(StepChanged(run, step_id, "action", name, status))
        return error is None


def _placed(outcome: StepOutcome, output: Path, run_folder: Path) -> StepOutcome:
    """The outcome with file results relative to the run's folder, each checked to be there.

    Actions attach and copy these files, so a result naming a file outside the step's output
    fails the step.
    """
    root, inside = run_folder.resolve(), output.resolve()
    for item in outcome.results:
        if item["flavor"] != "file":
            continue
        path = (output / str(item["value"])).resolve()
        if inside not in path.parents:
            shown = str(item["value"])[:200]
            return StepOutcome(
                error=f"the job named a result file outside its output folder: {shown!r}"
            )
        item["value"] = path.relative_to(root).as_posix()
    return outcome
