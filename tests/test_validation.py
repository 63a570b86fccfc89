"""Saving a task validates its body in one pass and reports every problem at once."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from jupyter_taskplanner import model
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.jobs.notebook import NotebookJob
from jupyter_taskplanner.permissions import ComponentRules

# Three independent mistakes: a component check, a component's path rule, the task schema.
THREE_MISTAKES = {
    "name": "three mistakes",
    "triggers": [{"type": "cron", "config": {"expression": "61 * * * *"}}],
    "jobs": [{"type": "notebook", "config": {"path": "report.txt"}}],
    "settings": {"speed": 11},
}
THREE_FIELDS = ["settings.speed", "triggers[0].config.expression", "jobs[0].config.path"]
CODE = {"type": "python", "config": {"function": "os:getcwd"}}


def fields(reply: Any) -> list[str | None]:
    return [error["field"] for error in reply.body["errors"]]


async def total(call: Any) -> int:
    return (await call("GET", "/tasks")).body["total"]


async def test_a_body_with_several_mistakes_is_answered_with_all_of_them(api):
    alice = api("alice")
    reply = await alice("POST", "/tasks", THREE_MISTAKES)
    assert (reply.status, reply.body["reason"]) == (400, "Invalid"), reply
    assert fields(reply) == THREE_FIELDS
    first = reply.body["errors"][0]
    assert (reply.body["field"], reply.body["message"]) == (first["field"], first["message"])
    for error, words in zip(
        reply.body["errors"], ("unknown field", "minute", ".ipynb"), strict=True
    ):
        assert error["message"].startswith(error["field"]) and words in error["message"], error
    assert await total(alice) == 0

    task = (await alice("POST", "/tasks", {"name": "kept"})).body
    for method in ("PUT", "PATCH"):
        reply = await alice(method, f"/tasks/{task['id']}", THREE_MISTAKES)
        assert (reply.status, fields(reply)) == (400, THREE_FIELDS), (method, reply)
    assert (await alice("GET", f"/tasks/{task['id']}")).body == task

    # One mistake: the reply is what it always was, without a list.
    single = await alice("POST", "/tasks", {"name": "x", "settings": {"speed": 11}})
    assert single.status == 400 and single.body["field"] == "settings.speed"
    assert "errors" not in single.body


async def test_every_problem_of_one_component_is_listed_and_an_unknown_type_ends_its_checks(api):
    alice = api("alice")
    body = {
        "name": "x",
        "jobs": [
            {"type": "notebook", "config": {"path": 5, "input": "sometimes"}},
            {"type": "notbook", "config": {"path": "/etc/passwd"}},
        ],
        "series": {"type": "csv", "config": {"path": "/etc/passwd"}},
    }
    reply = await alice("POST", "/tasks", body)
    assert reply.status == 400, reply
    assert fields(reply) == [
        "jobs[0].config.path",
        "jobs[0].config.input",
        "jobs[1].type",
        "series.config.path",
    ]


async def test_an_import_reports_the_mistakes_of_every_task(api):
    alice = api("alice")
    body = [
        {"name": "fine"},
        {"name": "A", "settings": {"speed": 11}},
        {"name": "B", "jobs": [{"type": "nope"}]},
        "C",
    ]
    reply = await alice("POST", "/tasks/import", body)
    assert reply.status == 400, reply
    assert fields(reply) == ["tasks[1].settings.speed", "tasks[2].jobs[0].type", None]
    assert reply.body["errors"][2]["message"].startswith("tasks[3]: each task")
    assert reply.body["field"] == "tasks[1].settings.speed"
    assert await total(alice) == 0


async def test_bad_input_outranks_a_missing_permission(api):
    dan, root = api("dan"), api("root")
    # Permissions alone: a 403 naming every component dan may not use.
    only = await dan("POST", "/tasks", {"name": "x", "jobs": [CODE, CODE]})
    assert (only.status, only.body["field"]) == (403, "jobs[0]"), only
    assert fields(only) == ["jobs[0]", "jobs[1]"]
    # With bad input as well: a 400 that still lists the permission problem, last.
    both = await dan("POST", "/tasks", {"name": "x", "jobs": [CODE], "settings": {"speed": 1}})
    assert (both.status, both.body["reason"], both.body["field"]) == (
        400,
        "Invalid",
        "settings.speed",
    )
    assert fields(both) == ["settings.speed", "jobs[0]"]
    assert "taskplanner:shell" in both.body["errors"][1]["message"]
    # And across the tasks of an import.
    tasks = [{"name": "for dan", "owner": "dan", "jobs": [CODE]}, {"name": "b", "colour": 1}]
    imported = await root("POST", "/tasks/import", tasks)
    assert imported.status == 400, imported
    assert fields(imported) == ["tasks[1].colour", "tasks[0].jobs[0]"]
    assert await total(dan) == 0 and await total(root) == 0


@pytest.fixture
def calls(monkeypatch) -> Counter[str]:
    """How often each check of a save ran, counted by wrappers around them."""
    counted: Counter[str] = Counter()

    def count(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def counting(*args: Any, **kwargs: Any) -> Any:
            counted[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counting)

    count(model, "shape_problems")
    count(Registry, "validate")
    count(ComponentRules, "check")
    count(model, "check_entry_paths")
    count(NotebookJob, "freeze")
    return counted


async def test_each_check_runs_once_per_saved_task(api, calls):
    alice = api("alice")
    body = {
        "name": "four components",
        "triggers": [{"type": "cron", "config": {"expression": "0 3 1 1 *"}}],
        "jobs": [CODE, {"type": "notebook", "config": {"path": "report.ipynb"}}],
        "actions": [{"type": "save", "config": {"folder": "out"}}],
    }
    per_component = {"validate": 4, "check": 4, "check_entry_paths": 4}
    once = Counter({"shape_problems": 1, "freeze": 1, **per_component})

    task = (await alice("POST", "/tasks", body)).body
    assert calls == once
    one = f"/tasks/{task['id']}"
    exported = (await alice("GET", f"{one}/export")).body
    for item in exported["tasks"]:  # imported as a new task
        del item["id"], item["revision"]
    for method, path, sent in (
        ("PUT", one, body),
        ("PATCH", one, {"description": "the stored components are checked again"}),
        ("POST", f"{one}/copy", None),
        ("POST", "/tasks/import", exported),
    ):
        calls.clear()
        reply = await alice(method, path, sent)
        assert reply.status in (200, 201), (method, path, reply)
        assert calls == once, (method, path)

    calls.clear()
    refused = await alice("POST", "/tasks", {**body, "settings": {"speed": 11}})
    assert refused.status == 400, refused
    # Checked once, never frozen (no snapshot written), nothing stored.
    assert calls == Counter({"shape_problems": 1, **per_component})
    assert await total(alice) == 3
