"""Probes beyond the hostile review's reproductions: the same classes of bug, other doors.

A server of several users, each with a home folder as root folder (``owner_root_template``),
and the planner's database beside those homes (inside one home where a test says so).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import wait_for_run

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
