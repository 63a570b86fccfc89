"""The planner's database thread: every store call runs on it, off the event loop."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar, TypeVarTuple

from .errors import Unavailable
from .store import Store

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_Grouped = tuple[Callable[[], object], "asyncio.Future[Any]", asyncio.AbstractEventLoop]
"""A write waiting for its group: the call, its caller's future and that caller's loop."""


class Database:
    """The store and the one thread its calls run on (SQLite writes go through one writer).

    ``await db.call(db.store.get_task, 3, None)`` runs the call on that thread.  Once closed
    (the server stopping while requests still arrive), a call is an ``Unavailable`` (503).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskplanner-db")
        self._closed = False
        self._group: list[_Grouped] = []
        self._group_lock = threading.Lock()

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the database thread."""
        if self._closed:
            raise Unavailable("the task planner is shutting down; try again when it is back")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

    async def write(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run the write ``fn(*args, **kwargs)`` on the database thread, committed together
        with the other writes waiting for the thread then (``Store.write_group``).

        Each is undone alone when it raises; its answer (or exception) comes once the
        transaction holding it committed, so what it wrote is stored when it returns.
        """
        if self._closed:
            raise Unavailable("the task planner is shutting down; try again when it is back")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._group_lock:
            self._group.append((functools.partial(fn, *args, **kwargs), future, loop))
            first = len(self._group) == 1
        if first:
            self._thread.submit(self._write_group)
        return await future

    def _write_group(self) -> None:
        """On the database thread: the writes gathered since the last group, in one commit."""
        with self._group_lock:
            group, self._group = self._group, []
        try:
            outcomes: list[object] = self.store.write_group([call for call, _, _ in group])
        except BaseException as exc:  # the commit failed: none of them is stored
            outcomes = [exc] * len(group)
        for (_, future, loop), outcome in zip(group, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, future, outcome)

    def submit(self, fn: Callable[[*Ts], object], *args: *Ts) -> None:
        """Queue ``fn`` on the database thread without waiting for it."""
        self._thread.submit(fn, *args)

    def close(self) -> None:
        """Finish the queued calls, then close the store (once; later calls do nothing)."""
        if self._closed:
            return
        self._closed = True
        self._thread.shutdown(wait=True)
        self.store.close()


def _settle(future: asyncio.Future[Any], outcome: object) -> None:
    if future.done():  # the caller gave up waiting
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
