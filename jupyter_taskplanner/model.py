"""The task document: its JSON Schema, defaults, validation and secret redaction."""

from __future__ import annotations

import copy
import secrets
from pathlib import Path
from typing import Any

import jsonschema

from .components.base import is_builtin_placeholder
from .components.registry import Registry
from .errors import InvalidConfig, excerpt, schema_message
from .paths import OwnerFiles
from .permissions import ComponentRules
from .timezones import is_timezone

NAME_MAX = 200
COMPONENT_LISTS = {"triggers": "trigger", "jobs": "job", "actions": "action"}
READ_ONLY_FIELDS = ("id", "owner", "created", "updated", "revision")
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
}


def _component_schema(*, action: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "type": {"type": "string", "minLength": 1},
        "name": {"type": "string", "maxLength": NAME_MAX},
        "version": {"type": "integer", "minimum": 1},
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
        "timeout": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "overlap": {"enum": ["skip", "queue", "parallel"]},
        "misfire": {"enum": ["skip", "once", "all"]},
        "misfire_grace": {"type": ["number", "null"], "minimum": 0},
        "misfire_limit": {"type": "integer", "minimum": 1, "maximum": 1000},
        "retries": {"type": "integer", "minimum": 0, "maximum": 100},
        "retry_backoff": {"type": "number", "minimum": 0},
        "timezone": {"type": "string", "minLength": 1},
        "jitter": {"type": "number", "minimum": 0},
    },
}

TASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "id": {"type": "integer"},
        "owner": {"type": "string"},
        "created": {"type": "string"},
        "updated": {"type": "string"},
        "revision": {"type": "integer"},
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
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


def new_task_document(body: dict[str, Any], default_timezone: str) -> dict[str, Any]:
    """A complete writable task document from a create body, defaults filled in."""
    check_shape(body, require_name=True)
    document = {
        "name": body["name"],
        "description": body.get("description", ""),
        "enabled": body.get("enabled", True),
        "triggers": body.get("triggers", []),
        "jobs": body.get("jobs", []),
        "actions": body.get("actions", []),
        "series": body.get("series"),
        "settings": {**SETTINGS_DEFAULTS, "timezone": default_timezone},
    }
    document["settings"].update(body.get("settings") or {})
    return document


def check_shape(body: Any, *, require_name: bool) -> None:
    """Validate a request body against the task schema; the message names the field."""
    if not isinstance(body, dict):
        raise InvalidConfig("the request body must be a JSON object describing a task")
    if require_name and "name" not in body:
        raise InvalidConfig("name: a task needs a name", field="name")
    error = jsonschema.exceptions.best_match(_VALIDATOR.iter_errors(body))
    if error is None:
        return
    # jobs[0].colour, like the component paths the registry reports.
    path = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
    )
    path = path.removeprefix(".")
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema["properties"]))
        where = f"{path}." if path else ""
        field = f"{where}{unknown[0]}" if unknown else path
        allowed = ", ".join(sorted(error.schema["properties"]))
        raise InvalidConfig(f"{field}: unknown field (allowed: {allowed})", field=field)
    raise InvalidConfig(f"{path or 'body'}: {schema_message(error)}", field=path or None)


def validate_components(document: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """Check every component against its type's schema and the settings; return it migrated."""
    document = copy.deepcopy(document)
    for list_name, kind in COMPONENT_LISTS.items():
        document[list_name] = [
            _validate_entry(registry, kind, entry, f"{list_name}[{index}]")
            for index, entry in enumerate(document[list_name])
        ]
    for index, action in enumerate(document["actions"]):
        action.setdefault("when", "always")
        document["actions"][index] = action
    if document["series"] is not None:
        document["series"] = _validate_entry(registry, "series", document["series"], "series")
    timezone = document["settings"]["timezone"]
    if not is_timezone(timezone):
        raise InvalidConfig(
            f"settings.timezone: unknown timezone {timezone!r}; use an IANA name such as "
            "'Europe/Berlin' or 'UTC'",
            field="settings.timezone",
        )
    return document


def _validate_entry(
    registry: Registry, kind: str, entry: dict[str, Any], where: str
) -> dict[str, Any]:
    """One component entry checked by its type; an unknown type is reported at ``<where>.type``."""
    entry = {key: value for key, value in entry.items() if key != "secrets"}
    try:
        registry.get(kind, entry["type"])
    except InvalidConfig as exc:
        raise InvalidConfig(f"{where}.type: {exc.message}", field=f"{where}.type") from None
    return registry.validate(kind, entry, where)


def _components(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, position key, entry) for every component of a document."""
    found = [
        (kind, f"{list_name}[{index}]", entry)
        for list_name, kind in COMPONENT_LISTS.items()
        for index, entry in enumerate(document.get(list_name) or [])
    ]
    if document.get("series"):
        found.append(("series", "series", document["series"]))
    return found


def redact_secrets(document: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """A copy without ``writeOnly`` config fields; ``secrets`` lists the ones that are set."""
    document = copy.deepcopy(document)
    for kind, _, entry in _components(document):
        config = entry.get("config") or {}
        hidden = [name for name in registry.secret_fields(kind, entry["type"]) if name in config]
        for name in hidden:
            del config[name]
        if hidden:
            entry["secrets"] = hidden
    return document


def keep_secrets(new: dict[str, Any], stored: dict[str, Any], registry: Registry) -> None:
    """Carry stored secrets and credentials into an update that left them out."""
    old = {(kind, key): entry for kind, key, entry in _components(stored)}
    for kind, key, entry in _components(new):
        entry.pop("secrets", None)
        previous = old.get((kind, key))
        if previous is None or previous.get("type") != entry.get("type"):
            continue
        config = entry.setdefault("config", {})
        kept = [
            *registry.secret_fields(kind, entry["type"]),
            *registry.credential_fields(kind, entry["type"]),
        ]
        for name in kept:
            if name not in config and name in (previous.get("config") or {}):
                config[name] = previous["config"][name]


def drop_credentials(document: dict[str, Any], registry: Registry) -> None:
    """Remove every ``x-credential`` field (an export; a copy or import that gets new ones)."""
    for kind, _, entry in _components(document):
        config = entry.get("config")
        if isinstance(config, dict) and isinstance(entry.get("type"), str):
            for name in registry.credential_fields(kind, entry["type"]):
                config.pop(name, None)


def add_credentials(document: dict[str, Any], registry: Registry) -> None:
    """Give every ``x-credential`` field left out a new random value (before validation)."""
    for kind, _, entry in _components(document):
        if not isinstance(entry, dict) or not isinstance(entry.get("type"), str):
            continue
        config = entry.setdefault("config", {})
        if isinstance(config, dict):
            for name in registry.credential_fields(kind, entry["type"]):
                config.setdefault(name, secrets.token_urlsafe(24))


def component_classes(document: dict[str, Any], registry: Registry) -> list[tuple[str, type]]:
    """``(where, class)`` of every component of a validated document."""
    return [(key, registry.get(kind, entry["type"])) for kind, key, entry in _components(document)]


def check_access(
    document: dict[str, Any],
    registry: Registry,
    owner: str,
    rules: ComponentRules,
    files: OwnerFiles,
) -> None:
    """Refuse components the owner may not use and paths outside the owner's files.

    ``PermissionDenied`` (403) or ``InvalidConfig`` (400) names the component's field.
    """
    rules.check(owner, component_classes(document, registry))
    for kind, key, entry in _components(document):
        check_entry_paths(registry, kind, entry, key, files)


def check_entry_paths(
    registry: Registry, kind: str, entry: dict[str, Any], where: str, files: OwnerFiles
) -> None:
    """Refuse a validated entry's paths outside ``files`` (as saving does), at ``where``."""
    cls = registry.get(kind, entry["type"])
    try:
        cls.check_paths(entry.get("config") or {}, files, template=True)
    except InvalidConfig as exc:
        raise exc.within(f"{where}.config") from None


def freeze_components(
    document: dict[str, Any], registry: Registry, owner_root: Path, snapshot_dir: Path
) -> None:
    """Let every component fix what it needs at save time (e.g. snapshots of notebooks)."""
    for kind, key, entry in _components(document):
        cls = registry.get(kind, entry["type"])
        try:
            entry["config"] = cls.freeze(entry.get("config") or {}, owner_root, snapshot_dir)
        except InvalidConfig as exc:
            raise exc.within(f"{key}.config") from None


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
