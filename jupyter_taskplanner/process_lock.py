"""An exclusive lock one process holds among those sharing a database, freed when it dies."""

from __future__ import annotations

import asyncio
import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path


class ProcessLock:
    """An OS lock (``flock``) on a file next to the database.

    Exactly one process holds it; the kernel frees it when that process ends, however it ends,
    so a waiting process takes over without heartbeats or polling.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._released = threading.Event()

    def acquire_then(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> bool:
        """Take the lock now if it is free (True), else wait in a thread and call back later.

        ``callback`` runs in ``loop`` once the lock is held after waiting.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            threading.Thread(
                target=self._wait, args=(fd, loop, callback), name="taskplanner-lock", daemon=True
            ).start()
            return False
        self._fd = fd
        return True

    def _wait(self, fd: int, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder ends or releases
        if self._released.is_set() or loop.is_closed():
            os.close(fd)
            return
        self._fd = fd
        loop.call_soon_threadsafe(callback)

    def release(self) -> None:
        """Free the lock (and give up waiting for it)."""
        self._released.set()
        if self._fd is not None:
            os.close(self._fd)  # closing the file frees the flock
            self._fd = None
