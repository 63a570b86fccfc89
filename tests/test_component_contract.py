"""One contract suite run against every component type: built-ins and installed plugins.

The types come from the ``jupyter_taskplanner.components`` entry points, as the server loads
them, so an installed plugin is checked without listing it here.  Every type needs an example
config: the built-ins' are in ``EXAMPLES``; a plugin sets ``example_config`` on its class.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any, ClassVar

import jsonschema
import pytest

from jupyter_taskplanner.components.base import KINDS, Component, Job
from jupyter_taskplanner.components.registry import Registry

FLAVORS = {"file", "text", "none"}
TASK_LIST = {"trigger": "triggers", "job": "jobs", "action": "actions"}

EXAMPLES: dict[str, dict[str, Any]] = {
    "trigger.time": {
        "start_date": "2030-01-07",
        "time": "07:00",
        "repeat": "weekdays",
        "timezone": "Europe/Berlin",
    },
    "trigger.cron": {"expression": "30 9 * * mon-fri"},
    "trigger.interval": {"every": 15, "unit": "minutes", "start": "2030-01-01T09:00"},
    "trigger.file": {"path": "data/incoming", "pattern": "*.csv", "recursive": True},
    "trigger.after_task": {"task_id": 1, "on": "always"},
    "trigger.server_start": {"delay": 10},
    "trigger.http": {"token": "d2f1c7a9e4b34f0c8a61"},
    "job.notebook": {
        "path": "reports/report.ipynb",
        "parameters": {"region": "{region}"},
        "output_name": "{notebook_stem}-{region}",
        "formats": ["ipynb", "html"],
        "condition": {"expression": "len(df) > 0"},
    },
    "job.python": {"function": "reports.daily:build", "kwargs": {"day": "{run.started:%Y-%m-%d}"}},
    "job.command": {"program": "gzip", "args": ["-k", "data.csv"], "output_glob": "*.gz"},
    "job.script": {
        "path": "scripts/export.py",
        "args": ["--region", "{region}"],
        "stdout_result": True,
    },
    "action.email": {
        "to": "{email}",
        "cc": ["Reports <reports@example.org>"],
        "subject": "Report {region} {run.started:%Y-%m-%d}",
    },
    "action.save": {"folder": "reports", "name": "{stem}-{date}{suffix}", "overwrite": False},
    "action.webhook": {
        "url": "https://hooks.example.org/reports",
        "headers": {"X-Region": "{region}"},
        "secret": "webhook-signing-secret",
        "upload_files": True,
    },
    "action.next_task": {"task_ids": [2, 3]},
    "series.values": {"values": [{"region": "north", "email": "north@example.org"}]},
    "series.csv": {"path": "data/regions.csv", "delimiter": ";"},
    "series.json": {"path": "data/regions.jsonl"},
    "series.directory": {"path": "data/incoming", "pattern": "*.csv"},
    "series.sql": {"database": "data/customers.db", "query": "SELECT name, email FROM customers"},
    "series.python": {
        "function": "reports.customers:active_customers",
        "kwargs": {"region": "north"},
    },
}

REGISTRY = Registry.from_entry_points()
TYPES = [cls for kind in KINDS for cls in REGISTRY.of_kind(kind)]


def key(cls: type[Component]) -> str:
    return f"{cls.kind}.{cls.type_name}"


def example_for(cls: type[Component]) -> dict[str, Any]:
    """A copy of the type's example config; fails the test, saying what to add, without one."""
    example = cls.example_config if cls.example_config is not None else EXAMPLES.get(key(cls))
    if example is None:
        pytest.fail(
            f"{key(cls)} has no example config: set `example_config` (a small valid config) "
            f"on {cls.__module__}.{cls.__qualname__}, so this suite can check the type",
            pytrace=False,
        )
    return copy.deepcopy(example)


def secret_fields(cls: type[Component]) -> list[str]:
    """Top-level config fields the API never returns (``writeOnly``)."""
    properties = cls.config_schema.get("properties", {})
    return [name for name, spec in properties.items() if spec.get("writeOnly")]


SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "dependentSchemas")
SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "unevaluatedProperties",
    "propertyNames",
    "contains",
    "not",
    "if",
    "then",
    "else",
)


def schema_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every subschema of a schema (the root too) with its JSON pointer."""
    if not isinstance(node, dict):
        return
    yield path or "/", node
    for keyword in SCHEMA_MAPS:
        for name, value in (node.get(keyword) or {}).items():
            yield from schema_nodes(value, f"{path}/{keyword}/{name}")
    for keyword in SCHEMA_LISTS:
        for index, value in enumerate(node.get(keyword) or []):
            yield from schema_nodes(value, f"{path}/{keyword}/{index}")
    for keyword in SCHEMA_VALUES:
        yield from schema_nodes(node.get(keyword), f"{path}/{keyword}")


def validator(cls: type[Component]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        cls.config_schema, format_checker=jsonschema.FormatChecker()
    )


components = pytest.mark.parametrize("cls", TYPES, ids=key)


def test_the_registry_holds_every_built_in_and_only_known_examples():
    found = {key(cls) for cls in TYPES}
    assert set(EXAMPLES) <= found, "an example names a type that is not registered"
    assert {"trigger.time", "job.notebook", "action.email", "series.values"} <= found


@components
def test_identity(cls):
    assert cls.kind in KINDS
    for attribute in ("type_name", "title", "description"):
        value = getattr(cls, attribute, None)
        assert isinstance(value, str) and value.strip(), f"{key(cls)}: {attribute} is empty"
    assert REGISTRY.get(cls.kind, cls.type_name) is cls


@components
def test_config_schema_is_an_object_schema_with_titles(cls):
    schema = cls.config_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema.get("type") == "object", f"{key(cls)}: config_schema must be of type object"
    untitled = [
        f"{path}/properties/{name}"
        for path, node in schema_nodes(schema)
        if isinstance(node.get("properties"), dict)
        for name, spec in node["properties"].items()
        if not (isinstance(spec, dict) and spec.get("title"))
    ]
    assert untitled == [], f"{key(cls)}: the UI needs a title on every property"


@components
def test_describe_is_json(cls):
    described = cls.describe()
    assert json.loads(json.dumps(described)) == described
    assert (described["type"], described["kind"]) == (cls.type_name, cls.kind)
    assert described["schema"] == cls.config_schema


@components
def test_every_default_validates_against_its_own_schema(cls):
    check = validator(cls)
    wrong = {
        path: [error.message for error in check.evolve(schema=node).iter_errors(node["default"])]
        for path, node in schema_nodes(cls.config_schema)
        if "default" in node
    }
    assert {path: errors for path, errors in wrong.items() if errors} == {}


@components
def test_jobs_declare_flavors_and_actions_what_they_accept(cls):
    described = cls.describe()
    if cls.kind == "job":
        assert cls.flavors and set(cls.flavors) <= FLAVORS, f"{key(cls)}: flavors {cls.flavors}"
        assert described["flavors"] == sorted(cls.flavors)
    else:
        assert "flavors" not in described
    if cls.kind == "action":
        assert cls.accepts and set(cls.accepts) <= FLAVORS, f"{key(cls)}: accepts {cls.accepts}"
        assert described["accepts"] == sorted(cls.accepts)
    else:
        assert "accepts" not in described


@components
def test_example_config_validates_and_survives_json(cls):
    example = example_for(cls)
    errors = [error.message for error in validator(cls).iter_errors(example)]
    assert errors == [], f"{key(cls)}: the example config does not match the schema"
    assert json.loads(json.dumps(example)) == example
    # The registry's check is the one a save runs: schema plus the type's own checks.
    entry = REGISTRY.validate(cls.kind, {"type": cls.type_name, "config": example}, "example")
    assert entry["config"] == example
    assert entry["version"] == cls.config_version


@components
async def test_example_config_saves_through_the_api(cls, api, planner):
    example = example_for(cls)
    secrets = [name for name in secret_fields(cls) if name in example]
    public = {name: value for name, value in example.items() if name not in secrets}
    entry = {"type": cls.type_name, "name": "under test", "config": example}
    slot = TASK_LIST.get(cls.kind)
    # Disabled: none of its triggers may start a run while the test reads it back.
    body = {"name": f"contract {key(cls)}", "enabled": False}
    body.update({slot: [entry]} if slot else {"series": entry})
    alice = api("alice")

    listed = await alice("GET", "/components")
    assert listed.status == 200, listed
    # The server adds what this server asks of an owner to use the type.
    described = [
        {name: value for name, value in item.items() if name != "permissions"}
        for item in listed.body["components"]
    ]
    assert cls.describe() in described, f"the server does not list {key(cls)}"

    # Tasks the examples may name (after_task, next_task): ids 1 to 3 of alice's.
    for _ in range(3):
        assert (await alice("POST", "/tasks", {"name": "named", "enabled": False})).status == 201
    created = await alice("POST", "/tasks", body)
    assert created.status == 201, created
    read = await alice("GET", f"/tasks/{created.body['id']}")
    assert read.status == 200, read
    assert read.body == created.body
    saved = read.body[slot][0] if slot else read.body["series"]
    assert saved["type"] == cls.type_name
    assert saved["version"] == cls.config_version
    assert saved["config"] == public
    assert saved.get("secrets", []) == secrets
    for name in secrets:
        assert json.dumps(example[name]) not in json.dumps(read.body), f"{name} was returned"

    # A task read back can be sent back as is: the secrets it does not show stay stored.
    replaced = await alice(
        "PUT", f"/tasks/{read.body['id']}", read.body, headers={"If-Match": read.headers["ETag"]}
    )
    assert replaced.status == 200, replaced
    again = replaced.body[slot][0] if slot else replaced.body["series"]
    assert (again["config"], again.get("secrets", [])) == (public, secrets)
    stored = planner.store.get_task(read.body["id"], None)
    stored_entry = stored[slot][0] if slot else stored["series"]
    assert stored_entry["config"] == example


class Undocumented(Job):
    """A plugin-like job type whose author gave no example config."""

    type_name: ClassVar[str] = "undocumented"
    title: ClassVar[str] = "Undocumented"
    description: ClassVar[str] = "Has no example config."


def test_a_type_without_an_example_fails_and_says_what_to_add():
    with pytest.raises(pytest.fail.Exception, match=r"job\.undocumented has no example config"):
        example_for(Undocumented)

    class Documented(Undocumented):
        example_config: ClassVar[dict[str, Any] | None] = {"answer": 42}

    example = example_for(Documented)
    example["answer"] = 0  # a copy: a test cannot spoil the class's example
    assert Documented.example_config == {"answer": 42}
