"""Run events for their owners: ``GET /taskplanner/api/events``, a Server-Sent Events stream.

``RunEventStreams`` takes the life of every run from the planner's bus (started, a job's
progress, finished) and hands each event only to the streams allowed to see it: a user's
own runs, the runs of one task or one run the user may read, or (admins, ``all=true``)
every owner's.  Jupyter Server's own event bus, by contrast, goes to whoever holds its
``events`` permission, which is why the planner emits there only when
``TaskPlannerApp.server_events`` says so.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.iostream import StreamClosedError

from .bus import EventBus, RunFinished, RunProgress, RunStarted, StepChanged
from .errors import PermissionDenied, TaskPlannerError, Unavailable
from .handlers import API, PlannerHandler
from .permissions import ADMIN
from .vocabulary import MAX_ID, RunRecord

EVENT_STREAM = "text/event-stream"
MAX_PENDING = 1000
"""Events a stream may have waiting for a slow client; beyond it the stream ends (the
client reconnects and reads the runs anew)."""
RETRY_MS = 3000
"""How long a browser's EventSource waits before it reconnects to an ended stream."""


class TooManyStreams(TaskPlannerError):
    """The user already holds ``max_event_streams_per_user`` open streams."""

    status = 429
    reason = "Too Many Requests"


class NotAcceptable(TaskPlannerError):
    """The client did not ask for an event stream."""

    status = 406
    reason = "Not Acceptable"


def run_event(run: RunRecord, action: str, **extra: Any) -> dict[str, Any]:
    """The fields of one run event (the schema in ``events/run.yaml``)."""
    return {
        "action": action,
        "run_id": run["id"],
        "task_id": run["task_id"],
        "owner": run["owner"],
        "status": run["status"],
        "trigger": run["trigger"],
        **extra,
    }


def follow_runs(bus: EventBus, emit: Callable[[dict[str, Any]], object]) -> None:
    """Call ``emit`` with each run event (``run_event``) the planner's bus carries: a run
    started, a step began or ended, a job reported progress, the run finished."""
    bus.subscribe(RunStarted, lambda event: emit(run_event(event.run, "started")))
    bus.subscribe(RunFinished, lambda event: emit(run_event(event.run, "finished")))
    bus.subscribe(
        RunProgress,
        lambda event: emit(
            run_event(
                event.run,
                "progress",
                step_id=event.step_id,
                done=event.done,
                total=event.total,
                message=event.message,
            )
        ),
    )
    bus.subscribe(
        StepChanged,
        lambda event: emit(
            run_event(
                event.run,
                "step",
                step_id=event.step_id,
                step_kind=event.kind,
                step_name=event.name,
                step_status=event.status,
            )
        ),
    )


@dataclass(eq=False)
class Subscription:
    """One open stream: whose it is and which runs' events it gets (None: any)."""

    user: str
    owner: str | None
    task_id: int | None = None
    run_id: int | None = None
    queue: asyncio.Queue[dict[str, Any] | None] = field(
        default_factory=lambda: asyncio.Queue(MAX_PENDING)
    )

    def wants(self, event: dict[str, Any]) -> bool:
        return (
            (self.owner is None or event["owner"] == self.owner)
            and (self.task_id is None or event["task_id"] == self.task_id)
            and (self.run_id is None or event["run_id"] == self.run_id)
        )

    def put(self, event: dict[str, Any] | None) -> None:
        """Queue an event (None ends the stream); a full queue ends the stream too."""
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class RunEventStreams:
    """The open event streams of this server, fed from the planner's bus."""

    def __init__(self, bus: EventBus, max_per_user: int) -> None:
        self.max_per_user = max_per_user
        self._open: set[Subscription] = set()
        self._per_user: Counter[str] = Counter()
        self._closed = False
        follow_runs(bus, self.publish)

    def publish(self, event: dict[str, Any]) -> None:
        for subscription in list(self._open):
            if subscription.wants(event):
                subscription.put(event)

    def open(self, subscription: Subscription) -> Subscription:
        """Count a new stream of its user; ``TooManyStreams`` past the cap."""
        if self._closed:
            raise Unavailable("the task planner is shutting down; reconnect when it is back")
        if self._per_user[subscription.user] >= self.max_per_user:
            raise TooManyStreams(
                f"{subscription.user!r} already has {self.max_per_user} open event streams "
                "(TaskPlannerApp.max_event_streams_per_user); close one (another tab, a "
                "waiting client) first"
            )
        self._per_user[subscription.user] += 1
        self._open.add(subscription)
        return subscription

    def release(self, subscription: Subscription) -> None:
        if subscription in self._open:
            self._open.discard(subscription)
            self._per_user[subscription.user] -= 1

    def count(self, user: str) -> int:
        """Streams ``user`` holds open."""
        return self._per_user[user]

    def close(self) -> None:
        """End every stream (the server stops) and take no new ones."""
        self._closed = True
        for subscription in list(self._open):
            subscription.put(None)


class RunEventsHandler(PlannerHandler):
    """``GET /events``: the caller's run events as Server-Sent Events (``event: run``).

    ``task_id`` / ``run_id``: only that task's or run's events (one the caller may read);
    ``all=true``: every owner's (admins only).  A comment line every
    ``TaskPlannerApp.event_heartbeat_seconds`` keeps proxies from closing a quiet stream.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        accept = self.request.headers.get("Accept", "")
        if EVENT_STREAM not in accept:
            # A plain GET (a link, a crawler) would otherwise hold a connection forever.
            raise NotAcceptable(
                f"this route streams Server-Sent Events: send 'Accept: {EVENT_STREAM}'"
            )
        every = self.query_bool("all") or False
        if every and not self.access.admin:
            raise PermissionDenied(
                f"all=true (every owner's run events) needs the {ADMIN!r} permission; leave "
                "it out to follow your own runs"
            )
        task_id, run_id = self._id("task_id"), self._id("run_id")
        # A task or run the caller may not read answers 404, as everywhere in the API.
        if task_id is not None:
            await self.db(self.planner.tasks.get, self.access, task_id)
        if run_id is not None:
            await self.db(self.planner.runs.get, self.access, run_id)
        # A task's or run's owner never changes: the id filter alone keeps to what was read.
        named = task_id is not None or run_id is not None
        subscription = self.planner.streams.open(
            Subscription(
                user=self.access.user,
                owner=None if every or named else self.access.user,
                task_id=task_id,
                run_id=run_id,
            )
        )
        self._subscription = subscription
        try:
            await self._stream(subscription)
        finally:
            self.planner.streams.release(subscription)

    async def _stream(self, subscription: Subscription) -> None:
        self.set_header("Content-Type", f"{EVENT_STREAM}; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")  # nginx would hold the events back
        heartbeat = self.planner.settings.event_heartbeat_seconds
        try:
            await self._send(f"retry: {RETRY_MS}\n: connected\n\n")
            while True:
                try:
                    event = await asyncio.wait_for(subscription.queue.get(), heartbeat)
                except TimeoutError:
                    await self._send(": heartbeat\n\n")
                    continue
                if event is None:
                    break
                await self._send(f"event: run\ndata: {json.dumps(event)}\n\n")
            self.finish(set_content_type=f"{EVENT_STREAM}; charset=utf-8")
        except StreamClosedError:
            pass  # the client went away

    async def _send(self, text: str) -> None:
        self.write(text.encode())
        await self.flush()

    def on_connection_close(self) -> None:
        subscription: Subscription | None = getattr(self, "_subscription", None)
        if subscription is not None:
            subscription.put(None)

    def _id(self, name: str) -> int | None:
        if self.get_query_argument(name, None) is None:
            return None
        return self.query_int(name, 0, 1, MAX_ID)


EVENT_HANDLERS: list[tuple[str, type[PlannerHandler]]] = [(rf"{API}/events", RunEventsHandler)]
