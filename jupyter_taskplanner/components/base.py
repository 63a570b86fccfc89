"""Base classes of every component: the contract built-ins and plugins both follow.

A component type is a class with a unique ``type_name``, a ``kind`` (trigger, job, action
or series), a title and description for the UI, and a JSON Schema (``config_schema``) for
its configuration.  Plugins register their classes under the entry-point group
``jupyter_taskplanner.components`` (the entry-point name is the type name).

Invariants every subclass keeps:

- ``__init__`` takes the already validated config dict; it must not do I/O.
- ``config_schema`` is a JSON Schema object (draft 2020-12) with ``title``, ``default`` and
  ``enum`` where useful, so the UI can build a form from it.  Fields that hold secrets are
  marked ``"writeOnly": true``: the API never returns them.
- ``config_version`` grows when the config's shape changes; ``migrate_config`` upgrades a
  stored older config.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from zoneinfo import ZoneInfo

from traitlets.config import Configurable

from ..bus import PlannerEvent
from ..errors import InvalidConfig
from ..paths import FILE_KINDS, OwnerFiles, check_path_fields, config_value, path_fields

if TYPE_CHECKING:
    from ..vocabulary import TaskRecord

ENTRY_POINT_GROUP = "jupyter_taskplanner.components"
Kind = Literal["trigger", "job", "action", "series"]
Flavor = Literal["file", "text", "none"]
KINDS: tuple[Kind, ...] = ("trigger", "job", "action", "series")


@dataclass(frozen=True)
class TaskLinks:
    """What a component naming other tasks (``after_task``, ``next_task``) may link to.

    ``find(task_id)`` reads any owner's task (None if there is none); ``task_id`` is the
    task being saved (None while it is created); ``admin``: the task's owner holds
    ``taskplanner:admin``, whose tasks may name tasks of every owner.  ``missing_ok`` (an
    import, which may bring the tasks it names) accepts a task that does not exist yet.
    """

    owner: str
    admin: bool
    task_id: int | None
    find: Callable[[int], Any]
    missing_ok: bool = False

    def target(self, task_id: int, field: str) -> Any:
        """The task ``task_id`` named in ``field``, checked: it exists, it is not the task
        itself, and it is the owner's own unless the owner is an admin.  None for a missing
        task when ``missing_ok``."""
        if task_id == self.task_id:
            raise InvalidConfig(f"{field}: a task cannot name itself here", field=field)
        found = self.find(task_id)
        if found is not None and found["owner"] != self.owner and not self.admin:
            found = None  # another user's task is one this owner does not have, exactly
        if found is None and self.missing_ok:
            return None
        if found is None:
            raise InvalidConfig(f"{field}: you have no task {task_id}", field=field)
        return found


class Component:
    """Common base: identity, schema and config of one component instance."""

    type_name: ClassVar[str]
    kind: ClassVar[Kind]
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    config_schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {}}
    config_version: ClassVar[int] = 1
    permission: ClassVar[str | None] = None
    """An extra authorizer resource the owner must hold to use this component (or None)."""
    runs_code: ClassVar[bool] = False
    """True when the component executes code of the owner's choosing (a notebook, a function,
    a program).  Where one server serves several users and runs jobs under its own OS
    account, such components need the ``taskplanner:shell`` permission."""
    settings_class: ClassVar[type[Configurable] | None] = None
    """Server-wide settings (a traitlets ``Configurable``) the server creates once, configured
    as ``c.<ClassName>.<trait>``, and hands to each run as ``ctx.settings``."""
    example_config: ClassVar[dict[str, Any] | None] = None
    """A small valid config of this type.  The component contract tests check it against the
    schema and save it through the REST API; a plugin type without one fails them."""

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        self.config = config
        self.name = name or self.type_name

    @classmethod
    def migrate_config(cls, config: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Upgrade a config stored by an older ``config_version``; default: unchanged."""
        return config

    @classmethod
    def current_config(cls, entry: Mapping[str, Any], where: str) -> dict[str, Any]:
        """A copy of a stored entry's config in this version's shape (``migrate_config``).

        A config newer than this class knows is an ``InvalidConfig`` at ``<where>.version``.
        """
        config = copy.deepcopy(entry.get("config") or {})
        version = entry.get("version", cls.config_version)
        if version > cls.config_version:
            raise InvalidConfig(
                f"{where}: config version {version} of {cls.kind} {cls.type_name!r} is newer "
                f"than this server knows ({cls.config_version}); upgrade the plugin",
                field=f"{where}.version",
            )
        if version < cls.config_version:
            config = cls.migrate_config(config, version)
        return config

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Self:
        """The component of a stored ``{type, name?, version?, config}`` entry."""
        name = entry.get("name") or ""
        return cls(cls.current_config(entry, f"{cls.kind} {name or cls.type_name!r}"), name)

    @classmethod
    def freeze(cls, config: dict[str, Any], owner_root: Path, snapshot_dir: Path) -> dict[str, Any]:
        """The config to store when a task is saved (e.g. with a snapshot of an input file).

        Called on every save, after validation; raise ``InvalidConfig`` naming the field.
        Default: the config unchanged.
        """
        return config

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        """Semantic checks beyond the JSON Schema; raise ``InvalidConfig`` naming the field."""

    @classmethod
    def link(cls, config: dict[str, Any], links: TaskLinks) -> dict[str, Any]:
        """Check (and note) the other tasks the config names, when a task is saved.

        Default: nothing to link.  Raise ``InvalidConfig`` naming the field; return the
        config to store (a trigger may record the target's owner, say).
        """
        return config

    @classmethod
    def check_paths(cls, config: dict[str, Any], files: OwnerFiles, *, template: bool) -> None:
        """Refuse files the owner may not use; raise ``InvalidConfig`` naming the field.

        Called when a task is saved (``template``: placeholders not filled yet) and before
        each step runs (filled).  The default checks the fields the schema marks with
        ``x-path``; override (calling ``super()``) for paths hidden in other fields, such as
        a database URL.
        """
        check_path_fields(cls.config_schema, config, files, template=template)

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The type's description as listed by ``GET /components``."""
        return {
            "type": cls.type_name,
            "kind": cls.kind,
            "title": cls.title or cls.type_name,
            "description": cls.description,
            "schema": cls.config_schema,
            "version": cls.config_version,
            "permission": cls.permission,
            "runs_code": cls.runs_code,
            **cls.describe_extra(),
        }

    @classmethod
    def describe_extra(cls) -> dict[str, Any]:
        """Kind-specific fields added to ``describe()``."""
        return {}


class Trigger(Component):
    """Starts a task by itself: the common base of the three kinds of trigger below.

    A trigger type derives from exactly one of ``TimedTrigger`` (fire times),
    ``EventTrigger`` (an outside event source it watches) or ``PlannerEventTrigger``
    (events of the planner itself); the scheduler treats each kind by its base class.
    """

    kind: ClassVar[Kind] = "trigger"


class TimedTrigger(Trigger):
    """A trigger with fire times (``time``, ``cron``, ``interval``).

    The scheduler keeps each trigger's next fire time in the store and sleeps until the
    earliest; a fire found late (the server was down) follows the task's misfire setting.
    """

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire time strictly after ``after`` (aware), or None if none is due.

        ``tz`` is the task's timezone; a trigger with its own ``timezone`` config uses that.
        """
        raise NotImplementedError

    def fire_placeholders(self, due: datetime, tz: ZoneInfo) -> dict[str, Any]:
        """Placeholders of the run a fire at ``due`` starts, beside ``{trigger.due}``.

        Default none; a calendar trigger names the event, say.  Keys belong under
        ``trigger.``; called on the event loop, so keep it quick.
        """
        return {}

    def fire_times(self, after: datetime, tz: ZoneInfo, count: int) -> list[datetime]:
        """The next ``count`` fire times after ``after`` (for previews)."""
        times: list[datetime] = []
        when = after
        while len(times) < count:
            nxt = next_fire_or_none(self, when, tz)
            if nxt is None:
                break
            times.append(nxt)
            when = nxt
        return times


def next_fire_or_none(trigger: TimedTrigger, after: datetime, tz: ZoneInfo) -> datetime | None:
    """``trigger.next_fire``, with None past the last representable date (year 9999)."""
    try:
        return trigger.next_fire(after, tz)
    except OverflowError:
        return None


class EventTrigger(Trigger):
    """A trigger fed by an outside event source (files that change, a queue, a socket).

    The scheduler iterates ``watch`` for every enabled task with the trigger and starts a run
    per item.  Only one server per database watches (a lock next to the database), so one
    outside event starts one run.
    """

    files: OwnerFiles | None = None
    """Set by the scheduler before ``watch``: the owner's root and the planner's folders
    inside it, which no path the trigger resolves may reach (``files.resolve``)."""

    async def watch(self, root: Path, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        """Yield once per event, the run's placeholders; return when ``stop`` is set.

        Runs in the server's event loop, so never block it (use async I/O or a thread).
        ``root`` is the task owner's root folder.  An exception stops this watch (logged)
        until the task is saved again or the server restarts.
        """
        raise NotImplementedError
        yield  # an async generator


@dataclass(frozen=True)
class Fire:
    """A start of its task that a ``PlannerEventTrigger`` asks for."""

    placeholders: dict[str, Any] = field(default_factory=dict)
    chain: tuple[int, ...] = ()
    """The chain of tasks the new run continues: a task already in it is not started again."""
    trigger: str = ""
    """What the run records as its ``trigger`` (default: the trigger's type and name)."""
    started_by: str = "scheduler"
    delay: float = 0
    """Seconds to wait before the run starts."""


class PlannerEventTrigger(Trigger):
    """A trigger on events of the planner itself (``bus``): a run finished, the server
    started, a task's secret URL was called.

    ``events`` lists the event types it listens to; for each such event the scheduler asks
    ``fire_on`` of every enabled task that has the trigger.  Every server process handles
    its own events (a run that ends here, this server's start).
    """

    events: ClassVar[tuple[type[PlannerEvent], ...]] = ()

    def fire_on(self, event: PlannerEvent, task: TaskRecord) -> Fire | None:
        """Whether ``event`` starts ``task`` (which has this trigger): a ``Fire``, or None.

        Called in the server's event loop: decide quickly, without I/O.
        """
        raise NotImplementedError


class StopSignal:
    """A stop event for ``watchfiles.awatch`` inside ``EventTrigger.watch``: set by the caller's
    ``stop`` or by the watch itself.

    awatch sets its stop event when it is cancelled; giving it the caller's ``stop`` would
    stop the other triggers of the task too, so give it one of these.
    """

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.closed = False

    def is_set(self) -> bool:
        return self.closed or self.stop.is_set()

    def set(self) -> None:
        self.closed = True


@dataclass
class Result:
    """One result of a job: a file, a text or nothing, and its condition outcome."""

    flavor: Flavor
    value: str | None = None
    """The text, or the file path relative to the run's output folder."""
    valid: bool = True
    job: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "flavor": self.flavor,
            "value": self.value,
            "valid": self.valid,
            "job": self.job,
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        return cls(**data)


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.\-]*)(?::([^{}]*))?\}")
_NUMBER = re.compile(r"\d+")
DEFAULT_MAX_FILLED = 1_000_000
DEFAULT_MAX_SETS = 100_000
"""The most parameter sets one series may give a run (``TaskPlannerApp.max_series_sets``)."""
"""Characters a text may have once its placeholders are filled (``RunContext.max_filled``)."""
BUILTIN_NAMES = frozenset({"owner"})
BUILTIN_PREFIXES = ("task.", "run.", "job.", "trigger.")


def is_builtin_placeholder(name: str) -> bool:
    """Whether ``name`` belongs to the planner (``owner``, ``task.*``, ``run.*``, ...).

    Callers of a run (API parameters, HTTP trigger fields) may not set these.
    """
    return name in BUILTIN_NAMES or name.startswith(BUILTIN_PREFIXES)


def fill_placeholders(
    text: str, values: dict[str, Any], max_length: int = DEFAULT_MAX_FILLED
) -> str:
    """Replace ``{key}`` and ``{key:format}``; unknown placeholders stay verbatim.

    A list value gives its items, each formatted, joined by ``", "``.

    The filled text may hold at most ``max_length`` characters: a format width or precision
    above it is refused before formatting, so ``{owner:>200000000}`` cannot make the process
    allocate gigabytes.  Raises ``InvalidConfig`` when the limit is reached.
    """
    length = len(text)

    def too_long(what: str) -> InvalidConfig:
        return InvalidConfig(
            f"{what} would make the text longer than {max_length} characters "
            "(the limit is TaskPlannerApp.max_filled_length)"
        )

    def replace(match: re.Match[str]) -> str:
        nonlocal length
        key, spec = match.group(1), match.group(2)
        if key not in values:
            return match.group(0)
        # Compare lengths first: int() refuses numbers of more than 4300 digits.
        numbers = _NUMBER.findall(spec or "")
        if any(len(number) > 18 or int(number) > max_length for number in numbers):
            raise too_long(f"the placeholder {match.group(0)[:60]!r}")
        value = values[key]
        # A list (a repeated HTTP field, a JSON series value) reads as its items.
        items = value if isinstance(value, list | tuple) else [value]
        try:
            filled = ", ".join(format(item, spec) if spec else str(item) for item in items)
        except (ValueError, TypeError):
            return match.group(0)
        length += len(filled) - len(match.group(0))
        if length > max_length:
            raise too_long(f"filling in {{{key}}}")
        return filled

    return _PLACEHOLDER.sub(replace, text)


@dataclass
class RunContext:
    """What a job, action or series needs to know about the run it works for."""

    owner: str
    owner_root: Path
    task_id: int
    task_name: str
    run_id: int
    started: datetime
    output_dir: Path
    placeholders: dict[str, Any] = field(default_factory=dict)
    private_folders: tuple[Path, ...] = ()
    """The planner's own folders, which no component may reach (see ``files``)."""
    max_filled: int = DEFAULT_MAX_FILLED
    """The most characters a text may have once its placeholders are filled."""
    max_sets: int = DEFAULT_MAX_SETS
    """The most parameter sets a series may give; one more fails the series step."""
    state: dict[str, Any] = field(default_factory=dict)
    """The component's own small state (JSON values), kept with the task between runs: what
    a step leaves here is what the next run's step of the same component finds, once the run
    succeeded (a failed run keeps the state it started with)."""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("jupyter_taskplanner"))
    cancelled: threading.Event = field(default_factory=threading.Event)
    settings: Configurable | None = None
    """The component's ``settings_class`` instance, if it has one."""
    progress: Callable[[int, int, str], None] | None = None
    """Set by the worker: receives (done, total, message) progress reports of a job."""
    start_task: Callable[[int], Any] | None = None
    """Set by the engine for actions (which run in the server): start another task of the
    owner in the same chain; returns its run (``skipped``, with the reason as ``error``, when
    the chain suppressed it), or None when the server is stopping."""

    def values(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Placeholder values: the series set and parameters, ``extra``, then the built-ins.

        ``extra`` holds values of the component's own (``{filename}`` of a save action, say).
        The built-ins come last, so no parameter, series column or extra can change them.
        """
        return {
            **self.placeholders,
            **(extra or {}),
            "task.name": self.task_name,
            "task.id": self.task_id,
            "run.id": self.run_id,
            "run.started": self.started,
            "owner": self.owner,
        }

    def fill(self, value: Any, extra: dict[str, Any] | None = None) -> Any:
        """Fill placeholders in a text, or recursively in lists and dicts (see ``values``).

        Each text may have at most ``max_filled`` characters once filled, and all of them
        together may grow by at most ``max_filled``: a list of 100,000 ``"{x}"`` with a long
        ``x`` would otherwise fill gigabytes from a small config.
        """
        return self._fill(value, self.values(extra), [self.max_filled])

    def _fill(self, value: Any, values: dict[str, Any], room: list[int]) -> Any:
        if isinstance(value, str):
            filled = fill_placeholders(value, values, min(self.max_filled, len(value) + room[0]))
            room[0] -= max(0, len(filled) - len(value))
            return filled
        if isinstance(value, list):
            return [self._fill(item, values, room) for item in value]
        if isinstance(value, dict):
            return {key: self._fill(item, values, room) for key, item in value.items()}
        return value

    @property
    def files(self) -> OwnerFiles:
        """The containment rule for every file this run opens (see ``paths.OwnerFiles``)."""
        return OwnerFiles(self.owner_root, self.private_folders)

    def report_progress(self, done: int, total: int, message: str = "") -> None:
        """Tell the run record (and the UI) how far a long job has come."""
        if self.progress is not None:
            self.progress(done, total, message)

    def resolve_path(self, path: str, *, field_name: str = "path") -> Path:
        """The resolved absolute path of ``path`` (relative to the owner's root, placeholders
        filled); ``InvalidConfig`` when it leads outside the root or into the planner's own
        folders, symlinks followed."""
        return self.files.resolve(self.fill(path), field_name, shown=path)


class Job(Component):
    """Produces results.

    ``run`` executes in a worker process (a local subprocess or a Dask worker), never in the
    server: the component and its context are rebuilt there from JSON, so ``ctx.settings``
    and ``ctx.start_task`` are None in jobs.
    """

    kind: ClassVar[Kind] = "job"
    flavors: ClassVar[frozenset[Flavor]] = frozenset({"text"})

    def run(self, ctx: RunContext) -> list[Result]:
        """Do the work; write files into ``ctx.output_dir``; raise on failure."""
        raise NotImplementedError

    def inputs(self, ctx: RunContext) -> list[Path]:
        """The files and folders ``run`` needs, for workers that do not share the server's
        files (a Dask cluster): each file travels with the job, each folder is made there.

        Called in the server with the config's placeholders filled; return resolved
        absolute paths (``ctx.resolve_path``).  A file inside the owner's root lands at the
        same place under the worker's root; one outside (a snapshot) lands elsewhere and
        the config value naming it is changed to match.  Default: what the config's
        ``x-path`` fields name, where it exists.  Override for inputs no field names, such
        as a function's module.
        """
        found = []
        for dotted, kind in path_fields(self.config_schema):
            value = config_value(self.config, dotted)
            if kind in FILE_KINDS and isinstance(value, str) and value:
                path = ctx.resolve_path(value, field_name=dotted)
                if path.exists():
                    found.append(path)
        return found

    @classmethod
    def describe_extra(cls) -> dict[str, Any]:
        return {"flavors": sorted(cls.flavors)}


class Action(Component):
    """Does something with the results of all jobs of a run (or of one series set).

    ``run`` executes in a thread of the server process, once per run (or series set), after
    every job finished.  Raise to mark the action failed; the other actions still run.
    """

    kind: ClassVar[Kind] = "action"
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text", "none"})

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        """Act on ``results`` (already filtered to accepted flavors); raise on failure."""
        raise NotImplementedError

    @classmethod
    def describe_extra(cls) -> dict[str, Any]:
        return {"accepts": sorted(cls.accepts)}


class Series(Component):
    """A source of parameter sets; jobs and actions run once per set.

    ``sets`` executes in a worker process like a job (it may run user code).
    """

    kind: ClassVar[Kind] = "series"

    def sets(self, ctx: RunContext) -> Iterable[dict[str, Any]]:
        """Yield the parameter sets, each a dict of placeholder values."""
        raise NotImplementedError

    def preview(self, ctx: RunContext, count: int) -> Iterator[dict[str, Any]]:
        """The first ``count`` sets."""
        for index, item in enumerate(self.sets(ctx)):
            if index >= count:
                return
            yield item
