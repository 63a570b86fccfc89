"""The task document: its JSON Schema, defaults, validation and secret redaction."""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import jsonschema

from .components.base import Component, TaskLinks, is_builtin_placeholder
from .components.registry import Registry, integers_as_ints
from .errors import (
    PRINTABLE,
    InvalidConfig,
    PermissionDenied,
    TaskPlannerError,
    combine,
    excerpt,
    schema_errors,
    schema_message,
)
from .paths import OwnerFiles
from .permissions import ComponentRules
from .timezones import is_timezone
from .vocabulary import MAX_ID, MAX_SECONDS, TaskRecord

NAME_MAX = 200
COMPONENT_LISTS = {"triggers": "trigger", "jobs": "job", "actions": "action"}
ReadOnlyField = Literal["id", "owner", "created", "updated", "revision"]
WritableField = Literal["name", "description", "enabled", "triggers", "jobs", "actions", "series"]
READ_ONLY_FIELDS: tuple[ReadOnlyField, ...] = ("id", "owner", "created", "updated", "revision")
WRITABLE_FIELDS: tuple[WritableField, ...] = (
    "name",
    "description",
    "enabled",
    "triggers",
    "jobs",
    "actions",
    "series",
)
QUALIFICATIONS = ("always", "any_valid", "all_valid", "none_valid")

SETTINGS_DEFAULTS: dict[str, Any] = {
    "timeout": None,
    "overlap": "skip",
    "misfire": "once",
    "misfire_grace": None,
    "misfire_limit": 10,
    "retries": 0,
    "retry_backoff": 30,
    "timezone": "UTC",
    "jitter": 0,
    "resources": {},
}


def _component_schema(*, action: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"type": "string", "minLength": 1},
        "name": {"type": "string", "maxLength": NAME_MAX, "pattern": PRINTABLE},
        "version": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "config": {"type": "object"},
        # Returned by the API and ignored on input, so a task read back can be sent as is.
        "secrets": {"type": "array", "items": {"type": "string"}},
    }
    if action:
        properties["when"] = {"enum": list(QUALIFICATIONS)}
    return {
        "type": "object",
        "required": ["type"],
        "additionalProperties": False,
        "properties": properties,
    }


SETTINGS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
        "overlap": {"enum": ["skip", "queue", "parallel"]},
        "misfire": {"enum": ["skip", "once", "all"]},
        "misfire_grace": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_SECONDS},
        "misfire_limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "retries": {"type": "integer", "minimum": 0, "maximum": 100},
        "retry_backoff": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        "timezone": {"type": "string", "minLength": 1},
        "jitter": {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        "resources": {
            "type": "object",
            "additionalProperties": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e18},
            "maxProperties": 20,
        },
    },
}

TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "owner": {"type": "string"},
        "created": {"type": "string"},
        "updated": {"type": "string"},
        "revision": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX, "pattern": PRINTABLE},
        "description": {"type": "string", "maxLength": 10_000},
        "enabled": {"type": "boolean"},
        "triggers": {"type": "array", "items": _component_schema(), "maxItems": 50},
        "jobs": {"type": "array", "items": _component_schema(), "maxItems": 50},
        "actions": {"type": "array", "items": _component_schema(action=True), "maxItems": 50},
        "series": {"anyOf": [{"type": "null"}, _component_schema()]},
        "settings": SETTINGS_SCHEMA,
    },
}
_VALIDATOR = jsonschema.Draft202012Validator(TASK_SCHEMA)
_COMPONENT_KEY = re.compile(r"[^.\[]*(?:\[\d+\])?")
"""The start of a field that names its component: ``jobs[0]`` of ``jobs[0].config.path``."""


@dataclass(frozen=True)
class SaveContext:
    """What saving a task checks its body against, besides the body: the owner's world."""

    registry: Registry
    owner: str
    rules: ComponentRules
    files: OwnerFiles
    snapshots: Path
    """The folder for input snapshots (``Component.freeze``)."""
    default_timezone: str = "UTC"
    links: TaskLinks | None = None
    """The other tasks components may name (``Component.link``); None: no task names any."""
    owner_saves: bool = True
    """Whether the owner saves the task (False: an admin edits another user's task, who
    keeps the owner's secrets only for components whose other settings stay as stored)."""


def prepare(
    body: Any,
    context: SaveContext,
    *,
    stored: TaskRecord | None = None,
    partial: bool = False,
    new_credentials: bool = False,
) -> dict[str, Any]:
    """The validated, frozen document to store for a request body, every problem found at once.

    ``stored`` is the task an update replaces (``partial``: merges into, a PATCH);
    ``new_credentials`` is for a copy or an import, which must not reuse another task's
    tokens.  One pass, each check once: the task schema, read-only fields, then per
    component its type, config (migration, schema, ``check_config``), the owner's
    permission and paths, then the timezone.  A component with a malformed entry or an
    unknown type is not checked further.  Only a body without problems is frozen (which may
    write snapshots).  Raises ``combine`` of all problems: a ``PermissionDenied`` (403) when
    permissions are all that is wrong, else an ``InvalidConfig`` (400) listing both kinds.
    """
    if not isinstance(body, dict):
        raise InvalidConfig("the request body must be a JSON object describing a task")
    problems: list[TaskPlannerError] = shape_problems(body, require_name=not partial)
    if stored:
        for field in READ_ONLY_FIELDS:
            if field in body and body[field] != stored[field] and field != "revision":
                problems.append(InvalidConfig(f"{field}: cannot be changed", field=field))
    # A component whose entry (or list) breaks the schema is not checked further.
    malformed = {_component_key(problem.field) for problem in problems if problem.field}
    document: dict[str, Any] = integers_as_ints(
        TASK_SCHEMA, _document(body, stored, partial, context.default_timezone)
    )
    previous = {key: entry for _, key, entry in _components(stored or {})}
    for kind, key, entry in _components(document):
        if malformed.isdisjoint((key, key.partition("[")[0])):
            checked = _checked_entry(
                kind, key, entry, context, previous.get(key), new_credentials, problems
            )
            # In place: the entry is the document's own copy.
            entry.clear()
            entry.update(checked)
    timezone = document["settings"].get("timezone")
    if isinstance(timezone, str) and timezone and not is_timezone(timezone):
        problems.append(
            InvalidConfig(
                f"settings.timezone: unknown timezone {timezone!r}; use an IANA name such as "
                "'Europe/Berlin' or 'UTC'",
                field="settings.timezone",
            )
        )
    if not problems:
        problems = _freeze(document, context)
    if problems:
        raise combine(problems)
    return document


def _component_key(field: str) -> str:
    """The start of ``field`` that names its component (``jobs[0]``), possibly empty."""
    match = _COMPONENT_KEY.match(field)
    assert match is not None  # the pattern matches at the start of every text
    return match[0]


def shape_problems(body: dict[str, Any], *, require_name: bool) -> list[TaskPlannerError]:
    """Every way a request body breaks the task schema, the most relevant first, by field."""
    problems: list[TaskPlannerError] = []
    if require_name and "name" not in body:
        problems.append(InvalidConfig("name: a task needs a name", field="name"))
    for error in schema_errors(_VALIDATOR, body):
        # jobs[0].colour, like the component paths the registry reports.
        path = "".join(
            f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        ).removeprefix(".")
        # The types allow a boolean or unset schema and instance; a schema error of a task
        # body always has an object schema, and an additionalProperties error an object.
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        unknown = (
            error.validator == "additionalProperties"
            and isinstance(error.instance, dict)
            and set(error.instance) - set(known)
        )
        if not unknown:
            problems.append(
                InvalidConfig(f"{path or 'body'}: {schema_message(error)}", field=path or None)
            )
            continue
        allowed = ", ".join(sorted(known))
        for name in sorted(unknown):
            field = f"{path}.{name}" if path else name
            problems.append(
                InvalidConfig(f"{field}: unknown field (allowed: {allowed})", field=field)
            )
    return problems


def _document(
    body: dict[str, Any], stored: TaskRecord | None, partial: bool, default_timezone: str
) -> dict[str, Any]:
    """The complete writable document a body asks for: defaults (or, merged, ``stored``).

    Parts of the body of the wrong type are left out; their problems are reported already.
    """
    if partial and stored is not None:
        document: dict[str, Any] = {field: stored[field] for field in WRITABLE_FIELDS}
        document["settings"] = dict(stored["settings"])
    else:
        timezone = stored["settings"]["timezone"] if stored else default_timezone
        document = {
            "name": None,
            "description": "",
            "enabled": True,
            "triggers": [],
            "jobs": [],
            "actions": [],
            "series": None,
            "settings": {**SETTINGS_DEFAULTS, "timezone": timezone},
        }
    document.update({field: body[field] for field in WRITABLE_FIELDS if field in body})
    document = copy.deepcopy(document)
    for list_name in COMPONENT_LISTS:
        if not isinstance(document[list_name], list):
            document[list_name] = []
    if not isinstance(document["series"], dict):
        document["series"] = None
    if isinstance(body.get("settings"), dict):
        document["settings"].update(copy.deepcopy(body["settings"]))
    return document


def _checked_entry(
    kind: str,
    key: str,
    entry: dict[str, Any],
    context: SaveContext,
    previous: dict[str, Any] | None,
    new_credentials: bool,
    problems: list[TaskPlannerError],
) -> dict[str, Any]:
    """One well-formed component entry, validated and migrated; its problems go to ``problems``.

    An unknown type ends its checks; a missing permission does not.
    """
    registry = context.registry
    entry = _with_credentials(
        registry, kind, entry, previous, new_credentials, owner_saves=context.owner_saves
    )
    try:
        cls = registry.entry_class(kind, entry, key)
    except InvalidConfig as exc:
        problems.append(exc)
        return entry
    try:
        context.rules.check(context.owner, [(key, cls)])
    except PermissionDenied as exc:
        problems.append(exc)
    try:
        entry = registry.validate(kind, entry, key)
        if kind == "action":
            entry.setdefault("when", "always")
        check_entry_paths(registry, kind, entry, key, context.files)
        if context.links is not None:
            try:
                entry["config"] = cls.link(entry.get("config") or {}, context.links)
            except InvalidConfig as exc:
                raise exc.within(f"{key}.config") from None
    except InvalidConfig as exc:
        problems.append(exc)
    return entry


def _with_credentials(
    registry: Registry,
    kind: str,
    entry: dict[str, Any],
    previous: dict[str, Any] | None,
    new_credentials: bool,
    *,
    owner_saves: bool = True,
) -> dict[str, Any]:
    """An entry as given, its secrets and credentials settled (``secrets`` is output only).

    An update that leaves out a secret or credential keeps the stored one (same position,
    same type); a copy or import drops the credentials it was given; each credential still
    missing gets a new random value.  Saved by someone other than the owner (an admin), a
    component keeps the owner's secrets only with its other settings as stored: a changed
    host or URL never receives a password it was not given.
    """
    config = dict(entry.get("config") or {})
    credentials = registry.credential_fields(kind, entry["type"])
    secret_names = registry.secret_fields(kind, entry["type"])
    if new_credentials:
        for name in credentials:
            config.pop(name, None)
    if previous is not None and previous.get("type") == entry["type"]:
        old = previous.get("config") or {}
        kept = list(credentials)
        if owner_saves or _without(config, secret_names) == _without(old, secret_names):
            kept += secret_names
        for name in kept:
            if name not in config and name in old:
                config[name] = old[name]
    for name in credentials:
        config.setdefault(name, secrets.token_urlsafe(24))
    return {**{k: v for k, v in entry.items() if k != "secrets"}, "config": config}


def _without(config: Mapping[str, Any], names: list[str]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in names}


def _freeze(document: dict[str, Any], context: SaveContext) -> list[TaskPlannerError]:
    """The problems of letting each component fix what it needs at save time (snapshots)."""
    problems: list[TaskPlannerError] = []
    for kind, key, entry in _components(document):
        cls = context.registry.get(kind, entry["type"])
        try:
            entry["config"] = cls.freeze(entry["config"], context.files.root, context.snapshots)
        except InvalidConfig as exc:
            problems.append(exc.within(f"{key}.config"))
    return problems


def _components(document: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, position key, entry) for every component of a document."""
    found = [
        (kind, f"{list_name}[{index}]", entry)
        for list_name, kind in COMPONENT_LISTS.items()
        for index, entry in enumerate(document.get(list_name) or [])
    ]
    if document.get("series"):
        found.append(("series", "series", document["series"]))
    return found


def redact_secrets(document: TaskRecord, registry: Registry) -> TaskRecord:
    """A copy without ``writeOnly`` config fields; ``secrets`` lists the ones that are set.

    The task, its lists, settings, components and their configs are new objects (callers may
    change them); values inside a config are shared with ``document``.  Not a deep copy: a
    page of tasks is redacted on every listing.
    """
    copied: dict[str, Any] = dict(document)
    if isinstance(copied.get("settings"), dict):
        copied["settings"] = dict(copied["settings"])
    for list_name, kind in COMPONENT_LISTS.items():
        if isinstance(copied.get(list_name), list):
            copied[list_name] = [_redacted(kind, entry, registry) for entry in copied[list_name]]
    if copied.get("series"):
        copied["series"] = _redacted("series", copied["series"], registry)
    # The same fields as ``document``, each a copy of its own.
    return cast(TaskRecord, copied)


def _redacted(kind: str, entry: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """A copy of one component entry without its secret config fields."""
    redacted = dict(entry)
    if "config" not in entry:
        return redacted
    config = redacted["config"] = dict(entry["config"] or {})
    hidden = [name for name in registry.secret_fields(kind, entry["type"]) if name in config]
    for name in hidden:
        del config[name]
    if hidden:
        redacted["secrets"] = hidden
    return redacted


def drop_credentials(document: TaskRecord, registry: Registry) -> None:
    """Remove every ``x-credential`` field from a document to export."""
    for kind, _, entry in _components(document):
        for name in registry.credential_fields(kind, entry["type"]):
            (entry.get("config") or {}).pop(name, None)


def component_classes(
    document: Mapping[str, Any], registry: Registry
) -> list[tuple[str, type[Component]]]:
    """``(where, class)`` of every component of a validated document."""
    return [(key, registry.get(kind, entry["type"])) for kind, key, entry in _components(document)]


def check_entry_paths(
    registry: Registry, kind: str, entry: dict[str, Any], where: str, files: OwnerFiles
) -> None:
    """Refuse a validated entry's paths outside ``files`` (as saving does), at ``where``."""
    cls = registry.get(kind, entry["type"])
    try:
        cls.check_paths(entry.get("config") or {}, files, template=True)
    except InvalidConfig as exc:
        raise exc.within(f"{where}.config") from None


def check_parameters(parameters: Any, field: str = "parameters") -> dict[str, Any]:
    """Placeholder values a caller gives a run: an object whose keys are not built-ins.

    ``owner``, ``task.*``, ``run.*``, ``job.*`` and ``trigger.*`` belong to the planner, so
    no caller (an API client, the query of an HTTP trigger) can make a run lie about them.
    """
    if not isinstance(parameters, dict):
        raise InvalidConfig(f"{field}: must be an object", field=field)
    for name in parameters:
        if is_builtin_placeholder(name):
            raise InvalidConfig(
                f"{field}: {excerpt(name)} is a built-in placeholder, which a run's caller "
                "cannot set; choose another name",
                field=f"{field}.{name[:80]}",
            )
    return parameters
