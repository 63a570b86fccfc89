"""``RunHistory``: a task's runs with per-step status, log tail, result files, cancel, and a
chart of recent durations and outcomes, kept current by the server's run events."""

from __future__ import annotations

import threading
from datetime import datetime
from html import escape
from typing import Any

import altair as alt
import ipywidgets as w
from traitlets import Bool, Instance, Int, observe

from ..client import PlannerError, TaskPlanner
from ..client.events import RunEvents
from ..vocabulary import ACTIVE, STOPPED, RunDetail, RunRecord
from .forms import STATUS_COLORS, status_html

VEGA_LITE = "application/vnd.vegalite.v5+json"


def _seconds(run: RunRecord) -> float | None:
    if not (run["started"] and run["finished"]):
        return None
    started, finished = (
        datetime.fromisoformat(run["started"]),
        datetime.fromisoformat(run["finished"]),
    )
    return (finished - started).total_seconds()


def duration_chart(runs: list[RunRecord]) -> alt.Chart:
    """A bar per run: its duration, coloured by its outcome (oldest left)."""
    rows = [
        {"run": run["id"], "seconds": _seconds(run) or 0.0, "status": run["status"]}
        for run in reversed(runs)
    ]
    statuses = sorted(STATUS_COLORS)
    color = alt.Color(
        "status:N", scale=alt.Scale(domain=statuses, range=[STATUS_COLORS[s] for s in statuses])
    )
    return (
        alt.Chart(alt.Data(values=rows), title="Recent runs")
        .mark_bar()
        .encode(x=alt.X("run:O", title="run"), y=alt.Y("seconds:Q", title="seconds"), color=color)
        .properties(width=420, height=160)
    )


class RunHistory(w.VBox):
    """The runs of one task (``task_id``), newest first; choosing one shows its steps, the
    tail of its log and its result files.  With ``live``, the server's run events refresh it
    while runs start, progress and end (no polling)."""

    task_id = Int(None, allow_none=True, help="The task whose runs are shown.")
    run_id = Int(None, allow_none=True, help="The run whose detail is shown.")
    runs = Instance(w.Select, help="The task's recent runs.")
    steps = Instance(w.HTML, help="The chosen run's steps with their status.")
    log = Instance(w.Textarea, help="The tail of the chosen run's log.")
    files = Instance(w.HTML, help="Links to the chosen run's result files.")
    cancel = Instance(w.Button, help="Cancels the chosen run while it is queued or running.")
    chart_output = Instance(w.Output, help="The chart of recent durations and outcomes.")
    status = Instance(w.HTML)
    live = Bool(False, help="Follow the server's run events.")
    limit = Int(20, help="How many recent runs are listed and charted.")

    def __init__(
        self, client: TaskPlanner | None = None, task_id: int | None = None, live: bool = True
    ) -> None:
        self.client = client or TaskPlanner()
        self.chart: alt.Chart | None = None
        self.detail: RunDetail | None = None
        self._listener: threading.Thread | None = None
        self._events: RunEvents | None = None
        self._stop = threading.Event()
        super().__init__(
            runs=w.Select(options=[], rows=8, description="Runs", layout=w.Layout(width="60%")),
            steps=w.HTML(""),
            log=w.Textarea(layout=w.Layout(width="95%", height="160px"), disabled=True),
            files=w.HTML(""),
            cancel=w.Button(
                description="Cancel run", icon="stop", button_style="danger", disabled=True
            ),
            chart_output=w.Output(),
            status=w.HTML(""),
        )
        self.runs.observe(lambda change: setattr(self, "run_id", change["new"]), "value")
        self.cancel.on_click(lambda _: self._cancel())
        self.children = [
            self.chart_output,
            self.runs,
            self.steps,
            w.HTML("<b>Log (tail)</b>"),
            self.log,
            self.files,
            self.cancel,
            self.status,
        ]
        self.task_id = task_id
        self.live = live

    @observe("task_id")
    def _task_changed(self, change: dict[str, Any]) -> None:
        if self._listener is not None:
            self._follow_task()
        self.refresh()

    @observe("run_id")
    def _run_changed(self, change: dict[str, Any]) -> None:
        self.show_run()

    @observe("live")
    def _live_changed(self, change: dict[str, Any]) -> None:
        if change["new"] and self._listener is None:
            self._stop.clear()
            self._follow_task()
            self._listener = threading.Thread(
                target=self._follow, name="taskplanner-events", daemon=True
            )
            self._listener.start()
        elif not change["new"] and self._listener is not None:
            self._stop.set()
            self._listener.join()
            self._listener = None
            events, self._events = self._events, None
            if events is not None:
                events.close()

    def _follow_task(self) -> None:
        """Subscribe to the task's events before anything else happens (a run started
        right after cannot be missed); the thread reads them."""
        old = self._events
        self._events = None if self.task_id is None else self.client.events(self.task_id)
        if old is not None:
            old.close()

    def close(self) -> None:
        self.live = False
        super().close()

    def refresh(self) -> None:
        """Read the task's recent runs and the chosen run again."""
        if self.task_id is None:
            recent: list[RunRecord] = []
        else:
            recent = self.client.runs_page(self.task_id, limit=self.limit).items
        labels = [
            (f"{run['id']}: {run['status']}  {(run['started'] or run['created'])[:19]}", run["id"])
            for run in recent
        ]
        chosen = self.run_id if any(run["id"] == self.run_id for run in recent) else None
        # The chart first: whoever sees the new list also sees the new chart.
        self.chart = duration_chart(recent)
        self.chart_output.outputs = (chart_output(self.chart),)
        self.runs.options = labels
        self.runs.value = chosen if chosen is not None else (recent[0]["id"] if recent else None)
        self.show_run()

    def show_run(self) -> None:
        """Show the chosen run's steps, log tail and files."""
        if self.run_id is None:
            self.detail = None
            self.steps.value, self.log.value, self.files.value = "", "", ""
            self.cancel.disabled = True
            return
        detail = self.client.get_run(self.run_id)
        rows = "".join(
            f"<tr><td>{escape(step['kind'])}</td><td>{escape(step['name'])}</td>"
            f"<td>{'' if step['set_index'] is None else step['set_index'] + 1}</td>"
            f"<td>{status_html(step['status'])}</td>"
            f"<td>{escape((step.get('progress') or {}).get('message', ''))}</td></tr>"
            for step in detail["steps"]
        )
        # A failure in red; why a run was cancelled or skipped, plainly.
        color = "inherit" if detail["status"] in STOPPED else "#c62828"
        error = f"<p style='color:{color}'>{escape(detail['error'])}</p>" if detail["error"] else ""
        head = f"Run {detail['id']}: {status_html(detail['status'])} ({escape(detail['trigger'])})"
        self.steps.value = (
            f"<p>{head}</p>"
            f"{error}<table><tr><th>kind</th><th>step</th><th>set</th><th>status</th><th></th></tr>"
            f"{rows}</table>"
        )
        self.log.value = self.client.run_log(detail, tail=2000)
        links = "".join(
            f"<li><a href='{escape(self.client.file_url(detail, path))}' target='_blank' download>"
            f"{escape(path)}</a></li>"
            for path in self.client.result_files(detail)
        )
        self.files.value = f"<b>Result files</b><ul>{links}</ul>" if links else ""
        self.cancel.disabled = detail["status"] not in ACTIVE
        # Last: whoever sees the new detail sees every view of it.
        self.detail = detail

    def _cancel(self) -> None:
        if self.run_id is None:
            return
        try:
            cancelled = self.client.cancel_run(self.run_id)
        except PlannerError as exc:
            self.status.value = escape(exc.message)
            return
        self.status.value = f"run {cancelled['id']} cancelled"
        self.show_run()

    def _follow(self) -> None:
        """Refresh on each run event of this task (in a thread: the kernel stays free)."""
        while not self._stop.is_set():
            events = self._events
            if events is None:
                self._stop.wait(1.0)
                continue
            event = events.next(1.0)
            if event is not None and event.get("task_id") == self.task_id:
                self.on_event(event)

    def on_event(self, event: dict[str, Any]) -> None:
        """A run of the task started, stepped, progressed or finished: show it."""
        if event["action"] == "started" or self.run_id is None:
            self.run_id = event["run_id"]
        if event["action"] in ("step", "progress"):
            if event["run_id"] == self.run_id:
                self.show_run()
        else:
            self.refresh()


def chart_output(chart: alt.Chart) -> dict[str, Any]:
    """The chart as a notebook output: Vega-Lite, which JupyterLab renders with no extension
    and no network (altair's default HTML renderer loads its scripts from a CDN)."""
    return {
        "output_type": "display_data",
        "data": {VEGA_LITE: chart.to_dict(), "text/plain": "<Chart: recent runs>"},
        "metadata": {},
    }
