"""The ``notebook`` job: execute a notebook with parameters; keep it as ipynb, HTML and PDF.

Parameters are injected the papermill way (a cell tagged ``injected-parameters`` after the
cell tagged ``parameters``).  nbclient runs the cells one by one, so progress is reported
per cell and a condition can be evaluated in the kernel after the last one.  The kernel
lives in a session of its own (jupyter_client's choice, so it can be interrupted alone);
when the worker is killed on cancel or timeout, ipykernel's parent poller ends the kernel
within a second.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import functools
import hashlib
import importlib.util
import json
import keyword
import os
import queue
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import nbformat
import zmq
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter, PDFExporter, WebPDFExporter
from nbconvert.filters import strip_ansi
from papermill.parameterize import parameterize_notebook
from traitlets.config import Config

from .. import kernelpool
from ..components.base import Job, Result, RunContext
from ..errors import InvalidConfig
from ..vocabulary import MAX_SECONDS
from . import JobFailed, setting

FORMATS = ("ipynb", "html", "pdf")
TRANSPORT_ENCRYPTION = "auto" if zmq.has("curve") else "disabled"
"""Kernels' TCP channels are encrypted when both ends can."""
SCRAP_MIMETYPES = (
    "application/scrapbook.scrap.json+json",
    "application/scrapbook.scrap.text+json",
)


class NotebookJob(Job):
    """Executes a notebook with parameters; the executed notebook is the result."""

    type_name = "notebook"
    title = "Notebook"
    description = (
        "Execute a notebook with parameters (papermill's parameters cell convention) and keep "
        "the executed notebook as .ipynb, HTML and PDF. A failing cell fails the job; the "
        "partial notebook is kept."
    )
    flavors = frozenset({"file"})
    runs_code = True
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "x-path": "file",
                "type": "string",
                "minLength": 1,
                "title": "Notebook",
                "description": "A .ipynb file under your root; it runs in its own folder.",
                "examples": ["reports/monthly.ipynb"],
            },
            "parameters": {
                "type": "object",
                "title": "Parameters",
                "description": "Injected after the cell tagged 'parameters'; {placeholders} "
                "are filled. A series set's values arrive as parameters too (these win).",
                "default": {},
            },
            "kernel": {
                "type": "string",
                "title": "Kernel",
                "description": "Kernel name, e.g. python3 (default: the notebook's kernel).",
            },
            "cell_timeout": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SECONDS,
                "title": "Cell timeout (seconds)",
                "description": "A cell running longer fails the job (default: no limit).",
            },
            "timeout": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SECONDS,
                "title": "Timeout (seconds)",
                "description": "The whole notebook running longer fails the job.",
            },
            "input": {
                "type": "string",
                "enum": ["live", "snapshot"],
                "title": "Input",
                "description": "live: the notebook as it is when the task runs; snapshot: "
                "the copy taken when the task was saved.",
                "default": "live",
            },
            "snapshot": {
                "type": "string",
                "readOnly": True,
                "title": "Snapshot",
                "description": "Set by the server when a task with input 'snapshot' is saved.",
            },
            "output_name": {
                "type": "string",
                "minLength": 1,
                "title": "Result file name",
                "description": "Without extension; {notebook_stem} and {placeholders} filled.",
                "default": "{notebook_stem}",
            },
            "formats": {
                "type": "array",
                "items": {"type": "string", "enum": list(FORMATS)},
                "uniqueItems": True,
                "minItems": 1,
                "title": "Formats",
                "description": "PDF needs xelatex and pandoc, or playwright with Chromium; "
                "without them it is skipped (and logged).",
                "default": ["ipynb", "html"],
            },
            "condition": {
                "type": "object",
                "title": "Condition",
                "description": "Marks the results valid or not: a Python expression evaluated "
                "in the kernel after the last cell, or the name of a scrapbook-glued value.",
                "additionalProperties": False,
                "properties": {
                    "expression": {
                        "type": "string",
                        "title": "Expression",
                        "examples": ["len(df) > 0"],
                    },
                    "glued": {"type": "string", "title": "Glued value", "examples": ["rows"]},
                },
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if not config["path"].endswith(".ipynb"):
            raise InvalidConfig(f"{config['path']!r} is not a .ipynb file", field="path")
        name = config.get("output_name", "")
        if "/" in name or "\\" in name or name in (".", ".."):
            raise InvalidConfig(
                f"{name!r} must be a plain file name, not a path", field="output_name"
            )
        condition = config.get("condition")
        if condition is None:
            return
        if len(condition) != 1:
            raise InvalidConfig("give either an expression or a glued value", field="condition")
        if "expression" in condition:
            try:
                compile(condition["expression"], "<condition>", "eval")
            except SyntaxError as exc:
                raise InvalidConfig(
                    f"{condition['expression']!r} is not a Python expression: {exc.msg}",
                    field="condition.expression",
                ) from None

    @classmethod
    def freeze(cls, config: dict[str, Any], owner_root: Path, snapshot_dir: Path) -> dict[str, Any]:
        """The config to store when a task is saved: call it on every save of a notebook job.

        With ``input: snapshot`` the notebook is copied into ``snapshot_dir`` under a
        content-hash name, held in the returned config's ``snapshot`` field; otherwise that
        field is dropped, so a client can never choose the file a job runs.
        """
        frozen = {key: value for key, value in config.items() if key != "snapshot"}
        if frozen.get("input", cls.config_schema["properties"]["input"]["default"]) != "snapshot":
            return frozen
        # The server checked the path (``check_paths``) before freezing.
        source = (owner_root / config["path"]).resolve()
        if not source.is_file():
            raise InvalidConfig(
                f"cannot take a snapshot of {config['path']!r}: no such notebook in "
                f"{owner_root.resolve()}",
                field="path",
            )
        data = source.read_bytes()
        target = snapshot_dir / f"{source.stem}.{_digest(data)}.ipynb"
        if not target.exists():
            snapshot_dir.mkdir(parents=True, exist_ok=True)
            # Write beside and rename, so a crash never leaves a half snapshot under the name.
            partial = target.with_suffix(".partial")
            partial.write_bytes(data)
            partial.replace(target)
        return {**frozen, "snapshot": str(target)}

    def run(self, ctx: RunContext) -> list[Result]:
        notebook = ctx.resolve_path(self.config["path"])
        nb = nbformat.v4.upgrade(nbformat.reads(self._read(notebook), as_version=4))
        kernel = (
            self.config.get("kernel") or nb.metadata.get("kernelspec", {}).get("name") or "python3"
        )
        language = _kernel_language(kernel)
        parameters = self._parameters(ctx)
        if parameters:
            # What papermill's own loader adds before it parameterizes.
            nb.metadata["papermill"] = nbformat.NotebookNode()
            for cell in nb.cells:
                cell.metadata.setdefault("tags", [])
            plain = {key: _plain(value) for key, value in parameters.items()}
            nb = parameterize_notebook(nb, plain, kernel_name=kernel, language=language)
        name = _file_name(
            ctx.fill(setting(self, "output_name"), {"notebook_stem": notebook.stem}),
            notebook.stem,
        )
        condition = setting(self, "condition") or {}
        formats = setting(self, "formats")
        glued: list[Any] = []

        def keep() -> list[str]:
            # Runs while the kernel shuts down: the glued condition, then the files.
            if "glued" in condition:
                glued.append(glued_value(nb, condition["glued"]))
            return [fmt for fmt in formats if _write(nb, fmt, ctx.output_dir / f"{name}.{fmt}")]

        try:
            outcome, written = asyncio.run(
                _execute(
                    nb,
                    kernel,
                    notebook.parent,
                    ctx,
                    self.config.get("cell_timeout"),
                    self.config.get("timeout"),
                    condition.get("expression"),
                    keep,
                )
            )
            if glued:
                outcome = (bool(glued[0]), glued[0])
        except JobFailed:
            if ctx.cancelled.is_set():
                raise  # stopped: the step is cancelled, nothing of it is kept
            nbformat.write(nb, ctx.output_dir / f"{name}.ipynb")
            print(f"The notebook, as far as it ran, is kept as {name}.ipynb", file=sys.stderr)
            raise
        metadata: dict[str, Any] = {
            "notebook": notebook.relative_to(ctx.owner_root.resolve()).as_posix(),
            "cells": sum(cell.cell_type == "code" for cell in nb.cells),
        }
        if outcome is not None:
            metadata["condition"] = outcome[1]
        return [
            Result(
                "file",
                value=f"{name}.{fmt}",
                valid=outcome is None or outcome[0],
                job=self.name,
                metadata={**metadata, "format": fmt},
            )
            for fmt in written
        ]

    def inputs(self, ctx: RunContext) -> list[Path]:
        """The notebook, or its snapshot and the folder it runs in."""
        if setting(self, "input") == "snapshot" and self.config.get("snapshot"):
            return [Path(self.config["snapshot"]), ctx.resolve_path(self.config["path"]).parent]
        return super().inputs(ctx)

    def _read(self, notebook: Path) -> str:
        """The notebook's text: the live file, or the snapshot taken when the task was saved."""
        if setting(self, "input") == "live":
            if not notebook.is_file():
                raise JobFailed(f"notebook {notebook} (path) does not exist")
            return notebook.read_text(encoding="utf-8")
        if not self.config.get("snapshot"):
            raise JobFailed(
                "input is 'snapshot' but the task holds no snapshot of the notebook; "
                "save the task again to take one"
            )
        snapshot = Path(self.config["snapshot"])
        try:
            data = snapshot.read_bytes()
        except OSError as exc:
            raise JobFailed(
                f"the snapshot {snapshot} cannot be read ({exc.strerror}); "
                "save the task again to take a new one"
            ) from None
        # The name carries the content hash: a file that is not that snapshot is refused.
        if not snapshot.name.endswith(f".{_digest(data)}.ipynb"):
            raise JobFailed(
                f"{snapshot} is not an intact snapshot; save the task again to take a new one"
            )
        return data.decode("utf-8")

    def _parameters(self, ctx: RunContext) -> dict[str, Any]:
        """Placeholders that can be Python names, overridden by the configured parameters."""
        found = {
            key: value
            for key, value in ctx.placeholders.items()
            if key.isidentifier() and not keyword.iskeyword(key)
        }
        return {**found, **ctx.fill(setting(self, "parameters"))}


async def _execute(
    nb: nbformat.NotebookNode,
    kernel: str,
    cwd: Path,
    ctx: RunContext,
    cell_seconds: int | None,
    total_seconds: int | None,
    expression: str | None,
    keep: Callable[[], list[str]],
) -> tuple[tuple[bool, Any] | None, list[str]]:
    """Run every code cell of ``nb`` in place, then ``keep`` it (in a thread, while the
    kernel shuts down); return the expression's outcome, if any, and what ``keep`` returned.

    The kernel is one of the warm kernel pool when the worker's pool has one of that name,
    else a fresh one.  Raises ``JobFailed`` when a cell fails, times out or kills the kernel.
    """
    deadline = None if total_seconds is None else time.monotonic() + total_seconds

    def limit(cell: nbformat.NotebookNode) -> float | None:
        # Each cell gets the smaller of cell_timeout and what is left of the total timeout.
        limits = [float(cell_seconds)] if cell_seconds else []
        if deadline is not None:
            limits.append(max(deadline - time.monotonic(), 0.01))
        return min(limits, default=None)

    pooled = kernelpool.claim(kernel)
    client = NotebookClient(
        nb,
        km=None if pooled is None else _PooledKernelManager(pooled, kernel_name=kernel),
        kernel_name=kernel,
        timeout_func=limit,
        resources={"metadata": {"path": str(cwd)}},
        # Encrypt the kernel's TCP channels when both ends can (and spare every job's log
        # ipykernel's warning about plain-text TCP).
        config=Config(KernelManager={"transport_encryption": TRANSPORT_ENCRYPTION}),
    )
    code = [index for index, cell in enumerate(nb.cells) if cell.cell_type == "code"]
    total = len(code)
    ctx.report_progress(0, total, "starting kernel")
    async with client.async_setup_kernel():
        assert client.kc is not None
        _stop_when_told(client, ctx)
        if pooled is not None:
            # A pooled kernel started in the owner's root; the notebook runs in its folder.
            await client.async_wait_for_reply(
                client.kc.execute(
                    f"__import__('os').chdir({str(cwd)!r})", silent=True, store_history=False
                )
            )
        info = await client.async_wait_for_reply(client.kc.kernel_info())
        if info is not None:
            nb.metadata["language_info"] = info["content"].get("language_info", {})
        for done, index in enumerate(code, 1):
            cell = nb.cells[index]
            where = f"cell {done} of {total}"
            try:
                await client.async_execute_cell(cell, index, execution_count=done)
            except CellTimeoutError:
                client.shutdown_kernel = "immediate"
                overall = deadline is not None and time.monotonic() >= deadline
                raise JobFailed(
                    f"the notebook did not finish within its timeout of {total_seconds} s ({where})"
                    if overall
                    else f"{where} did not finish within cell_timeout ({cell_seconds} s)"
                ) from None
            except CellExecutionError as exc:
                raise JobFailed(f"{where} failed: {exc.ename}: {exc.evalue}") from None
            except DeadKernelError:
                raise JobFailed(f"the kernel died during {where}") from None
            finally:
                _echo(cell)
            ctx.report_progress(done, total, where)
        outcome = await _evaluate(client, expression) if expression else None
        keeping = asyncio.ensure_future(asyncio.to_thread(keep))
    return outcome, await keeping


def _stop_when_told(client: NotebookClient, ctx: RunContext) -> None:
    """On SIGTERM (the worker told to stop: a cancel, the run's timeout) kill the kernel at
    once and cancel the job, which then ends without a traceback.

    This replaces nbclient's own handler (removed with its kernel setup), which asks the
    kernel to shut down: a kernel busy in a cell is interrupted then, and the job fails
    with its tracebacks in the log, as if it had crashed.
    """
    job = asyncio.current_task()
    assert job is not None

    def stop() -> None:
        ctx.cancelled.set()
        client.shutdown_kernel = "immediate"
        km = client.km
        pid = km.pooled_pid if isinstance(km, _PooledKernelManager) else None
        if pid is None and km is not None and km.provisioner is not None:
            pid = getattr(km.provisioner, "pgid", None)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        job.cancel()

    # Signals reach the main thread only: a job run in another thread is not stopped so.
    with contextlib.suppress(RuntimeError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop)


class _PooledKernelManager(AsyncKernelManager):
    """A kernel of the warm kernel pool: the fork server started it and kills it when this
    worker ends; this job only talks to it (and interrupts or kills it)."""

    def __init__(self, pooled: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(
            connection_file=pooled["connection_file"], client_factory=_PooledKernelClient, **kwargs
        )
        self.load_connection_file()
        self.pooled_pid = int(pooled["pid"])

    @property
    def has_kernel(self) -> bool:
        return True

    async def _async_is_alive(self) -> bool:
        return kernelpool.alive(self.pooled_pid)

    async def _async_interrupt_kernel(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pooled_pid, signal.SIGINT)

    async def _async_shutdown_kernel(self, now: bool = False, restart: bool = False) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pooled_pid, signal.SIGKILL)

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        """The fork server removes the connection file."""

    is_alive = _async_is_alive
    interrupt_kernel = _async_interrupt_kernel
    shutdown_kernel = _async_shutdown_kernel
    cleanup_resources = _async_cleanup_resources


class _PooledKernelClient(AsyncKernelClient):
    """The client of a pooled kernel, which is up and idle: ready once its IOPub carried the
    idle status of a kernel_info request (the standard client then waits for 0.2 s more of
    IOPub silence, half of such a job's time)."""

    async def _async_wait_for_ready(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (the base's signature)
        limit = 60.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not await self._async_is_alive():
                raise RuntimeError("the pooled kernel died before replying to kernel_info")
            msg_id = self.kernel_info()
            with contextlib.suppress(queue.Empty):
                reply = await self.shell_channel.get_msg(timeout=1)
                while reply["parent_header"].get("msg_id") != msg_id:
                    reply = await self.shell_channel.get_msg(timeout=1)
                # IOPub may not have joined in time for this request's status: ask again.
                while not _idle_after(await self.iopub_channel.get_msg(timeout=0.2), msg_id):
                    pass
                self._handle_kernel_info_reply(reply)
                return
        raise RuntimeError(f"the pooled kernel did not reply to kernel_info within {limit} s")

    wait_for_ready = _async_wait_for_ready


def _idle_after(message: dict[str, Any], msg_id: str) -> bool:
    return bool(
        message["msg_type"] == "status"
        and message["parent_header"].get("msg_id") == msg_id
        and message["content"].get("execution_state") == "idle"
    )


async def _evaluate(client: NotebookClient, expression: str) -> tuple[bool, Any]:
    """Evaluate ``expression`` in the kernel: its truth and its value as JSON (or its repr)."""
    assert client.kc is not None
    probe = (
        "__import__('json').dumps((lambda value: [bool(value), value])"
        f"(({expression})), default=repr)"
    )
    msg_id = client.kc.execute(
        "", silent=True, store_history=False, user_expressions={"condition": probe}
    )
    reply = await client.async_wait_for_reply(msg_id)
    assert reply is not None
    outcome = reply["content"]["user_expressions"]["condition"]
    if outcome["status"] != "ok":
        raise JobFailed(
            f"condition expression {expression!r} failed: {outcome['ename']}: {outcome['evalue']}"
        )
    valid, value = json.loads(ast.literal_eval(outcome["data"]["text/plain"]))
    return valid, value


def glued_value(nb: nbformat.NotebookNode, name: str) -> Any:
    """The last value glued under ``name`` (scrapbook's output format; no scrapbook needed)."""
    found, value = False, None
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for mimetype in SCRAP_MIMETYPES:
                scrap = output.get("data", {}).get(mimetype)
                if isinstance(scrap, dict) and scrap.get("name") == name:
                    found, value = True, scrap.get("data")
    if not found:
        raise JobFailed(
            f"the notebook glued no value named {name!r} (condition.glued); "
            f"glue one with scrapbook.glue({name!r}, value)"
        )
    return value


def _echo(cell: nbformat.NotebookNode) -> None:
    """Copy what a cell printed, and its traceback, into the job's log."""
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            (sys.stderr if output.name == "stderr" else sys.stdout).write(output.text)
        elif output.output_type == "error":
            sys.stderr.write(strip_ansi("\n".join(output.traceback)) + "\n")
    sys.stdout.flush()
    sys.stderr.flush()


def _write(nb: nbformat.NotebookNode, fmt: str, path: Path) -> bool:
    """Write ``nb`` as ``fmt``; False when that format cannot be made here."""
    if fmt == "ipynb":
        nbformat.write(nb, path)
    elif fmt == "html":
        html = _html_exporter().from_notebook_node(_without_scraps(nb))[0]
        path.write_text(html, encoding="utf-8")
    else:
        data = _pdf(_without_scraps(nb))
        if data is None:
            return False
        path.write_bytes(data)
    return True


def _without_scraps(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` without the outputs that hold only glued scraps: they have no visible form,
    and nbconvert would warn for each (a warning filter is no choice in the thread this
    runs in: filters are global).  Other cells are shared, not copied."""

    def scrap(output: nbformat.NotebookNode) -> bool:
        data = output.get("data") or {}
        return bool(data) and all(key in SCRAP_MIMETYPES for key in data)

    cells = [
        nbformat.NotebookNode(
            {**cell, "outputs": [output for output in cell.outputs if not scrap(output)]}
        )
        if any(scrap(output) for output in cell.get("outputs", []))
        else cell
        for cell in nb.cells
    ]
    return nbformat.NotebookNode({**nb, "cells": cells})


@functools.cache
def _html_exporter() -> HTMLExporter:
    """One HTML exporter per process (it loads and compiles its templates on first use)."""
    return HTMLExporter()


def warm_up() -> None:
    """Load what a notebook job's HTML export needs, in a warm worker before it forks."""
    _html_exporter().from_notebook_node(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")])
    )


def _pdf(nb: nbformat.NotebookNode) -> bytes | None:
    """The notebook as PDF, or None (after logging why) when no converter is installed."""
    if shutil.which("xelatex") and shutil.which("pandoc"):
        data: bytes = PDFExporter().from_notebook_node(nb)[0]
        return data
    if importlib.util.find_spec("playwright") is None:
        reason = "neither xelatex with pandoc nor playwright (nbconvert[webpdf]) is installed"
    else:
        try:
            # Chromium refuses to run as root inside its sandbox; the notebook is the owner's
            # own code in any case.
            exporter = WebPDFExporter(disable_sandbox=os.geteuid() == 0)
            pdf: bytes = exporter.from_notebook_node(nb)[0]
            return pdf
        except RuntimeError as exc:  # playwright found no Chromium to drive
            reason = str(exc)
    print(f"PDF skipped: {reason}")
    return None


def _kernel_language(kernel: str) -> str:
    """The language of an installed kernel; a clear error when it is not installed."""
    specs = KernelSpecManager()
    try:
        return specs.get_kernel_spec(kernel).language
    except NoSuchKernel:
        available = ", ".join(sorted(specs.find_kernel_specs())) or "none"
        raise JobFailed(
            f"kernel {kernel!r} (kernel) is not installed here; available: {available}"
        ) from None


def _plain(value: Any) -> Any:
    """A value papermill can write as a literal; others (dates from a series...) as text."""
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)


def _file_name(text: str, fallback: str) -> str:
    """``text`` made safe as a file name (a placeholder value may hold a slash)."""
    name = re.sub(r"[/\\\x00]", "_", text).strip()
    return fallback if name in ("", ".", "..") else name


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
