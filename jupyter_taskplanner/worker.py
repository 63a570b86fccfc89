"""A worker process: run one job or series of a run and write its outcome as JSON.

Started by an executor as ``python -m jupyter_taskplanner.worker REQUEST.json``.  Everything the
component prints goes to this process's stdout/stderr, which the executor captures as the log.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import itertools
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
import types
from datetime import datetime
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any, NoReturn, cast


def _defer_iri_grammar() -> None:
    """Build rfc3987-syntax's IRI grammar only when something checks an IRI.

    jsonschema imports it, if installed, for its ``iri`` format checker, and building the
    grammar takes seconds; a worker imports jsonschema (notebooks, the component base) but
    never checks that format.  A stand-in takes the name while jsonschema is imported and
    loads the real module on the first check; afterwards ``import rfc3987_syntax`` gives the
    real module again.
    """
    name = "rfc3987_syntax"
    if name in sys.modules or "jsonschema" in sys.modules or importlib.util.find_spec(name) is None:
        return

    def is_valid_syntax(rule: str, value: str) -> bool:
        checked: bool = importlib.import_module(name).is_valid_syntax(rule, value)
        return checked

    stand_in = types.ModuleType(name)
    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[name] = stand_in
    try:
        importlib.import_module("jsonschema")
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


_defer_iri_grammar()

from .components.base import (  # noqa: E402 -- after the deferral above
    DEFAULT_MAX_FILLED,
    DEFAULT_MAX_SETS,
    ENTRY_POINT_GROUP,
    Component,
    Job,
    RunContext,
    Series,
)

_entry_points: dict[str, EntryPoint] = {}
"""The components' entry points as a warm worker read them before it forked."""


def warm_up() -> None:
    """Read the installed components' entry points once, in a warm worker before it forks
    (reading them costs a file per installed distribution)."""
    _entry_points.update((point.name, point) for point in entry_points(group=ENTRY_POINT_GROUP))


def entry_point(name: str) -> EntryPoint | None:
    """The entry point of the component ``name`` (``<kind>.<type>``) as ``warm_up()`` read it."""
    return _entry_points.get(name)


def load_component(kind: str, type_name: str) -> type[Component]:
    """Import just the one component class a request needs."""
    name = f"{kind}.{type_name}"
    known = _entry_points.get(name)
    # A component installed after the warm worker started is looked up afresh.
    for entry_point in [known] if known else entry_points(group=ENTRY_POINT_GROUP, name=name):
        component: type[Component] = entry_point.load()
        return component
    raise LookupError(f"no {kind} type {type_name!r} is installed where this job runs")


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(data, default=str))
    os.replace(partial, path)


class Cancelled(BaseException):
    """Raised in a worker process when the executor stops it (cancel or timeout)."""


def run_context(request: dict[str, Any], cancelled: threading.Event | None = None) -> RunContext:
    """The run context of a request document; progress reports go to its ``progress.json``.

    ``cancelled`` becomes the context's cancellation event.
    """
    folder = Path(request["folder"])
    ctx_data = request["context"]
    return RunContext(
        owner=ctx_data["owner"],
        owner_root=Path(ctx_data["owner_root"]),
        task_id=ctx_data["task_id"],
        task_name=ctx_data["task_name"],
        run_id=ctx_data["run_id"],
        started=datetime.fromisoformat(ctx_data["started"]),
        output_dir=Path(ctx_data["output_dir"]),
        placeholders=ctx_data["placeholders"],
        private_folders=tuple(Path(path) for path in ctx_data.get("private_folders", ())),
        state=ctx_data.get("state") or {},
        max_filled=ctx_data.get("max_filled", DEFAULT_MAX_FILLED),
        max_sets=ctx_data.get("max_sets", DEFAULT_MAX_SETS),
        log=logging.getLogger("jupyter_taskplanner.worker"),
        cancelled=cancelled or threading.Event(),
        progress=lambda done, total, message: _write_json(
            folder / "progress.json", {"done": done, "total": total, "message": message}
        ),
    )


def execute(request: dict[str, Any], cancelled: threading.Event | None = None) -> dict[str, Any]:
    """Run the requested component; return the outcome document (never raises).

    ``cancelled`` becomes the run context's cancellation event.
    """
    ctx = run_context(request, cancelled)
    entry = request["entry"]
    try:
        component = load_component(request["kind"], entry["type"]).from_entry(entry)
        # An entry point named "<kind>.<type>" holds a class of that kind (the component
        # contract, as in the registry): a series entry point a Series, a job's a Job.
        if request["kind"] == "series":
            series = cast(Series, component)
            limit = request.get("limit")
            given = series.preview(ctx, limit) if limit else series.sets(ctx)
            # One past the limit tells a series that is too long (or never ends) from one
            # that fits, without holding more of it.
            sets = list(itertools.islice(given, limit or ctx.max_sets + 1))
            if not limit and len(sets) > ctx.max_sets:
                return {
                    "error": f"the series gave more than {ctx.max_sets} parameter sets, the "
                    "most a run takes (TaskPlannerApp.max_series_sets); narrow it, or split "
                    "the task"
                }
            for index, item in enumerate(sets):
                if not isinstance(item, dict):
                    raise TypeError(f"set {index} is a {type(item).__name__}, not a dict")
            return {"sets": json.loads(json.dumps(sets, default=str)), "state": ctx.state}
        results = cast(Job, component).run(ctx)
        for result in results:
            result.job = result.job or component.name
        return {"results": [result.to_json() for result in results], "state": ctx.state}
    except BaseException as exc:
        if isinstance(exc, Cancelled) or ctx.cancelled.is_set():
            # Stopped on purpose (or failing as it stops), not a crash: no traceback; the
            # run's record says who or what stopped it.
            return {"error": "cancelled"}
        traceback.print_exc()
        return {"error": f"{type(exc).__name__}: {exc}"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    request = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    cancelled = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        # SIGTERM comes first, SIGKILL after the executor's grace period: set the context's
        # event for threads of the job and unwind the main thread so `finally` blocks run.
        cancelled.set()
        raise Cancelled("the run was cancelled or timed out")

    signal.signal(signal.SIGTERM, stop)
    if "stop_when_orphaned" in request:
        threading.Thread(
            target=_stop_when_orphaned,
            args=(
                os.getppid(),
                request.get("executor_pid"),
                float(request["stop_when_orphaned"]),
            ),
            name="orphan-watch",
            daemon=True,
        ).start()
    outcome = execute(request, cancelled)
    sys.stdout.flush()
    sys.stderr.flush()
    _write_json(Path(request["folder"]) / "outcome.json", outcome)
    return 1 if "error" in outcome else 0


def finish(code: int) -> NoReturn:
    """End this worker without the interpreter's teardown (seconds after a notebook job).

    The outcome is written; what is left to do is flushing the log and the ``atexit``
    handlers the job registered.  Objects are not finalized: a file the job left open
    and unflushed loses what its buffer holds.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def _stop_when_orphaned(parent: int, executor: int | None, grace: float) -> None:
    """Stop this worker's process group as a cancel would, once ``parent`` is gone.

    For a job whose executor may die without killing it (a Dask worker process killed by
    its nanny or the OOM killer): nothing waits for its outcome any more.  A changed parent
    id is the only sign a process gets of that without help from its parent, hence the
    check each half second.  An executor that died while this worker was still starting
    left it a parent id that is already the new one, so the process the request names as
    the executor (``executor_pid``) is watched too.
    """
    while os.getppid() == parent and (executor is None or _exists(executor)):
        time.sleep(0.5)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        os.killpg(os.getpgid(0), sig)
        time.sleep(grace)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process (a worker running as the owner)
    return True


if __name__ == "__main__":
    finish(main())
