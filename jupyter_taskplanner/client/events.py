"""Run events from Jupyter Server's event bus (``/api/events/subscribe``), as they happen.

The planner emits one event when a run starts, when a job reports progress and when the run
finishes; a client waits on them instead of polling the REST API.
"""

from __future__ import annotations

import json
import time
from types import TracebackType
from typing import Any

import websocket

RUN_EVENT_SCHEMA = "https://events.jupyter.org/jupyter_taskplanner/run/v1"
"""The schema id of the planner's run events (``jupyter_taskplanner/events/run.yaml``)."""


class RunEvents:
    """A subscription to the planner's run events; ``next(timeout)`` gives the next one.

    A server that refuses the subscription (no ``events`` permission, an old server) leaves
    ``connected`` False; ``next`` then just waits out its timeout, so callers fall back to
    reading the run now and then.
    """

    def __init__(self, url: str, token: str | None) -> None:
        self.url = "ws" + url.removeprefix("http") + "api/events/subscribe"
        headers = [f"Authorization: token {token}"] if token else []
        self._socket: websocket.WebSocket | None
        try:
            self._socket = websocket.create_connection(self.url, header=headers, timeout=10)
        except (OSError, websocket.WebSocketException):
            self._socket = None

    @property
    def connected(self) -> bool:
        return self._socket is not None

    def next(self, timeout: float) -> dict[str, Any] | None:
        """The next run event within ``timeout`` seconds, else None."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if self._socket is None:
                time.sleep(left)
                return None
            self._socket.settimeout(left)
            try:
                message = self._socket.recv()
            except websocket.WebSocketTimeoutException:
                return None
            except (OSError, websocket.WebSocketException):
                self.close()
                return None
            event = json.loads(message)
            if isinstance(event, dict) and event.get("schema_id") == RUN_EVENT_SCHEMA:
                return event
        return None

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def __enter__(self) -> RunEvents:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
