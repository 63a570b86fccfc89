"""Behaviours of the task planner users know: chains, qualifications, HTTP and file triggers."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components import Registry
from jupyter_taskplanner.testing import (
    WatchRecorder,
    create_task,
    runs_of,
    wait_for_run,
    wait_until,
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
FUNCS = textwrap.dedent(
    """
    def hello(name="world"):
        return f"hello {name}"
    """
)


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    (jp_root_dir / "tp_rules.py").write_text(FUNCS)
    shutil.copy(NOTEBOOKS / "report.ipynb", jp_root_dir / "report.ipynb")
    return jp_root_dir


def hello(**kwargs: Any) -> dict[str, Any]:
    return {"type": "python", "config": {"function": "tp_rules:hello", "kwargs": kwargs}}


def next_task(*task_ids: int) -> dict[str, Any]:
    return {"type": "next_task", "config": {"task_ids": list(task_ids)}}


async def run_now(call: Any, task_id: int, **parameters: Any) -> dict[str, Any]:
    reply = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert reply.status == 202, reply
    return await wait_for_run(call, reply.body["id"])


# -- after_task and next_task name tasks that exist, are yours, and are not the task itself ----


async def test_tasks_named_by_after_task_and_next_task_are_checked(api, root):
    alice, bob = api("alice"), api("bob")
    mine = await create_task(alice, name="mine", enabled=False)
    bobs = await create_task(bob, name="bob's", enabled=False)
    for entry, field in (
        ({"type": "after_task", "config": {"task_id": 99999}}, "triggers[0].config.task_id"),
        ({"type": "after_task", "config": {"task_id": bobs["id"]}}, "triggers[0].config.task_id"),
    ):
        reply = await alice("POST", "/tasks", {"name": "t", "triggers": [entry]})
        assert (reply.status, reply.body["field"]) == (400, field), reply
        assert "bob" not in reply.body["message"]
    reply = await alice("POST", "/tasks", {"name": "t", "actions": [next_task(mine["id"], 99999)]})
    assert (reply.status, reply.body["field"]) == (400, "actions[0].config.task_ids.1"), reply
    itself = {"type": "after_task", "config": {"task_id": mine["id"]}}
    reply = await alice("PUT", f"/tasks/{mine['id']}", {"name": "mine", "triggers": [itself]})
    assert (reply.status, reply.body["field"]) == (400, "triggers[0].config.task_id"), reply
    assert "itself" in reply.body["message"]
    reply = await alice(
        "PUT", f"/tasks/{mine['id']}", {"name": "m", "actions": [next_task(mine["id"])]}
    )
    assert reply.status == 400, reply
    assert (await alice("GET", f"/tasks/{mine['id']}")).body["revision"] == 1


async def test_an_admins_task_may_follow_any_owners_task(api, root):
    alice, admin = api("alice"), api("root")
    report = await create_task(alice, name="report", jobs=[hello()], enabled=False)
    follow = {"type": "after_task", "config": {"task_id": report["id"], "on": "always"}}
    watcher = await create_task(admin, name="system", triggers=[follow], jobs=[hello()])
    assert watcher["triggers"][0]["config"]["task_owner"] == "alice"
    await run_now(alice, report["id"])

    async def followed() -> bool:
        return bool(await runs_of(admin, watcher["id"]))

    await wait_until(followed)
    [run] = await runs_of(admin, watcher["id"])
    assert run["owner"] == "root" and run["trigger"] == f"after_task:{report['id']}"


# -- any_valid hands over only the valid results ------------------------------------------------


async def test_any_valid_hands_the_action_only_the_valid_results(api, root):
    alice = api("alice")

    def report(name: str, rows: int) -> dict[str, Any]:
        config = {
            "path": "report.ipynb",
            "parameters": {"rows": rows},
            "formats": ["ipynb"],
            "output_name": name,
            "condition": {"expression": "rows > 5"},
        }
        return {"type": "notebook", "name": name, "config": config}

    save = {"type": "save", "when": "any_valid", "config": {"folder": "kept"}}
    task = await create_task(
        alice, jobs=[report("big", 10), report("small", 1)], actions=[save], enabled=False
    )
    run = await run_now(alice, task["id"])
    assert run["status"] == "succeeded", run
    assert sorted(path.name for path in (root / "kept").iterdir()) == ["big.ipynb"]


# -- the HTTP trigger answers GET too and keeps repeated fields ----------------------------------


async def test_http_trigger_by_get_with_a_repeated_field(api, root, jp_fetch):
    alice = api("alice")
    token = "get-token-0123456789abcdef"
    task = await create_task(
        alice,
        jobs=[hello(name="{tag}")],
        triggers=[{"type": "http", "config": {"token": token}}],
    )
    response = await jp_fetch(
        "taskplanner/api/tasks",
        str(task["id"]),
        "trigger",
        token,
        method="GET",
        params=[("tag", "a"), ("tag", "b"), ("one", "x")],
        headers={"Authorization": ""},
    )
    assert response.code == 202
    [run] = await runs_of(alice, task["id"])
    done = await wait_for_run(alice, run["id"])
    assert done["parameters"] == {"tag": ["a", "b"], "one": "x"}
    assert done["steps"][0]["results"][0]["value"] == "hello a, b"


# -- the file trigger watches subfolders unless told not to -------------------------------------


async def test_file_trigger_is_recursive_by_default(tmp_path):
    registry = Registry.from_entry_points()
    (tmp_path / "in" / "deep").mkdir(parents=True)
    recursive = registry.instantiate(
        "trigger", {"type": "file", "config": {"path": "in", "debounce": 0.2}}
    )
    flat = registry.instantiate(
        "trigger", {"type": "file", "config": {"path": "in", "debounce": 0.2, "recursive": False}}
    )
    async with WatchRecorder(recursive, tmp_path) as deep, WatchRecorder(flat, tmp_path) as shallow:
        (tmp_path / "in" / "deep" / "a.csv").write_text("x")
        await deep.until(1)
        (tmp_path / "in" / "b.csv").write_text("y")
        await shallow.until(1)
    assert deep.events[0]["trigger.file"] == "in/deep/a.csv"
    assert [event["trigger.file"] for event in shallow.events] == ["in/b.csv"]
