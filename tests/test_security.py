"""Regressions of the hostile review: containment, code permission, limits, spoofing, leaks.

The server here serves several users, each with a home folder of their own as root folder
(``owner_root_template``), and the planner's database beside those homes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from tornado.httpclient import HTTPClientError

from jupyter_taskplanner import outbound
from jupyter_taskplanner.actions.save import _Local
from jupyter_taskplanner.actions.webhook import SIGNATURE_HEADER
from jupyter_taskplanner.components.base import RunContext, fill_placeholders
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.paths import OwnerFiles
from jupyter_taskplanner.testing import Reply, runs_of, wait_for_run

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


# -- probes beyond the review's reproductions: the same classes of bug, other doors ------


async def test_series_columns_named_like_built_ins_change_nothing(api, homes):
    """A set's keys never stand for ``run.status``, ``trigger.*``, ``job.*`` or the others."""
    alice = api("alice")
    job = {
        "type": "python",
        "name": "j",
        "config": {
            "function": "tp_funcs:hello",
            "kwargs": {"name": "{owner}|{task.id}|{run.status}|{trigger.due}|{job.j.rows}|{k}"},
        },
    }
    save = {
        "type": "save",
        "config": {"folder": "out", "name": "{job.j.rows}-{run.status}.txt", "save_text": True},
    }
    spoofed = {
        "owner": "mallory",
        "task.id": "0",
        "run.status": "spoofed",
        "trigger.due": "spoofed",
        "job.j.rows": "spoofed",
        "k": "kept",
    }
    series = {"type": "values", "config": {"values": [spoofed]}}
    task = await create(alice, jobs=[job], actions=[save], series=series)
    reply = await alice("POST", f"/tasks/{task['id']}/run")
    run = await wait_for_run(alice, reply.body["id"])
    assert run["status"] == "succeeded", run
    [job_step] = [step for step in run["steps"] if step["kind"] == "job"]
    assert job_step["results"][0]["value"] == (
        f"hello alice|{task['id']}|{{run.status}}|{{trigger.due}}|{{job.j.rows}}|kept"
    )
    # The set's record still shows what the series gave.
    assert job_step["set_values"] == spoofed
    assert [path.name for path in (homes / "alice" / "out").iterdir()] == [
        "{job.j.rows}-succeeded.txt"
    ]


@pytest.mark.parametrize("name", ["..", "x/../bob", "a\\b"])
async def test_a_user_name_that_is_no_folder_name_has_no_files(
    name, jp_serverapp, jp_fetch, start_planner, homes
):
    """``/home/{owner}`` with ``..`` would be every home; such a user gets a 403, not a 500."""
    provider, authorizer = jp_serverapp.identity_provider, jp_serverapp.authorizer
    provider.user_tokens = {**provider.user_tokens, "odd-token": name}
    authorizer.grants = {**authorizer.grants, name: ["taskplanner"]}
    await start_planner()

    async def call(method: str, path: str, body: str | None = None) -> Reply:
        try:
            response = await jp_fetch(
                "taskplanner/api" + path,
                method=method,
                body=body,
                headers={"Authorization": "token odd-token"},
            )
        except HTTPClientError as exc:
            assert exc.response is not None
            response = exc.response
        return Reply(response)

    for path in ("bob/secret.csv", "homes/bob/secret.csv", "secret.csv"):
        series = f'{{"type": "csv", "config": {{"path": "{path}"}}}}'
        reply = await call("POST", "/tasks", f'{{"name": "t", "series": {series}}}')
        assert reply.status == 403, reply
        assert "cannot name a folder" in reply.body["message"]
    reply = await call("POST", "/execute", '{"name": "t"}')
    assert reply.status == 403, reply
    assert (await call("GET", "/tasks")).body["total"] == 0


@pytest.fixture
def netrc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A login for 127.0.0.1 in the server account's netrc file (``NETRC``)."""
    path = tmp_path / "netrc"
    path.write_text("machine 127.0.0.1 login server password s3rver-pa55\n")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    return "s3rver-pa55"


async def test_a_webhook_never_sends_the_servers_netrc_login(api, http, netrc):
    alice = api("alice")
    hook = {"type": "webhook", "config": {"url": http.url + "/hook"}}
    task = await create(alice, actions=[hook])
    reply = await alice("POST", f"/tasks/{task['id']}/run")
    run = await wait_for_run(alice, reply.body["id"])
    assert run["status"] == "succeeded", run
    [request] = http.requests
    assert "Authorization" not in request.headers, request.headers


def test_task_sessions_never_send_the_servers_netrc_login(http, netrc):
    """The session the calendar trigger fetches its feeds with, as the webhook's."""
    with outbound.session() as session:
        assert session.get(http.url + "/feed.ics", timeout=10).status_code == 200
    [request] = http.requests
    assert "Authorization" not in request.headers, request.headers
    # Requests of anything else in the server (outside a task's) are left as they were.
    with requests.Session() as session:
        assert session.get(http.url + "/other", timeout=10).status_code == 200
    assert http.requests[1].headers["Authorization"].startswith("Basic ")


class TestPlannerFoldersInsideTheRoot:
    """The database in alice's Jupyter data folder, so the planner's folders are in her root."""

    @pytest.fixture
    def db_path(self, homes: Path) -> Path:
        return homes / "alice" / ".local" / "share" / "jupyter" / "taskplanner" / "tasks.db"

    async def test_a_file_trigger_does_not_watch_through_a_link_made_later(
        self, api, db_path, homes
    ):
        alice = api("alice")
        for folder in ("watched", "plain"):
            (homes / "alice" / folder).mkdir()
        trigger = {"type": "file", "config": {"path": "watched", "debounce": 0.1}}
        linked = await create(alice, triggers=[trigger])
        plain = await create(
            alice, triggers=[{"type": "file", "config": {"path": "plain", "debounce": 0.1}}]
        )
        # Saved while it was a folder of hers; now a link into the planner's run records.
        runs = db_path.parent / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        (homes / "alice" / "watched").rmdir()
        os.symlink(runs, homes / "alice" / "watched")
        for task in (linked, plain):
            reply = await alice("POST", f"/tasks/{task['id']}/enable")
            assert reply.status == 200, reply
        await asyncio.sleep(0.5)  # the watches start
        (runs / "changed.txt").write_text("x")
        (homes / "alice" / "plain" / "changed.txt").write_text("x")
        for _ in range(200):  # 20 s
            if await runs_of(alice, plain["id"]):
                break
            await asyncio.sleep(0.1)
        assert await runs_of(alice, plain["id"]), "the plain folder's watch never fired"
        await asyncio.sleep(0.5)
        assert await runs_of(alice, linked["id"]) == []


async def test_the_http_trigger_token_stays_out_of_the_server_log(api, jp_fetch, caplog):
    caplog.set_level(logging.DEBUG)
    alice = api("alice")
    token = "t0ken-0123456789abcdef"
    task = await create(alice, triggers=[{"type": "http", "config": {"token": token}}])

    async def trigger() -> int:
        try:
            response = await jp_fetch(
                "taskplanner/api/tasks", str(task["id"]), "trigger", token, method="POST", body=""
            )
        except HTTPClientError as exc:
            return exc.code
        return response.code

    assert await trigger() == 400  # disabled: logged as a refusal, with the URL
    await alice("POST", f"/tasks/{task['id']}/enable")
    assert await trigger() == 202
    logged = [record.getMessage() for record in caplog.records]
    assert any(f"/tasks/{task['id']}/trigger/****" in line for line in logged), logged
    assert not [line for line in logged if token in line]


@pytest.mark.parametrize(
    "query",
    [
        "local_infile=1",
        "LOCAL_INFILE=true",
        "allow_local_infile=1",
        "service=prod",
        "passfile=pgpass",
        "read_default_group=client",
        "sslkey=key.pem",
    ],
)
async def test_a_database_url_cannot_make_the_driver_read_the_servers_files(api, query):
    """With local_infile the database server may ask the client for any file it names."""
    for url in (f"mysql+pymysql://u:pw@db.example/crm?{query}", f"postgresql://u@db/x?{query}"):
        series = {"type": "sql", "config": {"url": url, "query": "select 1"}}
        reply = await create(api("alice"), 400, series=series)
        assert reply["field"] == "series.config.url", reply
        assert "makes the driver read" in reply["message"] and "pw" not in reply["message"]


def test_a_link_put_in_the_way_after_the_check_is_not_followed(tmp_path):
    """Checking a path and writing it are two steps; a link swapped in between is refused."""
    root, elsewhere = tmp_path / "alice", tmp_path / "bob"
    (root / "out").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "report.txt").write_text("bob's")
    files = OwnerFiles(root)
    target = files.resolve("out/report.txt")
    (root / "out").rmdir()
    (root / "out").symlink_to(elsewhere)
    for attempt in (
        lambda: files.open(target, os.O_WRONLY | os.O_TRUNC),
        lambda: files.make_folders(target.parent / "deeper"),
        lambda: files.unlink(target),
    ):
        with pytest.raises(InvalidConfig, match="a link was put in its way"):
            attempt()
    (root / "out").unlink()
    (root / "out").mkdir()
    (root / "out" / "report.txt").symlink_to(elsewhere / "report.txt")
    with pytest.raises(InvalidConfig, match="a link was put in its way"):
        files.open(target, os.O_WRONLY | os.O_APPEND)
    assert (elsewhere / "report.txt").read_text() == "bob's"
    # Without a link in the way the folders are made and the file written.
    made = files.resolve("new/deep/x.txt")
    with os.fdopen(files.open(made, os.O_WRONLY | os.O_CREAT, parents=True), "w") as out:
        out.write("mine")
    assert made.read_text() == "mine"


def test_the_save_action_writes_nothing_through_a_link_swapped_in_after_its_check(tmp_path):
    root, elsewhere = tmp_path / "alice", tmp_path / "bob"
    root.mkdir()
    elsewhere.mkdir()
    ctx = RunContext(
        owner="alice",
        owner_root=root,
        task_id=1,
        task_name="t",
        run_id=1,
        started=datetime.now(UTC),
        output_dir=tmp_path / "run",
    )
    destination = _Local(ctx, "out")  # checked and made: out is alice's folder
    target = destination.place("report.txt")
    (root / "out").rmdir()
    (root / "out").symlink_to(elsewhere)
    with pytest.raises(InvalidConfig, match="a link was put in its way"):
        destination.write(target, b"figures")
    assert list(elsewhere.iterdir()) == []


async def test_an_admin_never_sends_another_users_secret_somewhere_new(api, http, planner):
    alice, root = api("alice"), api("root")
    hook = {"type": "webhook", "config": {"url": http.url + "/alice", "secret": "alices-hmac-key"}}
    task = await create(alice, actions=[hook])

    async def stored_secret(task_id: int) -> str | None:
        stored = await planner.db.call(planner.store.get_task, task_id, None)
        return stored["actions"][0]["config"].get("secret")

    def edited(shown: dict[str, Any], **config: Any) -> dict[str, Any]:
        body = {key: shown[key] for key in ("name", "description", "triggers", "jobs", "series")}
        action = {**shown["actions"][0], "config": {**shown["actions"][0]["config"], **config}}
        return {**body, "actions": [action], "settings": shown["settings"]}

    # An admin's edit that leaves the webhook as stored keeps her secret...
    shown = (await root("GET", f"/tasks/{task['id']}")).body
    body = {**edited(shown), "description": "checked by the admin"}
    assert (await root("PUT", f"/tasks/{task['id']}", body)).status == 200
    assert await stored_secret(task["id"]) == "alices-hmac-key"
    # ... but one that points it elsewhere does not carry it there.
    shown = (await root("GET", f"/tasks/{task['id']}")).body
    moved = edited(shown, url=http.url + "/admins")
    assert (await root("PUT", f"/tasks/{task['id']}", moved)).status == 200
    assert await stored_secret(task["id"]) is None
    # Her own edits keep it, as before.
    body = edited((await alice("GET", f"/tasks/{task['id']}")).body, secret="alices-hmac-key")
    assert (await alice("PUT", f"/tasks/{task['id']}", body)).status == 200
    shown = (await alice("GET", f"/tasks/{task['id']}")).body
    body = edited(shown, url=http.url + "/alice-new")
    assert (await alice("PUT", f"/tasks/{task['id']}", body)).status == 200
    assert await stored_secret(task["id"]) == "alices-hmac-key"

    # An admin's copy, or ad-hoc execution, of her task holds none of her secrets.
    copied = await root("POST", f"/tasks/{task['id']}/copy")
    assert copied.status == 201, copied
    assert await stored_secret(copied.body["id"]) is None
    executed = await root("POST", "/execute", {"task_id": task["id"]})
    assert executed.status == 202, executed
    run = await wait_for_run(root, executed.body["id"])
    assert run["status"] == "succeeded", run
    document = await planner.db.call(planner.store.run_document, run["id"])
    assert document is not None and "secret" not in document["actions"][0]["config"]
    [request] = http.requests
    assert request.path == "/alice-new" and SIGNATURE_HEADER not in request.headers
    # Hers still sign with it.
    mine = await alice("POST", "/execute", {"task_id": task["id"]})
    await wait_for_run(alice, mine.body["id"])
    assert SIGNATURE_HEADER in (await http.wait_async(2))[1].headers
