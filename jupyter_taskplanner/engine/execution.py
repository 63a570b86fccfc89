"""One run's execution: its series, then per parameter set its jobs (with retries) and
its actions, under the task's timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from ..components.base import Result, RunContext, is_builtin_placeholder
from ..components.registry import Registry
from ..model import component_classes
from ..owners import OwnerFolders
from ..permissions import ComponentRules
from ..vocabulary import RunRecord, RunStatus, TaskRecord
from .settings import EngineSettings
from .steps import States, StepRunner, slug, state_key


class RunStart(TypedDict):
    """What a run's context is made of: every ``RunRecord`` has these fields (a series
    preview makes up a run of just these)."""

    id: int
    started: str | None
    created: str
    parameters: dict[str, Any]


class RunExecution:
    """Executes the body of one run of a task, step by step, and says how it went."""

    def __init__(
        self,
        run: RunRecord,
        task: TaskRecord,
        *,
        registry: Registry,
        owners: OwnerFolders,
        rules: ComponentRules,
        settings: EngineSettings,
        steps: StepRunner,
        start_task: Callable[[int], RunRecord | None],
        states: States | None = None,
    ) -> None:
        self.run = run
        self.task = task
        self.registry = registry
        self.owners = owners
        self.rules = rules
        self.settings = settings
        self.steps = steps
        self.start_task = start_task
        self.states = states
        """The components' state (None: an ad-hoc run, which keeps none)."""
        self.folder = owners.run_folder(task["owner"], run["id"])

    def context(self, output: Path) -> RunContext:
        """The run's context for a step writing into ``output``."""
        return run_context(self.run, self.task, output, self.owners, self.settings)

    async def execute(self) -> RunStatus:
        """Run the series (if any), then every set; ``succeeded`` or ``failed``."""
        # Checked at save time too; the owner may have lost a permission since.
        owner = self.task["owner"]
        await self.rules.ready(owner)
        self.rules.check_owner(owner)
        self.rules.check(owner, component_classes(self.task, self.registry))
        sets: list[dict[str, Any] | None] = [None]
        if self.task["series"]:
            outcome = await self.steps.work(
                self.run,
                "series",
                self.task["series"],
                self.context(self.folder),
                self.folder / "series",
                self.folder,
                set_index=None,
                values=None,
                attempt=1,
                states=self.states,
                key=state_key("series", 0, self.task["series"]),
            )
            if outcome.error is not None:
                return RunStatus.FAILED
            sets = list(outcome.sets or [])
        return RunStatus.SUCCEEDED if await self._run_sets(sets) else RunStatus.FAILED

    async def _run_sets(self, sets: list[dict[str, Any] | None]) -> bool:
        """Every set, taken in order by as many workers as the executor runs sets at once
        (``Executor.concurrent_sets``; one after the other on the local executor).

        A bounded pool, not a task per set: a series of 100,000 sets holds a few coroutines,
        and each worker lets the server's other work go first between two sets.
        """
        pending = iter(enumerate(sets))
        outcomes: list[bool] = []

        async def worker() -> None:
            for index, values in pending:
                folder = self.folder if values is None else self.folder / f"set-{index + 1}"
                outcomes.append(await self._run_set(index, values, folder))
                await asyncio.sleep(0)  # a set that awaited nothing still yields

        count = max(1, min(self.steps.executor.concurrent_sets, len(sets)))
        workers = [asyncio.ensure_future(worker()) for _ in range(count)]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # An error or a cancel ends the run: no set goes on after it.
            for future in workers:
                future.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        return all(outcomes)

    async def _run_set(self, index: int, values: dict[str, Any] | None, folder: Path) -> bool:
        """Jobs (with retries), then actions, for one parameter set."""
        if not self.task["jobs"] and not self.task["actions"]:
            return True  # nothing runs per set (a series previewed through a run)
        ctx = self.context(folder)
        # A set's key named like a built-in (a column "run.status" or "trigger.due") is kept
        # with the set's values but never stands for the built-in.
        ctx.placeholders.update(
            {key: value for key, value in (values or {}).items() if not is_builtin_placeholder(key)}
        )
        set_index = None if values is None else index
        settings = self.task["settings"]
        jobs = self.task["jobs"]
        attempts = settings["retries"] + 1
        for attempt in range(1, attempts + 1):
            outcomes = await asyncio.gather(
                *(
                    self.steps.work(
                        self.run,
                        "job",
                        job,
                        ctx,
                        folder / f"{position + 1}-{slug(job.get('name') or job['type'])}",
                        self.folder,
                        set_index=set_index,
                        values=values,
                        attempt=attempt,
                        states=self.states,
                        key=state_key("jobs", position, job),
                        resources=settings.get("resources"),
                    )
                    for position, job in enumerate(jobs)
                )
            )
            jobs_ok = all(outcome.error is None for outcome in outcomes)
            if jobs_ok or attempt == attempts:
                break
            await asyncio.sleep(settings["retry_backoff"] * 2 ** (attempt - 1))
        results: list[Result] = []
        for job, outcome in zip(jobs, outcomes, strict=True):
            if outcome.error is not None:
                name = job.get("name") or job["type"]
                results.append(Result("none", None, False, name, {"error": outcome.error}))
            else:
                results.extend(Result.from_json(item) for item in outcome.results)
        if not jobs:
            results.append(Result("none"))
        ctx.placeholders["run.status"] = RunStatus.SUCCEEDED if jobs_ok else RunStatus.FAILED
        for result in results:
            for key, value in result.metadata.items():
                ctx.placeholders[f"job.{result.job}.{key}"] = value
        # Actions see the run's folder as their output: that is where results live.
        action_ctx = RunContext(**{**ctx.__dict__, "output_dir": self.folder})
        actions_ok = True
        for position, action in enumerate(self.task["actions"]):
            name = slug(action.get("name") or action["type"])
            done = await self.steps.act(
                self.run,
                action,
                action_ctx,
                results,
                folder / f"action-{position + 1}-{name}",
                self.start_task,
                set_index=set_index,
                values=values,
                states=self.states,
                key=state_key("actions", position, action),
            )
            actions_ok = done and actions_ok
        return jobs_ok and actions_ok


def run_context(
    run: RunStart,
    task: TaskRecord,
    output: Path,
    owners: OwnerFolders,
    settings: EngineSettings,
) -> RunContext:
    """The context of ``run`` of ``task`` for a step writing into ``output``."""
    return RunContext(
        owner=task["owner"],
        owner_root=owners.root(task["owner"]),
        task_id=task["id"],
        task_name=task["name"],
        run_id=run["id"],
        started=datetime.fromisoformat(run["started"] or run["created"]).astimezone(
            ZoneInfo(task["settings"]["timezone"])
        ),
        output_dir=output,
        placeholders=dict(run["parameters"]),
        private_folders=owners.private(task["owner"]),
        max_filled=settings.max_filled_length,
        max_sets=settings.max_series_sets,
    )
