"""Warm workers, the executor's side: fork servers kept per owner and OS identity.

A fork server (``jupyter_taskplanner.forkserver``) is started the way a worker of its owner
would be, imports the heavy modules once and forks one worker per step.  The executor hands
it the step's request and log pipe, learns the worker's pid and, when it ended, its exit
code: ``ForkedWorker`` answers ``pid`` and ``wait()`` as an asyncio subprocess does, so the
executor stops it (its process group) and waits for it the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

from ..forkserver import MAX_MESSAGE


class ForkServerGone(RuntimeError):
    """The fork server ended or cannot start a worker; the step starts a fresh process."""


class ForkedWorker:
    """A worker a fork server forked: its ``pid`` and its exit code (``wait()``)."""

    def __init__(self, pid: int, ended: asyncio.Future[int]) -> None:
        self.pid = pid
        self._ended = ended

    async def wait(self) -> int:
        return await asyncio.shield(self._ended)


class ForkServer:
    """One running fork server and the workers it forked that have not ended yet."""

    def __init__(self, process: asyncio.subprocess.Process, control: socket.socket) -> None:
        self.process = process
        self.control = control
        self.ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.kernel_pool: Path | None = None
        self.last_used = time.monotonic()
        self._ids = itertools.count()
        self._started: dict[int, asyncio.Future[int]] = {}
        self._ended: dict[int, asyncio.Future[int]] = {}
        self._pids: dict[int, int] = {}
        self._abandoned: set[int] = set()  # forks whose step was cancelled while starting
        self._reading = asyncio.ensure_future(self._read())

    @classmethod
    async def start(
        cls,
        command: list[str],
        options: dict[str, Any],
        config: dict[str, Any],
    ) -> ForkServer:
        """Start ``command`` (the fork server's command line) with the worker's ``options``."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                json.dumps({**config, "fd": theirs.fileno()}),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                **options,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        server = cls(process, ours)
        try:
            hello = await server.ready
        except BaseException:
            await server.close()
            raise
        if hello.get("kernel_pool"):
            server.kernel_pool = Path(hello["kernel_pool"])
        return server

    @property
    def busy(self) -> bool:
        """Whether workers it forked still run."""
        return bool(self._ended)

    @property
    def alive(self) -> bool:
        return not self._reading.done()

    async def fork(self, request_path: Path, cwd: Path, log_fd: int) -> ForkedWorker:
        """Fork a worker for the step of ``request_path``, its output on ``log_fd``."""
        if not self.alive:
            raise ForkServerGone("the fork server ended")
        loop = asyncio.get_running_loop()
        key = next(self._ids)
        started = self._started[key] = loop.create_future()
        ended = self._ended[key] = loop.create_future()
        self.last_used = time.monotonic()
        message = json.dumps({"fork": key, "request": str(request_path), "cwd": str(cwd)})
        try:
            await self._send(message.encode(), log_fd)
            pid = await started
        except BaseException:
            if self._started.pop(key, None) is not None:
                self._abandoned.add(key)
            self._ended.pop(key, None)
            raise
        return ForkedWorker(pid, ended)

    async def close(self) -> None:
        """End the fork server (workers still running stay, as the module says)."""
        self.control.close()
        self._reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reading
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()

    async def _send(self, data: bytes, fd: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                socket.send_fds(self.control, [data], [fd])
                return
            except BlockingIOError:
                writable: asyncio.Future[None] = loop.create_future()
                loop.add_writer(self.control, _settle, writable)
                try:
                    await writable
                finally:
                    loop.remove_writer(self.control)
            except OSError as exc:
                raise ForkServerGone(f"the fork server does not answer: {exc}") from None

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while data := await loop.sock_recv(self.control, MAX_MESSAGE):
                self._handle(json.loads(data))
        except OSError:
            pass
        finally:
            self._lost()

    def _handle(self, message: dict[str, Any]) -> None:
        if "ready" in message:
            if not self.ready.done():
                self.ready.set_result(message)
        elif "started" in message:
            key = message["started"]
            if key in self._abandoned:
                self._abandoned.discard(key)
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(message["pid"], signal.SIGKILL)
                return
            self._pids[key] = message["pid"]
            started = self._started.pop(key, None)
            if started is not None and not started.done():
                started.set_result(message["pid"])
        elif "failed" in message:
            started = self._started.pop(message["failed"], None)
            self._ended.pop(message["failed"], None)
            if started is not None and not started.done():
                started.set_exception(ForkServerGone(message["error"]))
        elif "exited" in message:
            self.last_used = time.monotonic()
            self._pids.pop(message["exited"], None)
            ended = self._ended.pop(message["exited"], None)
            if ended is not None and not ended.done():
                ended.set_result(int(message["code"]))

    def _lost(self) -> None:
        """The fork server is gone: nothing reports on its workers any more, so stop them."""
        gone = ForkServerGone("the fork server ended before it started the worker")
        if not self.ready.done():
            self.ready.set_exception(gone)
        for started in self._started.values():
            if not started.done():
                started.set_exception(gone)
        for key, ended in self._ended.items():
            pid = self._pids.get(key)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
            if not ended.done():
                ended.set_result(-signal.SIGKILL)
        self._started.clear()
        self._ended.clear()


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def fork_server_command(command: list[str]) -> list[str] | None:
    """The fork server's command line for a worker's ``command``; None when that is not the
    standard worker (a subclass starts something else), which then always starts fresh."""
    if command[1:3] != ["-m", "jupyter_taskplanner.worker"] or len(command) != 4:
        return None
    return [command[0], "-m", "jupyter_taskplanner.forkserver"]


def identity(owner: str, command: list[str], options: dict[str, Any]) -> tuple[Any, ...]:
    """What a fork server is shared by: one owner, one command, account and environment."""
    frozen = []
    for key, value in sorted(options.items()):
        if isinstance(value, dict):
            value = tuple(sorted(value.items()))
        elif isinstance(value, list):
            value = tuple(value)
        frozen.append((key, value))
    return (owner, tuple(command), tuple(frozen))
