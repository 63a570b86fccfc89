"""The caller's run events, as they happen, from the planner's stream (``GET /events``).

The planner sends an event when a run starts, when a job reports progress and when the run
finishes, each only to its owner (admins may name another owner's task or run, or ask for
all); a client waits on them instead of polling the REST API.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
from types import TracebackType
from typing import Any

import httpx

API_PATH = "taskplanner/api/events"


class RunEvents:
    """A subscription to run events; ``next(timeout)`` gives the next one.

    ``task_id`` / ``run_id`` keep to one task's or one run's events; ``all_owners`` (admins)
    takes every owner's.  A server that refuses the subscription (too many streams, an old
    server) leaves ``connected`` False and ``refusal`` saying why; ``next`` then just waits
    out its timeout, so callers fall back to reading the run now and then.  The stream is
    read in a thread, so the caller's waits need no open connection of their own.
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        task_id: int | None = None,
        run_id: int | None = None,
        all_owners: bool = False,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url + API_PATH
        self.refusal: str | None = None
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._response: httpx.Response | None = None
        headers = {"Accept": "text/event-stream"}
        if token:
            headers["Authorization"] = f"token {token}"
        params: dict[str, str | int] = {}
        if task_id is not None:
            params["task_id"] = task_id
        if run_id is not None:
            params["run_id"] = run_id
        if all_owners:
            params["all"] = "true"
        # No read timeout: the server's heartbeats keep a quiet stream alive.
        self._http = httpx.Client(timeout=httpx.Timeout(10, read=None), transport=transport)
        try:
            request = self._http.build_request("GET", self.url, headers=headers, params=params)
            response = self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            self.refusal = str(exc)
            self._http.close()
            return
        if response.status_code != 200:
            response.read()
            try:
                self.refusal = response.json().get("message") or response.reason_phrase
            except ValueError:
                self.refusal = f"{response.status_code} {response.reason_phrase}"
            response.close()
            self._http.close()
            return
        self._response = response
        self._thread = threading.Thread(target=self._read, name="taskplanner-events", daemon=True)
        self._thread.start()

    @property
    def connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _read(self) -> None:
        assert self._response is not None
        kind, data = "message", []
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            for line in self._response.iter_lines():
                if line.startswith(":"):
                    continue  # a comment: the heartbeat
                if line:
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if field == "event":
                        kind = value
                    elif field == "data":
                        data.append(value)
                    continue
                if kind == "run" and data:
                    event = json.loads("\n".join(data))
                    if isinstance(event, dict):
                        self._events.put(event)
                kind, data = "message", []
        self._events.put(None)

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next run event within ``timeout`` seconds, else None."""
        try:
            event = self._events.get(timeout=max(timeout, 0))
        except queue.Empty:
            return None
        if event is None:  # the stream ended: wait out the time as a refused one would
            self._events.put(None)
            time.sleep(timeout)
        return event

    def close(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            # Wakes the reading thread at once (closing alone would wait for a heartbeat).
            stream = response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            if self._thread is not None:
                self._thread.join(5)
            response.close()
            self._http.close()

    def __enter__(self) -> RunEvents:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
