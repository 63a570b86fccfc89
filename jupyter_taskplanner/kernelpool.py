"""The warm kernel pool: pre-started kernels for notebook jobs, each used by one job only.

A fork server (``forkserver``) with ``LocalExecutor.kernel_pool`` set keeps that many idle
kernels per kernel name, started as its own children in the owner's root, under the
account and environment of that owner's workers.  Each idle kernel is a file
``<folder>/<kernel name>/<kernel pid>.json`` naming its connection file.  A notebook job
forked by that server takes one with ``claim``: it renames the file to
``<folder>/claimed/<its own pid>.json`` (a rename is atomic, so no kernel serves two jobs)
and tells the server, which starts a fresh kernel in its place at once.  When that worker
ends, whatever way, the server kills the kernel it took (its whole process group), so no
state of one run reaches the next.  A pooled kernel that dies while idle is replaced.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FOLDER: Path | None = None
"""In a worker forked by a fork server with a pool: the pool's folder (else None)."""


@dataclass
class _Kernel:
    process: subprocess.Popen[bytes]
    connection_file: Path


class KernelPool:
    """The kernels a fork server keeps ready (fork-server side)."""

    def __init__(self, sizes: dict[str, int], folder: Path, cwd: Path) -> None:
        self.sizes = {name: size for name, size in sizes.items() if size > 0}
        self.folder = folder
        self.cwd = cwd
        self.idle: dict[str, dict[int, _Kernel]] = {name: {} for name in self.sizes}
        self.claimed: dict[int, _Kernel] = {}  # kernel pid -> kernel, once a worker took it
        (folder / "claimed").mkdir(parents=True, exist_ok=True)
        for name in self.sizes:
            (folder / name).mkdir(exist_ok=True)
        self.tend()

    def forked(self) -> None:
        """In a freshly forked worker: let its notebook job find the pool."""
        global FOLDER
        FOLDER = self.folder

    def tend(self) -> None:
        """Move claimed kernels aside, replace dead idle ones, start kernels up to size."""
        for name, kernels in self.idle.items():
            for pid, kernel in list(kernels.items()):
                ticket = self.folder / name / f"{pid}.json"
                if not ticket.exists():
                    self.claimed[pid] = kernels.pop(pid)
                elif kernel.process.poll() is not None:
                    with contextlib.suppress(FileNotFoundError):
                        ticket.unlink()
                    del kernels[pid]
                    _discard(kernel)
            while len(kernels) < self.sizes[name]:
                try:
                    kernel = self._start(name)
                except Exception as exc:  # a broken kernel spec: run jobs with fresh kernels
                    print(f"kernel pool: cannot start a {name} kernel: {exc}", file=sys.stderr)
                    self.sizes[name] = len(kernels)
                    break
                kernels[kernel.process.pid] = kernel
        for pid, kernel in list(self.claimed.items()):
            if kernel.process.poll() is not None:
                _discard(self.claimed.pop(pid))

    def release(self, worker_pid: int) -> None:
        """A worker ended: kill the kernel it took, if it took one."""
        self.tend()
        ticket = self.folder / "claimed" / f"{worker_pid}.json"
        try:
            kernel_pid = int(json.loads(ticket.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return
        ticket.unlink()
        kernel = self.claimed.pop(kernel_pid, None)
        if kernel is not None:
            _kill(kernel)

    def close(self) -> None:
        for kernel in [
            *self.claimed.values(),
            *(k for ks in self.idle.values() for k in ks.values()),
        ]:
            _kill(kernel)
        with contextlib.suppress(OSError):
            for path in sorted(self.folder.rglob("*"), reverse=True):
                path.rmdir() if path.is_dir() else path.unlink()
            self.folder.rmdir()

    def _start(self, name: str) -> _Kernel:
        from jupyter_client.manager import KernelManager

        from .jobs.notebook import TRANSPORT_ENCRYPTION

        connection_file = self.folder / f"kernel-{uuid.uuid4()}.json"
        manager = KernelManager(
            kernel_name=name,
            connection_file=str(connection_file),
            transport_encryption=TRANSPORT_ENCRYPTION,
        )
        # Only the command line and environment of the kernel (and its connection file):
        # this process starts it itself, so it opens no ZeroMQ sockets a fork would copy.
        command, options = manager.pre_start_kernel(cwd=str(self.cwd))
        # The pool owns the connection file (``_discard``): the manager would remove it when
        # collected, in this process or in any worker forked while its garbage is unreached.
        manager._connection_file_written = False
        env = {**options.get("env", os.environ), "JPY_PARENT_PID": str(os.getpid())}
        process = subprocess.Popen(
            command,
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        kernel = _Kernel(process, connection_file)
        ticket = self.folder / name / f"{process.pid}.json"
        partial = ticket.with_suffix(".partial")
        partial.write_text(
            json.dumps({"pid": process.pid, "connection_file": str(connection_file)})
        )
        os.replace(partial, ticket)
        return kernel


def _kill(kernel: _Kernel) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(kernel.process.pid, signal.SIGKILL)
    kernel.process.wait()
    _discard(kernel)


def _discard(kernel: _Kernel) -> None:
    with contextlib.suppress(FileNotFoundError):
        kernel.connection_file.unlink()


def claim(name: str) -> dict[str, Any] | None:
    """Take an idle pooled kernel named ``name`` for this worker's job (None: there is none).

    Returns ``{"pid", "connection_file"}``; the kernel is this job's alone and is killed
    when this worker ends.
    """
    if FOLDER is None or not (FOLDER / name).is_dir():
        return None
    mine = FOLDER / "claimed" / f"{os.getpid()}.json"
    for ticket in sorted((FOLDER / name).glob("*.json")):
        try:
            os.rename(ticket, mine)
        except FileNotFoundError:  # another job took it first
            continue
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getppid(), signal.SIGUSR1)  # the server starts the next one now
        kernel: dict[str, Any] = json.loads(mine.read_text())
        if alive(int(kernel["pid"])):
            return kernel
        return None
    return None


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie not yet reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
