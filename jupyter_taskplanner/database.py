"""The planner's database thread: every store call runs on it, off the event loop."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar, TypeVarTuple

from .errors import Unavailable
from .store import Store

P = ParamSpec("P")
T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class Database:
    """The store and the one thread its calls run on (SQLite writes go through one writer).

    ``await db.call(db.store.get_task, 3, None)`` runs the call on that thread.  Once closed
    (the server stopping while requests still arrive), a call is an ``Unavailable`` (503).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="taskplanner-db")
        self._closed = False

    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` on the database thread."""
        if self._closed:
            raise Unavailable("the task planner is shutting down; try again when it is back")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, functools.partial(fn, *args, **kwargs))

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
