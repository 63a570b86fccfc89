"""The OpenAPI 3.1 document of the REST API, built from a template and the planner's definitions.

``openapi_template.json`` holds what is written by hand: paths, parameters, answers and
descriptions. What the planner defines elsewhere is derived, each from one source: the status
enums from ``vocabulary``'s enums, the listings' sort keys from the store's, the run and step
schemas from its TypedDicts, the task, component and settings schemas from
``model.TASK_SCHEMA``, ``SETTINGS_SCHEMA`` and ``SETTINGS_DEFAULTS``, the version from the
package. For a derived schema the template only adds annotations (descriptions, formats,
bounds, defaults); restating a keyword the source sets is an error, so the two cannot disagree.

``python -m jupyter_taskplanner.openapi`` writes ``openapi.json`` beside this module, which
the server serves; a test fails while that file differs from what this module builds.
"""

from __future__ import annotations

import copy
import json
import types
from enum import StrEnum
from pathlib import Path
from typing import Any, NotRequired, Union, get_args, get_origin, get_type_hints

from . import __version__
from .model import (
    COMPONENT_LISTS,
    READ_ONLY_FIELDS,
    SETTINGS_DEFAULTS,
    SETTINGS_SCHEMA,
    TASK_SCHEMA,
)
from .store import RUN_SORTS, TASK_SORTS, sort_keys
from .vocabulary import RunDetail, RunRecord, RunStatus, StepKind, StepRecord, StepStatus

HERE = Path(__file__).parent
TEMPLATE = HERE / "openapi_template.json"
DOCUMENT = HERE / "openapi.json"
REGENERATE = "python -m jupyter_taskplanner.openapi"
SCHEMAS = "#/components/schemas/"

ENUMS: tuple[type[StrEnum], ...] = (RunStatus, StepStatus, StepKind)
"""Each becomes a string schema of its name, which every field of that type refers to."""
SORTS: dict[str, tuple[dict[str, tuple[str, bool]], str]] = {
    "TaskSort": (TASK_SORTS, "id"),
    "RunSort": (RUN_SORTS, "-id"),
}
"""Schema name -> the store's orders a listing's ``sort`` may name, and its default."""
RECORDS: dict[str, type] = {"Run": RunRecord, "RunStep": StepRecord, "RunDetail": RunDetail}
"""Schema name -> the TypedDict it is built from."""
JSON_TYPES: dict[type, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}

COMPONENTS = {
    field: kind.title() for field, kind in {**COMPONENT_LISTS, "series": "series"}.items()
}
"""Task field -> the schema of its components (``Trigger``; ``TriggerOut`` as returned)."""
FILLED_IN = ("version", "config")
"""Component fields a returned task always has: saving fills them in (and actions' ``when``)."""
_FIELDS = tuple(TASK_SCHEMA["properties"])
_EXPORTED = tuple(
    name for name in _FIELDS if name not in READ_ONLY_FIELDS or name in ("id", "revision", "owner")
)
TASK_VARIANTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "Task": (_FIELDS, _FIELDS, "Out"),
    "TaskInput": (_FIELDS, ("name",), ""),
    "TaskPatch": (_FIELDS, (), ""),
    "TaskImport": (_FIELDS, ("name",), ""),
    "ExportedTask": (_EXPORTED, _EXPORTED, ""),
}
"""Schema name -> (its fields, the required ones, the suffix of its component schemas)."""
_SET_BY_THE_SERVER = ("id", "owner", "created", "updated")
READ_ONLY: dict[str, tuple[str, ...]] = {
    "Task": _SET_BY_THE_SERVER,
    "TaskInput": _SET_BY_THE_SERVER,
    "TaskPatch": _SET_BY_THE_SERVER,
    "TaskImport": ("created", "updated"),
}
"""Schema name -> its ``readOnly`` fields: returned by the server, so a task read back can
be sent as is, but never set by a request (a changed one is a 400).  ``revision`` is not
among them: sent back, it is the revision an update expects.  An import's ``id`` and
``owner`` are input: they choose the task to update and the owner of a new one."""
NOTES_FROM = {
    **{name: "TaskImport" for name in TASK_VARIANTS if name != "TaskImport"},
    **{f"{name}Out": name for name in COMPONENTS.values()},
    "RunDetail": "Run",
}
"""Schema name -> the schema whose template annotations it shares (its own ones win)."""


def build() -> dict[str, Any]:
    """The OpenAPI document: the template with every derived schema filled in."""
    document: dict[str, Any] = json.loads(TEMPLATE.read_text(encoding="utf-8"))
    document["info"]["version"] = __version__
    template = document["components"]["schemas"]
    schemas = dict(template)
    for name, schema in derived_schemas().items():
        schemas[name] = annotate(schema, _notes(template, name, schema), f"schemas.{name}")
    document["components"]["schemas"] = dict(sorted(schemas.items()))
    for item in document["paths"].values():
        for method, operation in item.items():
            if method in OPERATIONS:
                for code, response in ANY_REQUEST.items():
                    operation["responses"].setdefault(code, {"$ref": f"{RESPONSES}{response}"})
    return document


OPERATIONS = ("get", "put", "post", "delete", "patch")
RESPONSES = "#/components/responses/"
ANY_REQUEST = {"413": "TooLarge", "503": "ShuttingDown"}
"""Answers the handlers' base gives any request, whatever the operation: a body over
``TaskPlannerApp.max_body_bytes`` (any method), and the planner shutting down (every call
that reaches the database)."""


def render() -> str:
    """The document as ``openapi.json`` holds it."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def derived_schemas() -> dict[str, dict[str, Any]]:
    """Every schema built from the planner's definitions, before the template's annotations."""
    schemas: dict[str, dict[str, Any]] = {
        cls.__name__: {"type": "string", "enum": [m.value for m in cls]} for cls in ENUMS
    }
    schemas |= {
        name: {"type": "string", "enum": sort_keys(sorts), "default": default}
        for name, (sorts, default) in SORTS.items()
    }
    schemas |= {name: record_schema(record) for name, record in RECORDS.items()}
    for field, name in COMPONENTS.items():
        spec = TASK_SCHEMA["properties"][field]
        source = spec.get("items") or next(s for s in spec["anyOf"] if s.get("type") != "null")
        schemas[name] = _typed_enums(copy.deepcopy(source))
        returned = copy.deepcopy(schemas[name])
        returned["required"] += [*FILLED_IN, *(["when"] if "when" in source["properties"] else [])]
        schemas[f"{name}Out"] = returned
    settings = _typed_enums(copy.deepcopy(SETTINGS_SCHEMA))
    for name, spec in settings["properties"].items():
        spec["default"] = SETTINGS_DEFAULTS[name]
    schemas["Settings"] = settings
    for name, (fields, required, suffix) in TASK_VARIANTS.items():
        schemas[name] = {
            "type": "object",
            "additionalProperties": False,
            **({"required": list(required)} if required else {}),
            "properties": {field: _task_field(field, suffix) for field in fields},
        }
        for field in READ_ONLY.get(name, ()):
            schemas[name]["properties"][field]["readOnly"] = True
    return schemas


def record_schema(record: type) -> dict[str, Any]:
    """The schema of a TypedDict record: every field, the required ones, nothing else."""
    # include_extras keeps NotRequired, which __required_keys__ misses when annotations are
    # strings (postponed evaluation, as in vocabulary.py).
    hints = get_type_hints(record, include_extras=True)
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [name for name, hint in hints.items() if get_origin(hint) is not NotRequired],
        "properties": {name: type_schema(hint) for name, hint in hints.items()},
    }


def type_schema(hint: Any) -> dict[str, Any]:
    """The JSON Schema of a record field's type annotation."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is NotRequired:
        return type_schema(args[0])
    if origin in (Union, types.UnionType):
        if len(args) != 2 or type(None) not in args:
            raise TypeError(f"a record field may be of one type or None, not {hint!r}")
        schema = type_schema(next(arg for arg in args if arg is not type(None)))
        if isinstance(schema.get("type"), str):
            return {**schema, "type": [schema["type"], "null"]}
        return {"anyOf": [schema, {"type": "null"}]}
    if origin is list:
        return {"type": "array", "items": type_schema(args[0])}
    if origin is dict:
        return {"type": "object"}
    if hint in ENUMS:
        return {"$ref": f"{SCHEMAS}{hint.__name__}"}
    if hint in RECORDS.values():
        return {"$ref": f"{SCHEMAS}{next(n for n, r in RECORDS.items() if r is hint)}"}
    if hint in JSON_TYPES:
        return {"type": JSON_TYPES[hint]}
    raise TypeError(f"no JSON Schema for the record field type {hint!r}")


def annotate(schema: dict[str, Any], notes: dict[str, Any], where: str) -> dict[str, Any]:
    """``schema`` with the template's ``notes`` added; a keyword set by both is an error."""
    out = dict(schema)
    for key, value in notes.items():
        if key == "properties":
            properties = out["properties"] = dict(out.get("properties", {}))
            for name, note in value.items():
                if name not in properties:
                    raise ValueError(
                        f"{where}.properties.{name}: {TEMPLATE.name} describes a field that "
                        "the schema's source does not have"
                    )
                properties[name] = annotate(properties[name], note, f"{where}.properties.{name}")
        elif key in out:
            raise ValueError(
                f"{where}.{key}: derived from the planner's definitions; remove it from "
                f"{TEMPLATE.name}"
            )
        else:
            out[key] = value
    return out


def _notes(template: dict[str, Any], name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The template's annotations of a derived schema, with those it shares (``NOTES_FROM``)."""
    base = copy.deepcopy(template.get(NOTES_FROM.get(name, ""), {}))
    own = copy.deepcopy(template.get(name, {}))
    fields = schema.get("properties", {})
    properties = {
        field: note for field, note in base.pop("properties", {}).items() if field in fields
    }
    for field, note in own.pop("properties", {}).items():
        properties[field] = {**properties.get(field, {}), **note}
    return {**base, **own, **({"properties": properties} if properties else {})}


def _task_field(field: str, suffix: str) -> dict[str, Any]:
    """A task field's schema from ``TASK_SCHEMA``, components and settings by reference."""
    if field == "settings":
        return {"$ref": f"{SCHEMAS}Settings"}
    spec: dict[str, Any] = copy.deepcopy(TASK_SCHEMA["properties"][field])
    if field in COMPONENTS:
        ref = {"$ref": f"{SCHEMAS}{COMPONENTS[field]}{suffix}"}
        if "items" in spec:
            spec["items"] = ref
        else:
            spec["anyOf"] = [s if s.get("type") == "null" else ref for s in spec["anyOf"]]
    return spec


def _typed_enums(node: Any) -> Any:
    """Give enums of strings ``"type": "string"`` (the model leaves it out), for client tools."""
    if isinstance(node, list):
        return [_typed_enums(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _typed_enums(value) for key, value in node.items()}
    if "type" not in out and all(isinstance(value, str) for value in out.get("enum", [None])):
        return {"type": "string", **out}
    return out


def main() -> None:
    """Write ``openapi.json`` (``python -m jupyter_taskplanner.openapi``)."""
    DOCUMENT.write_text(render(), encoding="utf-8")
    print(f"wrote {DOCUMENT}")


if __name__ == "__main__":
    main()
