"""The ``next_task`` action: start other tasks of the same owner, once per chain."""

from __future__ import annotations

from typing import Any, ClassVar

from ..components.base import Action, Result, RunContext, TaskLinks
from ..vocabulary import MAX_ID


class NextTaskAction(Action):
    """Starts other tasks (even disabled ones) when this one is done."""

    type_name = "next_task"
    title = "Start next tasks"
    description = (
        "Start other tasks of yours after this one, even disabled ones. A chain starts each "
        "task at most once, and a task that is still running is not started again."
    )
    accepts = frozenset({"file", "text", "none"})
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["task_ids"],
        "additionalProperties": False,
        "properties": {
            "task_ids": {
                "type": "array",
                "title": "Tasks",
                "description": "Ids of the tasks to start, in this order.",
                "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                "minItems": 1,
            }
        },
    }

    @classmethod
    def link(cls, config: dict[str, Any], links: TaskLinks) -> dict[str, Any]:
        """Every task to start must exist and be another of the owner's (any, for an admin)."""
        for index, task_id in enumerate(config["task_ids"]):
            links.target(task_id, f"task_ids.{index}")
        return config

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        if ctx.start_task is None:
            raise RuntimeError("next_task can only run inside the planner's server")
        for task_id in self.config["task_ids"]:
            run = ctx.start_task(task_id)
            if run is None:
                ctx.log.info("task %s not started: the server is stopping", task_id)
            elif run["status"] == "skipped":
                ctx.log.info(
                    "task %s: start suppressed (run %s): %s", task_id, run["id"], run["error"]
                )
            else:
                ctx.log.info("started task %s (run %s)", task_id, run["id"])
