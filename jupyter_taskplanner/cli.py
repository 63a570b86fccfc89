"""The command line: `jupyter taskplanner ...` working directly on the local task database.

The CLI reads the same config files as the server (``jupyter_server_config`` and the
extension's own file), so ``c.TaskPlannerApp.db_path`` points both at one database.  Whoever
runs it has file access to that database, so it may act on any owner's tasks; by default it
acts on the tasks of ``TaskPlannerApp.single_user_name`` (the OS or JupyterHub user).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import sys
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar, cast

from jupyter_core.application import JupyterApp, base_aliases, base_flags
from traitlets import Bool, TraitError, Unicode, default
from traitlets.config import Application, Config, Configurable
from traitlets.config.loader import KVArgParseConfigLoader

from . import __version__, jsondoc
from .app import TaskPlannerApp
from .errors import InvalidConfig, TaskNotFound, TaskPlannerError, excerpt
from .permissions import ALL_OWNERS, Access
from .planner import Planner, build_planner
from .tasks import TaskService, is_id
from .vocabulary import TaskRecord

PAGE_SIZE = 500
R = TypeVar("R", bound=Mapping[str, Any])


class UsageError(Exception):
    """The command line itself is wrong (exit code 2)."""


class CommandFailed(Exception):
    """The command cannot do its work, e.g. an unreadable file (exit code 1 unless given)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


if TYPE_CHECKING:
    from traitlets.config.loader import _KVArgParser as _ParserBase
else:
    # traitlets' own parser class, private: reached through the loader that uses it.
    _ParserBase = KVArgParseConfigLoader.parser_class


class _Parser(_ParserBase):
    """Argument parser that reports mistakes as one-line usage errors."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


class _Loader(KVArgParseConfigLoader):
    """Command-line loader that refuses unknown options instead of ignoring them."""

    parser_class = _Parser

    def load_config(
        self, argv: list[str] | None = None, aliases: Any = None, *args: Any, **kwargs: Any
    ) -> Config:
        _check_options(self.argv if argv is None else argv, aliases or self.aliases, self.flags)
        return super().load_config(argv, aliases, *args, **kwargs)


def _names(options: dict[Any, Any]) -> set[str]:
    """Option names of traitlets flags or aliases (a key may be a tuple of names)."""
    return {name for key in options for name in (key if isinstance(key, tuple) else (key,))}


def _check_options(argv: list[str], aliases: dict[Any, Any], flags: dict[Any, Any]) -> None:
    """Refuse unknown options and options missing their value, naming them as typed."""
    alias_names, flag_names = _names(aliases), _names(flags)
    for index, arg in enumerate(argv):
        if arg == "--":
            return
        if not arg.startswith("-") or arg == "-":
            continue
        name = arg.lstrip("-").split("=", 1)[0]
        if name in flag_names or "." in name:  # --Class.trait=value is traitlets' own syntax
            continue
        if name not in alias_names:
            raise UsageError(f"unknown option {arg.split('=', 1)[0]}")
        if "=" not in arg and (
            index + 1 == len(argv) or argv[index + 1][:1] == "-" != argv[index + 1]
        ):
            raise UsageError(f"option {arg} needs a value")


class _OneLineFormatter(logging.Formatter):
    """Log records as one line; an exception shows only its last line (--debug shows all)."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"[{record.levelname}] {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            line += f": {traceback.format_exception_only(exc)[-1].strip()}"
        return line


_common_aliases = {
    **base_aliases,
    "db-path": "TaskPlannerApp.db_path",
    "owner": "TaskPlannerCommand.owner",
}
# Writing a jupyter_server_config.py is not this command's business.
_jupyter_flags = {
    key: value for key, value in base_flags.items() if key not in ("generate-config", "y")
}
_common_flags = {
    **_jupyter_flags,
    "all": (
        {"TaskPlannerCommand": {"all_owners": True}},
        "Act on the tasks of every owner: list them all, reach any task id, and keep the "
        "owner stored in imported tasks.",
    ),
}


class _StrictApp(JupyterApp):
    """A Jupyter app whose command-line mistakes are usage errors, not warnings."""

    def _create_loader(
        self,
        argv: list[str] | None,
        aliases: dict[str, Any],
        flags: dict[str, Any],
        classes: list[type[Configurable]] | None,
    ) -> _Loader:
        return _Loader(argv, aliases, flags, classes=classes, log=self.log)


class TaskPlannerCommand(_StrictApp):
    """Base of the subcommands: the server's config, the task database and the acting owner."""

    name = "jupyter-taskplanner"
    version = __version__
    arguments: ClassVar[str] = ""
    """Positional arguments in usage notation: "", "ID", "ID..." or "FILE"."""
    settings: TaskPlannerApp
    """The server's settings (database, timezone, runs folder, ...), set when the command starts."""
    planner: Planner
    """The planner's services on those settings (``build_planner``, without a server)."""
    classes = [TaskPlannerApp]
    aliases = _common_aliases
    flags = _common_flags

    owner = Unicode(
        "",
        config=True,
        help="""Act on the tasks of this owner instead of your own.
        Defaults to TaskPlannerApp.single_user_name, the JupyterHub or OS user name.""",
    )
    all_owners = Bool(
        False,
        config=True,
        help="""Act on the tasks of every owner: list them all, reach any task id, and keep
        the owner stored in imported tasks.""",
    )

    @default("config_file_name")
    def _default_config_file_name(self) -> str:
        return "jupyter_server_config"

    def _log_level_default(self) -> int:
        return logging.WARNING

    def get_default_logging_config(self) -> dict[str, Any]:
        """Log the package's warnings (e.g. a plugin that fails to load) as one-liners."""
        config = super().get_default_logging_config()
        # traitlets types log_level as its Enum's values (ints and names); it stores the int.
        if cast(int, self.log_level) > logging.DEBUG:
            config["formatters"]["console"] = {"()": _OneLineFormatter}
        config["loggers"]["jupyter_taskplanner"] = {
            "level": "DEBUG",
            "handlers": ["console"],
            "propagate": False,
        }
        return config

    # JupyterApp's signature, which jupyter_core marks type: ignore[override] against
    # Application.load_config_file(filename, path).
    def load_config_file(self, suppress_errors: bool = True) -> None:  # type: ignore[override]
        """Load the config files the server reads, in the server's order of precedence."""
        # The server lets jupyter_server_config override the extension's own file.
        extension_file = TaskPlannerApp().config_file_name
        Application.load_config_file(self, extension_file, path=self.config_file_paths)
        super().load_config_file(suppress_errors)

    def parse_command_line(self, argv: list[str] | None = None) -> None:
        """Parse the options; a value of the wrong type is a usage error naming the option."""
        # traitlets would log the bad value as bad configuration and exit with code 1.
        # catch_config_error is typed as returning the method as it is; functools.wraps gave
        # it __wrapped__, the method without the decorator.
        parse = Application.parse_command_line.__wrapped__  # type: ignore[attr-defined]
        try:
            parse(self, argv)
        except TraitError as exc:
            raise UsageError(_option_message(str(exc), self.aliases)) from None

    def usage_line(self) -> str:
        return f"usage: jupyter taskplanner {self.subcommand_name()} {self.arguments}".rstrip()

    @classmethod
    def subcommand_name(cls) -> str:
        for name, (app, _) in SUBCOMMANDS.items():
            if app in (cls, f"{cls.__module__}.{cls.__qualname__}"):
                return name
        return cls.__name__

    def positional(self) -> list[str]:
        """The positional arguments, checked against ``arguments``."""
        args, spec = list(self.extra_args), self.arguments
        if args and not spec:
            raise UsageError(f"unexpected argument {args[0]!r} ({self.usage_line()})")
        if spec and not args:
            raise UsageError(f"missing {spec.rstrip('.')} ({self.usage_line()})")
        if len(args) > 1 and not spec.endswith("..."):
            raise UsageError(f"one {spec} only, got {len(args)} ({self.usage_line()})")
        return args

    def start(self) -> None:
        args = self.positional()
        try:
            self.settings = self.local_settings()
            db_path = self.settings.db_path
            owner = self.owner or self.settings.single_user_name
        except TraitError as exc:
            raise CommandFailed(f"bad configuration: {exc}") from None
        try:
            self.planner = build_planner(self.settings)
        except (OSError, sqlite3.Error) as exc:
            raise CommandFailed(f"cannot open the task database {db_path}: {exc}") from None
        try:
            self.act(self.planner.tasks, Access(owner, admin=self.all_owners), args)
        finally:
            self.planner.db.close()

    def local_settings(self) -> TaskPlannerApp:
        """The server's planner settings, refused where that planner is a client of the
        JupyterHub service: its tasks are in the service's database, not in a local one."""
        # No server: serverapp None, else the extension would make an unconfigured one.
        settings = TaskPlannerApp(config=self.config, serverapp=None)
        if settings.hub_client and "db_path" not in self.config.get("TaskPlannerApp", {}):
            raise CommandFailed(
                "this server's planner is the JupyterHub service "
                f"{settings.hub_service_name!r}, whose tasks are not in a database here: use "
                "the Task Planner in JupyterLab or TaskPlanner() from jupyter_taskplanner.client "
                "(or pass --db-path to work on a database file)"
            )
        return settings

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        """Do the subcommand's work."""
        raise NotImplementedError

    def find(self, service: TaskService, access: Access, raw_id: str) -> TaskRecord:
        """The task ``raw_id`` within the acting scope; says whose it is when outside it."""
        return find_in_scope(service.get, access, "task", id_argument(raw_id, "task"), "act on it")


def id_argument(raw: str, what: str) -> int:
    """A task or run id given on the command line; anything else is a usage error."""
    if not is_id(raw):
        raise UsageError(f"{excerpt(raw)} is not a {what} id (a whole number from 1 to 2^63-1)")
    return int(raw)


def find_in_scope(
    fetch: Callable[[Access, int], R],
    access: Access,
    what: str,
    item_id: int,
    verb: str,
) -> R:
    """``fetch(access, item_id)``; outside the acting scope, an error saying whose it is.

    Whoever runs the CLI can read the database file, so naming the owner reveals nothing.
    """
    try:
        return fetch(access, item_id)
    except TaskNotFound:
        if access.admin:
            raise
        other = fetch(Access(access.user, admin=True), item_id)["owner"]
        raise TaskNotFound(
            f"{what} {item_id} belongs to {other!r}; pass --owner {other} or --all to {verb}"
        ) from None


def _option_message(message: str, aliases: dict[Any, Any]) -> str:
    """A trait's validation message with the trait named as the option that set it."""

    def option(match: re.Match[str]) -> str:
        for names, target in aliases.items():
            if isinstance(target, str) and target.endswith(f".{match.group(1)}"):
                name = names[-1] if isinstance(names, tuple) else names
                return f"--{name}"
        return match.group(0)

    return re.sub(r"(?:The value of )?[Tt]he '(\w+)' trait of an? \w+ instance", option, message)


def _label(task: TaskRecord) -> str:
    return f"task {task['id']} {task['name']!r}"


class ListCommand(TaskPlannerCommand):
    """List tasks as a table or as JSON."""

    description = "List your tasks (or another owner's with --owner, everyone's with --all)."
    examples = (
        "jupyter taskplanner list\n"
        "jupyter taskplanner list --disabled --search report\n"
        "jupyter taskplanner list --all --json\n"
    )
    aliases = {**_common_aliases, "search": "ListCommand.search"}
    flags = {
        **_common_flags,
        "json": ({"ListCommand": {"as_json": True}}, "Print the tasks as a JSON list."),
        "enabled": ({"ListCommand": {"enabled": True}}, "Only enabled tasks."),
        "disabled": ({"ListCommand": {"enabled": False}}, "Only disabled tasks."),
    }

    as_json = Bool(False, config=True, help="Print the tasks as a JSON list.")
    enabled = Bool(
        None,
        allow_none=True,
        config=True,
        help="Only enabled (True) or disabled (False) tasks; None lists both.",
    )
    search = Unicode("", config=True, help="Only tasks whose name contains this text.")

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        owner = ALL_OWNERS if self.all_owners else access.user
        tasks: list[TaskRecord] = []
        while True:
            page, total = service.list(
                access,
                owner=owner,
                enabled=self.enabled,
                search=self.search or None,
                limit=PAGE_SIZE,
                offset=len(tasks),
            )
            tasks += page
            if not page or len(tasks) >= total:
                break
        if self.as_json:
            print(json.dumps(tasks, indent=2))
        elif not tasks:
            print("no tasks")
        else:
            print(_table(tasks, with_owner=self.all_owners))


def _table(tasks: list[TaskRecord], *, with_owner: bool) -> str:
    """Tasks as aligned columns: id, name, enabled, triggers (and owner)."""
    header = ["ID", "NAME", "ENABLED", "TRIGGERS"] + (["OWNER"] if with_owner else [])
    rows = [header]
    for task in tasks:
        triggers = ", ".join(trigger["type"] for trigger in task["triggers"]) or "-"
        # A name may hold tabs or newlines; they would break the columns.
        name = " ".join(task["name"].split())
        row = [str(task["id"]), name, "yes" if task["enabled"] else "no", triggers]
        rows.append(row + ([task["owner"]] if with_owner else []))
    return _columns(rows)


def _columns(rows: list[list[str]]) -> str:
    """Rows of cells as left-aligned columns, the first row being the header."""
    widths = [max(len(row[col]) for row in rows) for col in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


class ShowCommand(TaskPlannerCommand):
    """Print one task as JSON, secrets left out."""

    description = "Print one task as JSON (secret config fields are never printed)."
    examples = "jupyter taskplanner show 3"
    arguments = "ID"

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        print(json.dumps(service.public(self.find(service, access, args[0])), indent=2))


class EnableCommand(TaskPlannerCommand):
    """Enable tasks so their triggers start them."""

    description = "Enable tasks: their triggers start them again."
    examples = "jupyter taskplanner enable 3 4"
    arguments = "ID..."
    enable = True

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        # Every id is checked before any task changes.
        tasks = [self.find(service, access, raw_id) for raw_id in args]
        word = "enabled" if self.enable else "disabled"
        for task in tasks:
            service.set_enabled(access, task["id"], self.enable)
            print(f"{_label(task)} {word}")


class DisableCommand(EnableCommand):
    """Disable tasks so their triggers no longer start them."""

    description = "Disable tasks: their triggers no longer start them (they can still be run)."
    examples = "jupyter taskplanner disable 3"
    enable = False


class DeleteCommand(TaskPlannerCommand):
    """Delete tasks after confirmation."""

    description = "Delete tasks. Asks for confirmation unless --yes is given."
    examples = "jupyter taskplanner delete 3 4 --yes"
    arguments = "ID..."
    flags = {
        **_common_flags,
        "yes": ({"JupyterApp": {"answer_yes": True}}, "Delete without asking."),
        "y": ({"JupyterApp": {"answer_yes": True}}, "Delete without asking."),
    }

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        tasks = [self.find(service, access, raw_id) for raw_id in args]
        if not self.answer_yes:
            self.confirm(", ".join(_label(task) for task in tasks))
        for task in tasks:
            service.delete(access, task["id"])
            print(f"{_label(task)} deleted")

    def confirm(self, what: str) -> None:
        """Ask on the terminal; refuse to guess when nobody can answer."""
        if not sys.stdin.isatty():
            raise CommandFailed(f"not deleting {what}: stdin is not a terminal; pass --yes")
        sys.stderr.write(f"Delete {what}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise CommandFailed("nothing deleted")


class ExportCommand(TaskPlannerCommand):
    """Write the export document of tasks to stdout or a file."""

    description = "Export tasks as a JSON document that `import` reads (secrets left out)."
    examples = "jupyter taskplanner export 3 4 > tasks.json\njupyter taskplanner export 3 -o t.json"
    arguments = "ID..."
    aliases = {**_common_aliases, "o": "ExportCommand.output", "output": "ExportCommand.output"}

    output = Unicode(
        "",
        config=True,
        help="Write the export to this file instead of stdout.",
    )

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        ids = [self.find(service, access, raw_id)["id"] for raw_id in args]
        text = json.dumps(service.export(access, ids), indent=2) + "\n"
        if not self.output:
            sys.stdout.write(text)
            return
        try:
            Path(self.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandFailed(f"cannot write {self.output}: {exc.strerror}") from None
        print(f"exported {len(ids)} task(s) to {self.output}")


class ImportCommand(TaskPlannerCommand):
    """Create or update tasks from an export document, a task or a list of tasks."""

    description = (
        "Import tasks from a JSON file (an export document, one task or a list of tasks; '-' "
        "reads stdin) and print their ids. A task with an id updates that task (as exported, "
        "edited and imported again); one without is created, belonging to you (or to "
        "--owner; with --all it keeps the owner stored in the file). All or none."
    )
    examples = "jupyter taskplanner import tasks.json\ncat task.json | jupyter taskplanner import -"
    arguments = "FILE"

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        source = args[0]
        body = _read_json(source)
        if not access.admin:
            body = _without_owner(body)
        try:
            imported, _ = service.import_(access, body)
        except TaskPlannerError as exc:
            raise exc.within_source(_source_name(source)) from None
        for task in imported:
            print(task["id"])


class CreateCommand(TaskPlannerCommand):
    """Create tasks from a JSON or YAML file of one task or a list of tasks."""

    description = (
        "Create tasks from a JSON or YAML file (one task, or a list of tasks; '-' reads "
        "stdin) and print their ids. Every problem of every task is reported at once, each "
        "with its field. All tasks are created or none."
    )
    examples = (
        "jupyter taskplanner create report.yaml\ncat task.json | jupyter taskplanner create -"
    )
    arguments = "FILE"

    def act(self, service: TaskService, access: Access, args: list[str]) -> None:
        source = args[0]
        body = _read_document(source)
        items = body if isinstance(body, list) else [body]
        # Created, never updated: ids and revisions in the file are not this database's.
        fresh = [
            {key: value for key, value in item.items() if key not in ("id", "revision")}
            if isinstance(item, dict)
            else item
            for item in items
        ]
        if not access.admin:
            fresh = _without_owner(fresh)
        try:
            created, _ = service.import_(access, fresh)
        except TaskPlannerError as exc:
            raise exc.within_source(_source_name(source)) from None
        for task in created:
            print(task["id"])


def _source_name(source: str) -> str:
    return "<stdin>" if source == "-" else source


def _read_text(source: str) -> str:
    """The text of a file, or of stdin for '-'."""
    try:
        return sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandFailed(f"cannot read {source}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandFailed(f"{_source_name(source)}: not a UTF-8 text file") from None


def _read_document(source: str) -> Any:
    """A JSON or YAML document (YAML for .yaml/.yml files, and for stdin that is not JSON)."""
    if not source.lower().endswith((".yaml", ".yml")):
        text = _read_text(source)
        try:
            return jsondoc.load(text, "")
        except jsondoc.NotJSON as exc:
            if source != "-":  # stdin that is no JSON may be YAML
                raise CommandFailed(
                    f"{_source_name(source)}: {exc.message}; name a YAML file .yaml"
                ) from None
        except InvalidConfig as exc:
            raise CommandFailed(f"{_source_name(source)}: {exc.message}") from None
    else:
        text = _read_text(source)
    import yaml

    def parse() -> Any:
        document = yaml.safe_load(text)
        jsondoc.check(document, "the document")
        return document

    try:
        return _checked(source, parse)
    except (yaml.YAMLError, RecursionError) as exc:
        raise CommandFailed(f"{_source_name(source)}: not valid YAML: {exc}") from None


def _checked(source: str, parse: Callable[[], Any]) -> Any:
    """What ``parse`` reads of ``source``; its refusal as the command's error."""
    try:
        return parse()
    except InvalidConfig as exc:
        raise CommandFailed(f"{_source_name(source)}: {exc.message}") from None


def _read_json(source: str) -> Any:
    """The JSON document in a file, or on stdin for '-'."""
    text = _read_text(source)
    return _checked(source, lambda: jsondoc.load(text, ""))


def _without_owner(body: Any) -> Any:
    """The import body with ``owner`` fields dropped, so its tasks go to the acting owner."""
    if isinstance(body, dict) and isinstance(body.get("tasks"), list):
        return {**body, "tasks": _without_owner(body["tasks"])}
    if isinstance(body, list):
        return [_without_owner(item) if isinstance(item, dict) else item for item in body]
    if isinstance(body, dict):
        return {key: value for key, value in body.items() if key != "owner"}
    return body


SUBCOMMANDS: dict[str, tuple[type[TaskPlannerCommand] | str, str]] = {
    "list": (ListCommand, ListCommand.description),
    "show": (ShowCommand, ShowCommand.description),
    "enable": (EnableCommand, EnableCommand.description),
    "disable": (DisableCommand, DisableCommand.description),
    "delete": (DeleteCommand, DeleteCommand.description),
    "export": (ExportCommand, ExportCommand.description),
    "import": (ImportCommand, ImportCommand.description),
    "create": (CreateCommand, CreateCommand.description),
    # Named by path: cli_runs builds on this module, so it is imported when used.
    "run": (
        "jupyter_taskplanner.cli_runs.RunCommand",
        "Run a task now, here, and wait until the run ends (--wait shows its progress).",
    ),
    "runs": (
        "jupyter_taskplanner.cli_runs.RunsCommand",
        "List recent runs (of your tasks or of one task), or print one run's log.",
    ),
    "backup": (
        "jupyter_taskplanner.cli_data.BackupCommand",
        "Copy the task database to a file, safely while servers use it.",
    ),
    "restore": (
        "jupyter_taskplanner.cli_data.RestoreCommand",
        "Replace the task database with a backup (no server may use it meanwhile).",
    ),
    "service": (
        "jupyter_taskplanner.hub.service.TaskPlannerService",
        "Run the planner of every user of a JupyterHub, as a hub service (see the docs).",
    ),
}
"""The subcommands of `jupyter taskplanner`: name -> (app class, one-line help).

Add a command by subclassing ``TaskPlannerCommand`` (set ``arguments``, implement ``act``)
and registering it here."""


class TaskPlannerCLI(_StrictApp):
    """`jupyter taskplanner`: dispatches to one of ``SUBCOMMANDS``."""

    name = "jupyter-taskplanner"
    version = __version__
    description = "Manage jupyter-taskplanner tasks in the local task database."
    examples = (
        "jupyter taskplanner list\n"
        "jupyter taskplanner show 3\n"
        "jupyter taskplanner export 3 -o task.json\n"
        "jupyter taskplanner import task.json\n"
        "jupyter taskplanner run 3 --wait\n"
        "jupyter taskplanner runs 3\n"
    )
    subcommands = SUBCOMMANDS
    flags = _jupyter_flags

    def parse_command_line(self, argv: list[str] | None = None) -> None:
        argv = sys.argv[1:] if argv is None else argv
        # Name a mistyped command before complaining about the options meant for it.
        if argv and not argv[0].startswith("-") and argv[0] not in self.subcommands:
            self._unknown_command(argv[0])
        super().parse_command_line(argv)

    def _unknown_command(self, name: str) -> None:
        raise UsageError(f"unknown command {name!r} (commands: {', '.join(SUBCOMMANDS)})")

    def start(self) -> None:
        if self.subapp is None:
            if self.extra_args:
                self._unknown_command(self.extra_args[0])
            raise UsageError(f"missing command (commands: {', '.join(SUBCOMMANDS)}); see --help")
        super().start()


def main(argv: list[str] | None = None) -> None:
    """Run the command line; errors end it with a one-line message and exit code 1 or 2."""
    try:
        TaskPlannerCLI.launch_instance(argv)
    except UsageError as exc:
        _fail(str(exc), 2)
    except TaskPlannerError as exc:
        # Every problem, each naming its field: a task's mistakes are fixed in one go.
        _fail("; ".join(str(problem["message"]) for problem in exc.errors), 1)
    except CommandFailed as exc:
        _fail(str(exc), exc.code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)


def _fail(message: str, code: int) -> None:
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
