"""A task written as Python that reads like a sentence and round-trips to the REST JSON::

    Task(
        "Morning report",
        triggers=[Time(start_date="2026-12-01", time="07:00", repeat="weekdays")],
        jobs=[Notebook("reports/report.ipynb", parameters={"region": "{region}"})],
        actions=[Email(to="{email}", when="all_valid")],
        series=Csv("data/regions.csv"),
    )

Each built-in component type has a class whose arguments are its config's fields, generated
from the component schemas (``component_types``); any other type, such as a plugin's, is
``Component("inbox", folder="inbox")``.  ``named=`` names a component in its task (the
``name`` of the REST entry, which steps and ``{job.<name>.<key>}`` placeholders use) and
``when=`` says when an action executes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date, datetime
from typing import Any, ClassVar, Literal, TypedDict, cast

__all__ = ["BUILTINS", "Component", "Settings", "Task"]

Kind = Literal["trigger", "job", "action", "series"]
When = Literal["always", "any_valid", "all_valid", "none_valid"]


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
BUILTINS: dict[tuple[Kind, str], type[_Builtin]] = {}
"""The builder class of each built-in component type, by (kind, type name)."""


@dataclass(eq=False, repr=False)
class _Builtin(Component):
    """A built-in type: its config fields are the dataclass fields."""

    type_name: ClassVar[str]
    named: str | None = field(default=None, kw_only=True)
    version: int | None = field(default=None, init=False)
    secrets: list[str] | None = field(default=None, init=False)
    extra: dict[str, Any] = field(default_factory=dict, init=False)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "type_name" in vars(cls):
            assert cls.kind is not None, cls
            key = (cls.kind, cls.type_name)
            if key in BUILTINS:
                raise TypeError(f"two builder classes for the {key[0]} type {key[1]!r}")
            BUILTINS[key] = cls

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
