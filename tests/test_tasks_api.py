"""The tasks REST API through a real Jupyter server: CRUD, copy, import/export, lists, bad input."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from jupyter_taskplanner.components.base import Action, Job
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.model import SETTINGS_DEFAULTS
from jupyter_taskplanner.testing import create_task, start_run, wait_for_run

API = "/taskplanner/api"


class ReportJob(Job):
    """A job type with a strict schema and a semantic check."""

    type_name = "test_report"
    title = "Report"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {"type": "string", "title": "Notebook", "minLength": 1},
            "copies": {"type": "integer", "title": "Copies", "minimum": 1, "default": 1},
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if config["path"].startswith("/"):
            raise InvalidConfig("use a path relative to your root folder", field="path")


class HookAction(Action):
    """An action type with a secret (``writeOnly``) field."""

    type_name = "test_hook"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "title": "URL"},
            "token": {"type": "string", "title": "Token", "writeOnly": True},
        },
    }


@pytest.fixture
def planner(planner):
    """The planner of the test server, with the test component types."""
    planner.registry.add(ReportJob)
    planner.registry.add(HookAction)
    return planner


def api_path(url: str) -> str:
    """The part of a URL (or URL path) after the API root, as the ``api`` callers take it."""
    return url[url.index(API) + len(API) :]


REPORT = {"type": "test_report", "name": "main", "config": {"path": "report.ipynb"}}
HOOK = {"type": "test_hook", "config": {"url": "http://127.0.0.1:9/hook", "token": "s3cret"}}


# -- create, read, list, replace, patch, delete ---------------------------------------------


async def test_create_fills_defaults_and_answers_location_and_etag(planner, api):
    alice = api("alice")
    reply = await alice("POST", "/tasks", {"name": "Report"})
    assert reply.status == 201, reply
    task = reply.body
    assert reply.headers["ETag"] == '"1"'
    assert reply.headers["Location"].endswith(f"{API}/tasks/{task['id']}")
    assert task["owner"] == "alice"
    assert task["enabled"] is True
    assert task["description"] == ""
    assert (task["triggers"], task["jobs"], task["actions"], task["series"]) == ([], [], [], None)
    assert task["settings"] == {**SETTINGS_DEFAULTS, "timezone": planner.settings.default_timezone}
    assert task["revision"] == 1
    assert task["created"] == task["updated"]

    got = await alice("GET", api_path(reply.headers["Location"]))
    assert got.status == 200
    assert got.body == task
    assert got.headers["ETag"] == '"1"'


async def test_component_defaults_are_filled(planner, api):
    reply = await api("alice")(
        "POST", "/tasks", {"name": "R", "jobs": [REPORT], "actions": [HOOK], "enabled": False}
    )
    assert reply.status == 201, reply
    assert reply.body["enabled"] is False
    assert reply.body["jobs"] == [{**REPORT, "version": 1}]
    action = reply.body["actions"][0]
    assert action["when"] == "always"
    assert action["version"] == 1


async def test_replace_patch_and_delete(planner, api):
    alice = api("alice")
    body = {"name": "Report", "jobs": [REPORT], "settings": {"overlap": "queue", "retries": 1}}
    task = (await alice("POST", "/tasks", body)).body
    one = f"/tasks/{task['id']}"

    patched = await alice("PATCH", one, {"description": "weekly", "settings": {"retries": 3}})
    assert patched.status == 200, patched
    assert patched.body["name"] == "Report"
    assert patched.body["jobs"] == task["jobs"]
    assert patched.body["description"] == "weekly"
    assert patched.body["settings"]["overlap"] == "queue"
    assert patched.body["settings"]["retries"] == 3
    assert patched.body["revision"] == 2
    assert patched.headers["ETag"] == '"2"'
    assert patched.body["created"] == task["created"]
    assert patched.body["updated"] > task["updated"]

    replaced = await alice("PUT", one, {"name": "Renamed", "settings": {"timeout": 60}})
    assert replaced.status == 200, replaced
    assert replaced.body["name"] == "Renamed"
    assert replaced.body["jobs"] == []
    assert replaced.body["description"] == ""
    assert replaced.body["settings"] == {
        **SETTINGS_DEFAULTS,
        "timezone": planner.settings.default_timezone,
        "timeout": 60,
    }
    assert replaced.body["revision"] == 3
    assert (await alice("GET", one)).body == replaced.body

    listed = await alice("GET", "/tasks")
    assert [t["id"] for t in listed.body["tasks"]] == [task["id"]]

    deleted = await alice("DELETE", one)
    assert deleted.status == 204
    assert deleted.body is None
    for method, body in (("GET", None), ("PUT", {"name": "x"}), ("PATCH", {}), ("DELETE", None)):
        gone = await alice(method, one, body)
        assert gone.status == 404, (method, gone)
        assert str(task["id"]) in gone.body["message"]
    assert (await alice("GET", "/tasks")).body["total"] == 0


async def test_a_task_read_back_can_be_sent_back(planner, api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "R", "jobs": [REPORT], "actions": [HOOK]})).body
    again = await alice("PUT", f"/tasks/{task['id']}", task)
    assert again.status == 200, again
    assert {**again.body, "updated": None, "revision": None} == {
        **task,
        "updated": None,
        "revision": None,
    }


async def test_enable_and_disable(planner, api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "R"})).body
    disabled = await alice("POST", f"/tasks/{task['id']}/disable")
    assert disabled.status == 200, disabled
    assert disabled.body["enabled"] is False
    assert disabled.body["revision"] == 2
    assert disabled.headers["ETag"] == '"2"'
    assert (await alice("GET", f"/tasks/{task['id']}")).body["enabled"] is False
    again = await alice("POST", f"/tasks/{task['id']}/disable")
    assert again.body["enabled"] is False
    enabled = await alice("POST", f"/tasks/{task['id']}/enable")
    assert enabled.body["enabled"] is True
    assert (await alice("GET", f"/tasks/{task['id']}")).body["enabled"] is True
    assert (await alice("POST", "/tasks/999/enable")).status == 404


# -- copy, export, import -------------------------------------------------------------------


async def test_copy_belongs_to_the_caller(planner, api):
    alice, root = api("alice"), api("root")
    task = (await alice("POST", "/tasks", {"name": "Report", "jobs": [REPORT]})).body

    copy = await alice("POST", f"/tasks/{task['id']}/copy")
    assert copy.status == 201, copy
    assert copy.headers["Location"].endswith(f"{API}/tasks/{copy.body['id']}")
    assert copy.body["id"] != task["id"]
    assert copy.body["name"] == "Copy of Report"
    assert copy.body["owner"] == "alice"
    assert copy.body["jobs"] == task["jobs"]
    assert copy.body["revision"] == 1

    named = await alice("POST", f"/tasks/{task['id']}/copy", {"name": "Mine", "enabled": False})
    assert (named.status, named.body["name"], named.body["enabled"]) == (201, "Mine", False)

    admins = await root("POST", f"/tasks/{task['id']}/copy")
    assert admins.status == 201, admins
    assert admins.body["owner"] == "root"
    assert (await alice("GET", f"/tasks/{admins.body['id']}")).status == 404
    assert (await alice("GET", f"/tasks/{task['id']}")).body == task

    for bad, field in (({"colour": "red"}, None), ({"name": ""}, "name"), ([1], None)):
        reply = await alice("POST", f"/tasks/{task['id']}/copy", bad)
        assert reply.status == 400, (bad, reply)
        assert reply.body.get("field") == field
    assert (await alice("GET", "/tasks")).body["total"] == 3

    # "Copy of <name>" is cut to the longest name allowed.
    assert (await alice("PATCH", f"/tasks/{task['id']}", {"name": "x" * 200})).status == 200
    copy = await alice("POST", f"/tasks/{task['id']}/copy")
    assert copy.body["name"] == ("Copy of " + "x" * 200)[:200]


async def test_export_import_round_trip(planner, api):
    alice = api("alice")
    body = {
        "name": "Report",
        "description": "weekly",
        "enabled": False,
        "jobs": [REPORT],
        "actions": [{**HOOK, "when": "any_valid"}],
        "settings": {"timezone": "Europe/Berlin", "retries": 2},
    }
    task = (await alice("POST", "/tasks", body)).body

    exported = await alice("GET", f"/tasks/{task['id']}/export")
    assert exported.status == 200, exported
    assert exported.headers["Content-Disposition"] == (
        f'attachment; filename="task-{task["id"]}.json"'
    )
    document = exported.body
    assert (document["format"], document["version"]) == ("jupyter-taskplanner", 1)
    assert len(document["tasks"]) == 1
    assert "s3cret" not in json.dumps(document)
    assert "secrets" not in document["tasks"][0]["actions"][0]

    # Without its id the exported task is created anew (with it, it would update the task).
    del document["tasks"][0]["id"], document["tasks"][0]["revision"]
    imported = await alice("POST", "/tasks/import", document)
    assert imported.status == 201, imported
    [copy] = imported.body["tasks"]
    assert copy["id"] != task["id"]
    assert copy["owner"] == "alice"
    assert copy["revision"] == 1
    same = ("name", "description", "enabled", "triggers", "jobs", "series", "settings")
    assert {key: copy[key] for key in same} == {key: task[key] for key in same}
    # The secret was not exported, so the imported action has none (to be entered anew).
    without_secret = {k: v for k, v in task["actions"][0].items() if k != "secrets"}
    assert copy["actions"] == [without_secret]
    stored = await planner.db.call(planner.store.get_task, copy["id"], None)
    assert "token" not in stored["actions"][0]["config"]
    assert stored["actions"][0]["when"] == "any_valid"


async def test_import_a_list_and_a_single_task(planner, api):
    alice = api("alice")
    listed = await alice("POST", "/tasks/import", [{"name": "A"}, {"name": "B", "jobs": [REPORT]}])
    assert listed.status == 201, listed
    assert [t["name"] for t in listed.body["tasks"]] == ["A", "B"]
    assert listed.body["tasks"][1]["jobs"][0]["config"] == REPORT["config"]

    single = await alice(
        "POST", "/tasks/import", {"name": "C", "created": "x", "updated": "y", "owner": "alice"}
    )
    assert single.status == 201, single
    [task] = single.body["tasks"]
    assert (task["name"], task["owner"], task["revision"]) == ("C", "alice", 1)
    assert task["created"] != "x"
    names = [t["name"] for t in (await alice("GET", "/tasks")).body["tasks"]]
    assert names == ["A", "B", "C"]


async def test_import_with_an_id_updates_that_task(planner, api):
    alice, bob, root = api("alice"), api("bob"), api("root")
    task = await create_task(alice, name="Report", description="weekly", enabled=False)
    document = (await alice("GET", f"/tasks/{task['id']}/export")).body
    assert (document["tasks"][0]["id"], document["tasks"][0]["revision"]) == (task["id"], 1)
    document["tasks"][0]["description"] = "daily"
    new = {"name": "New one"}
    document["tasks"].append(new)

    imported = await alice("POST", "/tasks/import", document)
    assert imported.status == 201, imported
    updated, created = imported.body["tasks"]
    assert (updated["id"], updated["description"], updated["revision"]) == (task["id"], "daily", 2)
    assert created["id"] != task["id"] and created["name"] == "New one"

    # The same document again: the task changed since (revision 2), so nothing is imported.
    document["tasks"][1] = {"name": "Not created"}
    stale = await alice("POST", "/tasks/import", document)
    assert stale.status == 409, stale
    assert (await alice("GET", "/tasks")).body["total"] == 2

    # Another user's task is not there for bob; an unknown id is a 404 too.
    for caller, body in ((bob, {"id": task["id"], "name": "x"}), (alice, {"id": 999, "name": "x"})):
        reply = await caller("POST", "/tasks/import", body)
        assert (reply.status, reply.body["field"]) == (404, "tasks[0].id"), reply
    # An admin updates it; the owner stays as stored.
    by_root = await root(
        "POST", "/tasks/import", {"id": task["id"], "name": "Checked", "owner": "root"}
    )
    assert by_root.status == 200, by_root
    assert by_root.body["tasks"][0]["owner"] == "alice"
    assert (await alice("GET", f"/tasks/{task['id']}")).body["name"] == "Checked"


async def test_import_into_a_task(planner, api):
    alice = api("alice")
    task = await create_task(alice, name="Report", enabled=False)
    edited = {"name": "Report", "description": "edited", "revision": 1}
    reply = await alice("POST", f"/tasks/{task['id']}/import", edited)
    assert reply.status == 200, reply
    assert reply.body["tasks"][0]["description"] == "edited"
    for body, status, field in (
        ({"name": "x", "id": task["id"] + 1}, 400, "id"),
        ([{"name": "a"}, {"name": "b"}], 400, "tasks"),
        ({"name": "x", "revision": 1}, 409, None),
    ):
        reply = await alice("POST", f"/tasks/{task['id']}/import", body)
        assert reply.status == status and reply.body.get("field") == field, reply
    assert (await api("bob")("POST", f"/tasks/{task['id']}/import", {"name": "x"})).status == 404
    assert (await alice("GET", f"/tasks/{task['id']}")).body["revision"] == 2


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        (
            [{"name": "A"}, {"name": "B", "jobs": [{"type": "nope"}]}],
            "tasks[1].jobs[0].type",
            "nope",
        ),
        ([{"name": "A"}, {"colour": 1, "name": "B"}], "tasks[1].colour", "unknown field"),
        ([{"name": "A"}, {"description": "no name"}], "tasks[1].name", "name"),
        ([{"name": "A"}, "B"], None, "tasks[1]"),
        ({"format": "other", "tasks": []}, "format", "jupyter-taskplanner"),
        ({"format": "jupyter-taskplanner", "version": 99, "tasks": []}, "version", "upgrade"),
        ({"format": "jupyter-taskplanner", "tasks": {"name": "A"}}, "tasks", "list"),
        ('"just text"', None, "export document"),
        ("{broken", None, "JSON"),
    ],
)
async def test_import_is_all_or_nothing(planner, api, body, field, words):
    alice = api("alice")
    reply = await alice("POST", "/tasks/import", body)
    assert reply.status == 400, reply
    assert reply.body.get("field") == field
    assert words in reply.body["message"]
    assert (await alice("GET", "/tasks")).body["total"] == 0


# -- listing --------------------------------------------------------------------------------


async def test_pagination_follows_next_links(planner, api):
    alice = api("alice")
    ids = [(await alice("POST", "/tasks", {"name": f"T{i}"})).body["id"] for i in range(5)]
    await api("bob")("POST", "/tasks", {"name": "Bob's"})

    seen, params = [], {"limit": 2, "enabled": "true"}
    while True:
        page = await alice("GET", "/tasks", params=params)
        assert page.status == 200, page
        assert page.body["total"] == 5
        assert page.body["limit"] == 2
        seen += [task["id"] for task in page.body["tasks"]]
        if "next" not in page.body:
            break
        url = urlsplit(page.body["next"])
        assert url.path.endswith(f"{API}/tasks")
        params = dict(parse_qsl(url.query))
        assert params["enabled"] == "true"
    assert seen == ids

    page = await alice("GET", "/tasks", params={"offset": 4})
    assert [t["id"] for t in page.body["tasks"]] == ids[4:]
    assert "next" not in page.body
    page = await alice("GET", "/tasks", params={"offset": 10})
    assert (page.body["tasks"], page.body["total"]) == ([], 5)

    for params, field in (
        ({"limit": 0}, "limit"),
        ({"limit": planner.settings.max_page_size + 1}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"enabled": "maybe"}, "enabled"),
    ):
        reply = await alice("GET", "/tasks", params=params)
        assert reply.status == 400, (params, reply)
        assert reply.body["field"] == field
        assert field in reply.body["message"]
    assert (
        await alice("GET", "/tasks", params={"limit": planner.settings.max_page_size})
    ).status == 200


async def test_filters_by_enabled_and_name(planner, api):
    alice = api("alice")
    names = ["100% done", "100 done", "a_b", "axb", "Weekly REPORT"]
    for name in names:
        await alice("POST", "/tasks", {"name": name, "enabled": name != "axb"})

    async def names_for(**params: Any) -> list[str]:
        reply = await alice("GET", "/tasks", params=params)
        assert reply.status == 200, reply
        assert reply.body["total"] == len(reply.body["tasks"])
        return [task["name"] for task in reply.body["tasks"]]

    assert await names_for(q="%") == ["100% done"]
    assert await names_for(q="_") == ["a_b"]
    assert await names_for(q="report") == ["Weekly REPORT"]
    assert await names_for(q="done") == ["100% done", "100 done"]
    assert await names_for(q="nothing") == []
    assert await names_for(enabled="false") == ["axb"]
    assert await names_for(enabled="true", q="a") == ["a_b"]
    assert await names_for(q="") == names


async def test_admin_lists_one_owner_or_everyone(planner, api):
    alice, bob, root = api("alice"), api("bob"), api("root")
    for name in ("A1", "A2"):
        await alice("POST", "/tasks", {"name": name})
    await bob("POST", "/tasks", {"name": "B1"})
    await root("POST", "/tasks", {"name": "R1"})

    async def owners(caller: Any, **params: Any) -> list[tuple[str, str]]:
        reply = await caller("GET", "/tasks", params=params)
        assert reply.status == 200, reply
        return [(task["owner"], task["name"]) for task in reply.body["tasks"]]

    assert await owners(root) == [("root", "R1")]
    assert await owners(root, owner="alice") == [("alice", "A1"), ("alice", "A2")]
    assert await owners(root, owner="*") == [
        ("alice", "A1"),
        ("alice", "A2"),
        ("bob", "B1"),
        ("root", "R1"),
    ]
    assert await owners(root, owner="nobody") == []
    assert await owners(alice, owner="alice") == [("alice", "A1"), ("alice", "A2")]
    assert await owners(bob) == [("bob", "B1")]
    for owner in ("bob", "*"):
        reply = await alice("GET", "/tasks", params={"owner": owner})
        assert reply.status == 403, reply
        assert "taskplanner:admin" in reply.body["message"]


# -- bad input ------------------------------------------------------------------------------

BAD_BODIES = [
    # (body: a str is sent as is, else as JSON; field in the reply or None; words in the message)
    ("{nope", None, "not valid JSON"),
    ("[1, 2]", None, "JSON object"),
    ('"text"', None, "JSON object"),
    ({"name": "x", "colour": "red"}, "colour", "unknown field"),
    ({"name": 5}, "name", "not of type 'string'"),
    ({"name": "x", "enabled": "yes"}, "enabled", "boolean"),
    ({"name": "x", "jobs": {}}, "jobs", "array"),
    ({"name": "x", "settings": []}, "settings", "object"),
    ({"name": "x" * 201}, "name", "too long"),
    ({"name": ""}, "name", "non-empty"),
    ({"name": "x", "jobs": [{"type": "nope"}]}, "jobs[0].type", "unknown job type 'nope'"),
    ({"name": "x", "series": {"type": "nope"}}, "series.type", "unknown series type"),
    ({"name": "x", "jobs": [{"config": {}}]}, "jobs[0]", "'type' is a required property"),
    ({"name": "x", "jobs": [{**REPORT, "colour": 1}]}, "jobs[0].colour", "unknown field"),
    ({"name": "x", "jobs": [{"type": "test_report"}]}, "jobs[0].config", "'path' is a required"),
    (
        {"name": "x", "jobs": [{"type": "test_report", "config": {"path": "a", "copies": 0}}]},
        "jobs[0].config.copies",
        "minimum of 1",
    ),
    (
        {"name": "x", "jobs": [{"type": "test_report", "config": {"path": "/etc/passwd"}}]},
        "jobs[0].config.path",
        "relative",
    ),
    ({"name": "x", "jobs": [{**REPORT, "version": 2}]}, "jobs[0].version", "newer"),
    ({"name": "x", "actions": [{**HOOK, "when": "sometimes"}]}, "actions[0].when", "always"),
    ({"name": "x", "settings": {"timezone": "Mars/Base"}}, "settings.timezone", "Mars/Base"),
    ({"name": "x", "settings": {"speed": 11}}, "settings.speed", "unknown field"),
    ({"name": "x", "settings": {"overlap": "often"}}, "settings.overlap", "often"),
    ({"name": "x", "settings": {"retries": -1}}, "settings.retries", "minimum"),
]


async def test_create_rejects_bad_input(planner, api):
    alice = api("alice")
    for body, field, words in [*BAD_BODIES, ({"description": "no name"}, "name", "needs a name")]:
        reply = await alice("POST", "/tasks", body)
        assert reply.status == 400, (body, reply)
        assert reply.body.get("field") == field, (body, reply)
        assert words in reply.body["message"], (body, reply)
        if field:
            # The message starts with the field (or the component holding it).
            assert reply.body["message"].startswith(field.rsplit(".", 1)[0]), (body, reply)
    empty = await alice("POST", "/tasks")
    assert empty.status == 400 and "JSON body" in empty.body["message"]
    assert (await alice("GET", "/tasks")).body["total"] == 0


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_update_rejects_bad_input_and_keeps_the_task(planner, api, method):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "Keep", "jobs": [REPORT]})).body
    one = f"/tasks/{task['id']}"
    changes = [
        ({"name": "x", "owner": "bob"}, "owner", "cannot be changed"),
        ({"name": "x", "id": task["id"] + 1}, "id", "cannot be changed"),
        ({"name": "x", "created": "2000-01-01T00:00:00+00:00"}, "created", "cannot be changed"),
    ]
    if method == "PUT":
        changes.append(({"description": "no name"}, "name", "needs a name"))
    for body, field, words in BAD_BODIES + changes:
        reply = await alice(method, one, body)
        assert reply.status == 400, (body, reply)
        assert reply.body.get("field") == field, (body, reply)
        assert words in reply.body["message"], (body, reply)
    for headers in ({"If-Match": "yesterday"}, {"If-Match": '"one"'}):
        reply = await alice(method, one, {"name": "x"}, headers=headers)
        assert (reply.status, reply.body["field"]) == (400, "If-Match"), reply
    assert (await alice(method, one)).status == 400
    # The stored task itself, untouched (same revision, so no write happened at all).
    assert (await alice("GET", one)).body == task
    owner_unchanged = await alice(method, one, {"name": "Same", "owner": "alice", "id": task["id"]})
    assert owner_unchanged.status == 200, owner_unchanged


async def test_ids_that_are_not_numbers_or_unknown_are_404(planner, api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "One"})).body
    assert task["id"] == 1
    for raw in ("abc", "0", "-1", "1.0", "+1", " 1", "1e0", "999", "99999999999999999999"):
        for method, suffix, body in (
            ("GET", "", None),
            ("PUT", "", {"name": "x"}),
            ("PATCH", "", {"name": "x"}),
            ("DELETE", "", None),
            ("POST", "/enable", None),
            ("POST", "/disable", None),
            ("POST", "/copy", None),
            ("GET", "/export", None),
        ):
            reply = await alice(method, f"/tasks/{raw}{suffix}", body)
            assert reply.status == 404, (raw, method, suffix, reply)
            assert "no task with id" in reply.body["message"]
    assert (await alice("GET", "/tasks/1")).body == task


# -- concurrency ----------------------------------------------------------------------------


async def test_stale_revisions_conflict_and_matching_ones_win(planner, api):
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "Shared"})).body
    one = f"/tasks/{task['id']}"

    first = await alice("PATCH", one, {"description": "mine"}, headers={"If-Match": '"1"'})
    assert first.status == 200, first
    assert first.body["revision"] == 2
    stale_requests = [
        ("PATCH", {"description": "theirs"}, {"If-Match": '"1"'}),
        ("PUT", {"name": "Theirs"}, {"If-Match": '"1"'}),
        ("PATCH", {"description": "theirs", "revision": 1}, None),
        ("PUT", {"name": "Theirs", "revision": 1}, None),
        # The header wins over the body.
        ("PATCH", {"description": "theirs", "revision": 2}, {"If-Match": '"1"'}),
    ]
    for method, body, headers in stale_requests:
        reply = await alice(method, one, body, headers=headers)
        assert reply.status == 409, (method, body, reply)
        assert "reload" in reply.body["message"]
        assert (await alice("GET", one)).body == first.body

    weak = await alice("PUT", one, {"name": "Mine"}, headers={"If-Match": 'W/"2"'})
    assert (weak.status, weak.body["revision"], weak.body["name"]) == (200, 3, "Mine")
    by_body = await alice("PATCH", one, {"description": "again", "revision": 3})
    assert (by_body.status, by_body.body["revision"]) == (200, 4)
    assert by_body.headers["ETag"] == '"4"'
    anything = await alice("PATCH", one, {"description": "any"}, headers={"If-Match": "*"})
    assert (anything.status, anything.body["revision"]) == (200, 5)
    garbled = await alice("PATCH", one, {"description": "x"}, headers={"If-Match": "v5"})
    assert (garbled.status, garbled.body["field"]) == (400, "If-Match")
    assert (await alice("GET", one)).body == anything.body


async def test_unknown_api_paths_are_json_404s(planner, api):
    for user in ("alice", None):
        for method, path in (("GET", "/nope"), ("POST", "/tasks/1/explode"), ("DELETE", "/")):
            reply = await api(user)(method, path)
            assert reply.status == 404, (user, method, path, reply)
            assert "openapi.json" in reply.body["message"], reply


# -- secrets --------------------------------------------------------------------------------


async def test_secrets_are_never_returned_and_kept_on_update(planner, api):
    alice = api("alice")
    created = await alice("POST", "/tasks", {"name": "Hook", "actions": [HOOK]})
    assert created.status == 201, created
    task = created.body
    one = f"/tasks/{task['id']}"

    replies = [
        created,
        await alice("GET", one),
        await alice("GET", "/tasks"),
        await alice("GET", f"{one}/export"),
        await alice("POST", f"{one}/disable"),
        await alice("PATCH", one, {"description": "x"}),
        await api("root")("GET", "/tasks", params={"owner": "*"}),
    ]
    for reply in replies:
        assert reply.status in (200, 201), reply
        assert "s3cret" not in json.dumps(reply.body), reply
    assert task["actions"][0]["secrets"] == ["token"]
    assert task["actions"][0]["config"] == {"url": HOOK["config"]["url"]}

    async def stored_token() -> str | None:
        stored = await planner.db.call(planner.store.get_task, task["id"], None)
        return stored["actions"][0]["config"].get("token")

    assert await stored_token() == "s3cret"
    new_url = {"type": "test_hook", "config": {"url": "http://127.0.0.1:9/other"}}
    updated = await alice("PUT", one, {"name": "Hook", "actions": [new_url]})
    assert updated.status == 200, updated
    assert updated.body["actions"][0]["config"] == new_url["config"]
    assert updated.body["actions"][0]["secrets"] == ["token"]
    assert await stored_token() == "s3cret"

    read_back = (await alice("GET", one)).body
    assert (await alice("PUT", one, read_back)).status == 200
    assert await stored_token() == "s3cret"

    rotated = {**new_url, "config": {**new_url["config"], "token": "n3w"}}
    assert (await alice("PATCH", one, {"actions": [rotated]})).status == 200
    assert await stored_token() == "n3w"

    cleared = await alice("PATCH", one, {"actions": []})
    assert cleared.body["actions"] == []
    readded = await alice("PATCH", one, {"actions": [new_url]})
    assert "secrets" not in readded.body["actions"][0]
    assert await stored_token() is None


# -- run ------------------------------------------------------------------------------------


async def test_run_of_another_users_or_an_unknown_task_is_404(planner, api):
    task = (await api("alice")("POST", "/tasks", {"name": "R"})).body
    for caller, task_id in ((api("bob"), task["id"]), (api("alice"), 999), (api("alice"), "x")):
        reply = await caller("POST", f"/tasks/{task_id}/run")
        assert reply.status == 404, reply
        assert "no task with id" in reply.body["message"]


async def test_a_page_carries_each_tasks_next_start_and_last_run(api, funcs, job):
    alice = api("alice")
    daily = {"type": "cron", "config": {"expression": "0 7 * * *"}}
    ran = await create_task(alice, name="ran", jobs=[job("hello")], triggers=[daily])
    never = await create_task(alice, name="never")
    first = await wait_for_run(alice, (await alice("POST", f"/tasks/{ran['id']}/run")).body["id"])
    second = await wait_for_run(alice, (await alice("POST", f"/tasks/{ran['id']}/run")).body["id"])
    page = await alice("GET", "/tasks", params={"include": "next,last_run", "limit": 1})
    assert page.status == 200, page
    assert set(page.body["summaries"]) == {str(ran["id"])}
    assert "include=next%2Clast_run" in page.body["next"]  # the next page asks the same
    page = await alice("GET", "/tasks", params={"include": "next,last_run"})
    summary = page.body["summaries"]
    assert summary[str(ran["id"])]["last_run"]["id"] == second["id"] != first["id"]
    assert summary[str(ran["id"])]["last_run"]["status"] == "succeeded"
    assert summary[str(never["id"])] == {"next_start": None, "last_run": None}
    fires = (await alice("GET", f"/tasks/{ran['id']}/next", params={"count": 1})).body
    assert summary[str(ran["id"])]["next_start"] == fires["next"][0]["server_time"]
    # Only what was asked; nothing without include.
    only = (await alice("GET", "/tasks", params={"include": "last_run"})).body["summaries"]
    assert set(only[str(ran["id"])]) == {"last_run"}
    assert "summaries" not in (await alice("GET", "/tasks")).body


async def test_include_never_shows_another_users_tasks_or_runs(api, funcs, job):
    """Summaries are of the caller's own page: another user's tasks and runs never appear,
    however the page is asked for."""
    alice, bob = api("alice"), api("bob")
    mine = await create_task(alice, name="mine")
    bobs = await create_task(bob, name="bob's", jobs=[job("hello")])
    await wait_for_run(bob, await start_run(bob, bobs))

    page = await alice("GET", "/tasks", params={"include": "next,last_run"})
    assert page.status == 200, page
    assert [task["id"] for task in page.body["tasks"]] == [mine["id"]]
    assert page.body["summaries"] == {str(mine["id"]): {"next_start": None, "last_run": None}}
    assert "bob" not in json.dumps(page.body)
    # Past her own tasks, or searching for his name, the page is empty, not his.
    for params in ({"offset": "1"}, {"q": "bob"}, {"enabled": "true", "q": "bob"}):
        page = await alice("GET", "/tasks", params={"include": "last_run", **params})
        assert page.status == 200, (params, page)
        assert (page.body["tasks"], page.body["summaries"]) == ([], {}), params
    # Naming him (or everyone) as the owner is refused, with nothing of his in the answer.
    for owner in ("bob", "*"):
        reply = await alice("GET", "/tasks", params={"include": "next,last_run", "owner": owner})
        assert reply.status == 403, (owner, reply)
        assert set(reply.body) == {"message", "reason"}, reply
        assert "taskplanner:admin" in reply.body["message"]


async def test_include_for_an_admin_follows_the_owner_parameter(api, funcs, job):
    """As documented for ``owner``: an admin's own tasks by default, one user's with
    ``owner=bob``, everyone's with ``owner=*``; each page's summaries are its tasks'."""
    alice, bob, admin = api("alice"), api("bob"), api("root")
    alices = await create_task(alice, name="alice's")
    bobs = await create_task(bob, name="bob's", jobs=[job("hello")])
    bobs_run = await wait_for_run(bob, await start_run(bob, bobs))

    own = await admin("GET", "/tasks", params={"include": "last_run"})
    assert own.status == 200, own
    assert (own.body["tasks"], own.body["summaries"]) == ([], {})
    one = (await admin("GET", "/tasks", params={"include": "last_run", "owner": "bob"})).body
    assert [task["id"] for task in one["tasks"]] == [bobs["id"]]
    assert set(one["summaries"]) == {str(bobs["id"])}
    last = one["summaries"][str(bobs["id"])]["last_run"]
    assert (last["id"], last["owner"], last["status"]) == (bobs_run["id"], "bob", "succeeded")
    everyone = await admin("GET", "/tasks", params={"include": "next,last_run", "owner": "*"})
    assert [task["id"] for task in everyone.body["tasks"]] == [alices["id"], bobs["id"]]
    assert everyone.body["summaries"] == {
        str(alices["id"]): {"next_start": None, "last_run": None},
        str(bobs["id"]): {"next_start": None, "last_run": last},
    }


async def test_an_unknown_include_is_a_400_naming_the_parameter(api):
    alice, admin = api("alice"), api("root")
    await create_task(alice, name="mine")
    cases = {"": "''", "next,": "''", "runs": "'runs'", "next, last_run": "' last_run'"}
    cases |= {"NEXT": "'NEXT'", "next;last_run": "'next;last_run'", "next,owner": "'owner'"}
    for bad, named in cases.items():
        for caller, params in ((alice, {}), (admin, {"owner": "*"})):
            reply = await caller("GET", "/tasks", params={"include": bad, **params})
            assert reply.status == 400, (bad, reply)
            assert reply.body["field"] == "include", (bad, reply)
            message = reply.body["message"]
            assert message.startswith(f"include: unknown {named};"), (bad, message)
            assert "next, last_run" in message  # what it may name
            assert "tasks" not in reply.body
