"""The per-owner queue limit (``TaskPlannerApp.max_queued_runs``), through the real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, runs_of, wait_for_run

TOKEN = "queue-0123456789abcdef"
FULL = "alice already has 2 runs queued, the most TaskPlannerApp.max_queued_runs allows"


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"max_concurrent_runs": 1, "max_runs_per_owner": 1, "max_queued_runs": 2}


async def queued(call: Any) -> int:
    reply = await call("GET", "/runs", params={"status": "queued"})
    assert reply.status == 200, reply
    return len(reply.body["runs"])


async def running_slow_task(
    alice: Any, job: Any, seconds: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A task with an HTTP trigger whose job sleeps ``seconds``, and its first run, running."""
    slow = await create_task(
        alice,
        jobs=[job("sleep", seconds=seconds)],
        triggers=[{"type": "http", "config": {"token": TOKEN}}],
        settings={"overlap": "parallel"},
    )
    first = (await alice("POST", f"/tasks/{slow['id']}/run")).body
    deadline = time.monotonic() + 30
    while (await alice("GET", f"/runs/{first['id']}")).body["status"] != "running":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    return slow, first


async def test_a_full_queue_refuses_callers_and_skips_scheduled_starts(api, funcs, job):
    alice, bob = api("alice"), api("bob")
    slow, first = await running_slow_task(alice, job, seconds=2)
    waiting = [await alice("POST", f"/tasks/{slow['id']}/run") for _ in range(2)]
    assert [reply.status for reply in waiting] == [202, 202], waiting

    refused = await alice("POST", f"/tasks/{slow['id']}/run")
    assert refused.status == 429, refused
    assert refused.body["message"].startswith(FULL), refused.body
    assert "Retry-After" in refused.headers
    adhoc = await alice("POST", "/execute", {"name": "adhoc", "jobs": [job("hello")]})
    assert adhoc.status == 429, adhoc
    assert adhoc.body["message"].startswith(FULL)
    http = await api(None)("POST", f"/tasks/{slow['id']}/trigger/{TOKEN}")
    assert http.status == 429, http
    assert http.body["message"].startswith(FULL)
    assert len(await runs_of(alice, slow["id"])) == 3  # the refused starts left no run

    # Another owner's queue is their own.
    other = await create_task(bob, jobs=[job("hello")], enabled=False)
    assert (await bob("POST", f"/tasks/{other['id']}/run")).status == 202

    # A start of the scheduler past the limit is a skipped run saying why.
    timed = await create_task(
        alice, triggers=[{"type": "interval", "config": {"every": 1, "unit": "seconds"}}]
    )
    deadline = time.monotonic() + 30
    while not (fired := await runs_of(alice, timed["id"])):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert (await alice("POST", f"/tasks/{timed['id']}/disable")).status == 200
    assert fired[-1]["status"] == "skipped", fired
    assert fired[-1]["error"] == f"{FULL}; this start was skipped"
    assert await queued(alice) == 2

    # A finished run frees a place in the queue.
    assert (await wait_for_run(alice, first["id"]))["status"] == "succeeded"
    deadline = time.monotonic() + 30
    while await queued(alice) >= 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert (await alice("POST", f"/tasks/{slow['id']}/run")).status == 202


async def test_http_calls_at_the_same_instant_never_pass_the_limit(api, funcs, job):
    alice = api("alice")
    slow, first = await running_slow_task(alice, job, seconds=30)
    anonymous = api(None)
    replies = await asyncio.gather(
        *(anonymous("POST", f"/tasks/{slow['id']}/trigger/{TOKEN}") for _ in range(12))
    )
    assert sorted(reply.status for reply in replies) == [202] * 2 + [429] * 10, replies
    runs = await runs_of(alice, slow["id"])
    # The refused calls left no run: no skipped one, the queue holds what was answered 202.
    assert sorted(run["status"] for run in runs) == ["queued", "queued", "running"], runs
    assert (await alice("POST", f"/runs/{first['id']}/cancel")).status == 200
