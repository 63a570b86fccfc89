"""Regressions of the hostile review: containment, code permission, limits, spoofing, leaks.

The server here serves several users, each with a home folder of their own as root folder
(``owner_root_template``), and the planner's database beside those homes.
"""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components.base import fill_placeholders
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import wait_for_run

FUNCS = textwrap.dedent(
    """
    import os, pathlib

    def hello(name="world"):
        return f"hello {name}"

    def link_out(target):
        pathlib.Path("made").mkdir(exist_ok=True)
        os.symlink(target, "made/leak.txt")
        return [pathlib.Path("made/leak.txt")]
    """
)


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    for user in ("alice", "bob", "dan", "root"):
        (tmp_path / "homes" / user).mkdir(parents=True)
        (tmp_path / "homes" / user / "tp_funcs.py").write_text(FUNCS)
    (tmp_path / "homes" / "bob" / "secret.csv").write_text("card\n4111-1111\n")
    return tmp_path / "homes"


@pytest.fixture
def planner_settings(homes: Path) -> dict[str, Any]:
    return {"owner_root_template": str(homes / "{owner}")}


async def create(call, expect: int = 201, **body: Any) -> Any:
    reply = await call("POST", "/tasks", {"name": "t", "enabled": False, **body})
    assert reply.status == expect, reply
    return reply.body


async def run_task(call, task_id: int, **parameters: Any) -> dict[str, Any]:
    reply = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert reply.status == 202, reply
    return await wait_for_run(call, reply.body["id"])


def sql_series(**config: Any) -> dict[str, Any]:
    return {"type": "sql", "config": {"query": "select owner, name, actions from tasks", **config}}


# -- 1. no component reaches the planner's database or another user's files ------------------


async def test_sql_url_cannot_open_the_planner_database(api, db_path, homes):
    alice, bob = api("alice"), api("bob")
    await create(
        alice,
        actions=[{"type": "webhook", "config": {"url": "https://x.example", "secret": "s3cr3t"}}],
    )
    for url in (
        f"sqlite:///{db_path}",
        f"sqlite:///../../planner/{db_path.name}",
        f"sqlite+pysqlite:///{db_path}?uri=true",
        "sqlite:///file:tasks.db?uri=true",
        "mysql://u@h/db?read_default_file=/etc/mysql/my.cnf",
    ):
        reply = await create(bob, 400, series=sql_series(url=url))
        assert reply["field"] == "series.config.url", (url, reply)
        assert "s3cr3t" not in json.dumps(reply)

    # A link in bob's home that leads to the database is followed and refused too.
    os.symlink(db_path, homes / "bob" / "tasks.db")
    for series in (sql_series(url="sqlite:///tasks.db"), sql_series(database="tasks.db")):
        reply = await create(bob, 400, series=series)
        assert "outside your root folder" in reply["message"], reply


async def test_a_link_made_after_saving_is_refused_when_the_series_runs(api, db_path, homes):
    bob = api("bob")
    (homes / "bob" / "mine.db").write_bytes(b"")
    task = await create(bob, series=sql_series(database="mine.db", query="select 1 as one"))
    assert (await bob("GET", f"/tasks/{task['id']}/series/preview")).status == 200
    (homes / "bob" / "mine.db").unlink()
    os.symlink(db_path, homes / "bob" / "mine.db")
    reply = await bob("GET", f"/tasks/{task['id']}/series/preview")
    assert (reply.status, reply.body["field"]) == (400, "series"), reply
    assert "'mine.db' is outside your root folder" in reply.body["message"]


class TestDatabaseInsideTheRoot:
    """The single-user default: the database in the Jupyter data folder under the home."""

    @pytest.fixture
    def db_path(self, homes: Path) -> Path:
        return homes / "alice" / ".local" / "share" / "jupyter" / "taskplanner" / "tasks.db"

    @pytest.fixture
    def planner_settings(self, homes: Path) -> dict[str, Any]:
        return {"owner_root_template": str(homes / "{owner}")}

    async def test_no_path_leads_into_the_planner_folders(self, api, db_path, homes):
        alice = api("alice")
        await create(alice)
        folder = db_path.parent.relative_to(homes / "alice")
        os.symlink(db_path.parent / "runs", homes / "alice" / "runs_link")
        for series in (
            {"type": "csv", "config": {"path": f"{folder}/tasks.db"}},
            {"type": "directory", "config": {"path": str(folder)}},
            {"type": "directory", "config": {"path": "runs_link"}},
            sql_series(database=f"{folder}/tasks.db"),
            sql_series(url=f"sqlite:///{db_path}"),
        ):
            reply = await create(alice, 400, series=series)
            assert "planner's own data folder" in reply["message"], (series, reply)
        # A pattern from the root that would reach into them finds nothing there.
        task = await create(
            alice,
            series={
                "type": "directory",
                "config": {"path": ".", "pattern": "**/*", "include_hidden": True},
            },
        )
        reply = await alice("GET", f"/tasks/{task['id']}/series/preview", params={"count": 100})
        assert reply.status == 200, reply
        found = [item["path"] for item in reply.body["sets"]]
        assert "tp_funcs.py" in found and not any("taskplanner" in p for p in found), found


async def test_files_of_another_user_are_out_of_reach(api, homes):
    alice = api("alice")
    os.symlink(homes / "bob", homes / "alice" / "bob_link")
    os.symlink("/etc", homes / "alice" / "etc_link")
    for series in (
        {"type": "csv", "config": {"path": "../bob/secret.csv"}},
        {"type": "csv", "config": {"path": "bob_link/secret.csv"}},
        {"type": "directory", "config": {"path": "bob_link"}},
        {"type": "directory", "config": {"path": "/etc"}},
    ):
        reply = await create(alice, 400, series=series)
        assert reply["field"] == "series.config.path", (series, reply)
    # A pattern through a link inside the root: the link is followed, what is outside dropped.
    for pattern in ("etc_link/*", "bob_link/*", "*/*"):
        task = await create(
            alice, series={"type": "directory", "config": {"path": ".", "pattern": pattern}}
        )
        reply = await alice("GET", f"/tasks/{task['id']}/series/preview", params={"count": 100})
        assert reply.status == 200, reply
        assert reply.body["sets"] == [], (pattern, reply.body)


async def test_result_files_that_link_outside_are_not_kept_or_served(api, homes):
    alice = api("alice")
    job = {
        "type": "python",
        "config": {"function": "tp_funcs:link_out", "kwargs": {"target": "/etc/passwd"}},
    }
    run = await run_task(alice, (await create(alice, jobs=[job]))["id"])
    assert run["status"] == "failed", run
    assert "not among your files" in run["steps"][0]["error"]
    reply = await alice("GET", f"/runs/{run['id']}/files/1-python/output/leak.txt")
    assert reply.status == 404


# -- 2. code needs taskplanner:shell on a server of several users ----------------------------


CODE_COMPONENTS = [
    ("jobs", {"type": "python", "config": {"function": "subprocess:getoutput"}}),
    ("jobs", {"type": "script", "config": {"path": "x.py"}}),
    ("jobs", {"type": "notebook", "config": {"path": "x.ipynb"}}),
    ("jobs", {"type": "command", "config": {"program": "id"}}),
    ("series", {"type": "python", "config": {"function": "os:listdir"}}),
]


@pytest.mark.parametrize(("slot", "entry"), CODE_COMPONENTS)
async def test_code_needs_the_shell_permission_when_saved(api, slot, entry):
    dan = api("dan")
    body = {slot: [entry] if slot == "jobs" else entry}
    reply = await create(dan, 403, **body)
    where = "jobs[0]" if slot == "jobs" else "series"
    assert reply["field"] == where
    assert "taskplanner:shell" in reply["message"] and repr(entry["type"]) in reply["message"]
    assert (await dan("GET", "/tasks")).body["total"] == 0
    # An admin cannot create one for dan either (import keeps the owner).
    task = {"name": "for dan", "owner": "dan", **body}
    imported = await api("root")("POST", "/tasks/import", task)
    assert imported.status == 403, imported


async def test_components_list_what_this_server_asks_for(api):
    listed = (await api("dan")("GET", "/components")).body["components"]
    needs = {(item["kind"], item["type"]): item["permissions"] for item in listed}
    assert needs[("job", "python")] == ["taskplanner:shell"]
    assert needs[("series", "python")] == ["taskplanner:shell"]
    assert needs[("job", "command")] == ["taskplanner:shell"]
    assert needs[("series", "csv")] == []
    assert next(item for item in listed if item["type"] == "notebook")["runs_code"] is True


async def test_a_run_fails_when_the_owner_lost_the_shell_permission(api, jp_serverapp):
    alice = api("alice")
    task = await create(alice, jobs=[{"type": "python", "config": {"function": "tp_funcs:hello"}}])
    jp_serverapp.authorizer.grants["alice"] = ["taskplanner"]
    run = await run_task(alice, task["id"])
    assert run["status"] == "failed"
    assert "taskplanner:shell" in run["error"] and run["steps"] == []


# -- 3. limits: placeholders, bodies ---------------------------------------------------------


def test_a_placeholder_cannot_expand_beyond_the_limit():
    values = {"owner": "alice", "big": "x" * 600}
    with pytest.raises(InvalidConfig, match="max_filled_length"):
        fill_placeholders("{owner:>200000000}", values, 1000)
    with pytest.raises(InvalidConfig, match="max_filled_length"):
        fill_placeholders("{owner:.9" + "9" * 5000 + "}", values, 1000)
    with pytest.raises(InvalidConfig, match=r"filling in \{big\}"):
        fill_placeholders("{big}{big}", values, 1000)
    assert fill_placeholders("{owner:>10}|{big}", values, 1000) == "     alice|" + "x" * 600


async def test_a_huge_format_width_fails_the_step_not_the_server(api):
    alice = api("alice")
    job = {"type": "python", "config": {"function": "tp_funcs:hello"}}
    save = {"type": "save", "config": {"folder": "out", "name": "{owner:>200000000}"}}
    run = await run_task(alice, (await create(alice, jobs=[job], actions=[save]))["id"], x="unused")
    assert run["status"] == "failed"
    [action] = [step for step in run["steps"] if step["kind"] == "action"]
    assert "max_filled_length" in action["error"]


async def test_bodies_over_the_limit_are_refused_and_never_echoed(api, planner):
    alice = api("alice")
    huge = {"name": "t", "description": "d" * (planner.settings.max_body_bytes + 10)}
    reply = await alice("POST", "/tasks", huge)
    assert reply.status == 413, reply
    assert "max_body_bytes" in reply.body["message"]
    # Below the limit but invalid: the answer quotes an excerpt, not the value.
    reply = await alice("POST", "/tasks", {"name": "t", "description": "d" * 500_000})
    assert reply.status == 400 and reply.body["field"] == "description"
    assert len(json.dumps(reply.body)) < 1000
    assert (await alice("GET", "/tasks")).body["total"] == 0


@pytest.mark.parametrize("depth", [65, 1000, 100_000])
async def test_deeply_nested_bodies_are_a_400(api, depth):
    alice = api("alice")
    nested = "[" * depth + "]" * depth
    for path in ("/tasks", "/tasks/import"):
        reply = await alice("POST", path, '{"name": "t", "description": ' + nested + "}")
        assert reply.status == 400, (path, reply)
        assert "levels deep" in reply.body["message"]


# -- 6. built-in placeholders cannot be spoofed ----------------------------------------------


async def test_callers_cannot_set_built_in_placeholders(api, jp_fetch):
    alice = api("alice")
    job = {"type": "python", "config": {"function": "tp_funcs:hello", "kwargs": {"name": "x"}}}
    task = await create(
        alice,
        enabled=True,
        jobs=[job],
        triggers=[{"type": "http", "config": {"token": "t0ken-0123456789abcdef"}}],
    )
    for name in ("owner", "task.name", "run.id", "trigger.due", "job.a.b"):
        reply = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": {name: "x"}})
        assert reply.status == 400 and reply.body["field"] == f"parameters.{name}", reply
    with pytest.raises(Exception) as info:
        await jp_fetch(
            "taskplanner/api/tasks",
            str(task["id"]),
            "trigger",
            "t0ken-0123456789abcdef",
            method="POST",
            body="",
            params={"owner": "admin", "task.name": "spoofed", "run.id": "1"},
            headers={"Authorization": ""},
        )
    assert info.value.code == 400
    assert (await alice("GET", f"/tasks/{task['id']}/runs")).body["total"] == 0


async def test_series_columns_do_not_override_built_ins(api):
    alice = api("alice")
    job = {
        "type": "python",
        "config": {"function": "tp_funcs:hello", "kwargs": {"name": "{owner}"}},
    }
    series = {"type": "values", "config": {"values": [{"owner": "mallory"}]}}
    run = await run_task(alice, (await create(alice, jobs=[job], series=series))["id"])
    assert run["status"] == "succeeded", run
    assert run["steps"][1]["results"][0]["value"] == "hello alice"


# -- 7. paths that can never work are refused when saved -------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"triggers": [{"type": "file", "config": {"path": "/etc"}}]}, "triggers[0].config.path"),
        (
            {"jobs": [{"type": "notebook", "config": {"path": "../bob/x.ipynb"}}]},
            "jobs[0].config.path",
        ),
        (
            {"jobs": [{"type": "script", "config": {"path": "/usr/bin/x.py"}}]},
            "jobs[0].config.path",
        ),
        (
            {"jobs": [{"type": "python", "config": {"function": "a:b", "path": "/"}}]},
            "jobs[0].config.path",
        ),
        ({"actions": [{"type": "save", "config": {"folder": "/tmp"}}]}, "actions[0].config.folder"),
        (
            {"actions": [{"type": "save", "config": {"folder": "{x}/../../bob"}}]},
            "actions[0].config.folder",
        ),
        (
            {"actions": [{"type": "save", "config": {"folder": "out", "name": "/etc/{filename}"}}]},
            "actions[0].config.name",
        ),
    ],
)
async def test_paths_that_can_never_work_are_refused_when_saved(api, body, field):
    reply = await create(api("alice"), 400, **body)
    assert reply["field"] == field, reply
    assert reply["message"].startswith(field)


async def test_an_absolute_path_inside_the_root_is_accepted(api, homes):
    alice = api("alice")
    folder = str(homes / "alice" / "out")
    task = await create(alice, actions=[{"type": "save", "config": {"folder": folder}}])
    assert task["actions"][0]["config"]["folder"] == folder


# -- 8 and 10. clear 4xx where the server answered 500, agreement with the API document ------


async def test_next_fire_times_past_the_year_9999_end(api):
    alice = api("alice")
    trigger = {
        "type": "interval",
        "config": {"every": 1, "unit": "days", "start": "9999-12-31T23:59:59"},
    }
    task = await create(alice, triggers=[trigger])
    reply = await alice("GET", f"/tasks/{task['id']}/next")
    assert reply.status == 200, reply
    assert len(reply.body["next"]) <= 1


async def test_query_arguments_and_methods_agree_with_the_document(api):
    alice = api("alice")
    reply = await alice("GET", "/tasks", params={"enabled": ""})
    assert (reply.status, reply.body["field"]) == (400, "enabled")
    reply = await alice("DELETE", "/components")
    assert reply.status == 405 and reply.headers["Allow"] == "GET", reply
    reply = await alice("PATCH", "/tasks")
    assert reply.status == 405 and reply.headers["Allow"] == "GET, POST", reply
    document = (await alice("GET", "/openapi.json")).body
    timezone = document["components"]["schemas"]["Settings"]["properties"]["timezone"]
    assert "Europe/Berlin" in timezone["enum"] and "00" not in timezone["enum"]


# -- 9. the HTTP trigger's token is a credential of one task ---------------------------------


async def test_http_tokens_are_not_exported_and_copies_get_new_ones(api):
    alice = api("alice")
    made = await create(alice, triggers=[{"type": "http", "config": {}}])
    token = made["triggers"][0]["config"]["token"]
    assert len(token) >= 16
    exported = (await alice("GET", f"/tasks/{made['id']}/export")).body
    assert token not in json.dumps(exported)
    assert exported["tasks"][0]["triggers"][0]["config"] == {}

    copied = (await alice("POST", f"/tasks/{made['id']}/copy")).body
    # Imported as it is, the export updates the task itself: the same task keeps its token.
    updated = (await alice("POST", "/tasks/import", exported)).body["tasks"][0]
    assert updated["id"] == made["id"]
    assert updated["triggers"][0]["config"]["token"] == token
    # Without its id it makes a new task, with a new token.
    del exported["tasks"][0]["id"], exported["tasks"][0]["revision"]
    imported = (await alice("POST", "/tasks/import", exported)).body["tasks"][0]
    given = dict(made, triggers=[{"type": "http", "config": {"token": token}}])
    again = await alice("POST", "/tasks/import", {"name": "x", "triggers": given["triggers"]})
    tokens = [
        task["triggers"][0]["config"]["token"]
        for task in (copied, imported, again.body["tasks"][0])
    ]
    assert token not in tokens and len(set(tokens)) == 3

    kept = await alice("PATCH", f"/tasks/{made['id']}", {"triggers": [{"type": "http"}]})
    assert kept.body["triggers"][0]["config"]["token"] == token


class TestSingleUser:
    """A personal server grants code to its one user: nothing changes there."""

    @pytest.fixture
    def planner_settings(self, homes: Path) -> dict[str, Any]:
        return {"single_user": True, "single_user_name": "dan"}

    async def test_code_needs_no_extra_permission(self, api):
        dan = api("dan")
        job = {"type": "python", "config": {"function": "tp_funcs:hello"}}
        task = await create(dan, jobs=[job])
        listed = (await dan("GET", "/components")).body["components"]
        assert all(item["permissions"] == [] for item in listed if item["type"] == "python")
        assert task["owner"] == "dan"
