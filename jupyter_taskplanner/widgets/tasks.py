"""``TaskList``: the tasks a page at a time, with their state, next start and last run, and
buttons to run, switch and delete them."""

from __future__ import annotations

from html import escape
from typing import Any

import ipywidgets as w
from traitlets import Bool, Instance, Int, List, Unicode, observe

from ..client import Forbidden, PlannerError, TaskPlanner, TaskSummary
from ..vocabulary import TaskRecord
from .forms import status_html


class TaskRow(w.HBox):
    """One task: name (selects it), owner, enabled toggle, next start, last run, buttons."""

    task_id = Int(help="The task's id.")
    select = Instance(w.Button, help="The task's name; a click selects the task.")
    enabled = Instance(w.ToggleButton, help="On: its triggers start it.")
    next_fire = Instance(w.HTML)
    last_run = Instance(w.HTML, help="The status of its latest run, in colour.")
    run = Instance(w.Button)
    delete = Instance(w.Button)


class TaskList(w.VBox):
    """The caller's tasks (every owner's for an admin, with an owner filter), filtered by a
    text, a page at a time: only the page shown is fetched, so it stays fast with many tasks."""

    query = Instance(w.Text, help="Shows the tasks whose name or description holds this text.")
    owner = Instance(w.Text, help="Admins: the owner whose tasks to show (* for all).")
    rows = List(Instance(TaskRow), help="The tasks of the page shown.")
    page = Int(0, help="The page shown, from 0.")
    page_size = Int(20, help="Tasks per page.")
    total = Int(0, help="Matching tasks over all pages.")
    selected = Int(None, allow_none=True, help="The id of the task last selected.")
    is_admin = Bool(False, help="Whether the caller may list every owner's tasks.")
    previous = Instance(w.Button)
    next = Instance(w.Button)
    position = Instance(w.HTML)
    status = Instance(w.HTML)
    message = Unicode(help="What the last action did.")

    def __init__(self, client: TaskPlanner | None = None, page_size: int = 20) -> None:
        self.client = client or TaskPlanner()
        try:
            self.client.tasks_page(limit=1, owner="*")
            is_admin = True
        except Forbidden:
            is_admin = False
        super().__init__(
            query=w.Text(placeholder="filter by name or description", description="Filter"),
            owner=w.Text(
                value="*", description="Owner", layout=w.Layout(display="" if is_admin else "none")
            ),
            previous=w.Button(description="Previous", icon="arrow-left"),
            next=w.Button(description="Next", icon="arrow-right"),
            position=w.HTML(""),
            status=w.HTML(""),
            is_admin=is_admin,
            page_size=page_size,
        )
        self.previous.on_click(lambda _: setattr(self, "page", self.page - 1))
        self.next.on_click(lambda _: setattr(self, "page", self.page + 1))
        self.query.observe(lambda _: self._first_page(), "value")
        self.owner.observe(lambda _: self._first_page(), "value")
        self.body = w.VBox()
        self.children = [
            w.HBox([self.query, self.owner]),
            self.body,
            w.HBox([self.previous, self.position, self.next]),
            self.status,
        ]
        self.refresh()

    def _first_page(self) -> None:
        if self.page == 0:
            self.refresh()
        self.page = 0

    @observe("page")
    def _page_changed(self, change: dict[str, Any]) -> None:
        self.refresh()

    @observe("message")
    def _show_message(self, change: dict[str, Any]) -> None:
        self.status.value = escape(change["new"])

    def refresh(self) -> None:
        """Read the page shown again."""
        page = self.client.tasks_page(
            limit=self.page_size,
            offset=self.page * self.page_size,
            q=self.query.value or None,
            owner=(self.owner.value or None) if self.is_admin else None,
            include=("next", "last_run"),
        )
        self.total = page.total
        # One request for the page: each row's next start and last run come with it.
        self.rows = [self._row(task, page.summaries.get(task["id"], {})) for task in page.items]
        self.body.children = tuple(self.rows)
        pages = max(1, -(-page.total // self.page_size))
        self.position.value = f"page {self.page + 1} of {pages} ({page.total} tasks)"
        self.previous.disabled = self.page == 0
        self.next.disabled = not page.has_next

    def _row(self, task: TaskRecord, summary: TaskSummary) -> TaskRow:
        next_start = summary.get("next_start")
        latest = summary.get("last_run")
        row = TaskRow(
            task_id=task["id"],
            select=w.Button(
                description=task["name"], tooltip=task["description"], layout=w.Layout(width="30%")
            ),
            enabled=w.ToggleButton(
                value=task["enabled"], description="on" if task["enabled"] else "off"
            ),
            next_fire=w.HTML(escape(next_start) if next_start else "-"),
            last_run=w.HTML(status_html(latest["status"] if latest else None)),
            run=w.Button(description="Run", icon="play"),
            delete=w.Button(description="Delete", icon="trash", button_style="danger"),
        )
        owner = [w.HTML(escape(task["owner"]))] if self.is_admin else []
        row.children = [
            row.select,
            *owner,
            row.enabled,
            row.next_fire,
            row.last_run,
            row.run,
            row.delete,
        ]
        row.select.on_click(lambda _: setattr(self, "selected", task["id"]))
        row.enabled.observe(lambda change: self._switch(row, change["new"]), "value")
        row.run.on_click(lambda _: self._run(row))
        row.delete.on_click(lambda _: self._delete(row))
        return row

    def _switch(self, row: TaskRow, on: bool) -> None:
        self._act(
            lambda: (
                self.client.enable_task(row.task_id)
                if on
                else self.client.disable_task(row.task_id)
            )
        )
        row.enabled.description = "on" if on else "off"

    def _run(self, row: TaskRow) -> None:
        started = self._act(lambda: self.client.start_run(row.task_id))
        if started:
            self.message = f"run {started['id']} of task {row.task_id} {started['status']}"
            row.last_run.value = status_html(started["status"])

    def _delete(self, row: TaskRow) -> None:
        if self._act(lambda: self.client.delete_task(row.task_id)) is not False:
            self.message = f"task {row.task_id} deleted"
            self.refresh()

    def _act(self, action: Any) -> Any:
        try:
            return action()
        except PlannerError as exc:
            self.message = f"error: {exc.message}"
            return False
