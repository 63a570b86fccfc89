"""Ad-hoc execution without a stored task, and the state components keep between runs."""

from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, wait_for_run

FUNCS = textwrap.dedent(
    """
    import pathlib

    def hello(name="world"):
        return f"hello {name}"

    def report(name="report"):
        path = pathlib.Path(f"{name}.txt")
        path.write_text(f"made {name}")
        return path

    def fail():
        raise RuntimeError("no good")
    """
)


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"keep_runs": 2}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    (jp_root_dir / "tp_adhoc.py").write_text(FUNCS)
    return jp_root_dir


def call(function: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": "python", "config": {"function": f"tp_adhoc:{function}", "kwargs": kwargs}}


async def execute(caller: Any, body: Any, status: int = 202) -> Any:
    reply = await caller("POST", "/execute", body)
    assert reply.status == status, reply
    return reply


# -- ad-hoc execution --------------------------------------------------------------------------


async def test_an_adhoc_run_is_recorded_like_any_run(api, root):
    alice, bob = api("alice"), api("bob")
    reply = await execute(
        alice,
        {
            "jobs": [call("report", name="{who}")],
            "actions": [{"type": "save", "config": {"folder": "kept"}}],
            "parameters": {"who": "ada"},
        },
    )
    assert reply.headers["Location"].endswith(f"/taskplanner/api/runs/{reply.body['id']}")
    run = await wait_for_run(alice, reply.body["id"])
    assert run["status"] == "succeeded", run
    assert (run["task_id"], run["task_name"], run["trigger"]) == (None, "Ad-hoc run", "execute")
    assert (root / "kept" / "ada.txt").read_text() == "made ada"
    [job, _] = run["steps"]
    file = await alice("GET", f"/runs/{run['id']}/files/{job['results'][0]['value']}")
    assert file.body == "made ada"
    assert "== job python" in (await alice("GET", f"/runs/{run['id']}/log")).body
    listed = (await alice("GET", "/runs")).body["runs"]
    assert [item["id"] for item in listed] == [run["id"]]
    # Another user reaches none of it.
    for path in (f"/runs/{run['id']}", f"/runs/{run['id']}/log"):
        assert (await bob("GET", path)).status == 404
    assert (await bob("GET", "/runs")).body["runs"] == []
    assert (await alice("GET", "/tasks")).body["total"] == 0


async def test_a_stored_task_executed_ad_hoc_runs_as_the_caller(api, root):
    alice, admin = api("alice"), api("root")
    task = await create_task(
        alice, name="Daily", jobs=[call("hello", name="{owner}")], enabled=False
    )
    mine = await execute(alice, {"task_id": task["id"], "parameters": {"x": "1"}})
    done = await wait_for_run(alice, mine.body["id"])
    assert done["steps"][0]["results"][0]["value"] == "hello alice"
    assert (done["task_id"], done["task_name"]) == (None, "Daily")
    # An admin runs alice's task ad hoc as the admin, not as alice.
    theirs = await execute(admin, {"task_id": task["id"]})
    by_admin = await wait_for_run(admin, theirs.body["id"])
    assert by_admin["owner"] == "root"
    assert by_admin["steps"][0]["results"][0]["value"] == "hello root"
    assert (await api("bob")("POST", "/execute", {"task_id": task["id"]})).status == 404
    assert (await alice("GET", f"/tasks/{task['id']}/runs")).body["runs"] == []


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"triggers": [{"type": "cron", "config": {"expression": "* * * * *"}}]}, 400, "triggers"),
        ({"jobs": [{"type": "python", "config": {}}]}, 400, "jobs[0].config"),
        ({"jobs": [call("hello")], "parameters": {"owner": "x"}}, 400, "parameters.owner"),
        ({"task_id": 1, "jobs": []}, 400, "jobs"),
        ({"task_id": "one"}, 400, "task_id"),
        ([1, 2], 400, None),
    ],
)
async def test_an_adhoc_body_is_checked_like_a_task(api, root, body, status, field):
    reply = await api("alice")("POST", "/execute", body)
    assert (reply.status, reply.body.get("field")) == (status, field), reply
    assert (await api("alice")("GET", "/runs")).body["total"] == 0


async def test_adhoc_code_needs_the_shell_permission(api, root):
    reply = await api("dan")("POST", "/execute", {"jobs": [call("hello")]})
    assert (reply.status, reply.body["field"]) == (403, "jobs[0]"), reply


async def test_adhoc_runs_are_kept_by_the_same_retention(api, root):
    alice = api("alice")
    ids = []
    for _ in range(3):
        ids.append((await execute(alice, {"jobs": [call("hello")]})).body["id"])
        await wait_for_run(alice, ids[-1])
    assert [run["id"] for run in (await alice("GET", "/runs")).body["runs"]] == ids[:0:-1]


# -- component state ---------------------------------------------------------------------------


async def test_a_directory_series_takes_only_new_files_after_a_successful_run(api, root):
    alice = api("alice")
    inbox = root / "inbox"
    inbox.mkdir()
    (inbox / "a.csv").write_text("a")
    (inbox / "b.csv").write_text("b")
    series = {"type": "directory", "config": {"path": "inbox", "new_only": True}}
    task = await create_task(
        alice, jobs=[call("hello", name="{filename}")], series=series, enabled=False
    )

    async def files_of_a_run(expected: str = "succeeded") -> list[str]:
        reply = await alice("POST", f"/tasks/{task['id']}/run")
        run = await wait_for_run(alice, reply.body["id"])
        assert run["status"] == expected, run
        return sorted(
            step["set_values"]["filename"] for step in run["steps"] if step["kind"] == "job"
        )

    assert await files_of_a_run() == ["a.csv", "b.csv"]
    assert await files_of_a_run() == []
    (inbox / "c.csv").write_text("c")
    later = time.time() + 5
    os.utime(inbox / "a.csv", (later, later))  # changed since
    assert await files_of_a_run() == ["a.csv", "c.csv"]
    # A failed run keeps the state it started with: its files come again.
    (inbox / "d.csv").write_text("d")
    reply = await alice("PATCH", f"/tasks/{task['id']}", {"jobs": [call("fail")]})
    assert reply.status == 200, reply
    assert await files_of_a_run("failed") == ["d.csv"]
    await alice("PATCH", f"/tasks/{task['id']}", {"jobs": [call("hello", name="{filename}")]})
    assert await files_of_a_run() == ["d.csv"]
