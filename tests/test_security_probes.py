"""Probes beyond the hostile review's reproductions: the same classes of bug, other doors.

A server of several users, each with a home folder as root folder (``owner_root_template``),
and the planner's database beside those homes (inside one home where a test says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from jupyter_taskplanner import outbound
from jupyter_taskplanner.actions.save import _Local
from jupyter_taskplanner.components.base import RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.paths import OwnerFiles
from jupyter_taskplanner.testing import Reply, runs_of, wait_for_run

FUNCS = textwrap.dedent(
    """
    def hello(name="world"):
        return f"hello {name}"
    """
)


@pytest.fixture
def homes(tmp_path: Path) -> Path:
    for user in ("alice", "bob"):
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
