"""One contract suite run against every component type: built-ins and installed plugins.

The types come from the ``jupyter_taskplanner.components`` entry points, as the server loads
them, so an installed plugin is checked without listing it here.  Every type needs an example
config: the built-ins' are in ``EXAMPLES``; a plugin sets ``example_config`` on its class.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from jupyter_taskplanner.components.base import KINDS, Component, Job
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.paths import OwnerFiles, config_value, path_fields
from jupyter_taskplanner.testing import wait_for_run

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
    stored = await planner.db.call(planner.store.get_task, read.body["id"], None)
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


# -- containment: every path-like field of every component ------------------------------------
#
# The fields come from the schemas' "x-path" markers, so a new component (or a new field) is
# attacked by default; a field that looks like a path or URL without the marker fails
# ``test_path_and_url_fields_are_marked``.

PATH_LIKE = re.compile(r"(path|folder|file|dir|url|database)s?$")
SECRET = "card 4111-1111-1111-1111"
CONTAINED = """
import pathlib

def file():
    pathlib.Path("made.csv").write_text("region\\nnorth\\n")
    return pathlib.Path("made.csv")

def text():
    return "made"

def none():
    return None
"""
"""The jobs that give an action under test what it accepts."""
FILE_ATTACKS = (
    "../bob/secret.csv",
    "../../../../../../etc/passwd",
    "inside/../../bob/secret.csv",
    "/etc/passwd",
    "/",
    "etc_link",
    "etc_link/passwd",
    "bob_link",
    "bob_link/secret.csv",
    "{name}/../../bob/secret.csv",
    "{name}/../..",
)
GLOB_ATTACKS = ("../*", "../bob/*", "/etc/*", "a/../../*", "{name}/../../*", "..\\bob\\*")
URL_ATTACKS = (
    "file:///etc/passwd",
    "FILE://localhost/etc/passwd",
    "local:///etc/passwd",
    "simplecache::file:///etc/passwd",
    "sqlite:////etc/passwd",
    "sqlite:///../bob/secret.db",
)
ATTACKS = {"file": FILE_ATTACKS, "folder": FILE_ATTACKS, "path": FILE_ATTACKS}
ATTACKS |= {"glob": GLOB_ATTACKS, "url": URL_ATTACKS}
BENIGN = {"file": "inside/data.csv", "folder": "inside", "path": "inside", "glob": "*.csv"}
# A parameter that fills a placeholder with a climb, at run time, for each kind.
CLIMBS: dict[str, tuple[str, dict[str, str]]] = {
    "file": ("{climb}/secret.csv", {"climb": "../bob"}),
    "folder": ("{climb}", {"climb": "../bob"}),
    "path": ("{climb}", {"climb": "/etc"}),
    "glob": ("{climb}/*", {"climb": "../bob"}),
    "url": ("{scheme}:///etc/passwd", {"scheme": "file"}),
}
PATH_CASES = [
    pytest.param(cls, dotted, kind, id=f"{key(cls)}.{dotted}")
    for cls in TYPES
    for dotted, kind in path_fields(cls.config_schema)
]


def set_field(config: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        config = config.setdefault(part, {})
    config[last] = value


def field_schema(cls: type[Component], dotted: str) -> dict[str, Any]:
    node: dict[str, Any] = cls.config_schema
    for part in dotted.split("."):
        node = node["properties"][part]
    return node


def with_value(cls: type[Component], dotted: str, value: str) -> list[dict[str, Any]]:
    """Configs with ``dotted`` set to ``value``: the example's, then the example without its
    other optional path fields (for types taking one of several, such as database or url)."""
    required = set(cls.config_schema.get("required", []))
    variants = []
    for drop_others in (False, True):
        config = example_for(cls)
        if drop_others:
            for other, _ in path_fields(cls.config_schema):
                if other != dotted and other.split(".")[0] not in required:
                    config.pop(other.split(".")[0], None)
        is_list = field_schema(cls, dotted).get("type") == "array"
        set_field(config, dotted, [value] if is_list else value)
        variants.append(config)
    return variants


def where(cls: type[Component]) -> str:
    return f"{TASK_LIST[cls.kind]}[0]" if cls.kind in TASK_LIST else "series"


def task_body(cls: type[Component], config: dict[str, Any]) -> dict[str, Any]:
    """A disabled task with the component; an action gets a job giving what it accepts."""
    entry = {"type": cls.type_name, "name": "contained", "config": config}
    slot = TASK_LIST.get(cls.kind)
    body = {
        "name": "contained",
        "enabled": False,
        **({slot: [entry]} if slot else {"series": entry}),
    }
    if cls.kind == "action":
        flavor = next(flavor for flavor in ("file", "text", "none") if flavor in cls.accepts)
        body["jobs"] = [{"type": "python", "config": {"function": f"tp_contained:{flavor}"}}]
    return body


def base_config(cls: type[Component], dotted: str, kind: str, files: OwnerFiles) -> Any:
    """The variant of the type's example that is valid with a harmless value in ``dotted``
    (the example's own value for a URL): the attacks change only that field."""
    benign = config_value(example_for(cls), dotted) or BENIGN.get(kind)
    if isinstance(benign, list):  # a list of URLs
        benign = benign[0]
    for config in with_value(cls, dotted, benign or "https://example.org/x"):
        try:
            entry = REGISTRY.validate(cls.kind, {"type": cls.type_name, "config": config}, "x")
            cls.check_paths(entry["config"], files, template=True)
        except InvalidConfig:
            continue
        return benign, config
    if kind == "url" and benign is None:  # no harmless URL known: the example without others
        return None, with_value(cls, dotted, "")[1]
    pytest.fail(f"{key(cls)}: no variant of the example takes {benign!r} in {dotted}")


class TestContainment:
    """Every path-like field of every type, attacked when a task is saved and at run time."""

    @pytest.fixture
    def homes(self, tmp_path: Path) -> Path:
        homes = tmp_path / "homes"
        for user in ("alice", "bob"):
            (homes / user / "inside").mkdir(parents=True)
        (homes / "bob" / "secret.csv").write_text(f"card\n{SECRET}\n")
        (homes / "alice" / "tp_contained.py").write_text(CONTAINED)
        (homes / "alice" / "etc_link").symlink_to("/etc")
        (homes / "alice" / "bob_link").symlink_to(homes / "bob")
        return homes

    @pytest.fixture
    def planner_settings(self, homes: Path) -> dict[str, Any]:
        return {"owner_root_template": str(homes / "{owner}")}

    @pytest.fixture
    def files(self, homes: Path) -> OwnerFiles:
        return OwnerFiles(homes / "alice")

    def test_path_and_url_fields_are_marked(self) -> None:
        unmarked = [
            f"{key(cls)}.{name}"
            for cls in TYPES
            for name, spec in cls.config_schema.get("properties", {}).items()
            if PATH_LIKE.search(name)
            and "x-path" not in spec
            and not spec.get("readOnly")
            and (spec.get("type") == "string" or spec.get("items", {}).get("type") == "string")
        ]
        assert unmarked == [], "mark these with x-path (see docs/plugins.md, Paths)"
        assert len(PATH_CASES) >= 20, PATH_CASES

    @pytest.mark.parametrize(("cls", "dotted", "kind"), PATH_CASES)
    async def test_attacks_are_refused_when_saved(self, cls, dotted, kind, api, files):
        alice = api("alice")
        field = f"{where(cls)}.config.{dotted}"
        benign, config = base_config(cls, dotted, kind, files)
        if benign is not None:
            saved = await alice("POST", "/tasks", task_body(cls, config))
            assert saved.status == 201, (field, benign, saved)
        for attack in ATTACKS[kind]:
            attacked = copy.deepcopy(config)
            is_list = field_schema(cls, dotted).get("type") == "array"
            set_field(attacked, dotted, [attack] if is_list else attack)
            reply = await alice("POST", "/tasks", task_body(cls, attacked))
            assert reply.status == 400, (field, attack, reply)
            named = {reply.body.get("field")} | {
                error.get("field") for error in reply.body.get("errors", [])
            }
            assert field in named, (field, attack, reply.body)
            assert SECRET not in json.dumps(reply.body)

    @pytest.mark.parametrize(
        ("cls", "dotted", "kind"), [case for case in PATH_CASES if case.values[0].kind != "trigger"]
    )
    async def test_placeholders_filled_with_a_climb_fail_the_step(
        self, cls, dotted, kind, api, files, homes
    ):
        alice = api("alice")
        template, parameters = CLIMBS[kind]
        _, config = base_config(cls, dotted, kind, files)
        is_list = field_schema(cls, dotted).get("type") == "array"
        set_field(config, dotted, [template] if is_list else template)
        saved = await alice("POST", "/tasks", task_body(cls, config))
        if saved.status == 400:  # refused already, with the placeholder unfilled
            assert saved.body["field"] == f"{where(cls)}.config.{dotted}", saved
            return
        assert saved.status == 201, saved
        started = await alice("POST", f"/tasks/{saved.body['id']}/run", {"parameters": parameters})
        assert started.status == 202, started
        run = await wait_for_run(alice, started.body["id"])
        assert run["status"] == "failed", run
        [step] = [step for step in run["steps"] if step["kind"] == cls.kind]
        assert step["status"] == "failed" and dotted in step["error"], step
        log = await alice("GET", f"/runs/{run['id']}/log")
        assert SECRET not in json.dumps(run) + str(log.body)


@components
def test_every_number_has_a_maximum(cls):
    """A number without a bound reaches timers and dates that overflow (a timeout of 10**400
    seconds, a task id past SQLite's integers): each declares its maximum, which the schema
    check refuses with a 400 at the field when the task is saved."""
    unbounded = [
        path
        for path, node in schema_nodes(cls.config_schema)
        if {"number", "integer"}
        & set(node["type"] if isinstance(node.get("type"), list) else [node.get("type")])
        and "maximum" not in node
        and "exclusiveMaximum" not in node
    ]
    assert unbounded == [], f"{key(cls)}: declare a maximum on these numbers"
