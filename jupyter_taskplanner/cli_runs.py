"""`jupyter taskplanner run` and `runs`: run a task here and follow it; list runs, print logs.

``run`` executes the task in this process, with its own run engine on the local database, as
the task's owner.  It always waits until the run ends, and until the runs that follow it (started
by its next-task actions or by triggers on its end) end too: a command that has exited cannot
finish a run, so it leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import signal
import sys
import time
from datetime import UTC, datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from traitlets import Bool, Int, List, Unicode

from .bus import RunFinished
from .cli import (
    CommandFailed,
    TaskPlannerCommand,
    UsageError,
    _columns,
    _common_aliases,
    _common_flags,
    _label,
    find_in_scope,
    id_argument,
)
from .components.base import is_builtin_placeholder
from .errors import Conflict
from .logs import log_text
from .permissions import ALL_OWNERS, Access
from .runs import RunService
from .tasks import TaskService
from .vocabulary import (
    ACTIVE,
    FINISHED,
    MAX_ID,
    RunDetail,
    RunRecord,
    RunStatus,
    StepRecord,
    StepStatus,
    TaskRecord,
)
from .vocabulary import STATUSES as RUN_STATUSES

REFRESH = 0.5
"""Seconds between redraws of the progress display of ``run --wait``."""
LOG_TAIL = 20
"""Lines of the log ``run --wait`` prints when the run did not succeed."""
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
"""Signals that cancel the run, and the exit code each ends the command with."""
_NAME = re.compile(r"[A-Za-z_][\w.\-]*")
"""A placeholder name, as written between braces in task configs."""


def parse_parameters(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` options as placeholder values; a malformed one is a usage error."""
    parameters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(key):
            raise UsageError(
                f"--param {item!r}: expected KEY=VALUE, KEY being a placeholder name "
                "(letters, digits, '_', '.', '-'; not starting with a digit)"
            )
        if is_builtin_placeholder(key):
            raise UsageError(f"--param {item!r}: {key} is a built-in placeholder; use another name")
        parameters[key] = value
    return parameters


class RunCommand(TaskPlannerCommand):
    """Run a task now in this process and report how the run ended."""

    description = (
        "Run a task now, in this process and as the task's owner (disabled tasks too), and "
        "wait until the run ends. Prints the run id and how the run ended; --wait also shows "
        "its status, steps and job progress, and the end of its log when it fails. Exit code 0 "
        "when the run succeeded, 1 when it failed, timed out or was cancelled; Ctrl-C cancels "
        "the run (exit code 130)."
    )
    examples = (
        "jupyter taskplanner run 3\n"
        "jupyter taskplanner run 3 --wait --param region=north --param year=2026\n"
    )
    arguments = "ID"
    aliases = {**_common_aliases, "param": "RunCommand.param"}
    flags = {
        **_common_flags,
        "wait": (
            {"RunCommand": {"wait": True}},
            "Show the run's progress while waiting, and the end of its log if it fails.",
        ),
    }

    param = List(
        Unicode(),
        config=True,
        help="""Placeholder values for this run as KEY=VALUE (repeat --param for more). They
        fill {KEY} in the task's configs, like the parameters of POST /tasks/{id}/run.""",
    )
    wait = Bool(
        False,
        config=True,
        help="""Follow the run: show its status, steps and job progress while waiting (one
        updating line on a terminal, plain lines otherwise) and the end of its log if it fails.""",
    )
    parameters: dict[str, str]

    def start(self) -> None:
        # A malformed parameter is reported before the database is opened.
        self.parameters = parse_parameters(self.param)
        super().start()

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        task = self.find(service, access, args[0])
        display = Display(sys.stdout, follow=self.wait)
        run, signum, log_tail = asyncio.run(self._run(task, display))
        if log_tail:
            print(f"last lines of the log (all of it: jupyter taskplanner runs --log {run['id']}):")
            print(log_tail)
        took = _duration(run["started"], run["finished"])
        if run["status"] == "succeeded" and signum is None:
            print(f"run {run['id']} succeeded" + (f" in {took}" if took else ""))
            return
        message = f"run {run['id']} {_words(run['status'])}"
        if signum is not None:
            if run["status"] == "cancelled":
                raise CommandFailed(f"{message} (interrupted)", EXIT_CODES[signum])
            # The run had ended; the signal stopped the runs that followed it.
            raise CommandFailed(
                f"interrupted: {message}, but the runs it started were stopped", EXIT_CODES[signum]
            )
        reason = _reason(run)
        raise CommandFailed(f"{message}: {reason}" if reason else message)

    async def _run(
        self, task: TaskRecord, display: Display
    ) -> tuple[RunDetail, signal.Signals | None, str]:
        """Run ``task`` to its end, cancelling it on a signal: the run, the signal, a log tail."""
        planner = self.planner
        # Triggers on the end of this process's runs start their tasks here too.
        await planner.start(server=False)
        wake = asyncio.Event()
        received: list[signal.Signals] = []

        def on_signal(signum: signal.Signals) -> None:
            received.append(signum)
            wake.set()

        loop = asyncio.get_running_loop()
        for signum in EXIT_CODES:
            loop.add_signal_handler(signum, on_signal, signum)
        planner.bus.subscribe(RunFinished, lambda _: wake.set())
        owner = Access(task["owner"])
        try:
            submitted = await planner.engine.submit(
                task,
                trigger="cli",
                started_by=self.settings.single_user_name,
                parameters=self.parameters,
                refuse=True,  # a full queue is an error here, as for a caller of the API
            )
            display.started(submitted, task)
            while True:
                wake.clear()
                run = await planner.db.call(planner.runs.detail, owner, submitted["id"])
                display.update(run, busy=planner.engine.busy)
                if received or (run["status"] in FINISHED and not planner.engine.busy):
                    break
                # The display shows the elapsed time, so it redraws on a clock anyway; reading
                # the run's record on each redraw is how it sees steps start and end.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), REFRESH if display.follow else None)
            if received and run["status"] in ACTIVE:
                with contextlib.suppress(Conflict):  # it ended meanwhile: nothing to cancel
                    how = "Ctrl-C" if received[0] == signal.SIGINT else received[0].name
                    by = f"{self.settings.single_user_name} ({how})"
                    await planner.engine.cancel(run["id"], by)
                run = await planner.db.call(planner.runs.detail, owner, run["id"])
                display.update(run, busy=False)
            display.done()
            log_tail = ""
            if display.follow and not received and run["status"] != "succeeded":
                pieces = await planner.db.call(planner.runs.log, owner, run["id"])
                log_tail = _tail("".join(log_text(pieces)), LOG_TAIL)
            return run, (received[0] if received else None), log_tail
        finally:
            # Runs still going or waiting (ones the run started, after a signal) end as
            # interrupted; the job processes are killed.
            await planner.stop(hand_over=False)


class Display:
    """What ``run`` shows while it waits.

    Without ``follow`` only that the run started.  With it, on a terminal one line redrawn in
    place (status, elapsed time, running steps and their progress); otherwise one plain line
    per change (status, each step starting and ending, each new progress report).
    """

    def __init__(self, stream: TextIO, *, follow: bool) -> None:
        self.stream = stream
        self.follow = follow
        self.tty = follow and stream.isatty()
        self.status = ""
        self.steps: dict[int, tuple[str, str]] = {}
        """Per step id, the status and progress text last shown."""
        self.chain_noted = False
        self.clock = time.monotonic()
        self.drawn = False

    def say(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def started(self, run: RunRecord, task: TaskRecord) -> None:
        self.clock = time.monotonic()
        if run["status"] in ACTIVE:
            self.say(f"run {run['id']} of {_label(task)} started")

    def update(self, run: RunDetail, *, busy: bool) -> None:
        """Show what changed in ``run``; ``busy``: runs it started are still going."""
        if not self.follow:
            return
        waiting = run["status"] in FINISHED and busy
        if self.tty:
            self._draw(run, waiting)
            return
        if run["status"] != self.status and run["status"] == RunStatus.RUNNING:
            self.say(f"run {run['id']} running")
        self.status = run["status"]
        for step in run["steps"]:
            for line in self._changes(step):
                self.say(line)
        if waiting and not self.chain_noted:
            self.chain_noted = True
            self.say(
                f"run {run['id']} {_words(run['status'])}; waiting for the runs that follow it "
                "(next tasks, tasks started after it)"
            )

    def _changes(self, step: StepRecord) -> list[str]:
        label, progress = _step_label(step), _progress(step)
        before = self.steps.get(step["id"])
        self.steps[step["id"]] = (step["status"], progress)
        if step["status"] == StepStatus.RUNNING:
            lines = [] if before else [f"{label} started"]
            if progress and (before is None or before[1] != progress):
                lines.append(f"{label}: {progress}")
            return lines
        if before is None or before[0] == StepStatus.RUNNING:
            return [_step_end(step)]
        return []

    def _draw(self, run: RunDetail, waiting: bool) -> None:
        elapsed = _clock(time.monotonic() - self.clock)
        parts = [f"run {run['id']} {_words(run['status'])} {elapsed}"]
        for step in run["steps"]:
            if step["status"] == StepStatus.RUNNING:
                parts.append(" ".join(filter(None, [_step_label(step), _progress(step)])))
        if waiting:
            parts.append("waiting for the runs that follow it")
        width = shutil.get_terminal_size().columns - 1
        self.stream.write("\r\x1b[K" + " | ".join(parts)[:width])
        self.stream.flush()
        self.drawn = True

    def done(self) -> None:
        """Clear the redrawn line so what follows starts on a clean one."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _words(status: str) -> str:
    return status.replace("_", " ")


def _reason(run: RunDetail) -> str:
    """Why a run did not succeed: its own error, or the errors of its failed steps."""
    if run["error"]:
        return str(run["error"])
    return "; ".join(
        f"{_step_label(step)} failed: {step['error']}"
        for step in run["steps"]
        if step["status"] == "failed"
    )


def _step_label(step: StepRecord) -> str:
    """A step as ``job 'name'``, with its parameter set and attempt when they matter."""
    details = []
    if step["set_index"] is not None:
        details.append(f"set {step['set_index'] + 1}")
    if step["attempt"] > 1:
        details.append(f"attempt {step['attempt']}")
    label = f"{step['kind']} {step['name']!r}"
    return f"{label} ({', '.join(details)})" if details else label


def _step_end(step: StepRecord) -> str:
    line = f"{_step_label(step)} {_words(step['status'])}"
    took = _duration(step["started"], step["finished"])
    if took and step["status"] != "skipped":
        line += f" after {took}"
    return f"{line}: {step['error']}" if step["error"] else line


def _progress(step: StepRecord) -> str:
    """A running job's last progress report, such as "cell 3 of 10"."""
    report = step.get("progress") or {}
    if report.get("message"):
        return str(report["message"])
    if report.get("total"):
        return f"{report.get('done', 0)} of {report['total']}"
    return ""


def _duration(started: str | None, finished: str | None) -> str:
    """The time between two stored timestamps (until now when not finished), or ""."""
    if not started:
        return ""
    end = datetime.fromisoformat(finished) if finished else datetime.now(UTC)
    seconds = max((end - datetime.fromisoformat(started)).total_seconds(), 0.0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class RunsCommand(TaskPlannerCommand):
    """List recent runs, or print the log of one run."""

    description = (
        "List recent runs, newest first: of all your tasks, or of the task ID. --log RUN_ID "
        "prints one run's log instead: every step with its status, output and error."
    )
    examples = (
        "jupyter taskplanner runs\n"
        "jupyter taskplanner runs 3 --status failed --limit 5\n"
        "jupyter taskplanner runs --log 17\n"
    )
    arguments = "[ID]"
    aliases = {
        **_common_aliases,
        "limit": "RunsCommand.limit",
        "status": "RunsCommand.status",
        "log": "RunsCommand.log_run",
    }
    flags = {
        **_common_flags,
        "json": (
            {"RunsCommand": {"as_json": True}},
            "Print the runs as a JSON list (with --log: the run and its steps).",
        ),
    }

    limit = Int(
        20, min=1, max=MAX_ID, config=True, help="List at most this many runs (the newest)."
    )
    status = Unicode(
        "", config=True, help=f"Only runs with this status: {', '.join(RUN_STATUSES)}."
    )
    log_run = Unicode("", config=True, help="Print the log of this run instead of a list.")
    as_json = Bool(False, config=True, help="Print JSON instead of a table or a log.")

    def start(self) -> None:
        if self.status and self.status not in RUN_STATUSES:
            raise UsageError(
                f"--status: expected one of {', '.join(RUN_STATUSES)}, got {self.status!r}"
            )
        super().start()

    def positional(self) -> list[str]:
        args = list(self.extra_args)
        if len(args) > 1:
            raise UsageError(f"one ID at most, got {len(args)} ({self.usage_line()})")
        if args and self.log_run:
            raise UsageError(f"give a task ID or --log RUN_ID, not both ({self.usage_line()})")
        return args

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        runs = self.planner.runs
        if self.log_run:
            self._print_log(runs, access, id_argument(self.log_run, "run"))
            return
        task_id = self.find(service, access, args[0])["id"] if args else None
        found, total = runs.list(
            access,
            owner=ALL_OWNERS if self.all_owners else access.user,
            task_id=task_id,
            status=self.status or None,
            limit=self.limit,
        )
        if self.as_json:
            print(json.dumps(found, indent=2))
        elif not found:
            print("no runs")
        else:
            timezone = ZoneInfo(self.settings.default_timezone)
            print(_runs_table(found, timezone, with_owner=self.all_owners))
        if len(found) < total:
            print(f"({len(found)} of {total} runs; --limit shows more)", file=sys.stderr)

    def _print_log(self, runs: RunService, access: Access, run_id: int) -> None:
        run = find_in_scope(runs.detail, access, "run", run_id, "read it")
        if self.as_json:
            print(json.dumps(run, indent=2))
            return
        timezone = ZoneInfo(self.settings.default_timezone)
        took = _duration(run["started"], run["finished"])
        print(
            f"run {run['id']} of task {run['task_id']} {run['task_name']!r}: "
            f"{_words(run['status'])}, started {_local(run['started'], timezone)} "
            f"({_trigger(run)})" + (f", took {took}" if took and run["finished"] else "")
        )
        if run["error"]:
            print(f"error: {run['error']}")
        print("".join(log_text(runs.log(access, run_id))))


def _local(stamp: str | None, timezone: ZoneInfo) -> str:
    """A stored timestamp as local wall time, or "-"."""
    if not stamp:
        return "-"
    return datetime.fromisoformat(stamp).astimezone(timezone).strftime("%Y-%m-%d %H:%M:%S")


def _trigger(run: RunRecord) -> str:
    """What started a run, and who when a person did (``cli by alice``)."""
    if run["started_by"] in (None, "", run["trigger"], "scheduler"):
        return str(run["trigger"])
    return f"{run['trigger']} by {run['started_by']}"


def _runs_table(runs: list[RunRecord], timezone: ZoneInfo, *, with_owner: bool) -> str:
    """Runs as aligned columns: run id, task, status, trigger, start, duration (and owner)."""
    header = ["RUN", "TASK", "STATUS", "TRIGGER", "STARTED", "DURATION"]
    rows = [header + (["OWNER"] if with_owner else [])]
    for run in runs:
        # A name may hold tabs or newlines; they would break the columns.
        task = f"{run['task_id']} {' '.join(run['task_name'].split())}"
        row = [
            str(run["id"]),
            task,
            run["status"],
            _trigger(run),
            _local(run["started"], timezone),
            _duration(run["started"], run["finished"]) or "-",
        ]
        rows.append(row + ([run["owner"]] if with_owner else []))
    return _columns(rows)
