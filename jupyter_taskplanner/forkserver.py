"""A fork server: a pre-started worker that forks one fresh worker process per job.

Started by ``LocalExecutor`` (``warm_workers``) as ``python -m jupyter_taskplanner.forkserver
CONFIG`` with the options a worker of that owner would get (user, group, umask, environment,
working folder), one per owner and OS identity.  It imports the heavy modules once
(``preload``) and then waits on its control socket (a ``SOCK_SEQPACKET`` socket pair, one JSON
message per packet):

- the executor sends ``{"fork": id, "request": path, "cwd": folder}`` with the write end of
  the step's log pipe attached (``SCM_RIGHTS``);
- the server forks; the child becomes the worker of that step exactly as
  ``python -m jupyter_taskplanner.worker`` would be (a session and process group of its own,
  the log pipe as stdout and stderr, the owner's root as working folder) and ends without
  the interpreter's teardown; the server answers ``{"started": id, "pid": pid}`` (or
  ``{"failed": id, "error": text}``) and, once it reaped the child, ``{"exited": id,
  "code": code}`` (negative: the signal that killed it).

The server itself never runs a job's code, so nothing of one job reaches the next: each
job runs in its own copy of the server.  It ends when the control socket closes (the
executor closed it or died); workers still running then stay running, and those told to
``stop_when_orphaned`` stop as a cancel would.

The heavy modules (``HEAVY``, the notebook job's) are imported by a copy of the server it
forks before it serves (``Full``), which forks the jobs that need them and keeps the
pre-started kernels of ``kernel_pool`` (``kernelpool``); the server relays to it and forks
the other jobs itself.  A fork copies its parent's page tables and the child copies each
page it touches, so a python or command job costs a third less from a process a third of
the size, and such jobs are forked as soon as the light modules are imported.  When either
process ends, the other does too.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from . import worker
from .kernelpool import KernelPool

MAX_MESSAGE = 64 * 1024

HEAVY = frozenset({"jupyter_taskplanner.jobs.notebook"})
"""Preloaded modules only the full copy imports (nbclient, nbconvert and their templates:
twice the memory of all the rest)."""


class ForkServer:
    """The loop of the fork server process."""

    def __init__(
        self,
        control: socket.socket,
        pool: KernelPool | None,
        full: Full | None = None,
        pool_folder: Path | None = None,
    ) -> None:
        self.control = control
        self.pool = pool
        self.full = full
        self.pool_folder = pool_folder if pool is None else pool.folder
        self.children: dict[int, int] = {}  # pid -> request id
        self.wake_read, self.wake_write = os.pipe()
        os.set_blocking(self.wake_write, False)
        os.set_blocking(self.wake_read, False)

    def serve(self) -> None:
        """Fork workers until the control socket closes."""
        signal.set_wakeup_fd(self.wake_write)
        # Handlers that do nothing: the wake-up pipe ends the select; SIGUSR1 is a worker
        # that took a pooled kernel, so another starts.
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGUSR1, lambda *_: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        pool = None if self.pool_folder is None else str(self.pool_folder)
        self._send({"ready": os.getpid(), "kernel_pool": pool})
        watched = [self.control, self.wake_read]
        if self.full is not None:
            watched.append(self.full.socket)
        try:
            while True:
                readable, _, _ = select.select(watched, [], [])
                if self.wake_read in readable:
                    with contextlib.suppress(BlockingIOError):
                        while os.read(self.wake_read, 512):
                            pass
                self._reap()
                if self.pool is not None:
                    self.pool.tend()
                if self.full is not None and self.full.socket in readable and not self._relay():
                    return  # the full copy is gone, and no one reports on its workers
                if self.control in readable and not self._receive():
                    return
        finally:
            if self.pool is not None:
                self.pool.close()
            if self.full is not None:
                self.full.socket.close()

    def _receive(self) -> bool:
        """Handle one message; False when the control socket closed."""
        try:
            data, fds, _, _ = socket.recv_fds(self.control, MAX_MESSAGE, 4)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        message = json.loads(data)
        if len(fds) != 1:
            for fd in fds:
                os.close(fd)
            self._send({"failed": message.get("fork"), "error": "no log pipe came with it"})
            return True
        if self.full is not None and self.full.serves(message["request"]):
            try:
                socket.send_fds(self.full.socket, [data], fds)
            except OSError as exc:
                self._send({"failed": message["fork"], "error": f"the full copy is gone: {exc}"})
            finally:
                os.close(fds[0])
            return True
        try:
            pid = self._fork(message["request"], message["cwd"], fds[0])
        except OSError as exc:
            self._send({"failed": message["fork"], "error": f"cannot fork a worker: {exc}"})
        else:
            self.children[pid] = message["fork"]
            self._send({"started": message["fork"], "pid": pid})
        finally:
            os.close(fds[0])
        return True

    def _fork(self, request: str, cwd: str, log_fd: int) -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            self.control.close()
            if self.full is not None:
                self.full.socket.close()
            os.close(self.wake_read)
            os.close(self.wake_write)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            os.chdir(cwd)
            if self.pool is not None:
                self.pool.forked()
            code = worker.main([request])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        worker.finish(code)
        raise AssertionError("unreachable")  # finish() never returns

    def _relay(self) -> bool:
        """Pass an answer of the full copy on to the executor; False when the copy is gone."""
        assert self.full is not None
        try:
            data = self.full.socket.recv(MAX_MESSAGE)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        if "ready" not in json.loads(data):  # its hello is for this server only
            with contextlib.suppress(OSError):
                self.control.sendall(data)
        return True

    def _reap(self) -> None:
        for pid, request in list(self.children.items()):
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done, status = pid, 255 << 8
            if not done:
                continue
            del self.children[pid]
            if self.pool is not None:
                self.pool.release(pid)
            self._send({"exited": request, "code": os.waitstatus_to_exitcode(status)})

    def _send(self, message: dict[str, Any]) -> None:
        with contextlib.suppress(OSError):  # the executor is gone: the next read ends the loop
            self.control.sendall(json.dumps(message).encode())


class Full:
    """The server's side of its full copy: the socket to it, and which jobs are its."""

    def __init__(self, sock: socket.socket, light: frozenset[str]) -> None:
        self.socket = sock
        self.light = light
        """The modules the server itself imported (the full copy has them too)."""

    def serves(self, request: str) -> bool:
        """Whether the job of the request at ``request`` is the full copy's: its component
        is of a module the server did not import (one that cannot be read is the server's,
        whose worker then reports why)."""
        try:
            document = json.loads(Path(request).read_text())
            name = f"{document['kind']}.{document['entry']['type']}"
        except (OSError, ValueError, KeyError, TypeError):
            return False
        point = worker.entry_point(name)
        return point is not None and point.module not in self.light


def _preload(modules: list[str]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
            warm_up = getattr(sys.modules[module], "warm_up", None)
            if callable(warm_up):
                warm_up()
        except Exception:
            print(f"warm worker: cannot preload {module}:", file=sys.stderr)
            traceback.print_exc()


def _pool(sizes: dict[str, Any], folder: Path | None) -> KernelPool | None:
    if folder is None:
        return None
    return KernelPool({str(name): int(size) for name, size in sizes.items()}, folder, Path.cwd())


def _fork_full(
    control: socket.socket, heavy: list[str], sizes: dict[str, Any], folder: Path | None
) -> Full | None:
    """Fork the full copy, which imports ``heavy`` and keeps the kernel pool; None (and
    nothing forked) when that fails."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        pid = os.fork()
    except OSError as exc:
        print(f"warm worker: no full copy, this server imports everything: {exc}")
        ours.close()
        theirs.close()
        return None
    if pid:
        theirs.close()
        return Full(ours, frozenset(sys.modules))
    code = 1
    try:
        control.close()
        ours.close()
        _preload(heavy)
        pool = _pool(sizes, folder)
        gc.freeze()
        ForkServer(theirs, pool).serve()
        code = 0
    except BaseException:
        traceback.print_exc()
    worker.finish(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    config = json.loads(argv[0])
    control = socket.socket(fileno=int(config["fd"]))
    control.setblocking(True)
    worker.warm_up()
    preload = list(config.get("preload", []))
    heavy = [module for module in preload if module in HEAVY]
    _preload([module for module in preload if module not in HEAVY])
    sizes = config.get("kernel_pool") or {}
    folder = Path(tempfile.mkdtemp(prefix="taskplanner-kernels-")) if sizes else None
    full = _fork_full(control, heavy, sizes, folder) if heavy or folder else None
    pool = None
    if full is None:  # everything here, as the full copy would have it
        _preload(heavy)
        pool = _pool(sizes, folder)
    # What was imported stays shared with every forked worker: keep the collector from
    # touching (and so copying) those pages in each of them.
    gc.freeze()
    ForkServer(control, pool, full, folder).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
