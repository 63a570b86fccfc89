"""``Planner``: the task list, the composer and the run history as tabs of one panel."""

from __future__ import annotations

from typing import Any

import ipywidgets as w
from traitlets import Instance, observe

from ..client import TaskPlanner
from .composer import Composer
from .runs import RunHistory
from .tasks import TaskList


class Planner(w.VBox):
    """The planner in a notebook: ``Planner()``.  Selecting a task in the list opens it in
    the composer and shows its runs; saving in the composer refreshes the list."""

    tasks = Instance(TaskList)
    composer = Instance(Composer)
    history = Instance(RunHistory)
    tabs = Instance(w.Tab)

    def __init__(self, client: TaskPlanner | None = None, live: bool = True) -> None:
        client = client or TaskPlanner()
        tasks, composer = TaskList(client), Composer(client)
        history = RunHistory(client, live=live)
        tabs = w.Tab(children=[tasks, composer, history])
        for index, title in enumerate(("Tasks", "Compose", "Runs")):
            tabs.set_title(index, title)
        super().__init__(
            tasks=tasks, composer=composer, history=history, tabs=tabs, children=[tabs]
        )
        composer.observe(lambda _: tasks.refresh(), "saved")

    @observe("tasks")
    def _wire(self, change: dict[str, Any]) -> None:
        change["new"].observe(self._selected, "selected")

    def _selected(self, change: dict[str, Any]) -> None:
        if change["new"] is None:
            return
        self.composer.load(change["new"])
        self.history.task_id = change["new"]
        self.tabs.selected_index = 1

    def close(self) -> None:
        self.history.close()
        super().close()
