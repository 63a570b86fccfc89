"""The planner's in-process event bus: what happened to runs, the server and HTTP calls.

The engine publishes the life of every run, the planner its own start, the REST API each
call of a task's secret URL.  Triggers that start tasks on such events
(``PlannerEventTrigger``: built-in ones and a plugin's alike) are served by the scheduler's
listeners; the owners' event streams (``event_stream``, for the UI and clients) and, when
``TaskPlannerApp.server_events`` is on, Jupyter Server's event bus are more subscribers.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .vocabulary import RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannerEvent:
    """Base of every event on the bus."""


@dataclass(frozen=True)
class RunStarted(PlannerEvent):
    """A run began executing."""

    run: RunRecord


@dataclass(frozen=True)
class RunProgress(PlannerEvent):
    """A running job reported how far it came."""

    run: RunRecord
    step_id: int
    done: int
    total: int
    message: str


@dataclass(frozen=True)
class StepChanged(PlannerEvent):
    """A step of a run (a job, a series, an action) began or ended; ``status`` is the step's."""

    run: RunRecord
    step_id: int
    kind: str
    name: str
    status: str


@dataclass(frozen=True)
class RunFinished(PlannerEvent):
    """A run ended (any finished status), its record read back."""

    run: RunRecord


@dataclass(frozen=True)
class ServerStarted(PlannerEvent):
    """The planner started in a server process (not in the command line)."""


@dataclass(frozen=True)
class HttpCall(PlannerEvent):
    """A task's secret URL was called; ``parameters`` are the call's fields."""

    task_id: int
    token: str
    parameters: dict[str, Any] = field(default_factory=dict)


E = TypeVar("E", bound=PlannerEvent)
Listener = Callable[[Any], Awaitable[object] | object]


class EventBus:
    """Delivers each published event to the listeners of its type, in subscription order."""

    def __init__(self) -> None:
        self._listeners: dict[type[PlannerEvent], list[Listener]] = defaultdict(list)

    def subscribe(self, kind: type[E], listener: Callable[[E], Awaitable[object] | object]) -> None:
        self._listeners[kind].append(listener)

    async def publish(self, event: PlannerEvent) -> list[object]:
        """Give ``event`` to its listeners; their results, in order.

        A listener that fails is logged and does not keep the event from the others.
        """
        results = []
        for listener in list(self._listeners[type(event)]):
            try:
                result = listener(event)
                if inspect.isawaitable(result):
                    result = await result
            except Exception:
                log.exception("a listener of %s failed", type(event).__name__)
                continue
            results.append(result)
        return results
