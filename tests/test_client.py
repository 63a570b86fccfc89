"""The Python client against a real server: every endpoint, paging, errors, waiting, files,
and how it finds its server."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.client import (
    BadRequest,
    Command,
    Conflict,
    Cron,
    Forbidden,
    Http,
    Notebook,
    NotFound,
    PlannerError,
    Python,
    Task,
    TaskPlanner,
    Values,
)
from jupyter_taskplanner.client.discovery import DiscoveryError, discover
from jupyter_taskplanner.testing import in_thread, wait_until

Client = Callable[[str], Awaitable[TaskPlanner]]


@pytest.fixture
def client(planner_client: Client) -> Client:
    return planner_client


def hello_task(task_name: str = "hello", **kwargs: Any) -> Task:
    return Task(task_name, jobs=[Python("tp_funcs:hello", kwargs=kwargs or None, named="hello")])


async def test_tasks_crud_and_paging(client: Client) -> None:
    alice = await client("alice")
    created = [await in_thread(alice.create_task, hello_task(f"t{i}")) for i in range(5)]
    assert [task["owner"] for task in created] == ["alice"] * 5

    page = await in_thread(alice.tasks_page, limit=2)
    assert (len(page.items), page.total, page.has_next) == (2, 5, True)
    # The iteration fetches page after page.
    listed = await in_thread(lambda: [task["name"] for task in alice.list_tasks(page_size=2)])
    assert listed == [f"t{i}" for i in range(5)]
    assert await in_thread(lambda: [t["name"] for t in alice.list_tasks(q="t3")]) == ["t3"]

    stored = await in_thread(alice.get_task, "t1")
    assert stored["id"] == created[1]["id"]
    # A stored task reads back as the builder's classes and round-trips to the same JSON.
    rebuilt = Task.from_json(stored)
    assert isinstance(rebuilt.jobs[0], Python) and rebuilt.id == stored["id"]
    assert rebuilt.to_json() == {key: stored[key] for key in rebuilt.to_json()}  # type: ignore[literal-required]

    patched = await in_thread(alice.update_task, stored, {"description": "by patch"})
    assert patched["description"] == "by patch"
    with pytest.raises(Conflict) as conflict:
        await in_thread(alice.replace_task, stored, hello_task("t1"), revision=stored["revision"])
    assert conflict.value.status == 409
    assert "changed by someone else" in conflict.value.message

    assert (await in_thread(alice.disable_task, "t1"))["enabled"] is False
    assert await in_thread(lambda: [t["name"] for t in alice.list_tasks(enabled=False)]) == ["t1"]
    assert (await in_thread(alice.enable_task, "t1"))["enabled"] is True

    copy = await in_thread(alice.copy_task, "t1", name="t1 copy", enabled=False)
    assert (copy["name"], copy["enabled"]) == ("t1 copy", False)

    await in_thread(alice.delete_task, copy)
    with pytest.raises(NotFound) as missing:
        await in_thread(alice.get_task, copy["id"])
    assert missing.value.status == 404
    with pytest.raises(NotFound, match="no task named 'nope'"):
        await in_thread(alice.get_task, "nope")


async def test_save_task_creates_then_updates_by_name(client: Client) -> None:
    alice = await client("alice")
    first = await in_thread(alice.save_task, hello_task("daily"))
    second = await in_thread(alice.save_task, hello_task("daily", name="bob"))
    assert second["id"] == first["id"]
    assert second["revision"] == first["revision"] + 1
    assert second["jobs"][0]["config"]["kwargs"] == {"name": "bob"}


async def test_errors_carry_message_field_and_every_problem(client: Client) -> None:
    alice = await client("alice")
    body = {
        "name": "",
        "triggers": [Cron("61 * * * *").to_json()],
        "settings": {"speed": 3},
    }
    with pytest.raises(BadRequest) as invalid:
        await in_thread(alice.create_task, body)
    error = invalid.value
    assert error.status == 400 and error.reason == "Invalid"
    fields = {problem["field"] for problem in error.errors}
    assert {"name", "settings.speed", "triggers[0].config.expression"} <= fields
    assert error.field == error.errors[0]["field"]
    assert str(error) == error.message

    with pytest.raises(Forbidden):
        eve = await client("eve")
        await in_thread(eve.list_tasks().__next__)
    with pytest.raises(PlannerError) as other:
        await in_thread(alice.request, "DELETE", "taskplanner/api/components")
    assert other.value.status == 405


async def test_export_import_components_next_series_openapi(client: Client) -> None:
    alice = await client("alice")
    task = Task(
        "nightly",
        triggers=[Cron("0 3 * * *")],
        jobs=[Python("tp_funcs:hello")],
        series=Values([{"region": "north"}, {"region": "south"}]),
    )
    stored = await in_thread(alice.create_task, task)
    document = await in_thread(alice.export_task, stored)
    assert document["tasks"][0]["id"] == stored["id"]
    document["tasks"][0]["description"] = "edited"
    [imported] = await in_thread(alice.import_tasks, document)
    assert (imported["id"], imported["description"]) == (stored["id"], "edited")
    [copy] = await in_thread(alice.import_tasks, Task("imported", jobs=[Python("tp_funcs:hello")]))
    assert copy["name"] == "imported"
    [into] = await in_thread(alice.import_tasks, {**copy, "description": "into"}, into=copy["id"])
    assert into["description"] == "into"

    fires = await in_thread(alice.next_fires, stored, count=3, timezone="Asia/Tokyo")
    assert len(fires["next"]) == 3 and fires["viewer_timezone"] == "Asia/Tokyo"
    assert await in_thread(alice.preview_series, stored, count=1) == [{"region": "north"}]

    types = {(c["kind"], c["type"]) for c in await in_thread(alice.components)}
    assert {("trigger", "cron"), ("job", "notebook"), ("series", "csv")} <= types
    assert "/taskplanner/api/tasks" in (await in_thread(alice.openapi))["paths"]


async def test_run_waits_with_progress_and_returns_the_finished_run(
    client: Client, funcs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    alice = await client("alice")
    stored = await in_thread(alice.create_task, hello_task("hello", name="{who}"))
    run = await in_thread(alice.run, stored, parameters={"who": "kernel"})
    assert run["status"] == "succeeded", run
    [step] = run["steps"]
    assert step["results"][0]["value"] == "hello kernel"
    # Text progress in a terminal (tqdm writes to stderr).
    assert f"run {run['id']} succeeded" in capsys.readouterr().err

    assert "hello kernel" in await in_thread(alice.run_log, run)
    assert "hello kernel" in await in_thread(alice.run_log, run, step=step["id"], tail=100)
    raw = await in_thread(alice.run_log_range, run, step["id"], offset=0, length=5)
    assert raw == b"hello"
    assert [r["id"] for r in await in_thread(lambda: list(alice.list_runs(stored)))] == [run["id"]]
    page = await in_thread(alice.runs_page, status="succeeded")
    assert page.total == 1 and page.items[0]["id"] == run["id"]

    queued = await in_thread(alice.run, stored, wait=False, idempotency_key="once")
    again = await in_thread(alice.start_run, stored, idempotency_key="once")
    assert again["id"] == queued["id"]
    finished = await in_thread(alice.wait, queued, progress=False)
    assert finished["status"] == "succeeded"
    with pytest.raises(Conflict):
        await in_thread(alice.cancel_run, finished)


async def test_cancel_execute_and_result_files(
    client: Client, funcs: Path, tmp_path: Path, job: Callable[..., dict[str, Any]]
) -> None:
    alice = await client("alice")
    sleeper = await in_thread(
        alice.create_task, {"name": "sleeper", "jobs": [job("sleep", seconds=30)]}
    )
    started = await in_thread(alice.start_run, sleeper)

    async def running() -> bool:
        return bool((await in_thread(alice.get_run, started))["steps"])

    await wait_until(running)
    assert (await in_thread(alice.cancel_run, started))["id"] == started["id"]
    assert (await in_thread(alice.wait, started, progress=False))["status"] == "cancelled"

    maker = Command(
        "sh",
        args=["-c", "mkdir -p out && echo '{region}' > out/{region}.txt"],
        output_glob="out/*.txt",
    )
    run = await in_thread(
        alice.execute, Task("files", jobs=[maker]), parameters={"region": "north"}, progress=False
    )
    assert (run["status"], run["task_id"], run["trigger"]) == ("succeeded", None, "execute")
    [path] = await in_thread(alice.result_files, run)
    assert path.endswith("north.txt")
    assert await in_thread(alice.read_file, run, path) == b"north\n"
    saved = await in_thread(alice.download, run, path, tmp_path)
    assert saved == tmp_path / "north.txt" and saved.read_text() == "north\n"
    assert alice.file_url(run, path).startswith(alice.url + "taskplanner/api/runs/")
    with pytest.raises(NotFound):
        await in_thread(alice.download, run, "../../etc/passwd", tmp_path)
    with pytest.raises(BadRequest) as refused:
        await in_thread(alice.execute, Task("bad", jobs=[Notebook("report.txt")]))
    assert refused.value.field == "jobs[0].config.path"


async def test_http_trigger_and_events(client: Client) -> None:
    alice, bob = await client("alice"), await client("bob")
    stored = await in_thread(alice.create_task, Task("hook", triggers=[Http()]))
    token = stored["triggers"][0]["config"]["token"]
    with (
        await in_thread(alice.events) as events,
        await in_thread(alice.events, stored) as of_task,
        await in_thread(bob.events) as bobs,
    ):
        assert events.connected and of_task.connected and bobs.connected
        fired = await in_thread(alice.fire_http_trigger, stored, token, {"region": "north"})
        event = await in_thread(events.next, 10)
        assert (await in_thread(of_task.next, 10) or {}).get("run_id") == fired["run_id"]
        assert await in_thread(bobs.next, 1) is None  # alice's run is not bob's to see
    assert event is not None and event["run_id"] == fired["run_id"]
    assert (event["action"], event["owner"], event["task_id"]) == ("started", "alice", stored["id"])
    refused = await in_thread(bob.events, all_owners=True)
    assert not refused.connected and "taskplanner:admin" in (refused.refusal or "")
    hidden = await in_thread(bob.events, stored)
    assert not hidden.connected and "no task" in (hidden.refusal or ""), hidden.refusal
    with pytest.raises(NotFound):
        await in_thread(alice.fire_http_trigger, stored, "wrong-token-wrong-token")


def write_server_file(runtime: Path, pid: int, url: str, token: str) -> None:
    runtime.mkdir(parents=True, exist_ok=True)
    info = {"pid": pid, "url": url, "token": token, "root_dir": "/srv/notebooks"}
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))


def test_discovery_order(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    with pytest.raises(DiscoveryError, match="TASKPLANNER_URL"):
        discover(env={}, runtime_dir=runtime)

    # A kernel: its parent's server file (a server file of a dead process is ignored).
    write_server_file(runtime, os.getpid(), "http://127.0.0.1:9999/base", "server-token")
    write_server_file(runtime, 2**22 + 12345, "http://127.0.0.1:1/", "dead")
    kernel = discover(env={"JPY_PARENT_PID": str(os.getpid())}, runtime_dir=runtime)
    assert (kernel.url, kernel.token, kernel.source) == (
        "http://127.0.0.1:9999/base/",
        "server-token",
        "kernel",
    )
    assert kernel.root_dir == "/srv/notebooks"
    # A script beside the only running server.
    assert discover(env={}, runtime_dir=runtime).source == "running server"

    hub = {
        "JUPYTERHUB_API_TOKEN": "hub-token",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:7777/user/alice/",
        "JPY_PARENT_PID": str(os.getpid()),
    }
    found = discover(env=hub, runtime_dir=runtime)
    assert (found.url, found.token, found.source) == (
        "http://127.0.0.1:7777/user/alice/",
        "hub-token",
        "jupyterhub",
    )
    variables = {**hub, "TASKPLANNER_URL": "http://planner:1", "TASKPLANNER_TOKEN": "t"}
    found = discover(env=variables, runtime_dir=runtime)
    assert (found.url, found.token, found.source) == ("http://planner:1/", "t", "environment")
    found = discover("http://given", "g", env=variables, runtime_dir=runtime)
    assert (found.url, found.token, found.source) == ("http://given/", "g", "arguments")
    assert discover(token="other", env=hub, runtime_dir=runtime).token == "other"
