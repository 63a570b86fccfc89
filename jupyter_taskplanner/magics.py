"""IPython magics: ``%taskplanner`` to list, run and switch tasks, ``%%schedule`` to schedule a
cell.  Loaded by ``%load_ext jupyter_taskplanner``."""

from __future__ import annotations

import argparse
import shlex

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .client import Interval, PlannerError, TaskPlanner
from .client.api import SCHEDULED_FOLDER

USAGE = "usage: %taskplanner list | run NAME | runs NAME | enable NAME | disable NAME | delete NAME"
SCHEDULE_USAGE = (
    "usage: %%schedule --name NAME [--cron LINE | --every MINUTES] [--folder F] [--run-now]"
)


def _schedule_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%%schedule", add_help=False, exit_on_error=False)
    parser.add_argument("--name", required=True, help="the task (one of that name is updated)")
    parser.add_argument("--cron", help='when it runs, as a cron line such as "0 7 * * 1-5"')
    parser.add_argument("--every", type=float, help="or every so many minutes")
    parser.add_argument(
        "--folder", default=SCHEDULED_FOLDER, help="the folder of the root the cell is saved in"
    )
    parser.add_argument("--run-now", action="store_true", help="also run the cell here now")
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%taskplanner", add_help=False, exit_on_error=False)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="your tasks", exit_on_error=False)
    for name, text in (
        ("run", "run a task now and wait for its end"),
        ("runs", "a task's recent runs"),
        ("enable", "let a task's triggers start it"),
        ("disable", "stop a task's triggers"),
        ("delete", "delete a task, and the notebook %%schedule saved for it"),
    ):
        command = commands.add_parser(name, help=text, exit_on_error=False)
        command.add_argument("task", help="the task's name or id")
    return parser


@magics_class
class TaskPlannerMagics(Magics):
    """``%taskplanner list|run|runs|enable|disable|delete`` and ``%%schedule``."""

    _client: TaskPlanner | None = None

    @property
    def client(self) -> TaskPlanner:
        """The planner of this kernel's server, found when first needed."""
        if self._client is None:
            self._client = TaskPlanner()
        return self._client

    def _task(self, text: str) -> int | str:
        return int(text) if text.isdigit() else text

    @line_magic
    def taskplanner(self, line: str) -> None:
        """%taskplanner list | run NAME | runs NAME | enable NAME | disable NAME | delete NAME"""
        try:
            args = _parser().parse_args(shlex.split(line))
        except (argparse.ArgumentError, SystemExit) as exc:
            print(f"{USAGE}\n{exc}")
            return
        try:
            self._command(args)
        except PlannerError as exc:
            print(f"error: {exc.message}")
        except LookupError as exc:
            print(f"error: {exc}")

    def _command(self, args: argparse.Namespace) -> None:
        client = self.client
        if args.command == "list":
            for task in client.list_tasks():
                state = "on " if task["enabled"] else "off"
                print(f"{task['id']:>5}  {state}  {task['name']}")
            return
        ref = self._task(args.task)
        if args.command == "run":
            run = client.run(ref)
            error = f": {run['error']}" if run["error"] else ""
            print(f"run {run['id']} {run['status']}{error}")
        elif args.command == "delete":
            deleted = client.delete_scheduled(ref)
            print(f"task {deleted['id']} {deleted['name']!r} deleted")
        elif args.command == "runs":
            for item in client.runs_page(ref, limit=10).items:
                started = (item["started"] or item["created"])[:19]
                print(f"{item['id']:>5}  {item['status']:<11}  {started}  {item['trigger']}")
        else:
            switch = client.enable_task if args.command == "enable" else client.disable_task
            changed = switch(ref)
            print(f"task {changed['id']} {changed['name']!r} {args.command}d")

    @cell_magic
    def schedule(self, line: str, cell: str) -> None:
        """Save this cell's code as a task run by this notebook's kernel on a schedule."""
        try:
            args = _schedule_parser().parse_args(shlex.split(line))
        except (argparse.ArgumentError, SystemExit) as exc:
            print(f"{SCHEDULE_USAGE}\n{exc}")
            return
        triggers = [Interval(args.every, unit="minutes")] if args.every else []
        try:
            task = self.client.schedule_code(
                cell, name=args.name, cron=args.cron, triggers=triggers, folder=args.folder
            )
            fires = self.client.next_fires(task, count=3)
        except PlannerError as exc:
            print(f"error: {exc.message}")
            return
        except (LookupError, OSError) as exc:
            print(f"error: {exc}")
            return
        verb = "created" if task["revision"] == 1 else "updated"
        print(f"task {task['id']} {task['name']!r} {verb}; next runs:")
        for fire in fires["next"]:
            print(f"  {fire['server_time']} ({fires['server_timezone']})")
        if not fires["next"]:
            print("  none (no timed trigger)")
        if args.run_now and self.shell is not None:
            self.shell.run_cell(cell)
