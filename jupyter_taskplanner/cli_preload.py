"""The command line in forks of one interpreter that imported it already (for tests).

A fresh ``jupyter-taskplanner`` process spends about two seconds of CPU importing Jupyter
Server (most of it jsonschema building its format checkers) and the components (nbconvert)
before it does anything, and a test suite runs the command dozens of times.
``PreloadedCli`` starts one interpreter that imports the command line, then forks it for
each command: every command is still a process of its own, with its own arguments,
environment (``PYTHONPATH`` included), working folder, standard streams and exit code, and
it ends as the command would (``atexit`` handlers run, an uncaught exception prints its
traceback and exits 1).  ``testing.Cli`` runs its commands
so; run as ``python -m jupyter_taskplanner.cli_preload`` it is that interpreter.
"""

from __future__ import annotations

import atexit
import importlib
import json
import locale
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import distribution
from pathlib import Path
from typing import Any, NoReturn

from .command import skip_iri_formats

PRELOAD = (
    "jupyter_taskplanner.cli",
    "jupyter_taskplanner.cli_runs",
    "jupyter_taskplanner.cli_data",
)
"""The modules the interpreter imports before its first fork (the commands' own)."""
BIN = Path(sys.executable).parent


class PreloadedCli:
    """Runs ``jupyter-taskplanner`` commands in forks of one preloaded interpreter, one
    command at a time; the interpreter starts with the first command and ends at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    def run(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: Path | None = None,
        stdin: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (``argv[0]`` names the command) as ``subprocess.run(argv,
        input=stdin, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)``
        would, but for a stdin of /dev/null when none is given."""
        encoding = locale.getpreferredencoding(False)
        with self._lock, tempfile.TemporaryDirectory(prefix="taskplanner-cli-") as folder:
            streams = {name: str(Path(folder, name)) for name in ("stdin", "stdout", "stderr")}
            if stdin is None:
                streams["stdin"] = os.devnull
            else:
                Path(streams["stdin"]).write_text(stdin, encoding=encoding)
            request = {"argv": argv, "env": env, "cwd": str(cwd or Path.cwd()), **streams}
            process = self._started()
            assert process.stdin is not None
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
            pid = int(self._reply(30))
            try:
                code = int(self._reply(timeout))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._reply(30)
                raise subprocess.TimeoutExpired(argv, timeout) from None
            output = [
                Path(streams[name]).read_text(encoding=encoding) for name in ("stdout", "stderr")
            ]
        # read_text translates newlines as text mode does.
        return subprocess.CompletedProcess(argv, code, *output)

    def stop(self) -> None:
        """End the preloaded interpreter (it ends by itself when its stdin closes)."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()

    def _started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self.stop()
        # Started where the console script lives: the folder a command finds first on its
        # path, as a fresh `jupyter-taskplanner` does; no Jupyter folders of the tests'.
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("JUPYTER", "PYTHONPATH"))
        }
        self._process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=BIN,
            env=environ,
        )
        self._buffer = b""
        atexit.register(self.stop)
        return self._process

    def _reply(self, timeout: float) -> str:
        """The interpreter's next line (a pid, then that command's exit code)."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, 4096)
            if not chunk:
                raise RuntimeError(f"the preloaded command line ended ({self._process.wait()})")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


def serve() -> None:
    """Import the commands and the package's own components (every command loads them: the
    notebook job alone imports nbconvert), then fork one process per request line on stdin;
    write its pid and then its exit code (negative: the signal that ended it) to stdout."""
    skip_iri_formats()  # as the command does
    for name in PRELOAD:
        importlib.import_module(name)
    from .components import ENTRY_POINT_GROUP

    own = distribution("jupyter-taskplanner").entry_points.select(group=ENTRY_POINT_GROUP)
    for entry in own:
        importlib.import_module(entry.module)
    buffer = b""
    while True:
        while b"\n" not in buffer:
            chunk = os.read(0, 65536)
            if not chunk:
                return
            buffer += chunk
        line, buffer = buffer.split(b"\n", 1)
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _command(request)
        os.write(1, f"{pid}\n".encode())
        _, status = os.waitpid(pid, 0)
        os.write(1, f"{os.waitstatus_to_exitcode(status)}\n".encode())


def _command(request: dict[str, Any]) -> NoReturn:
    """In the fork: become the process the command line would have started, and run it.

    Its exit (SystemExit, or an uncaught exception) ends the fork as it ends a command."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    # Where a fresh interpreter has them: the script's folder, then PYTHONPATH.
    extra = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    sys.path[0:1] = [str(BIN), *extra]
    for fd, path, flags in (
        (0, request["stdin"], os.O_RDONLY),
        (1, request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    sys.argv = list(request["argv"])
    from .cli import main

    main(sys.argv[1:])
    sys.exit(0)


if __name__ == "__main__":
    serve()
