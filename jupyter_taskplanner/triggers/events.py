"""Triggers on the planner's own events: another task finished, the server started, an
HTTP call of the task's secret URL.

Each is an ordinary ``PlannerEventTrigger``: it names the bus events it listens to and says
in ``fire_on`` whether one starts its task; a plugin's trigger on planner events is written
the same way.
"""

from __future__ import annotations

import hmac
from typing import Any, ClassVar

from ..bus import HttpCall, PlannerEvent, RunFinished, ServerStarted
from ..components.base import Fire, PlannerEventTrigger, TaskLinks
from ..vocabulary import MAX_ID, MAX_SECONDS, TaskRecord

OUTCOMES = ("always", "success", "failure")


class AfterTaskTrigger(PlannerEventTrigger):
    """Fires when another task finishes, on success, failure or always.

    The other task is the owner's own; a task of an admin may follow any owner's task (the
    target's owner is recorded when the task is saved).
    """

    events = (RunFinished,)
    type_name: ClassVar[str] = "after_task"
    title: ClassVar[str] = "After another task"
    description: ClassVar[str] = (
        "Starts the task when another of your tasks finishes: always, only after a success or "
        "only after a failure."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "After another task",
        "required": ["task_id"],
        "additionalProperties": False,
        "properties": {
            "task_id": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_ID,
                "title": "Task",
                "description": "The id of the task (one of yours) whose end starts this one.",
            },
            "task_owner": {
                "type": "string",
                "readOnly": True,
                "title": "Its owner",
                "description": "Set by the server when an admin's task follows a task of "
                "another owner.",
            },
            "on": {
                "enum": list(OUTCOMES),
                "default": "success",
                "title": "When it",
                "description": "always: whenever it ends; success: only when it succeeded; "
                "failure: only when it did not succeed.",
            },
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.task_id: int = config["task_id"]
        self.on: str = config.get("on", "success")

    @classmethod
    def link(cls, config: dict[str, Any], links: TaskLinks) -> dict[str, Any]:
        """The followed task must exist and be another of the owner's (any, for an admin)."""
        target = links.target(config["task_id"], "task_id")
        linked = {key: value for key, value in config.items() if key != "task_owner"}
        if target is not None and target["owner"] != links.owner:
            linked["task_owner"] = target["owner"]
        return linked

    def fire_on(self, event: PlannerEvent, task: TaskRecord) -> Fire | None:
        """The end of a run of the watched task, of the same owner, with the chosen outcome.

        The new run continues the finished run's chain, so a loop of tasks stops.
        """
        assert isinstance(event, RunFinished)
        run = event.run
        if run["task_id"] != self.task_id:
            return None
        if run["owner"] != self.config.get("task_owner", task["owner"]):
            return None
        if run["status"] == "skipped":
            return None
        if self.on != "always" and (self.on == "success") != (run["status"] == "succeeded"):
            return None
        return Fire(chain=tuple(run["chain"]), trigger=f"after_task:{run['task_id']}")


class ServerStartTrigger(PlannerEventTrigger):
    """Fires once each time the server starts, after an optional delay."""

    events = (ServerStarted,)
    type_name: ClassVar[str] = "server_start"
    title: ClassVar[str] = "Server start"
    description: ClassVar[str] = "Starts the task once each time the Jupyter server starts."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Server start",
        "additionalProperties": False,
        "properties": {
            "delay": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_SECONDS,
                "default": 0,
                "title": "Delay (seconds)",
                "description": "How long to wait after the server started.",
            },
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.delay: float = config.get("delay", 0)

    def fire_on(self, event: PlannerEvent, task: TaskRecord) -> Fire | None:
        return Fire(delay=self.delay, trigger="server_start")


class HttpTrigger(PlannerEventTrigger):
    """Fires on a POST to the task's secret URL; query and form fields become placeholders."""

    events = (HttpCall,)
    type_name: ClassVar[str] = "http"
    title: ClassVar[str] = "HTTP call"
    description: ClassVar[str] = (
        "Starts the task on POST /taskplanner/api/tasks/{id}/trigger/{token}; the query and "
        "form fields of the call become placeholders."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "HTTP call",
        "additionalProperties": False,
        "properties": {
            # Not writeOnly: the owner must be able to read back their URL.  A credential:
            # generated when left out, never exported, new in a copy or an import.
            "token": {
                "x-credential": True,
                "type": "string",
                "minLength": 16,
                "maxLength": 200,
                "pattern": "^[A-Za-z0-9_-]+$",
                "title": "Secret token",
                "description": "The secret part of the URL POST "
                "/taskplanner/api/tasks/{id}/trigger/{token}: at least 16 letters, digits, "
                "'-' or '_'; generated when left out. Anyone who knows the URL can start the "
                "task. Exports leave it out; a copy or an import gets a new one.",
            },
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.token: str = config["token"]

    def accepts(self, token: str) -> bool:
        """Whether a called URL's token is this trigger's (compared in constant time)."""
        return hmac.compare_digest(token.encode(), self.token.encode())

    def fire_on(self, event: PlannerEvent, task: TaskRecord) -> Fire | None:
        assert isinstance(event, HttpCall)
        if event.task_id != task["id"] or not self.accepts(event.token):
            return None
        return Fire(placeholders=dict(event.parameters), trigger="http", started_by="http")
