"""API fuzzing: schemathesis against the document the server serves, every operation, every
check (``jupyter_taskplanner.fuzzing``); a few hundred cases here, tens of thousands in
``make stress``."""

from __future__ import annotations

import json
from pathlib import Path

from jupyter_taskplanner.fuzzing import SEMANTIC_REFUSALS, fuzz, semantic_refusal
from jupyter_taskplanner.openapi import DOCUMENT
from jupyter_taskplanner.testing import ServerProcess, wait_for_run

API = "/taskplanner/api"
HTTP_METHODS = ("get", "put", "post", "delete", "patch")


def test_every_operation_holds_up_under_fuzzing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    log = tmp_path / "server.log"
    server = ServerProcess(root, tmp_path / "planner" / "tasks.db", log)
    try:
        figures = fuzz(
            f"http://127.0.0.1:{server.port}",
            server.token,
            examples=12,
            seed=15,
            # The exhaustive coverage phase (12,000 cases, a minute) runs in make stress.
            phases=("examples", "fuzzing", "stateful"),
            workdir=tmp_path / "fuzz",
            timeout=300,
        )
    finally:
        server.stop()
    document = json.loads(DOCUMENT.read_text())
    operations = sum(
        method in item for item in document["paths"].values() for method in HTTP_METHODS
    )
    # All but GET /openapi.json, the URL schemathesis loads the document from.
    assert figures.operations == operations - 1, figures.output[-3000:]
    assert figures.cases >= 300, figures.output[-3000:]
    assert (figures.failures, figures.errors) == ([], []), figures.failure_report
    assert b"Traceback" not in log.read_bytes()


def test_a_400_for_valid_input_must_name_a_semantic_field() -> None:
    assert semantic_refusal({"field": "jobs[0].config.path"}) == []
    assert semantic_refusal({"field": "tasks[3].series.config"}) == []
    assert semantic_refusal({"field": "triggers[1].version"}) == []
    assert semantic_refusal({"field": "name"}) == ["name"]
    assert semantic_refusal({"message": "no field"}) == ["None"]
    both = {"field": "offset", "errors": [{"field": "offset"}, {"field": "settings.retries"}]}
    assert semantic_refusal(both) == ["settings.retries"]
    assert semantic_refusal("not json") == ["(a reply without a JSON error)"]
    assert all(reason for reason in SEMANTIC_REFUSALS.values())


# -- what the fuzzer found, each pinned down -------------------------------------------------


async def test_integers_sent_as_whole_floats_are_stored_as_ints(api, planner):
    # JSON Schema counts 2.0 as an integer; stored as a float it broke runs (range(2.0 + 1))
    # and the misfire catch-up (a deque of maxlen 3.0).
    alice = api("alice")
    body = {
        "name": "floats",
        "settings": {"retries": 2.0, "misfire_limit": 3.0},
        "triggers": [{"type": "after_task", "version": 1.0, "config": {"task_id": 1.0}}],
    }
    first = (await alice("POST", "/tasks", {"name": "first"})).body
    created = await alice("POST", "/tasks", body)
    assert created.status == 201, created
    stored = await planner.db.call(planner.store.get_task, created.body["id"], None)
    values = (
        stored["settings"]["retries"],
        stored["settings"]["misfire_limit"],
        stored["triggers"][0]["version"],
        stored["triggers"][0]["config"]["task_id"],
    )
    assert values == (2, 3, 1, first["id"])
    assert all(type(value) is int for value in values)
    run = await alice("POST", f"/tasks/{created.body['id']}/run")
    assert (await wait_for_run(alice, run.body["id"]))["status"] == "succeeded"


async def test_bodies_of_the_wrong_kind_are_400_not_accepted_or_500(api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "t"})).body
    one = f"/tasks/{task['id']}"
    for method, path, body in (
        ("POST", f"{one}/copy", "null"),
        ("POST", f"{one}/copy", "false"),
        ("POST", f"{one}/run", "0"),
        ("POST", f"{one}/run", "[]"),
        ("POST", "/tasks", "null"),
        ("POST", "/tasks/import", {"tasks": [], "version": "x"}),
        ("POST", "/tasks/import", {"tasks": [], "version": 0}),
        ("POST", "/tasks/import", {"tasks": [], "colour": 1}),
        ("POST", "/tasks/import", {"name": "x", "revision": None}),
        ("POST", "/tasks/import", {"name": "x", "revision": 0}),
        ("POST", "/tasks/import", {"name": "x", "created": 5}),
        ("POST", "/tasks", {"name": "x", "revision": 0}),
    ):
        reply = await alice(method, path, body)
        assert reply.status == 400, (method, path, body, reply)
        assert reply.body["message"], reply
    # An optional body left out, or null values where the document allows them, still work.
    assert (await alice("POST", f"{one}/copy")).status == 201
    started = await alice("POST", f"{one}/run", {"parameters": None, "idempotency_key": None})
    assert started.status == 202, started
    adhoc = await alice("POST", "/execute", {"parameters": None})
    assert adhoc.status == 202, adhoc
    whole = await alice("POST", "/tasks/import", {"tasks": [{"name": "y"}], "version": 1.0})
    assert whole.status == 201, whole


async def test_idempotency_keys_are_checked_in_the_body_and_the_header(api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "t"})).body
    run = f"/tasks/{task['id']}/run"
    for body, headers, field in (
        ({"idempotency_key": 7}, {"Idempotency-Key": "fine"}, "idempotency_key"),
        ({}, {"Idempotency-Key": "x" * 201}, "Idempotency-Key"),
    ):
        reply = await alice("POST", run, body, headers=headers)
        assert (reply.status, reply.body["field"]) == (400, field), reply
    first = await alice("POST", run, {"idempotency_key": "k"}, headers={"Idempotency-Key": "h"})
    again = await alice("POST", run, {}, headers={"Idempotency-Key": "h"})
    assert again.body["id"] == first.body["id"]


async def test_if_match_takes_the_documented_forms_only(api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "t"})).body
    one = f"/tasks/{task['id']}"
    for header in ('W/"?"', '"1', "1.0", "+1", '"1", "2"', ""):
        reply = await alice("PATCH", one, {"description": "x"}, headers={"If-Match": header})
        assert (reply.status, reply.body["field"]) == (400, "If-Match"), (header, reply)
    for revision, header in enumerate(('"1"', 'W/"2"', "3", "*"), start=2):
        reply = await alice("PATCH", one, {"description": header}, headers={"If-Match": header})
        assert (reply.status, reply.body["revision"]) == (200, revision), (header, reply)
    stale = await alice("PATCH", one, {"description": "x"}, headers={"If-Match": '"1"'})
    assert stale.status == 409


async def test_import_problems_name_their_field(api):
    alice = api("alice")
    unknown = await alice("POST", "/tasks/import", [{"name": "a"}, {"id": 999, "name": "b"}])
    assert (unknown.status, unknown.body["field"]) == (404, "tasks[1].id"), unknown
    others = await api("bob")("POST", "/tasks/import", [{"name": "b", "owner": "alice"}])
    assert (others.status, others.body["field"]) == (403, "tasks[0].owner"), others


async def test_the_served_document_lists_what_this_server_takes(api, planner):
    document = (await api("alice")("GET", "/openapi.json")).body
    schemas = document["components"]["schemas"]
    for kind, name in (("trigger", "Trigger"), ("job", "Job"), ("series", "Series")):
        types = {cls.type_name for cls in planner.registry.of_kind(kind)}
        assert set(schemas[name]["properties"]["type"]["enum"]) == types
    # A returned task may hold a type whose plugin is gone: no enum there.
    assert "enum" not in schemas["TriggerOut"]["properties"]["type"]
    [timezone] = [
        parameter
        for parameter in document["paths"][f"{API}/tasks/{{task_id}}/next"]["get"]["parameters"]
        if parameter["name"] == "timezone"
    ]
    assert "Europe/Berlin" in timezone["schema"]["enum"]
    # What the server sets is read-only where a client sends a task.
    for name in ("TaskInput", "TaskPatch"):
        properties = schemas[name]["properties"]
        assert [f for f in properties if properties[f].get("readOnly")] == [
            "id",
            "owner",
            "created",
            "updated",
        ]
    assert not schemas["TaskImport"]["properties"]["id"].get("readOnly")
