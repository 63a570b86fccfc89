"""A cap on steps in flight that owners share in turns (the run queue's rule, for steps)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class FairSlots:
    """At most ``limit`` holders at once (0: no cap); a freed slot goes to the waiting owner
    served least recently, so one owner's many steps cannot starve the others."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.busy = 0
        self._waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._served: dict[str, int] = {}
        self._grants = 0

    @asynccontextmanager
    async def hold(self, owner: str) -> AsyncIterator[None]:
        """Wait for a slot for ``owner``'s step, hold it inside the block."""
        if self.limit <= 0:
            yield
            return
        if self.busy < self.limit and not any(self._waiting.values()):
            self._grant(owner)
        else:
            granted = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(owner, deque()).append(granted)
            try:
                await granted
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled():
                    self._release()  # granted as the wait was cancelled: pass it on
                else:
                    self._waiting[owner].remove(granted)
                raise
        try:
            yield
        finally:
            self._release()

    def _grant(self, owner: str) -> None:
        self.busy += 1
        self._grants += 1
        self._served[owner] = self._grants

    def _release(self) -> None:
        self.busy -= 1
        waiting = [owner for owner, queue in self._waiting.items() if queue]
        if not waiting:
            return
        owner = min(waiting, key=lambda name: self._served.get(name, 0))
        self._grant(owner)
        self._waiting[owner].popleft().set_result(None)
