"""The OpenAPI document: generated, valid, served, in step with the vocabulary, routes, replies."""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import re
from typing import Any, get_origin, get_type_hints

import jsonschema
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate

from jupyter_taskplanner import openapi
from jupyter_taskplanner.components.base import Action, Job
from jupyter_taskplanner.model import SETTINGS_DEFAULTS, SETTINGS_SCHEMA, TASK_SCHEMA
from jupyter_taskplanner.testing import Reply
from jupyter_taskplanner.timezones import known_timezones
from jupyter_taskplanner.vocabulary import RunStatus, StepStatus, TaskRecord

API = "/taskplanner/api"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def load_document() -> dict[str, Any]:
    return json.loads(openapi.DOCUMENT.read_text(encoding="utf-8"))


def _generic(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", template)


def validator_for(document: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Validator:
    """A validator of ``schema`` whose ``#/components/...`` references resolve in the document.

    OpenAPI 3.1 schemas are JSON Schema 2020-12, so they are used as they are.
    """
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]})


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow one local ``$ref`` (``#/a/b``)."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def assert_documented(
    document: dict[str, Any], method: str, template: str, reply: Reply
) -> dict[str, Any]:
    """Check a real reply against the document: status, headers, body schema."""
    operation = document["paths"][API + template][method.lower()]
    status = str(reply.status)
    assert status in operation["responses"], f"{method} {template}: {status} not documented"
    response = resolve(document, operation["responses"][status])
    for header in response.get("headers", {}):
        assert header in reply.headers, f"{method} {template} {status}: no {header} header"
    if "content" in response:
        schema = response["content"]["application/json"]["schema"]
        validator_for(document, schema).validate(reply.body)
    else:
        assert reply.body is None, reply
    return response


class ReportJob(Job):
    """A job type so that GET /components lists a job with flavors."""

    type_name = "openapi_report"
    title = "Report"
    flavors = frozenset({"file", "text"})
    config_schema = {"type": "object", "properties": {"path": {"type": "string"}}}


class HookAction(Action):
    """An action type with a secret."""

    type_name = "openapi_hook"
    config_schema = {
        "type": "object",
        "properties": {"url": {"type": "string"}, "token": {"type": "string", "writeOnly": True}},
    }


async def test_document_is_served_and_valid_openapi_3_1(api):
    reply = await api("alice")("GET", "/openapi.json")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    # The server lists the timezone names and component types it knows, which the file cannot.
    served = copy.deepcopy(reply.body)
    schemas = served["components"]["schemas"]
    timezone = schemas["Settings"]["properties"]["timezone"]
    assert "UTC" in timezone.pop("enum") and "Europe/Berlin" in known_timezones()
    for parameter in served["paths"][f"{API}/tasks/{{task_id}}/next"]["get"]["parameters"]:
        if parameter["name"] == "timezone":
            assert parameter["schema"].pop("enum") == known_timezones()
    assert "cron" in schemas["Trigger"]["properties"]["type"]["enum"]
    for name in ("Trigger", "Job", "Action", "Series"):
        schemas[name]["properties"]["type"].pop("enum")
    assert served == load_document()

    document = reply.body
    assert document["openapi"] == "3.1.0"
    # Also resolves every $ref, checks path parameters, schemas and unique operationIds.
    validate(document, cls=OpenAPIV31SpecValidator)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                assert {"operationId", "summary"} <= set(operation), f"{method} {path}"


def test_the_committed_document_is_what_the_generator_writes():
    committed, generated = openapi.DOCUMENT.read_text(encoding="utf-8"), openapi.render()
    if committed != generated:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            "openapi.json (committed)",
            "openapi.json (generated)",
            n=1,
        )
        pytest.fail(
            f"jupyter_taskplanner/openapi.json is out of date; run: {openapi.REGENERATE}\n"
            + "".join(itertools.islice(diff, 40)),
            pytrace=False,
        )


def test_run_status_enums_are_the_vocabulary():
    document = load_document()
    enums: dict[str, Any] = {}
    for name, schema in document["components"]["schemas"].items():
        if "status" in schema.get("properties", {}):
            enums[name] = resolve(document, schema["properties"]["status"]).get("enum")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for parameter in item.get("parameters", []) + operation.get("parameters", []):
                parameter = resolve(document, parameter)
                if parameter["name"] == "status":
                    schema = resolve(document, parameter["schema"])
                    enums[f"{method.upper()} {path}"] = schema.get("enum")
    assert enums.pop("RunStep") == [status.value for status in StepStatus]
    assert {
        "Run",
        "RunDetail",
        "TriggerReply",
        "GET /taskplanner/api/runs",
        "GET /taskplanner/api/tasks/{task_id}/runs",
    } <= set(enums)
    expected = [status.value for status in RunStatus]
    assert {where: enum for where, enum in enums.items() if enum != expected} == {}


def test_the_template_may_not_restate_what_is_derived():
    with pytest.raises(ValueError, match=r"x\.properties\.id\.type: derived"):
        openapi.annotate(
            {"properties": {"id": {"type": "integer"}}},
            {"properties": {"id": {"type": "string"}}},
            "x",
        )
    with pytest.raises(ValueError, match=r"x\.properties\.colour: .* does not have"):
        openapi.annotate({"properties": {}}, {"properties": {"colour": {}}}, "x")


async def test_every_route_is_documented_and_every_documented_route_exists(planner_routes):
    served = {(_generic(template), method) for template, method, _ in planner_routes}
    document = load_document()
    documented = {
        (_generic(path), method)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }
    assert ("/taskplanner/api/tasks/{}", "patch") in served, "the route walk found nothing"
    assert served - documented == set(), "routes missing from openapi.json"
    assert documented - served == set(), "openapi.json describes routes the server lacks"


async def test_task_document_matches_the_model():
    schemas = load_document()["components"]["schemas"]
    model_fields = set(TASK_SCHEMA["properties"])
    record = get_type_hints(TaskRecord)
    assert set(record) == model_fields
    json_types = {int: "integer", str: "string", bool: "boolean", list: "array", dict: "object"}
    for name, hint in record.items():
        if "type" in schemas["Task"]["properties"][name]:
            expected = schemas["Task"]["properties"][name]["type"]
            assert json_types[get_origin(hint) or hint] == expected, name
    assert set(schemas["Task"]["properties"]) == model_fields
    assert set(schemas["Task"]["required"]) == model_fields
    assert set(schemas["TaskInput"]["properties"]) == model_fields
    assert set(schemas["TaskPatch"]["properties"]) == model_fields
    settings = schemas["Settings"]["properties"]
    assert set(settings) == set(SETTINGS_SCHEMA["properties"])
    for name, spec in SETTINGS_SCHEMA["properties"].items():
        assert settings[name].get("enum") == spec.get("enum"), name
        assert settings[name]["default"] == SETTINGS_DEFAULTS[name], name


async def test_replies_match_the_documented_schemas(planner, api):
    planner.registry.add(ReportJob)
    planner.registry.add(HookAction)
    document = load_document()
    alice = api("alice")

    async def check(method: str, template: str, path: str, body: Any = None, **kw: Any) -> Reply:
        reply = await alice(method, path, body, **kw)
        assert_documented(document, method, template, reply)
        return reply

    task = {
        "name": "Report",
        "triggers": [],
        "jobs": [{"type": "openapi_report", "name": "main", "config": {"path": "r.ipynb"}}],
        "actions": [{"type": "openapi_hook", "config": {"url": "http://x", "token": "secret"}}],
        "settings": {"timeout": 60},
    }
    created = await check("POST", "/tasks", "/tasks", task)
    assert created.status == 201 and created.body["actions"][0]["secrets"] == ["token"]
    one = f"/tasks/{created.body['id']}"
    await check("POST", "/tasks", "/tasks", {"name": "Other", "enabled": False})
    await check("POST", "/tasks", "/tasks", {"name": ""})
    listed = await check("GET", "/tasks", "/tasks", params={"limit": 1})
    assert "next" in listed.body
    await check("GET", "/tasks", "/tasks", params={"limit": 0})
    await check("GET", "/tasks", "/tasks", params={"owner": "bob"})
    await check("GET", "/tasks/{task_id}", one)
    await check("PUT", "/tasks/{task_id}", one, {**task, "name": "Replaced"})
    await check("PATCH", "/tasks/{task_id}", one, {"description": "x"})
    await check("PATCH", "/tasks/{task_id}", one, {"name": "y"}, headers={"If-Match": '"1"'})
    await check("PATCH", "/tasks/{task_id}", one, {"series": {"type": "nope"}})
    await check("POST", "/tasks/{task_id}/disable", f"{one}/disable")
    await check("POST", "/tasks/{task_id}/enable", f"{one}/enable")
    await check("POST", "/tasks/{task_id}/copy", f"{one}/copy")
    await check("POST", "/tasks/{task_id}/copy", f"{one}/copy", {"name": "Mine", "x": 1})
    exported = await check("GET", "/tasks/{task_id}/export", f"{one}/export")
    await check("POST", "/tasks/import", "/tasks/import", exported.body)
    await check("POST", "/tasks/import", "/tasks/import", [{"name": "A"}, {"name": 3}])
    await check("POST", "/tasks/import", "/tasks/import", {"name": "B", "owner": "bob"})
    components = await check("GET", "/components", "/components")
    assert {"openapi_report", "openapi_hook"} <= {c["type"] for c in components.body["components"]}
    await check("GET", "/tasks/{task_id}", "/tasks/999")

    empty = (await alice("POST", "/tasks", {"name": "Empty"})).body
    run = await check("POST", "/tasks/{task_id}/run", f"/tasks/{empty['id']}/run")
    await check("POST", "/tasks/{task_id}/run", f"/tasks/{empty['id']}/run", {"colour": 1})
    await check("GET", "/runs/{run_id}", f"/runs/{run.body['id']}")
    await check("GET", "/runs/{run_id}", "/runs/999")
    await check("GET", "/tasks/{task_id}/runs", f"/tasks/{empty['id']}/runs")
    await check("GET", "/runs", "/runs", params={"status": "nope"})
    await check("GET", "/tasks/{task_id}/next", f"/tasks/{empty['id']}/next")
    await check("DELETE", "/tasks/{task_id}", one)
    await check("DELETE", "/tasks/{task_id}", one)
    reply = await api("eve")("GET", "/tasks")
    assert_documented(document, "GET", "/tasks", reply)
    reply = await api(None)("PATCH", "/tasks/1", {"name": "x"})
    assert_documented(document, "PATCH", "/tasks/{task_id}", reply)
