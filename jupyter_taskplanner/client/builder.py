"""A task written as Python that reads like a sentence and round-trips to the REST JSON::

    Task(
        "Morning report",
        triggers=[Time(start_date="2026-12-01", time="07:00", repeat="weekdays")],
        jobs=[Notebook("reports/report.ipynb", parameters={"region": "{region}"})],
        actions=[Email(to="{email}", when="all_valid")],
        series=Csv("data/regions.csv"),
    )

Each built-in component type has a class whose arguments are its config's fields (a test
checks them against the component schemas); any other type, such as a plugin's, is
``Component("inbox", folder="inbox")``.  ``named=`` names a component in its task (the
``name`` of the REST entry, which steps and ``{job.<name>.<key>}`` placeholders use) and
``when=`` says when an action executes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, fields
from datetime import date, datetime
from typing import Any, ClassVar, Literal, TypedDict, cast

__all__ = [
    "BUILTINS",
    "AfterTask",
    "Calendar",
    "Command",
    "Component",
    "Cron",
    "Csv",
    "Directory",
    "Email",
    "File",
    "Http",
    "Interval",
    "Json",
    "NextTask",
    "Notebook",
    "Notify",
    "Python",
    "PythonSeries",
    "Save",
    "Script",
    "ServerStart",
    "Settings",
    "Sql",
    "Task",
    "Time",
    "Values",
    "Webhook",
]

Kind = Literal["trigger", "job", "action", "series"]
When = Literal["always", "any_valid", "all_valid", "none_valid"]
Addresses = str | Sequence[str]
"""Mail addresses: one text separated by commas, or a list."""


def _plain(value: Any) -> Any:
    """A config value as JSON has it (dates and times as ISO text)."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


class Component:
    """A trigger, job, action or series of a task, of any type: ``Component("inbox",
    folder="inbox")``; its kind is the task list it is put in."""

    kind: ClassVar[Kind | None] = None
    named: str | None
    when: When | None = None
    """When an action executes (actions only)."""
    version: int | None
    """The config version the server stored (set when read from the server)."""
    secrets: list[str] | None
    """The names of secret config fields the server holds (their values are never sent)."""

    def __init__(
        self,
        type_name: str,
        /,
        *,
        named: str | None = None,
        when: When | None = None,
        **config: Any,
    ) -> None:
        self._type = type_name
        self._config = config
        self.named = named
        self.when = when
        self.version = None
        self.secrets = None

    @property
    def type(self) -> str:
        """The component's type name (``cron``, ``notebook``, a plugin's)."""
        return self._type

    @property
    def config(self) -> dict[str, Any]:
        """The config as the REST API takes it."""
        return {key: _plain(value) for key, value in self._config.items()}

    def to_json(self) -> dict[str, Any]:
        """The task entry of this component, as the REST API takes and returns it."""
        entry: dict[str, Any] = {"type": self.type, "config": self.config}
        if self.named is not None:
            entry["name"] = self.named
        if self.when is not None:
            entry["when"] = self.when
        if self.version is not None:
            entry["version"] = self.version
        if self.secrets:
            entry["secrets"] = list(self.secrets)
        return entry

    @classmethod
    def from_json(cls, entry: Mapping[str, Any], kind: Kind) -> Component:
        """The component of a REST entry: the built-in class of its type, else generic."""
        builtin = BUILTINS.get((kind, entry["type"]))
        config = dict(entry.get("config") or {})
        component: Component
        if builtin is None:
            component = Component(entry["type"], **config)
        else:
            known = builtin.config_fields()
            component = builtin(**{k: v for k, v in config.items() if k in known})
            # Fields the server sets (a snapshot, a resolved path) ride along unchanged.
            component.extra = {k: v for k, v in config.items() if k not in known}
        component.named = entry.get("name")
        if "when" in entry:
            component.when = entry["when"]
        component.version = entry.get("version")
        component.secrets = entry.get("secrets")
        return component

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is type(self)
            and isinstance(other, Component)
            and (other.to_json() == self.to_json())
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        named = f", named={self.named!r}" if self.named else ""
        when = f", when={self.when!r}" if self.when else ""
        if type(self) is Component:
            return f"Component({self.type!r}, {args}{named}{when})"
        return f"{type(self).__name__}({args}{named}{when})"


_ENTRY_FIELDS = frozenset({"named", "when", "version", "secrets", "extra"})


@dataclass(eq=False, repr=False)
class _Builtin(Component):
    """A built-in type: its config fields are the dataclass fields."""

    type_name: ClassVar[str]
    named: str | None = field(default=None, kw_only=True)
    version: int | None = field(default=None, init=False)
    secrets: list[str] | None = field(default=None, init=False)
    extra: dict[str, Any] = field(default_factory=dict, init=False)

    @classmethod
    def config_fields(cls) -> list[str]:
        """The config fields this class takes, in signature order."""
        return [f.name for f in fields(cls) if f.init and f.name not in _ENTRY_FIELDS]

    @property
    def type(self) -> str:
        return self.type_name

    @property
    def config(self) -> dict[str, Any]:
        values = {name: getattr(self, name) for name in self.config_fields()}
        given = {name: _plain(value) for name, value in values.items() if value is not None}
        return {**given, **self.extra}


@dataclass(eq=False, repr=False)
class _Trigger(_Builtin):
    kind: ClassVar[Kind | None] = "trigger"


@dataclass(eq=False, repr=False)
class _Job(_Builtin):
    kind: ClassVar[Kind | None] = "job"


@dataclass(eq=False, repr=False)
class _Action(_Builtin):
    kind: ClassVar[Kind | None] = "action"
    when: When | None = field(default=None, kw_only=True)


@dataclass(eq=False, repr=False)
class _Series(_Builtin):
    kind: ClassVar[Kind | None] = "series"


# -- triggers --------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Time(_Trigger):
    """Starts the task at a date and time, once or repeated (``repeat="weekdays"``)."""

    type_name = "time"
    start_date: str | date
    time: str
    _: KW_ONLY
    repeat: (
        Literal["once", "daily", "weekdays", "weekly", "biweekly", "monthly", "quarterly", "yearly"]
        | None
    ) = None
    day_of_month: int | Literal["last"] | None = None
    end_date: str | date | None = None
    timezone: str | None = None


@dataclass(eq=False, repr=False)
class Cron(_Trigger):
    """Starts the task whenever the time matches a cron line (``"0 7 * * 1-5"``)."""

    type_name = "cron"
    expression: str
    _: KW_ONLY
    dialect: Literal["unix", "quartz"] | None = None
    timezone: str | None = None


@dataclass(eq=False, repr=False)
class Interval(_Trigger):
    """Starts the task every so many seconds, minutes, hours or days."""

    type_name = "interval"
    every: float
    _: KW_ONLY
    unit: Literal["seconds", "minutes", "hours", "days"] | None = None
    start: str | datetime | None = None
    timezone: str | None = None


@dataclass(eq=False, repr=False)
class File(_Trigger):
    """Starts the task when a file or a folder's files change."""

    type_name = "file"
    path: str
    _: KW_ONLY
    recursive: bool | None = None
    pattern: str | None = None
    debounce: float | None = None


@dataclass(eq=False, repr=False)
class AfterTask(_Trigger):
    """Starts the task when another task's run ends (``on="success"``)."""

    type_name = "after_task"
    task_id: int
    _: KW_ONLY
    on: Literal["always", "success", "failure"] | None = None


@dataclass(eq=False, repr=False)
class ServerStart(_Trigger):
    """Starts the task when the server starts, after ``delay`` seconds."""

    type_name = "server_start"
    _: KW_ONLY
    delay: float | None = None


@dataclass(eq=False, repr=False)
class Http(_Trigger):
    """Starts the task from a secret URL (the server makes the token unless given)."""

    type_name = "http"
    _: KW_ONLY
    token: str | None = None


@dataclass(eq=False, repr=False)
class Calendar(_Trigger):
    """Starts the task before each event of an .ics file or feed."""

    type_name = "calendar"
    _: KW_ONLY
    path: str | None = None
    url: str | None = None
    minutes_before: int | None = None
    match: str | None = None
    timezone: str | None = None


# -- jobs ------------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Notebook(_Job):
    """Executes a notebook with parameters; the executed notebook (ipynb, HTML) is the result."""

    type_name = "notebook"
    path: str
    _: KW_ONLY
    parameters: dict[str, Any] | None = None
    kernel: str | None = None
    cell_timeout: int | None = None
    timeout: int | None = None
    input: Literal["live", "snapshot"] | None = None
    output_name: str | None = None
    formats: list[Literal["ipynb", "html", "pdf"]] | None = None
    condition: dict[str, str] | None = None


@dataclass(eq=False, repr=False)
class Python(_Job):
    """Calls a Python function (``"module:function"``) with keyword arguments."""

    type_name = "python"
    function: str
    _: KW_ONLY
    kwargs: dict[str, Any] | None = None
    path: str | None = None


@dataclass(eq=False, repr=False)
class Command(_Job):
    """Runs a program with arguments."""

    type_name = "command"
    program: str
    _: KW_ONLY
    args: list[str] | None = None
    env: dict[str, str] | None = None
    output_glob: str | None = None
    stdout_result: bool | None = None
    cwd: str | None = None


@dataclass(eq=False, repr=False)
class Script(_Job):
    """Runs a script file of yours with arguments."""

    type_name = "script"
    path: str
    _: KW_ONLY
    args: list[str] | None = None
    env: dict[str, str] | None = None
    output_glob: str | None = None
    stdout_result: bool | None = None
    cwd: str | None = None


# -- actions ---------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Email(_Action):
    """Mails the results (``to="{email}"`` for a series)."""

    type_name = "email"
    to: Addresses
    _: KW_ONLY
    cc: Addresses | None = None
    bcc: Addresses | None = None
    reply_to: Addresses | None = None
    subject: str | None = None
    body: str | None = None
    attach_files: bool | None = None
    text_in_body: bool | None = None


@dataclass(eq=False, repr=False)
class Save(_Action):
    """Saves the result files into a folder of yours or remote storage."""

    type_name = "save"
    _: KW_ONLY
    folder: str | None = None
    url: str | None = None
    storage_options: dict[str, Any] | None = None
    name: str | None = None
    overwrite: bool | None = None
    delete_older_than_days: float | None = None
    save_text: bool | None = None


@dataclass(eq=False, repr=False)
class Webhook(_Action):
    """POSTs the results to a URL."""

    type_name = "webhook"
    url: str
    _: KW_ONLY
    headers: dict[str, str] | None = None
    secret: str | None = None
    upload_files: bool | None = None
    timeout: float | None = None


@dataclass(eq=False, repr=False)
class NextTask(_Action):
    """Starts other tasks with the results."""

    type_name = "next_task"
    task_ids: list[int]


@dataclass(eq=False, repr=False)
class Notify(_Action):
    """Sends a message to chat services (apprise URLs)."""

    type_name = "notify"
    urls: list[str]
    _: KW_ONLY
    title: str | None = None
    body: str | None = None
    attach_results: bool | None = None


# -- series ----------------------------------------------------------------------------------


@dataclass(eq=False, repr=False)
class Values(_Series):
    """Parameter sets given as a list of dicts."""

    type_name = "values"
    values: list[dict[str, Any]]


@dataclass(eq=False, repr=False)
class Csv(_Series):
    """One parameter set per row of a CSV file (the header names the placeholders)."""

    type_name = "csv"
    path: str
    _: KW_ONLY
    delimiter: str | None = None
    encoding: str | None = None


@dataclass(eq=False, repr=False)
class Json(_Series):
    """Parameter sets from a JSON file holding a list of objects."""

    type_name = "json"
    path: str


@dataclass(eq=False, repr=False)
class Directory(_Series):
    """One parameter set per file of a folder."""

    type_name = "directory"
    path: str
    _: KW_ONLY
    pattern: str | None = None
    recursive: bool | None = None
    include_hidden: bool | None = None
    new_only: bool | None = None


@dataclass(eq=False, repr=False)
class Sql(_Series):
    """One parameter set per row of an SQL query."""

    type_name = "sql"
    query: str
    _: KW_ONLY
    database: str | None = None
    url: str | None = None


@dataclass(eq=False, repr=False)
class PythonSeries(_Series):
    """Parameter sets returned by a Python function (``"module:function"``)."""

    type_name = "python"
    function: str
    _: KW_ONLY
    kwargs: dict[str, Any] | None = None


BUILTINS: dict[tuple[Kind, str], type[_Builtin]] = {
    (cls.kind, cls.type_name): cls
    for cls in (
        *(Time, Cron, Interval, File, AfterTask, ServerStart, Http, Calendar),
        *(Notebook, Python, Command, Script),
        *(Email, Save, Webhook, NextTask, Notify),
        *(Values, Csv, Json, Directory, Sql, PythonSeries),
    )
    if cls.kind is not None
}
"""The builder class of each built-in component type, by (kind, type name)."""


class Settings(TypedDict, total=False):
    """A task's run settings (see "Run settings" in docs/usage.md)."""

    timeout: float | None
    overlap: Literal["skip", "queue", "parallel"]
    misfire: Literal["skip", "once", "all"]
    misfire_grace: float | None
    misfire_limit: int
    retries: int
    retry_backoff: float
    timezone: str
    jitter: float


_DOCUMENT = ("name", "description", "enabled", "triggers", "jobs", "actions", "series")


class Task:
    """A task: triggers start it, jobs produce results, actions act on them, once per set of
    its series.  ``to_json()`` is the REST body; ``Task.from_json`` reads a stored task."""

    def __init__(
        self,
        name: str,
        *,
        triggers: Iterable[Component] = (),
        jobs: Iterable[Component] = (),
        actions: Iterable[Component] = (),
        series: Component | None = None,
        description: str = "",
        enabled: bool | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.name = name
        self.triggers = list(triggers)
        self.jobs = list(jobs)
        self.actions = list(actions)
        self.series = series
        self.description = description
        self.enabled = enabled
        self.settings: Settings = settings or {}
        self.id: int | None = None
        """The stored task's id (set when read from the server)."""
        self.revision: int | None = None
        self.owner: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The task document the REST API takes (create, replace, import, execute)."""
        body: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "triggers": [entry.to_json() for entry in self.triggers],
            "jobs": [entry.to_json() for entry in self.jobs],
            "actions": [entry.to_json() for entry in self.actions],
            "series": self.series.to_json() if self.series else None,
        }
        if self.enabled is not None:
            body["enabled"] = self.enabled
        if self.settings:
            body["settings"] = dict(self.settings)
        return body

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Task:
        """The task of a REST document (a stored task keeps its id, revision and owner)."""
        series = document.get("series")
        task = cls(
            document["name"],
            triggers=[Component.from_json(e, "trigger") for e in document.get("triggers", [])],
            jobs=[Component.from_json(e, "job") for e in document.get("jobs", [])],
            actions=[Component.from_json(e, "action") for e in document.get("actions", [])],
            series=Component.from_json(series, "series") if series else None,
            description=document.get("description", ""),
            enabled=document.get("enabled"),
            settings=cast(Settings, dict(document.get("settings") or {})),
        )
        task.id = document.get("id")
        task.revision = document.get("revision")
        task.owner = document.get("owner")
        return task

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and other.to_json() == self.to_json()

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __repr__(self) -> str:
        parts = [repr(self.name)]
        for key in _DOCUMENT[3:]:
            value = getattr(self, key)
            if value:
                parts.append(f"{key}={value!r}")
        return f"Task({', '.join(parts)})"
