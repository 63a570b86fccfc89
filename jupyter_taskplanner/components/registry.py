"""Discovery of component types through the ``jupyter_taskplanner.components`` entry points.

Each entry point is named ``<kind>.<type_name>`` (``job.notebook``, ``series.python``) and
points at the component class.  A plugin that fails to import is logged and skipped; two
classes claiming one kind and type name stop the server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any, Literal, overload

import jsonschema

from ..errors import InvalidConfig, combine, schema_errors, schema_message
from .base import ENTRY_POINT_GROUP, KINDS, Action, Component, Job, Series, Trigger

log = logging.getLogger(__name__)
_BRANCHES = ("allOf", "anyOf", "oneOf")


def integers_as_ints(schema: Any, value: Any, root: Any = None) -> Any:
    """``value`` (valid against ``schema``) with every number the schema types ``integer``
    as a Python ``int``.

    JSON Schema counts ``2.0`` as an integer, so validation lets it through; stored as a
    float it breaks what takes an int (``range(retries)``, a deque's length).  Follows
    properties, items, the branches of ``allOf``/``anyOf``/``oneOf`` and local ``$ref``s.
    """
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return value
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            target = target.get(part, {}) if isinstance(target, dict) else {}
        value = integers_as_ints(target, value, root)
    types = schema.get("type")
    wanted = types if isinstance(types, list) else [types]
    if (
        isinstance(value, float)
        and value.is_integer()
        and "integer" in wanted
        and "number" not in wanted
    ):
        return int(value)
    for keyword in _BRANCHES:
        for branch in schema.get(keyword) or ():
            value = integers_as_ints(branch, value, root)
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        return {
            name: integers_as_ints(properties.get(name, extra), item, root)
            for name, item in value.items()
        }
    if isinstance(value, list):
        prefix = schema.get("prefixItems") or []
        items = schema.get("items")
        return [
            integers_as_ints(prefix[index] if index < len(prefix) else items, item, root)
            for index, item in enumerate(value)
        ]
    return value


class Registry:
    """Component classes by kind and type name; built-ins and plugins alike."""

    def __init__(self, classes: Iterable[type[Component]] = ()) -> None:
        self._classes: dict[tuple[str, str], type[Component]] = {}
        for cls in classes:
            self.add(cls)

    @classmethod
    def from_entry_points(cls) -> Registry:
        """Load every class registered in the entry-point group; fail loudly on duplicates."""
        registry = cls()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                component = entry_point.load()
            except Exception:
                log.exception("cannot load component %s = %s", entry_point.name, entry_point.value)
                continue
            expected = f"{getattr(component, 'kind', '?')}.{getattr(component, 'type_name', '?')}"
            if entry_point.name != expected:
                raise TypeError(
                    f"entry point {entry_point.name!r} ({entry_point.value}) must be named "
                    f"'<kind>.<type_name>', here {expected!r}"
                )
            registry.add(component)
        return registry

    def add(self, cls: type[Component]) -> None:
        if cls.kind not in KINDS:
            raise TypeError(f"{cls.__qualname__}.kind must be one of {KINDS}")
        key = (cls.kind, cls.type_name)
        if key in self._classes and self._classes[key] is not cls:
            raise TypeError(
                f"two {cls.kind} types named {cls.type_name!r}: "
                f"{self._classes[key].__module__} and {cls.__module__}"
            )
        jsonschema.Draft202012Validator.check_schema(cls.config_schema)
        self._classes[key] = cls

    # A class is registered under its own ``kind``, which the base of each kind sets: the
    # classes of kind "action" are Actions, and so on.
    @overload
    def get(self, kind: Literal["trigger"], type_name: str) -> type[Trigger]: ...
    @overload
    def get(self, kind: Literal["job"], type_name: str) -> type[Job]: ...
    @overload
    def get(self, kind: Literal["action"], type_name: str) -> type[Action]: ...
    @overload
    def get(self, kind: Literal["series"], type_name: str) -> type[Series]: ...
    @overload
    def get(self, kind: str, type_name: str) -> type[Component]: ...
    def get(self, kind: str, type_name: str) -> type[Component]:
        try:
            return self._classes[(kind, type_name)]
        except KeyError:
            known = ", ".join(sorted(name for k, name in self._classes if k == kind)) or "none"
            raise InvalidConfig(f"unknown {kind} type {type_name!r} (available: {known})") from None

    @overload
    def of_kind(self, kind: Literal["trigger"]) -> list[type[Trigger]]: ...
    @overload
    def of_kind(self, kind: Literal["job"]) -> list[type[Job]]: ...
    @overload
    def of_kind(self, kind: Literal["action"]) -> list[type[Action]]: ...
    @overload
    def of_kind(self, kind: Literal["series"]) -> list[type[Series]]: ...
    @overload
    def of_kind(self, kind: str) -> list[type[Component]]: ...
    def of_kind(self, kind: str) -> Sequence[type[Component]]:
        return [cls for (k, _), cls in sorted(self._classes.items()) if k == kind]

    def describe(self) -> list[dict[str, Any]]:
        return [cls.describe() for _, cls in sorted(self._classes.items())]

    def entry_class(self, kind: str, entry: Mapping[str, Any], where: str) -> type[Component]:
        """The class of an entry's ``type``; ``InvalidConfig`` at ``<where>.type`` if unknown."""
        try:
            return self.get(kind, entry["type"])
        except InvalidConfig as exc:
            raise InvalidConfig(f"{where}.type: {exc.message}", field=f"{where}.type") from None

    def validate(self, kind: str, entry: Mapping[str, Any], where: str) -> dict[str, Any]:
        """Check one ``{type, name?, version?, config}`` entry; return it migrated and filled.

        ``where`` names the entry in messages, e.g. ``jobs[0]``.  The ``InvalidConfig``
        names the most relevant problem and holds every schema problem of the config in
        ``others``; ``check_config`` runs on a config that passed its schema.
        """
        cls = self.entry_class(kind, entry, where)
        config = cls.current_config(entry, where)
        validator = jsonschema.Draft202012Validator(
            cls.config_schema, format_checker=jsonschema.FormatChecker()
        )
        problems = []
        for error in schema_errors(validator, config):
            path = ".".join(str(part) for part in error.absolute_path)
            field = f"{where}.config" + (f".{path}" if path else "")
            problems.append(InvalidConfig(f"{field}: {schema_message(error)}", field=field))
        if problems:
            raise combine(problems)
        config = integers_as_ints(cls.config_schema, config)
        try:
            cls.check_config(config)
        except InvalidConfig as exc:
            raise exc.within(f"{where}.config") from None
        return {**entry, "config": config, "version": cls.config_version}

    @overload
    def instantiate(self, kind: Literal["trigger"], entry: Mapping[str, Any]) -> Trigger: ...
    @overload
    def instantiate(self, kind: Literal["job"], entry: Mapping[str, Any]) -> Job: ...
    @overload
    def instantiate(self, kind: Literal["action"], entry: Mapping[str, Any]) -> Action: ...
    @overload
    def instantiate(self, kind: Literal["series"], entry: Mapping[str, Any]) -> Series: ...
    @overload
    def instantiate(self, kind: str, entry: Mapping[str, Any]) -> Component: ...
    def instantiate(self, kind: str, entry: Mapping[str, Any]) -> Component:
        """The component of a stored entry; a config stored by an older version is migrated."""
        return self.get(kind, entry["type"]).from_entry(entry)

    def secret_fields(self, kind: str, type_name: str) -> list[str]:
        """Top-level config fields marked ``writeOnly`` in the type's schema."""
        return self._marked(kind, type_name, "writeOnly")

    def credential_fields(self, kind: str, type_name: str) -> list[str]:
        """Top-level config fields marked ``x-credential`` in the type's schema.

        A credential (an HTTP trigger's token) is shown to the task's owner but belongs to
        that one task: an export leaves it out, a copy or an import gets a new one, and a
        task saved without it gets one generated.
        """
        return self._marked(kind, type_name, "x-credential")

    def _marked(self, kind: str, type_name: str, keyword: str) -> list[str]:
        try:
            cls = self.get(kind, type_name)
        except InvalidConfig:
            return []
        properties = cls.config_schema.get("properties", {})
        return [name for name, spec in properties.items() if spec.get(keyword)]
