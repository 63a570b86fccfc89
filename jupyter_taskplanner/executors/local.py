"""The default executor: one worker process per job, in its own process group.

Workers are forked by a warm fork server of their owner (``warm_workers``) or started as
fresh ``python -m jupyter_taskplanner.worker`` processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import stat
import sys
import time
from pathlib import Path
from typing import Any

import watchfiles
from traitlets import Bool, Dict, Float, Int, List, Unicode

from ..components.base import Result
from ..logs import CHUNK_SIZE, CappedLog
from .base import Executor, Progress, StepOutcome, StepRequest
from .warm import ForkedWorker, ForkServer, ForkServerGone, fork_server_command, identity

DRAIN_SECONDS = 1.0
"""How long output is still copied once the worker ended (children it left may hold the pipe)."""

WATCH_AFTER = 0.2
"""Seconds a job runs before its progress reports are watched for."""


class LocalExecutor(Executor):
    """Runs each step in a worker process of its own on this machine.

    The worker runs in its own process group (a cancel kills everything it started), in the
    owner's root folder, and writes its outcome, progress and result files into the step's
    folders on this machine.  With ``warm_workers`` it is forked by a fork server of its
    owner (started as that owner's worker would be, see ``worker_process``) that imported
    the heavy modules already; else, while that fork server still starts, or when forking
    fails, it is a fresh ``python -m jupyter_taskplanner.worker`` subprocess.
    """

    kill_grace = Float(
        3.0,
        config=True,
        help="Seconds a cancelled job gets after SIGTERM before its process group is killed.",
    )

    stop_when_orphaned = Bool(
        False,
        config=True,
        help="""Stop a job (as a cancel does) when the process that started it dies, so a
        crashed server leaves no job running. Off: such a job runs to its end unobserved
        (its run is marked interrupted when the server starts again).""",
    )

    warm_workers = Bool(
        True,
        config=True,
        help="""Start jobs in warm workers: a fork server per owner (and OS account), started
        as that owner's worker would be, imports the modules jobs need once and forks a fresh
        worker process for each job, which then starts in milliseconds instead of seconds.
        No job waits for a fork server to start: one that finds none ready (the owner's
        first) starts a fresh interpreter while the fork server starts beside it.
        Each job still runs in its own process, process group and copy of the server, so
        nothing of one job reaches the next, and no fork server serves two owners. Off:
        every job starts a fresh Python interpreter.""",
    )

    warm_preload = List(
        Unicode(),
        [
            "jupyter_taskplanner.jobs.python",
            "jupyter_taskplanner.jobs.command",
            "jupyter_taskplanner.jobs.notebook",
        ],
        config=True,
        help="""Modules a warm worker imports before it forks jobs (a module's warm_up()
        function, if it has one, runs too: the notebook job's loads the HTML templates).""",
    )

    warm_idle_seconds = Float(
        300.0,
        config=True,
        help="""Seconds an owner's fork server (and its pooled kernels) stays after its last
        job ended; the next job starts a new one.""",
    )

    max_warm_servers = Int(
        8,
        config=True,
        help="""Fork servers kept at once (one per owner and account). When another owner's
        job needs one, the one idle longest ends; when none is idle, the job starts a fresh
        interpreter.""",
    )

    kernel_pool = Dict(
        value_trait=Int(),
        key_trait=Unicode(),
        config=True,
        help="""The warm kernel pool (needs warm_workers), e.g. {"python3": 1}: how many
        idle kernels of each kernel name each owner's fork server keeps started. A notebook
        job of that kernel takes one instead of starting its own; the kernel serves that job
        only and is killed when the job ends, while a fresh one starts in its place. Pooled
        kernels cost memory and a kernel start per job even when idle; their own stdout and
        stderr (not the cells' output) are not kept. Empty (default): no kernels are
        started ahead.""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._fork_servers: dict[tuple[Any, ...], ForkServer] = {}
        self._starting: dict[tuple[Any, ...], asyncio.Future[ForkServer | None]] = {}
        self._idle_check: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Future[None]] = set()

    async def run_step(self, request: StepRequest, progress: Progress) -> StepOutcome:
        folder = request.folder
        request.output.mkdir(parents=True, exist_ok=True)
        request_path = folder / "request.json"
        document = request.document(folder, request.output)
        if self.stop_when_orphaned:
            document["stop_when_orphaned"] = self.kill_grace
            document["executor_pid"] = os.getpid()
        request_path.write_text(json.dumps(document))
        relaying = asyncio.Event()
        relay = asyncio.ensure_future(_relay_progress(folder, progress, relaying))
        log = CappedLog(folder / "log.txt", self.max_log_bytes)
        try:
            process, reader, transport = await self._start(
                request_path, request.cwd, str(request.context["owner"])
            )
            copying = asyncio.ensure_future(self._copy(reader, log))
            try:
                code = await process.wait()
            except asyncio.CancelledError:
                await self._kill(process)
                raise
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(copying, DRAIN_SECONDS)  # cancels it on timeout
                transport.close()
                if isinstance(process, ForkedWorker):
                    self._schedule_idle_check()
        finally:
            self._close(log)
            relaying.set()
            with contextlib.suppress(Exception):
                await relay
        outcome_path = folder / "outcome.json"
        written = _worker_file(outcome_path)
        if written is None:
            outcome = StepOutcome(
                error=f"the worker process {process.pid} died ({_describe(code)}) before it "
                "reported an outcome"
            )
        else:
            try:
                outcome = StepOutcome.from_document(json.loads(written))
            except (ValueError, AttributeError, TypeError):
                outcome = StepOutcome(error="the worker's outcome.json is not an outcome")
        if outcome.error is not None:
            outcome.results = _leftovers(request)
        return outcome

    async def _start(
        self, request_path: Path, cwd: Path, owner: str
    ) -> tuple[
        asyncio.subprocess.Process | ForkedWorker, asyncio.StreamReader, asyncio.BaseTransport
    ]:
        """Start the worker with its stdout and stderr on a pipe that we read.

        Our own pipe rather than asyncio's PIPE: ``Process.wait()`` would also wait for every
        holder of that pipe, so a child the job left running would hold the step open.
        """
        read_fd, write_fd = os.pipe()
        try:
            reader, transport = await _pipe_reader(read_fd)
        except BaseException:
            os.close(write_fd)
            raise
        try:
            command, options = self.worker_process(request_path, cwd)
            process: asyncio.subprocess.Process | ForkedWorker | None = None
            server = self._fork_server(owner, command, options)
            if server is not None:
                with contextlib.suppress(ForkServerGone):
                    process = await server.fork(request_path, cwd, write_fd)
            if process is None:
                process = await asyncio.create_subprocess_exec(
                    *command,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=write_fd,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    **options,
                )
        except BaseException:
            transport.close()
            raise
        finally:
            os.close(write_fd)  # the worker holds its own copy; EOF comes when it closes it
        return process, reader, transport

    def _fork_server(
        self, owner: str, command: list[str], options: dict[str, Any]
    ) -> ForkServer | None:
        """The running fork server for workers of ``owner`` started this way; None: start a
        fresh process (warm workers off, or no fork server ready yet).

        A job never waits for a fork server to start (seconds, the imports of
        ``warm_preload``), so its timeout covers its own run only: when none is running,
        one starts in the background, for the jobs after this one.
        """
        fork_command = fork_server_command(command)
        if not self.warm_workers or fork_command is None:
            return None
        key = identity(owner, command[:-1], options)
        server = self._fork_servers.get(key)
        if server is not None and server.alive:
            return server
        self._fork_servers.pop(key, None)
        if key not in self._starting:
            starting = self._starting[key] = asyncio.ensure_future(
                self._start_fork_server(key, fork_command, options)
            )
            starting.add_done_callback(functools.partial(self._started, key))
        return None

    def _started(self, key: tuple[Any, ...], starting: asyncio.Future[ForkServer | None]) -> None:
        """A fork server's start ended (started, failed, or cancelled by ``close``)."""
        self._starting.pop(key, None)
        if not starting.cancelled() and starting.exception() is not None:
            self.log.warning(
                "cannot start a warm worker, jobs start fresh ones", exc_info=starting.exception()
            )

    async def _start_fork_server(
        self, key: tuple[Any, ...], command: list[str], options: dict[str, Any]
    ) -> ForkServer | None:
        if len(self._fork_servers) >= self.max_warm_servers:
            idle = [item for item in self._fork_servers.items() if not item[1].busy]
            if not idle:
                return None
            oldest, server = min(idle, key=lambda item: item[1].last_used)
            del self._fork_servers[oldest]
            await server.close()
        config = {"preload": list(self.warm_preload), "kernel_pool": dict(self.kernel_pool)}
        try:
            server = await ForkServer.start(command, options, config)
        except (OSError, ForkServerGone) as exc:
            self.log.warning("cannot start a warm worker, jobs start fresh ones: %s", exc)
            return None
        self._fork_servers[key] = server
        self._schedule_idle_check()
        return server

    def _schedule_idle_check(self) -> None:
        if self._idle_check is None and self._fork_servers:
            loop = asyncio.get_running_loop()
            self._idle_check = loop.call_later(self.warm_idle_seconds, self._end_idle_servers)

    def _end_idle_servers(self) -> None:
        """End the fork servers idle for ``warm_idle_seconds``; check again later."""
        self._idle_check = None
        now = time.monotonic()
        for key, server in list(self._fork_servers.items()):
            if not server.busy and now - server.last_used >= self.warm_idle_seconds:
                del self._fork_servers[key]
                closing = asyncio.ensure_future(server.close())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        self._schedule_idle_check()

    async def close(self) -> None:
        """End every fork server (and its pooled kernels)."""
        if self._idle_check is not None:
            self._idle_check.cancel()
            self._idle_check = None
        # A fork server still starting is stopped too (its start ends the process it began).
        starting = list(self._starting.values())
        for task in starting:
            task.cancel()
        await asyncio.gather(*starting, return_exceptions=True)
        servers, self._fork_servers = list(self._fork_servers.values()), {}
        await asyncio.gather(*(server.close() for server in servers), *self._closing)
        await super().close()

    def fork_servers(self) -> list[ForkServer]:
        """The running fork servers (for status and tests)."""
        return [server for server in self._fork_servers.values() if server.alive]

    def worker_process(self, request_path: Path, cwd: Path) -> tuple[list[str], dict[str, Any]]:
        """The worker's command line and how it starts (``cwd``, ``env``; a subclass may add
        ``user``, ``group``, ``umask``), asked just before it starts: the step's folder,
        request and log are in place."""
        command = [sys.executable, "-m", "jupyter_taskplanner.worker", str(request_path)]
        return command, {"cwd": str(cwd), "env": {**os.environ, "PYTHONUNBUFFERED": "1"}}

    async def _copy(self, reader: asyncio.StreamReader, log: CappedLog) -> None:
        """Copy the worker's output into its log as it arrives, until the pipe closes.

        A log that cannot be written (a full disk) drops output rather than leaving the pipe
        unread, which would block the worker on its next print.
        """
        writing = True
        while chunk := await reader.read(CHUNK_SIZE):
            if not writing:
                continue
            try:
                log.write(chunk)
            except OSError as exc:
                writing = False
                self.log.warning("cannot write %s, dropping the rest: %s", log.path, exc)

    def _close(self, log: CappedLog) -> None:
        # Never let a log write replace the job's outcome or a cancellation.
        try:
            log.close()
        except OSError as exc:
            self.log.warning("cannot finish %s: %s", log.path, exc)

    async def _kill(self, process: asyncio.subprocess.Process | ForkedWorker) -> None:
        """Stop the worker and every process it started (its whole session)."""
        for sig, wait in ((signal.SIGTERM, self.kill_grace), (signal.SIGKILL, None)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            try:
                await asyncio.wait_for(asyncio.shield(process.wait()), wait)
                return
            except TimeoutError:
                continue


def _describe(code: int) -> str:
    if code < 0:
        return f"killed by signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _leftovers(request: StepRequest) -> list[dict[str, Any]]:
    """The files a failed step left in its output folder, as invalid file results."""
    job = request.entry.get("name") or request.entry["type"]
    return [
        Result("file", path.relative_to(request.output).as_posix(), False, job).to_json()
        for path in sorted(request.output.rglob("*"))
        if path.is_file()
    ]


def _worker_file(path: Path, limit: int = 64 * 1024 * 1024) -> bytes | None:
    """What the worker wrote to ``path`` (None if nothing is there).

    Only a regular file counts, opened without following a link and without waiting: where
    the worker runs as another user (the owner) it could put a link to a file of the
    server's account, or a pipe that would block the server, in its place.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return stream.read(limit)


async def _relay_progress(folder: Path, progress: Progress, stop: asyncio.Event) -> None:
    """Pass the worker's progress reports (its ``progress.json``) on until ``stop``.

    Most jobs end within a moment: only one still running after ``WATCH_AFTER`` gets a
    watcher on its folder (a thread and an inotify instance), starting with what it
    reported so far.
    """
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), WATCH_AFTER)
        return
    _report(folder, progress)
    async for _ in watchfiles.awatch(
        folder,
        stop_event=stop,
        recursive=False,
        debounce=100,
        watch_filter=lambda _, path: Path(path).name == "progress.json",
    ):
        _report(folder, progress)


def _report(folder: Path, progress: Progress) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        report = json.loads(_worker_file(folder / "progress.json") or "")
        progress(report["done"], report["total"], report["message"])


async def _pipe_reader(fd: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """An asyncio reader of the pipe's read end ``fd``; closing the transport closes ``fd``."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=CHUNK_SIZE)
    pipe = open(fd, "rb", buffering=0)  # noqa: SIM115 -- the transport closes it
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader, transport
