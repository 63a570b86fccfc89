"""``TaskPlanner``: the planner's REST API as Python methods, for notebooks and scripts."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypedDict, TypeVar
from urllib.parse import quote

import httpx

from ..vocabulary import FINISHED, RunDetail, RunRecord, StepRecord, TaskRecord
from .builder import Component, Task
from .component_types import Cron, Notebook
from .discovery import Connection, discover
from .errors import NotFound, error_for
from .events import RunEvents
from .kernel import own_session, session_path
from .progress import RunProgress

__all__ = ["Page", "TaskPlanner"]

Item = TypeVar("Item")
TaskRef = int | str | Mapping[str, Any] | Task
"""A task: its id, its name, a task as the API returns it, or a stored ``Task``."""
RunRef = int | Mapping[str, Any]
"""A run: its id, or a run as the API returns it."""
WAIT_STEPS = 50
"""How many of its newest steps ``wait`` reads each time a run it follows changes."""


@dataclass
class Page(Generic[Item]):
    """One page of a listing: its items and the total over all pages."""

    items: list[Item]
    total: int
    limit: int
    offset: int
    summaries: dict[int, TaskSummary] = field(default_factory=dict)
    """With ``tasks_page(include=...)``: task id -> its next start and newest run."""

    @property
    def has_next(self) -> bool:
        return self.offset + len(self.items) < self.total


class TaskSummary(TypedDict, total=False):
    """What a task list shows beside a task (``GET /tasks?include=next,last_run``)."""

    next_start: str | None
    last_run: RunRecord | None


class NextFire(TypedDict):
    """One coming start of a timed trigger (``GET /tasks/{id}/next``)."""

    trigger: int
    type: str
    time: str
    server_time: str
    viewer_time: str | None


class NextFires(TypedDict):
    """The coming starts of a task, in its, the server's and the viewer's zone."""

    timezone: str
    server_timezone: str
    viewer_timezone: str | None
    enabled: bool
    next: list[NextFire]


class ComponentType(TypedDict):
    """An installed component type with the JSON Schema of its config."""

    type: str
    kind: Literal["trigger", "job", "action", "series"]
    title: str
    description: str
    schema: dict[str, Any]
    version: int
    permission: str | None
    runs_code: bool
    permissions: list[str]


SCHEDULED_FOLDER = ".taskplanner/scheduled"
"""Where ``schedule_code`` (``%%schedule``) keeps its notebooks: hidden in the server's root."""


def _code_notebook_path(root: Path, folder: str, name: str) -> str:
    """Where ``schedule_code`` keeps the notebook of the task ``name``: named after it, or
    with a part of the name's hash when another task's notebook has that name (the names
    ``a b`` and ``a-b`` give the same file name)."""
    path = f"{folder.strip('/')}/{_slug(name)}.ipynb"
    try:
        saved = json.loads((root / path).read_text(encoding="utf-8"))
        task = saved["metadata"]["taskplanner"]["task"]
    except (OSError, ValueError, KeyError, TypeError):
        return path
    if task == name:
        return path
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{folder.strip('/')}/{_slug(name)}-{digest}.ipynb"


def _write_code_notebook(
    root: Path, path: str, code: str, kernel: str, here: str, task: str
) -> None:
    """Write a notebook of the task ``task`` that runs ``code`` in the root's folder
    ``here``, as ``path`` of ``root`` (folders made).  Written on disk, not through the
    contents API, which refuses hidden folders; the first cell moves from the notebook's own
    folder to ``here``."""
    target = root / path
    back = os.path.relpath(root / here, target.parent)
    cells = [(["taskplanner-folder"], f"__import__('os').chdir({back!r})"), ([], code)]
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": kernel, "display_name": kernel},
            "taskplanner": {"task": task},
        },
        "cells": [
            {
                "cell_type": "code",
                "id": f"scheduled-{index}",
                "metadata": {"tags": tags} if tags else {},
                "execution_count": None,
                "outputs": [],
                "source": source,
            }
            for index, (tags, source) in enumerate(cells)
        ],
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    partial.replace(target)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower() or "cell"


def _body(task: Task | Mapping[str, Any]) -> dict[str, Any]:
    return task.to_json() if isinstance(task, Task) else dict(task)


class TaskPlanner:
    """A client of the planner of one Jupyter server.

    ``TaskPlanner()`` finds the server by itself (in a kernel started by Jupyter, from
    ``TASKPLANNER_URL``/``TASKPLANNER_TOKEN``, under JupyterHub; see ``client.discovery``);
    ``TaskPlanner(url=..., token=...)`` names it.  Every method raises a ``PlannerError``
    subclass carrying the server's message, field and errors when the server refuses.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.connection: Connection = discover(url, token)
        headers = {"Authorization": f"token {self.token}"} if self.token else {}
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    @property
    def url(self) -> str:
        """The Jupyter server's base URL (ending in ``/``)."""
        return self.connection.url

    @property
    def token(self) -> str | None:
        return self.connection.token

    def __repr__(self) -> str:
        return f"TaskPlanner({self.url!r}, found from {self.connection.source})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> TaskPlanner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Call ``path`` (relative to the server's base URL); raises on an error answer."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        reply = self._http.request(
            method,
            path,
            content=None if body is None else json.dumps(body),
            params=query,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        if reply.status_code >= 400:
            try:
                document = reply.json()
            except ValueError:
                document = None
            raise error_for(reply.status_code, document, reply.text)
        return reply

    def _api(self, method: str, path: str, **kwargs: Any) -> Any:
        reply = self.request(method, "taskplanner/api" + path, **kwargs)
        return reply.json() if reply.content else None

    def _pages(
        self, path: str, key: str, params: Mapping[str, Any], page_size: int
    ) -> Iterator[Page[Any]]:
        offset = 0
        while True:
            answer = self._api("GET", path, params={**params, "limit": page_size, "offset": offset})
            page: Page[Any] = Page(answer[key], answer["total"], answer["limit"], answer["offset"])
            yield page
            if "next" not in answer or not page.items:
                return
            offset += len(page.items)

    # -- tasks -----------------------------------------------------------------------------

    def tasks_page(
        self,
        *,
        limit: int = 50,
        offset: int = 0,
        q: str | None = None,
        owner: str | None = None,
        enabled: bool | None = None,
        include: Iterable[str] = (),
        sort: str | None = None,
    ) -> Page[TaskRecord]:
        """One page of tasks, ordered by id or by ``sort`` (``"name"``, ``"-last_run"``, ...
        as the REST API takes it; ``owner``: a user or ``*``, for admins).

        ``include`` (``"next"``, ``"last_run"``): per task, its next start and newest run,
        in ``Page.summaries`` by task id, from the same call.
        """
        params = {"limit": limit, "offset": offset, "q": q, "owner": owner, "sort": sort}
        if enabled is not None:
            params["enabled"] = str(enabled).lower()
        if include:
            params["include"] = ",".join(include)
        answer = self._api("GET", "/tasks", params=params)
        found = {int(key): value for key, value in answer.get("summaries", {}).items()}
        return Page(
            answer["tasks"], answer["total"], answer["limit"], answer["offset"], summaries=found
        )

    def list_tasks(
        self,
        *,
        q: str | None = None,
        owner: str | None = None,
        enabled: bool | None = None,
        sort: str | None = None,
        page_size: int = 200,
    ) -> Iterator[TaskRecord]:
        """Every matching task (in the order ``sort`` names, else by id), fetched a page at a
        time as the iteration goes."""
        params: dict[str, Any] = {"q": q, "owner": owner, "sort": sort}
        if enabled is not None:
            params["enabled"] = str(enabled).lower()
        for page in self._pages("/tasks", "tasks", params, page_size):
            yield from page.items

    def task_id(self, task: TaskRef) -> int:
        """The id of a task given by id, name, record or stored ``Task``."""
        if isinstance(task, bool):
            raise TypeError("a task is an id, a name, a task record or a stored Task")
        if isinstance(task, int):
            return task
        if isinstance(task, str):
            found = self.find_task(task)
            if found is None:
                raise NotFound(f"no task named {task!r}", status=404, field="name")
            return found["id"]
        found_id = task.id if isinstance(task, Task) else task.get("id")
        if not isinstance(found_id, int):
            raise ValueError("this task has no id: save it first (create_task or save_task)")
        return found_id

    def find_task(self, name: str, *, owner: str | None = None) -> TaskRecord | None:
        """The caller's task named exactly ``name`` (the one with the lowest id), or None."""
        for task in self.list_tasks(q=name, owner=owner):
            if task["name"] == name:
                return task
        return None

    def get_task(self, task: TaskRef) -> TaskRecord:
        """A stored task."""
        found: TaskRecord = self._api("GET", f"/tasks/{self.task_id(task)}")
        return found

    def create_task(self, task: Task | Mapping[str, Any]) -> TaskRecord:
        """Create a task (a ``Task`` or its JSON document); the stored task."""
        created: TaskRecord = self._api("POST", "/tasks", body=_body(task))
        return created

    def replace_task(
        self, task: TaskRef, document: Task | Mapping[str, Any], *, revision: int | None = None
    ) -> TaskRecord:
        """Replace a task's document; with ``revision``, only if nobody changed it since
        (else ``Conflict``)."""
        return self._update("PUT", task, _body(document), revision)

    def update_task(
        self, task: TaskRef, changes: Mapping[str, Any], *, revision: int | None = None
    ) -> TaskRecord:
        """Change some fields of a task (settings merged key by key, lists replaced)."""
        return self._update("PATCH", task, dict(changes), revision)

    def _update(
        self, method: str, task: TaskRef, body: dict[str, Any], revision: int | None
    ) -> TaskRecord:
        headers = {"If-Match": f'"{revision}"'} if revision is not None else None
        updated: TaskRecord = self._api(
            method, f"/tasks/{self.task_id(task)}", body=body, headers=headers
        )
        return updated

    def save_task(self, task: Task) -> TaskRecord:
        """Store a ``Task``: replace the one of its id, else the caller's task of its name,
        else create it; so a cell run twice updates its task instead of making another."""
        stored = self.get_task(task.id) if task.id is not None else self.find_task(task.name)
        if stored is None:
            record = self.create_task(task)
        else:
            record = self.replace_task(stored["id"], task, revision=task.revision)
        task.id, task.revision, task.owner = record["id"], record["revision"], record["owner"]
        return record

    def delete_task(self, task: TaskRef) -> None:
        """Delete a task (its runs stay readable until retention removes them)."""
        self._api("DELETE", f"/tasks/{self.task_id(task)}")

    def enable_task(self, task: TaskRef) -> TaskRecord:
        """Let the task's triggers start it."""
        enabled: TaskRecord = self._api("POST", f"/tasks/{self.task_id(task)}/enable")
        return enabled

    def disable_task(self, task: TaskRef) -> TaskRecord:
        """Stop the task's triggers from starting it (it can still be run by hand)."""
        disabled: TaskRecord = self._api("POST", f"/tasks/{self.task_id(task)}/disable")
        return disabled

    def copy_task(
        self, task: TaskRef, *, name: str | None = None, enabled: bool | None = None
    ) -> TaskRecord:
        """A copy of a task, owned by the caller (default name ``Copy of <name>``)."""
        body = {
            key: value
            for key, value in {"name": name, "enabled": enabled}.items()
            if value is not None
        }
        copy: TaskRecord = self._api("POST", f"/tasks/{self.task_id(task)}/copy", body=body)
        return copy

    def export_task(self, task: TaskRef) -> dict[str, Any]:
        """The task as an export document (no secrets, times or credentials)."""
        document: dict[str, Any] = self._api("GET", f"/tasks/{self.task_id(task)}/export")
        return document

    def import_tasks(self, document: Any, *, into: TaskRef | None = None) -> list[TaskRecord]:
        """Import an export document, a list of tasks or one task (a task with an id updates
        it); with ``into``, one task into that task.  All or none are imported."""
        path = "/tasks/import" if into is None else f"/tasks/{self.task_id(into)}/import"
        if isinstance(document, Task):
            document = document.to_json()
        tasks: list[TaskRecord] = self._api("POST", path, body=document)["tasks"]
        return tasks

    def next_fires(
        self, task: TaskRef, *, count: int = 5, timezone: str | None = None
    ) -> NextFires:
        """The next start times of the task's timed triggers (``timezone``: the viewer's)."""
        fires: NextFires = self._api(
            "GET",
            f"/tasks/{self.task_id(task)}/next",
            params={"count": count, "timezone": timezone},
        )
        return fires

    def preview_series(self, task: TaskRef, *, count: int = 5) -> list[dict[str, Any]]:
        """The first parameter sets of the task's series, computed now."""
        answer = self._api(
            "GET", f"/tasks/{self.task_id(task)}/series/preview", params={"count": count}
        )
        sets: list[dict[str, Any]] = answer["sets"]
        return sets

    def fire_http_trigger(
        self, task: TaskRef, token: str, fields: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Call a task's secret HTTP trigger URL (no login needed); ``{"run_id", "status"}``."""
        answer: dict[str, Any] = self._api(
            "GET", f"/tasks/{self.task_id(task)}/trigger/{quote(token)}", params=fields
        )
        return answer

    # -- runs ------------------------------------------------------------------------------

    @staticmethod
    def run_id(run: RunRef) -> int:
        return run if isinstance(run, int) else int(run["id"])

    def start_run(
        self,
        task: TaskRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> RunRecord:
        """Start a run of the task now (also when disabled); the queued run."""
        body: dict[str, Any] = {"parameters": dict(parameters or {})}
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        started: RunRecord = self._api("POST", f"/tasks/{self.task_id(task)}/run", body=body)
        return started

    def run(
        self,
        task: TaskRef,
        *,
        parameters: Mapping[str, Any] | None = None,
        wait: bool = True,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        progress: bool = True,
    ) -> RunDetail:
        """Run a task now; with ``wait``, show its progress and return the finished run."""
        started = self.start_run(task, parameters=parameters, idempotency_key=idempotency_key)
        if not wait:
            return self.get_run(started)
        return self.wait(started, timeout=timeout, progress=progress)

    def execute(
        self,
        what: Task | Mapping[str, Any] | int,
        *,
        parameters: Mapping[str, Any] | None = None,
        wait: bool = True,
        timeout: float | None = None,
        progress: bool = True,
    ) -> RunDetail:
        """Run jobs, actions and a series now without storing a task: a ``Task`` (its
        triggers left out), its document, or the id of a task to run as yourself."""
        if isinstance(what, int):
            body: dict[str, Any] = {"task_id": what}
        else:
            document = _body(what)
            keep = ("name", "jobs", "actions", "series", "settings")
            body = {key: document[key] for key in keep if key in document}
        if parameters:
            body["parameters"] = dict(parameters)
        started: RunRecord = self._api("POST", "/execute", body=body)
        if not wait:
            return self.get_run(started)
        return self.wait(started, timeout=timeout, progress=progress)

    def wait(
        self, run: RunRef, *, timeout: float | None = None, progress: bool = True
    ) -> RunDetail:
        """Wait until a run ends, following the server's run events (a progress bar in a
        notebook, text in a terminal); the finished run.  Raises ``TimeoutError``."""
        import time

        run_id = self.run_id(run)
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.events(run=run_id) as events, RunProgress(run_id, enabled=progress) as bar:
            # Subscribed before reading the run, so its end cannot slip between the two.
            detail = self._newest_steps(run_id, 0)
            while detail["status"] not in FINISHED:
                bar.show(detail)
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"run {run_id} still {detail['status']} after {timeout} s")
                # Events wake the wait at once; the bounded wait covers a refused subscription.
                events.next(min(5.0, left) if left is not None else 5.0)
                detail = self._newest_steps(run_id, detail["steps_total"])
            detail = self.get_run(run_id)
            bar.show(detail)
        return detail

    def _newest_steps(self, run_id: int, known: int) -> RunDetail:
        """The run with its newest steps only (the running ones among them), so following a
        run of a long series costs the same at its end as at its start."""
        return self.get_run(run_id, steps_offset=max(0, known - WAIT_STEPS), steps_limit=WAIT_STEPS)

    def events(
        self, task: TaskRef | None = None, *, run: RunRef | None = None, all_owners: bool = False
    ) -> RunEvents:
        """Subscribe to run events (started, progress, finished): of your runs, of one
        ``task`` or ``run`` (an admin may name another owner's), or every owner's
        (``all_owners``, admins)."""
        return RunEvents(
            self.url,
            self.token,
            task_id=None if task is None else self.task_id(task),
            run_id=None if run is None else self.run_id(run),
            all_owners=all_owners,
        )

    def runs_page(
        self,
        task: TaskRef | None = None,
        *,
        limit: int = 50,
        offset: int = 0,
        status: str | None = None,
        owner: str | None = None,
        sort: str | None = None,
    ) -> Page[RunRecord]:
        """One page of runs, newest first or in the order ``sort`` names: of a task, or all of
        yours (``owner`` for admins)."""
        path = "/runs" if task is None else f"/tasks/{self.task_id(task)}/runs"
        params = {
            "limit": limit,
            "offset": offset,
            "status": status,
            "owner": owner,
            "sort": sort,
        }
        answer = self._api("GET", path, params=params)
        return Page(answer["runs"], answer["total"], answer["limit"], answer["offset"])

    def list_runs(
        self,
        task: TaskRef | None = None,
        *,
        status: str | None = None,
        owner: str | None = None,
        sort: str | None = None,
        page_size: int = 200,
    ) -> Iterator[RunRecord]:
        """Every matching run, newest first or in the order ``sort`` names, fetched a page at
        a time."""
        path = "/runs" if task is None else f"/tasks/{self.task_id(task)}/runs"
        params = {"status": status, "owner": owner, "sort": sort}
        for page in self._pages(path, "runs", params, page_size):
            yield from page.items

    def get_run(
        self, run: RunRef, *, steps_offset: int | None = None, steps_limit: int | None = None
    ) -> RunDetail:
        """A run with its steps (status, error, results, progress): every step, fetched a page
        at a time, or the one page ``steps_offset`` / ``steps_limit`` names (``steps_total``
        and ``step_counts`` count them all)."""
        if steps_offset is not None or steps_limit is not None:
            params = {"steps_offset": steps_offset, "steps_limit": steps_limit}
            page: RunDetail = self._api("GET", f"/runs/{self.run_id(run)}", params=params)
            return page
        detail: RunDetail | None = None
        for page in self._step_pages(self.run_id(run)):
            if detail is None:
                detail = page
            else:
                detail["steps"] += page["steps"]
        assert detail is not None
        # Every step is here: the fields of a page no longer apply.
        detail.pop("steps_limit", None)
        detail.pop("steps_offset", None)
        detail.pop("steps_next", None)
        return detail

    def run_steps(self, run: RunRef) -> Iterator[StepRecord]:
        """Every step of a run, in the order they started, fetched a page at a time."""
        for page in self._step_pages(self.run_id(run)):
            yield from page["steps"]

    def _step_pages(self, run_id: int) -> Iterator[RunDetail]:
        offset = 0
        while True:
            page: RunDetail = self._api("GET", f"/runs/{run_id}", params={"steps_offset": offset})
            yield page
            if "steps_next" not in page or not page["steps"]:
                return
            offset += len(page["steps"])

    def cancel_run(self, run: RunRef) -> RunRecord:
        """Cancel a queued or running run (``Conflict`` when it already ended)."""
        cancelled: RunRecord = self._api("POST", f"/runs/{self.run_id(run)}/cancel")
        return cancelled

    def run_log(self, run: RunRef, *, step: int | None = None, tail: int | None = None) -> str:
        """A run's log, step by step (``step``: one step's; ``tail``: its last bytes)."""
        reply = self.request(
            "GET",
            f"taskplanner/api/runs/{self.run_id(run)}/log",
            params={"step": step, "tail": tail},
        )
        return reply.text

    def run_log_range(
        self, run: RunRef, step: int, *, offset: int = 0, length: int | None = None
    ) -> bytes:
        """Bytes of one step's output as stored, to follow a running step."""
        reply = self.request(
            "GET",
            f"taskplanner/api/runs/{self.run_id(run)}/log",
            params={"step": step, "offset": offset, "length": length},
        )
        return reply.content

    def result_files(self, run: RunRef | RunDetail) -> list[str]:
        """The paths of a run's result files, for ``download``, ``read_file``, ``file_url``."""
        detail = run if isinstance(run, Mapping) and "steps" in run else self.get_run(run)
        return [
            result["value"]
            for step in detail["steps"]
            for result in step["results"]
            if result["flavor"] == "file"
        ]

    def file_url(self, run: RunRef, path: str) -> str:
        """The URL of a result file (a browser logged in to the server downloads it)."""
        return f"{self.url}taskplanner/api/runs/{self.run_id(run)}/files/{quote(path)}"

    def read_file(self, run: RunRef, path: str) -> bytes:
        """A result file's content."""
        reply = self.request("GET", f"taskplanner/api/runs/{self.run_id(run)}/files/{quote(path)}")
        return reply.content

    def download(self, run: RunRef, path: str, to: str | Path | None = None) -> Path:
        """Save a result file (streamed) as ``to``, or in a folder ``to``, or here; its path."""
        target = Path(to) if to is not None else Path.cwd()
        if target.is_dir():
            target = target / Path(path).name
        url = f"taskplanner/api/runs/{self.run_id(run)}/files/{quote(path)}"
        with self._http.stream("GET", url) as reply:
            if reply.status_code >= 400:
                reply.read()
                raise error_for(reply.status_code, reply.json(), reply.text)
            with open(target, "wb") as out:
                for chunk in reply.iter_bytes():
                    out.write(chunk)
        return target

    # -- components and the API document --------------------------------------------------

    def components(self) -> list[ComponentType]:
        """Every installed trigger, job, action and series type with its config schema."""
        found: list[ComponentType] = self._api("GET", "/components")["components"]
        return found

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document of the planner's API."""
        document: dict[str, Any] = self._api("GET", "/openapi.json")
        return document

    # -- scheduling from a kernel ---------------------------------------------------------

    def current_notebook(self) -> tuple[str, str | None]:
        """The notebook this kernel belongs to (path relative to the server's root) and the
        kernel's name, from the server's sessions; ``LookupError`` outside a notebook."""
        sessions = self.request("GET", "api/sessions").json()
        session = own_session(sessions)
        if session is not None:
            return session["path"], (session.get("kernel") or {}).get("name")
        path = session_path(self.connection.root_dir)
        if path is None:
            raise LookupError("this kernel belongs to no notebook of the server; give a path")
        return path, None

    def schedule_notebook(
        self,
        path: str | None = None,
        *,
        name: str | None = None,
        cron: str | None = None,
        triggers: Iterable[Component] = (),
        parameters: Mapping[str, Any] | None = None,
        snapshot: bool = False,
        kernel: str | None = None,
        actions: Iterable[Component] = (),
    ) -> TaskRecord:
        """Schedule a notebook (default: this kernel's) as a task named ``name`` (default:
        the notebook's name), created or updated; ``snapshot`` runs the notebook as it is
        now rather than as it is when the task runs."""
        found_kernel = None
        if path is None:
            path, found_kernel = self.current_notebook()
        job = Notebook(
            path,
            parameters=dict(parameters) if parameters else None,
            kernel=kernel or found_kernel,
            input="snapshot" if snapshot else None,
        )
        all_triggers = [*([Cron(cron)] if cron else []), *triggers]
        task = Task(name or Path(path).stem, triggers=all_triggers, jobs=[job], actions=actions)
        return self.save_task(task)

    def schedule_code(
        self,
        code: str,
        *,
        name: str,
        cron: str | None = None,
        triggers: Iterable[Component] = (),
        kernel: str | None = None,
        folder: str = SCHEDULED_FOLDER,
    ) -> TaskRecord:
        """Schedule Python code as a task named ``name`` (created or updated): the code is
        saved as a notebook ``<folder>/<name>.ipynb`` of the server's root (with a part of
        the name's hash when another task's notebook has that file name)
        (default: the hidden ``.taskplanner/scheduled``) and run from a snapshot of it, in
        the folder of this kernel's notebook (the root outside a notebook)."""
        try:
            notebook, found_kernel = self.current_notebook()
        except LookupError:
            notebook, found_kernel = None, None
        kernel = kernel or found_kernel
        root = self._server_root(notebook)
        path = _code_notebook_path(root, folder, name)
        here = Path(notebook).parent.as_posix() if notebook else "."
        _write_code_notebook(root, path, code, kernel or "python3", here, name)
        job = Notebook(path, kernel=kernel, input="snapshot", named=_slug(name))
        all_triggers = [*([Cron(cron)] if cron else []), *triggers]
        return self.save_task(Task(name, triggers=all_triggers, jobs=[job]))

    def delete_scheduled(self, task: TaskRef) -> TaskRecord:
        """Delete a task and the notebooks ``schedule_code`` made for it (those in
        ``.taskplanner/scheduled``; no other file); the task as it was."""
        record = self.get_task(task)
        self.delete_task(record["id"])
        root: Path | None = None
        for job in record["jobs"]:
            path = str(job["config"].get("path", "")) if job["type"] == "notebook" else ""
            if path.startswith(f"{SCHEDULED_FOLDER}/") and "/.." not in path:
                root = root or self._server_root(None)
                (root / path).unlink(missing_ok=True)
        return record

    def _server_root(self, notebook: str | None) -> Path:
        """The server's root folder on this machine: as the server describes itself, else
        this kernel's folder less the folders of its notebook's path."""
        if self.connection.root_dir:
            return Path(self.connection.root_dir)
        if notebook is None:
            notebook = self.current_notebook()[0]
        here = Path.cwd()
        folders = Path(notebook).parent.parts
        if folders and here.parts[-len(folders) :] != folders:
            raise LookupError(
                f"cannot tell the server's root folder: this kernel's folder {here} is not "
                f"that of its notebook {notebook}"
            )
        return here.parents[len(folders) - 1] if folders else here
