"""The default executor: one subprocess per job, in its own process group."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import sys
from pathlib import Path
from typing import Any

import watchfiles
from traitlets import Bool, Float

from ..components.base import Result
from ..logs import CHUNK_SIZE, CappedLog
from .base import Executor, Progress, StepOutcome, StepRequest

DRAIN_SECONDS = 1.0
"""How long output is still copied once the worker ended (children it left may hold the pipe)."""


class LocalExecutor(Executor):
    """Runs each step in a fresh ``python -m jupyter_taskplanner.worker`` subprocess.

    The worker runs in its own process group (a cancel kills everything it started), in the
    owner's root folder, and writes its outcome, progress and result files into the step's
    folders on this machine.
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
            process, reader, transport = await self._start(request_path, request.cwd)
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
        self, request_path: Path, cwd: Path
    ) -> tuple[asyncio.subprocess.Process, asyncio.StreamReader, asyncio.BaseTransport]:
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

    async def _kill(self, process: asyncio.subprocess.Process) -> None:
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
    """Pass the worker's progress reports (its ``progress.json``) on until ``stop``."""
    async for _ in watchfiles.awatch(
        folder,
        stop_event=stop,
        recursive=False,
        debounce=100,
        watch_filter=lambda _, path: Path(path).name == "progress.json",
    ):
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
