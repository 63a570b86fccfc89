"""REST handlers for runs: start, list, detail, log, result files, cancel, next fire times."""

from __future__ import annotations

import asyncio
import contextlib
import math
import mimetypes
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from jupyter_server.auth.decorator import allow_unauthenticated, authorized
from tornado import httputil, web

from .bus import HttpCall
from .components.base import TimedTrigger
from .errors import InvalidConfig, TaskNotFound, TooManyRequests, Unavailable, excerpt
from .handlers import API, TASK_ID, PlannerHandler
from .logs import FileRange, log_text, send_chunks
from .model import check_parameters
from .ratelimit import RateLimit
from .tasks import is_id, parse_task_id
from .timezones import is_timezone, local_timezone
from .vocabulary import MAX_ID, STATUSES


def parse_run_id(raw: str) -> int:
    """A run (or step) id from a URL; ``TaskNotFound`` for anything not an id."""
    if not is_id(raw):
        raise TaskNotFound(f"no run with id {excerpt(raw)}")
    return int(raw)


class RunsPage(PlannerHandler):
    """Shared paginated listing of runs."""

    async def send_runs(self, task_id: int | None) -> None:
        status = self.get_query_argument("status", None)
        if status is not None and status not in STATUSES:
            raise InvalidConfig(
                f"status: expected one of {', '.join(STATUSES)}, got {status!r}",
                field="status",
            )
        limit, offset = self.page()
        runs, total = await self.db(
            self.planner.runs.list,
            self.access,
            owner=self.get_query_argument("owner", None),
            task_id=task_id,
            status=status,
            limit=limit,
            offset=offset,
            sort=self.get_query_argument("sort", "-id"),
        )
        self.send_page("runs", runs, total, limit, offset)


class TaskRunHandler(PlannerHandler):
    """``POST /tasks/{id}/run``: start a run now (ignores triggers; works on disabled tasks)."""

    @web.authenticated
    @authorized
    async def post(self, raw_id: str) -> None:
        task = await self.db(self.planner.tasks.get, self.access, parse_task_id(raw_id))
        body = self.json_body(required=False)
        body = {} if body is None else body
        if not isinstance(body, dict) or set(body) - {"parameters", "idempotency_key"}:
            raise InvalidConfig("the run body may hold 'parameters' and 'idempotency_key'")
        given = body.get("parameters")
        parameters = check_parameters({} if given is None else given)
        # Both are checked, though the header wins: a bad key is never ignored unseen.
        keys = {"idempotency_key": body.get("idempotency_key")}
        keys["Idempotency-Key"] = self.request.headers.get("Idempotency-Key")
        for field, key in keys.items():
            if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 200):
                raise InvalidConfig(f"{field}: a string of 1-200 characters", field=field)
        key = keys["Idempotency-Key"] or keys["idempotency_key"]
        run = await self.planner.engine.submit(
            task,
            trigger="api",
            started_by=self.access.user,
            parameters=parameters,
            idempotency_key=key,
            refuse=True,
        )
        self.set_header("Location", f"{self.base_url.rstrip('/')}{API}/runs/{run['id']}")
        self.send(run, 202)


class ExecuteHandler(PlannerHandler):
    """``POST /execute``: run jobs, actions and a series at once, without a stored task."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        document, parameters = await self.db(
            self.planner.tasks.adhoc, self.access, self.json_body()
        )
        run = await self.planner.engine.execute(
            document, owner=self.access.user, started_by=self.access.user, parameters=parameters
        )
        self.set_header("Location", f"{self.base_url.rstrip('/')}{API}/runs/{run['id']}")
        self.send(run, 202)


class TaskRunsHandler(RunsPage):
    """``GET /tasks/{id}/runs``: the runs of one task, newest first."""

    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        await self.send_runs(parse_task_id(raw_id))


class RunsHandler(RunsPage):
    """``GET /runs``: runs of the caller (admins: of one owner or all)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.send_runs(None)


STEPS_PAGE = 500
"""How many steps ``GET /runs/{id}`` sends unless ``steps_limit`` says (at most
``TaskPlannerApp.max_page_size``)."""


class RunHandler(PlannerHandler):
    """``GET /runs/{id}?steps_offset=&steps_limit=``: status and a page of per-step detail.

    A run of a long series has a step per set and action; the page keeps the reply small
    (``steps_total`` and ``step_counts`` count them all; ``steps_limit=0``: counts only).
    """

    @web.authenticated
    @authorized
    async def get(self, raw_run_id: str) -> None:
        run_id = parse_run_id(raw_run_id)
        largest = self.planner.settings.max_page_size
        limit = self.query_int("steps_limit", min(STEPS_PAGE, largest), 0, largest)
        offset = self.query_int("steps_offset", 0, 0, 2**31)
        run = await self.db(
            self.planner.runs.detail, self.access, run_id, limit=limit, offset=offset
        )
        run["steps_limit"], run["steps_offset"] = limit, offset
        if offset + limit < run["steps_total"] and limit:
            args = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
            query = urlencode({**args, "steps_offset": offset + limit})
            run["steps_next"] = f"{self.request.path}?{query}"
        self.send(run)


class RunLogHandler(PlannerHandler):
    """``GET /runs/{id}/log``: the captured output of every step (or of ``?step=``).

    ``tail=N`` sends the last N bytes of each step's output; ``offset`` and ``length`` (with
    ``step``) send those bytes of the step's log.txt as they are, to follow a running step.
    """

    @web.authenticated
    @authorized
    async def get(self, raw_run_id: str) -> None:
        run_id = parse_run_id(raw_run_id)
        step = self.get_query_argument("step", None)
        step_id = parse_run_id(step) if step is not None else None
        tail, offset, length = (self._byte_count(name) for name in ("tail", "offset", "length"))
        if offset is None and length is None:
            pieces = await self.db(self.planner.runs.log, self.access, run_id, step_id, tail=tail)
            chunks = (text.encode() for text in log_text(pieces))
        else:
            field = "offset" if offset is not None else "length"
            if step_id is None:
                raise InvalidConfig(
                    f"{field}: needs step (a range is of one step's log)", field=field
                )
            if tail is not None:
                raise InvalidConfig(f"tail: give tail or {field}, not both", field="tail")
            part = await self.db(
                self.planner.runs.log_range, self.access, run_id, step_id, offset or 0, length
            )
            chunks = part.chunks()
        content_type = "text/plain; charset=utf-8"
        self.set_header("Content-Type", content_type)
        await send_chunks(self, chunks)
        self.finish(set_content_type=content_type)

    def _byte_count(self, name: str) -> int | None:
        """The query argument ``name`` as a count of bytes, or None when absent."""
        if self.get_query_argument(name, None) is None:
            return None
        return self.query_int(name, 0, 0, MAX_ID)


class RunFileHandler(PlannerHandler):
    """``GET /runs/{id}/files/{path}``: download a result file, streamed in chunks."""

    @web.authenticated
    @authorized
    async def get(self, raw_run_id: str, relative: str) -> None:
        run_id = parse_run_id(raw_run_id)
        run = await self.db(self.planner.runs.get, self.access, run_id)
        folder = self.planner.owners.run_folder(run["owner"], run_id)
        path = await self.db(self.planner.runs.file, self.access, run_id, folder, relative)
        whole = await asyncio.to_thread(FileRange.of, path)
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        self.set_header("Content-Disposition", f'attachment; filename="{path.name}"')
        self.set_header("Content-Type", content_type)
        self.set_header("Content-Length", whole.end)
        await send_chunks(self, whole.chunks())
        # APIHandler.finish sets the Content-Type itself (JSON unless told otherwise).
        self.finish(set_content_type=content_type)


class RunCancelHandler(PlannerHandler):
    """``POST /runs/{id}/cancel``."""

    @web.authenticated
    @authorized
    async def post(self, raw_run_id: str) -> None:
        run = await self.db(self.planner.runs.get, self.access, parse_run_id(raw_run_id))
        self.send(await self.planner.engine.cancel(run["id"], by=self.access.user))


class TaskNextHandler(PlannerHandler):
    """``GET /tasks/{id}/next?count=5&timezone=``: the next fire times of the task's timed
    triggers, in the task's zone, the server's and, when given, the viewer's ``timezone``."""

    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        task = await self.db(self.planner.tasks.get, self.access, parse_task_id(raw_id))
        count = self.query_int("count", 5, 1, 100)
        viewer = self.get_query_argument("timezone", None)
        if viewer is not None and not is_timezone(viewer):
            raise InvalidConfig(
                f"timezone: unknown timezone {viewer!r}; use an IANA name such as "
                "'Europe/Berlin' or 'UTC'",
                field="timezone",
            )
        server = local_timezone()
        tz = ZoneInfo(task["settings"]["timezone"])
        # Each fire in these zones: the task's (``time``, as before), the server's, the viewer's.
        zones = {"time": tz, "server_time": ZoneInfo(server)}
        if viewer is not None:
            zones["viewer_time"] = ZoneInfo(viewer)
        now = datetime.now(UTC)
        fires: list[tuple[datetime, dict[str, Any]]] = []
        for index, entry in enumerate(task["triggers"]):
            trigger = self.planner.registry.instantiate("trigger", entry)
            if not isinstance(trigger, TimedTrigger):
                continue
            try:
                times = trigger.fire_times(now, tz, count)
            except InvalidConfig as exc:  # a calendar file gone since the task was saved
                raise exc.within(f"triggers[{index}].config") from None
            for when in times:
                with contextlib.suppress(OverflowError):  # the last instants of year 9999
                    fire: dict[str, Any] = {"trigger": index, "type": entry["type"]}
                    for key, zone in zones.items():
                        fire[key] = when.astimezone(zone).isoformat()
                    fires.append((when, fire))
        fires.sort(key=lambda pair: pair[0])
        reply = {
            "timezone": task["settings"]["timezone"],
            "server_timezone": server,
            "enabled": task["enabled"],
            "next": [fire for _, fire in fires[:count]],
        }
        if viewer is not None:
            reply["viewer_timezone"] = viewer
        self.send(reply)


class SeriesPreviewHandler(PlannerHandler):
    """``GET /tasks/{id}/series/preview?count=5``: the first parameter sets of the series."""

    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        task = await self.db(self.planner.tasks.get, self.access, parse_task_id(raw_id))
        if not task["series"]:
            raise InvalidConfig("series: this task has no series to preview", field="series")
        count = self.query_int("count", 5, 1, 100)
        outcome = await self.planner.engine.preview_series(task, count)
        if outcome.error is not None:
            raise InvalidConfig(f"series: {outcome.error}", field="series")
        sets = outcome.sets or []
        self.send({"sets": sets, "count": len(sets)})


class TaskTriggerHandler(PlannerHandler):
    """``POST /tasks/{id}/trigger/{token}``: a task's secret URL (the ``http`` trigger).

    The token is the credential (no login); query and form fields become placeholders.  The
    call is an ``HttpCall`` on the planner's bus; the triggers listening to it decide.  Any
    mismatch answers 404 so the URL reveals nothing.
    """

    login_required = False
    credential_in_url = True

    def check_xsrf_cookie(self) -> None:
        """The secret token authenticates the call; there is no session to forge."""

    # Also where ServerApp.allow_unauthenticated_access is off: the token is the login.
    @allow_unauthenticated
    async def get(self, raw_id: str, token: str) -> None:
        """A GET starts the task too (a link in a mail, a service that only GETs)."""
        await self.post(raw_id, token)

    @allow_unauthenticated
    async def post(self, raw_id: str, token: str) -> None:
        not_found = TaskNotFound("no such trigger URL")
        try:
            task = await self.db(self.planner.store.get_task, parse_task_id(raw_id), None)
        except TaskNotFound:
            raise not_found from None
        listeners = self.planner.scheduler.listeners
        call = HttpCall(task["id"], token)
        if not listeners.fires(call, task):
            raise not_found
        if not task["enabled"]:
            raise InvalidConfig("the task is disabled; enable it to accept HTTP triggers")
        rate = self.planner.settings.http_trigger_rate
        wait = self.settings.setdefault("taskplanner_http_rate", RateLimit()).take(task["id"], rate)
        if wait:
            raise TooManyRequests(
                f"this trigger URL takes {rate} calls a minute "
                f"(TaskPlannerApp.http_trigger_rate); try again in {math.ceil(wait)} s",
                retry_after=wait,
            )
        form: dict[str, list[bytes]] = {}
        httputil.parse_body_arguments(
            self.request.headers.get("Content-Type", ""), self.body, form, {}, self.request.headers
        )
        fields: dict[str, list[bytes]] = {}
        for name, values in [*self.request.query_arguments.items(), *form.items()]:
            fields.setdefault(name, []).extend(values)
        # A field given once is a text, a repeated one keeps all its values as a list.
        texts = {
            name: [value.decode(errors="replace") for value in values]
            for name, values in fields.items()
        }
        parameters = check_parameters(
            {name: values[0] if len(values) == 1 else values for name, values in texts.items()},
            "query",
        )
        # Addressed to this one task, read just now: its triggers decide, not the set of
        # listening tasks (which may not have seen a task saved a moment ago).
        call = HttpCall(task["id"], token, parameters)
        # Past the owner's queue limit: a 429, checked in the run's own write.
        started = await listeners.start(task, listeners.fires(call, task), refuse=True)
        if not started:
            raise Unavailable("the task planner is shutting down; try again when it is back")
        self.send({"run_id": started[0]["id"], "status": started[0]["status"]}, 202)


RUN_ID = r"(?P<raw_run_id>\d+)"
RUN_HANDLERS: list[tuple[str, type[PlannerHandler]]] = [
    (rf"{API}/tasks/{TASK_ID}/run", TaskRunHandler),
    (rf"{API}/tasks/{TASK_ID}/runs", TaskRunsHandler),
    (rf"{API}/tasks/{TASK_ID}/next", TaskNextHandler),
    (rf"{API}/tasks/{TASK_ID}/series/preview", SeriesPreviewHandler),
    (rf"{API}/tasks/{TASK_ID}/trigger/(?P<token>[^/]+)", TaskTriggerHandler),
    (rf"{API}/execute", ExecuteHandler),
    (rf"{API}/runs", RunsHandler),
    (rf"{API}/runs/(?P<raw_run_id>[^/]+)", RunHandler),
    (rf"{API}/runs/{RUN_ID}/log", RunLogHandler),
    (rf"{API}/runs/{RUN_ID}/files/(?P<relative>.+)", RunFileHandler),
    (rf"{API}/runs/{RUN_ID}/cancel", RunCancelHandler),
]
