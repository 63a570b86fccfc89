"""Runs through the real server: manual runs, triggers, overlap, timeout, cancel, chains.

Timed triggers fire on the scheduler's fake clock (``planner_clock``), except where the
scheduler's own timing on the wall clock is what a test checks.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import (
    create_task,
    runs_of,
    wait_for_run,
    wait_idle,
    wait_until,
)


def every(seconds: float) -> dict[str, Any]:
    return {"type": "interval", "config": {"every": seconds, "unit": "seconds"}}


async def test_manual_run_records_result_and_log(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello", name="{who}")], enabled=False)
    reply = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": {"who": "Ada"}})
    assert reply.status == 202, reply
    assert reply.headers["Location"].endswith(f"/taskplanner/api/runs/{reply.body['id']}")
    run = await wait_for_run(alice, reply.body["id"])
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "api" and run["started_by"] == "alice"
    (step,) = run["steps"]
    assert step["kind"] == "job" and step["status"] == "succeeded"
    assert step["results"][0]["flavor"] == "text"
    assert step["results"][0]["value"] == "hello Ada"
    log = await alice("GET", f"/runs/{run['id']}/log")
    assert log.status == 200 and "hello Ada" in log.body


async def test_failing_job_fails_run_with_traceback_in_log(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("fail", message="no data")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    run = await wait_for_run(alice, run_id)
    assert run["status"] == "failed"
    assert "no data" in run["steps"][0]["error"]
    assert run["error"] == "job 'fail' failed: RuntimeError: no data", run
    text = (await alice("GET", f"/runs/{run_id}/log")).body
    assert "Traceback" in text and "RuntimeError: no data" in text


async def test_interval_trigger_fires_and_disabled_task_does_not(api, funcs, job, planner_clock):
    alice = api("alice")
    active = await create_task(alice, jobs=[job("hello")], triggers=[every(1)])
    disabled = await create_task(alice, jobs=[job("hello")], triggers=[every(1)], enabled=False)
    start = planner_clock.now
    await planner_clock.advance(1)
    await planner_clock.advance(1)
    await wait_until(lambda: _count_is(alice, active["id"], 2))
    assert await runs_of(alice, disabled["id"]) == []
    runs = await runs_of(alice, active["id"])
    assert all(run["trigger"].startswith("interval") for run in runs)
    assert sorted(_dues(runs)) == [start + timedelta(seconds=1), start + timedelta(seconds=2)]
    # A disabled task still runs by hand.
    run_id = (await alice("POST", f"/tasks/{disabled['id']}/run")).body["id"]
    assert (await wait_for_run(alice, run_id))["status"] == "succeeded"


async def _count_is(call, task_id: int, count: int) -> bool:
    return len(await runs_of(call, task_id)) >= count


def _dues(runs: list[dict[str, Any]]) -> list[datetime]:
    return [datetime.fromisoformat(run["parameters"]["trigger.due"]) for run in runs]


def _start_delays(runs: list[dict[str, Any]]) -> list[float]:
    """Seconds from each fired run's due time to its start."""
    return [
        (
            datetime.fromisoformat(run["started"])
            - datetime.fromisoformat(run["parameters"]["trigger.due"])
        ).total_seconds()
        for run in runs
        if run["started"]
    ]


async def test_fires_start_on_time_and_jitter_spreads_them(api):
    """On the wall clock: the scheduler sleeps until each fire, then starts it at once."""
    alice = api("alice")
    # No jobs: a dozen job processes at once would queue behind the per-owner limit and
    # measure the machine rather than the scheduler.
    parallel = {"overlap": "parallel"}
    punctual = await create_task(alice, triggers=[every(1)], settings=parallel)
    jittery = await create_task(alice, triggers=[every(1)], settings={**parallel, "jitter": 2})

    async def fired(task_id: int, count: int) -> bool:
        return len(_start_delays(await runs_of(alice, task_id))) >= count

    await wait_until(lambda: fired(jittery["id"], 6), within=30)
    await wait_until(lambda: fired(punctual["id"], 6), within=30)
    on_time = _start_delays(await runs_of(alice, punctual["id"]))
    assert all(0 <= delay < 1 for delay in on_time), on_time
    spread = _start_delays(await runs_of(alice, jittery["id"]))
    # The jitter (up to 2 s) and the same start latency the punctual task is allowed (1 s).
    assert all(0 <= delay < 2 + 1 for delay in spread), spread
    # Six uniform draws in [0, 2 s] all below 0.3 s would happen about once in 90,000 runs.
    assert max(spread) > 0.3, spread


async def test_disabling_stops_firing(api, funcs, job, planner_clock):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")], triggers=[every(1)])
    # Fires at the same times: its runs show the scheduler went past the disabled task's fires.
    control = await create_task(alice, name="control", triggers=[every(1)])
    await planner_clock.advance(1)
    await wait_until(lambda: _has_runs(alice, task["id"]))
    assert (await alice("POST", f"/tasks/{task['id']}/disable")).status == 200
    before = len(await runs_of(alice, task["id"]))
    for _ in range(3):
        await planner_clock.advance(1)
    await wait_until(lambda: _count_is(alice, control["id"], 4))
    assert len(await runs_of(alice, task["id"])) == before


async def _has_runs(call, task_id: int) -> bool:
    return bool(await runs_of(call, task_id))


async def test_overlap_skip_is_recorded(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("sleep", seconds=3)], enabled=False)
    first = (await alice("POST", f"/tasks/{task['id']}/run")).body
    await wait_until(lambda: _status_is(alice, first["id"], "running"))
    second = (await alice("POST", f"/tasks/{task['id']}/run")).body
    assert second["status"] == "skipped"
    assert "still running" in second["error"]
    assert (await wait_for_run(alice, first["id"]))["status"] == "succeeded"


async def _status_is(call, run_id: int, status: str) -> bool:
    return (await call("GET", f"/runs/{run_id}")).body["status"] == status


async def test_overlap_queue_waits_for_the_running_run(api, funcs, job):
    alice = api("alice")
    task = await create_task(
        alice, jobs=[job("sleep", seconds=1.5)], settings={"overlap": "queue"}, enabled=False
    )
    first = (await alice("POST", f"/tasks/{task['id']}/run")).body
    await wait_until(lambda: _status_is(alice, first["id"], "running"))
    second = (await alice("POST", f"/tasks/{task['id']}/run")).body
    assert second["status"] == "queued"
    assert (await alice("GET", f"/runs/{second['id']}")).body["status"] == "queued"
    done_first = await wait_for_run(alice, first["id"])
    done_second = await wait_for_run(alice, second["id"])
    assert done_second["status"] == "succeeded"
    assert done_second["started"] >= done_first["finished"]


async def test_timeout_kills_the_job(api, funcs, tmp_path, job):
    alice = api("alice")
    pidfile = tmp_path / "pid"
    task = await create_task(
        # Alice's first job starts a fresh interpreter (her warm worker starts beside it):
        # long enough for the job to have begun.
        alice,
        jobs=[job("sleep", seconds=60, pidfile=str(pidfile))],
        settings={"timeout": 6},
    )
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    run = await wait_for_run(alice, run_id, within=30)
    assert run["status"] == "timed_out"
    assert "timeout" in run["error"]
    await wait_until(lambda: _process_gone(int(pidfile.read_text())), within=0.5)


async def test_cancel_running_run(api, funcs, tmp_path, job):
    alice = api("alice")
    pidfile = tmp_path / "pid"
    task = await create_task(alice, jobs=[job("sleep", seconds=60, pidfile=str(pidfile))])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_until(lambda: _file_exists(pidfile))
    # Another user cannot cancel it (and does not learn it exists).
    assert (await api("bob")("POST", f"/runs/{run_id}/cancel")).status == 404
    reply = await alice("POST", f"/runs/{run_id}/cancel")
    assert reply.status == 200, reply
    assert reply.body["status"] == "cancelled"
    again = await alice("POST", f"/runs/{run_id}/cancel")
    assert again.status == 409 and "already ended" in again.body["message"]
    await wait_until(lambda: _process_gone(int(pidfile.read_text())), within=0.5)
    # The job was stopped gracefully first: its cleanup (`finally`) ran.
    assert Path(f"{pidfile}.cleaned").exists()


async def _file_exists(path: Path) -> bool:
    return path.exists() and path.read_text() != ""


async def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_retries_are_recorded_inside_one_run(api, funcs, tmp_path, job):
    alice = api("alice")
    counter = tmp_path / "counter"
    task = await create_task(
        alice,
        jobs=[job("flaky", counter=str(counter))],
        settings={"retries": 2, "retry_backoff": 0.1},
    )
    run = await wait_for_run(alice, (await alice("POST", f"/tasks/{task['id']}/run")).body["id"])
    assert run["status"] == "succeeded"
    assert [(s["attempt"], s["status"]) for s in run["steps"]] == [(1, "failed"), (2, "succeeded")]


async def test_after_task_chains_on_success_and_failure(api, funcs, job, planner):
    alice = api("alice")
    failing = await create_task(alice, name="fails", jobs=[job("fail")], enabled=False)
    on_failure = await create_task(
        alice,
        name="on failure",
        jobs=[job("hello")],
        triggers=[{"type": "after_task", "config": {"task_id": failing["id"], "on": "failure"}}],
    )
    on_success = await create_task(
        alice,
        name="on success",
        jobs=[job("hello")],
        triggers=[{"type": "after_task", "config": {"task_id": failing["id"], "on": "success"}}],
    )
    run_id = (await alice("POST", f"/tasks/{failing['id']}/run")).body["id"]
    assert (await wait_for_run(alice, run_id))["status"] == "failed"
    await wait_until(lambda: _has_runs(alice, on_failure["id"]))
    (chained,) = await runs_of(alice, on_failure["id"])
    assert chained["trigger"] == f"after_task:{failing['id']}"
    assert chained["chain"] == [failing["id"], on_failure["id"]]
    await wait_idle(planner)
    assert await runs_of(alice, on_success["id"]) == []


async def test_after_task_ignores_other_owners(api, funcs, job, planner):
    alice, bob = api("alice"), api("bob")
    source = await create_task(alice, jobs=[job("hello")], enabled=False)
    follow = {"type": "after_task", "config": {"task_id": source["id"], "on": "always"}}
    refused = await bob("POST", "/tasks", {"name": "t", "triggers": [follow]})
    assert (refused.status, refused.body["field"]) == (400, "triggers[0].config.task_id")
    # One stored before that check (an import that brought it) still never fires for bob.
    listener = await create_task(bob, jobs=[job("hello")])
    await planner.db.call(planner.store.update_task, listener["id"], None, {"triggers": [follow]})
    planner.scheduler.notify()
    await wait_for_run(alice, (await alice("POST", f"/tasks/{source['id']}/run")).body["id"])
    await wait_idle(planner)
    assert await runs_of(bob, listener["id"]) == []


async def test_idempotency_key_returns_the_same_run(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")])
    headers = {"Idempotency-Key": "nightly-2026-11-25"}
    first = await alice("POST", f"/tasks/{task['id']}/run", headers=headers)
    second = await alice("POST", f"/tasks/{task['id']}/run", headers=headers)
    assert first.body["id"] == second.body["id"]
    assert len(await runs_of(alice, task["id"])) == 1


async def test_run_bad_input(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")])
    reply = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": [1, 2]})
    assert reply.status == 400 and reply.body["field"] == "parameters"
    reply = await alice("POST", f"/tasks/{task['id']}/run", {"colour": "red"})
    assert reply.status == 400 and "parameters" in reply.body["message"]
    assert (await alice("POST", "/tasks/99999/run")).status == 404
    assert (await alice("GET", "/runs/abc")).status == 404
    assert (await alice("GET", "/runs", params={"status": "bogus"})).status == 400
    assert await runs_of(alice, task["id"]) == []


async def test_runs_permissions(api, funcs, job):
    alice, bob, root = api("alice"), api("bob"), api("root")
    task = await create_task(alice, jobs=[job("hello")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_for_run(alice, run_id)
    for method, path in [
        ("POST", f"/tasks/{task['id']}/run"),
        ("GET", f"/tasks/{task['id']}/runs"),
        ("GET", f"/tasks/{task['id']}/next"),
        ("GET", f"/runs/{run_id}"),
        ("GET", f"/runs/{run_id}/log"),
        ("POST", f"/runs/{run_id}/cancel"),
    ]:
        assert (await bob(method, path)).status == 404, (method, path)
        assert (await api("eve")(method, path)).status == 403, (method, path)
        assert (await api(None)(method, path)).status == 401, (method, path)
    assert (await bob("GET", "/runs")).body["runs"] == []
    assert (await bob("GET", "/runs", params={"owner": "alice"})).status == 403
    listed = await root("GET", "/runs", params={"owner": "alice"})
    assert [run["id"] for run in listed.body["runs"]] == [run_id]
    assert (await root("GET", f"/runs/{run_id}")).status == 200
    assert len(await runs_of(alice, task["id"])) == 1


async def test_admin_run_executes_as_owner(api, funcs, job):
    task = await create_task(api("alice"), jobs=[job("hello")])
    reply = await api("root")("POST", f"/tasks/{task['id']}/run")
    assert reply.status == 202
    run = await wait_for_run(api("root"), reply.body["id"])
    assert run["owner"] == "alice" and run["started_by"] == "root"


async def test_next_fire_times(api):
    alice = api("alice")
    task = await create_task(
        alice,
        triggers=[{"type": "cron", "config": {"expression": "30 7 * * 1-5"}}],
        settings={"timezone": "Europe/Berlin"},
        enabled=False,
    )
    reply = await alice("GET", f"/tasks/{task['id']}/next", params={"count": 3})
    assert reply.status == 200, reply
    times = [item["time"] for item in reply.body["next"]]
    assert len(times) == 3 and all("T07:30:00" in t for t in times)
    assert (await alice("GET", f"/tasks/{task['id']}/next", params={"count": 0})).status == 400


async def test_http_trigger(api, funcs, jp_fetch, job):
    alice = api("alice")
    token = "s3cret-token-0123456789"
    task = await create_task(
        alice,
        jobs=[job("hello", name="{who}")],
        triggers=[{"type": "http", "config": {"token": token}}],
    )
    base = f"taskplanner/api/tasks/{task['id']}/trigger"
    response = await jp_fetch(
        base, token, method="POST", body="who=webhook", headers={"Authorization": ""}
    )
    assert response.code == 202
    run = await wait_for_run(alice, __import__("json").loads(response.body)["run_id"])
    assert run["steps"][0]["results"][0]["value"] == "hello webhook"
    with pytest.raises(Exception) as info:
        await jp_fetch(base, "wrong-token-0123456789", method="POST", body="")
    assert info.value.code == 404


async def test_file_trigger_fires_once_after_a_burst(api, funcs, jp_root_dir, job):
    alice = api("alice")
    inbox = jp_root_dir / "inbox"
    inbox.mkdir()
    task = await create_task(
        alice,
        jobs=[job("hello", name="{trigger.file}")],
        triggers=[
            {"type": "file", "config": {"path": "inbox", "pattern": "*.csv", "debounce": 0.5}}
        ],
    )
    await asyncio.sleep(0.5)  # the watch starts when the scheduler loads the task
    for index in range(10):
        (inbox / f"part-{index}.csv").write_text("x")
        await asyncio.sleep(0.02)
    (inbox / "ignored.txt").write_text("not a csv")
    await wait_until(lambda: _has_runs(alice, task["id"]))
    await asyncio.sleep(1.5)
    (run,) = await runs_of(alice, task["id"])
    assert run["trigger"].startswith("file")
    done = await wait_for_run(alice, run["id"])
    assert done["steps"][0]["results"][0]["value"].startswith("hello inbox/part-")


async def test_progress_events_while_a_notebook_runs(api, run_events, jp_root_dir):
    notebook = Path(__file__).parent.parent / "notebooks" / "report.ipynb"
    (jp_root_dir / "report.ipynb").write_text(notebook.read_text())
    seen = run_events
    alice = api("alice")
    task = await create_task(
        alice, jobs=[{"type": "notebook", "config": {"path": "report.ipynb", "formats": ["ipynb"]}}]
    )
    run = await wait_for_run(alice, (await alice("POST", f"/tasks/{task['id']}/run")).body["id"])
    assert run["status"] == "succeeded", run
    progress = [event for event in seen if event["action"] == "progress"]
    assert progress, seen
    assert all(event["run_id"] == run["id"] and event["total"] >= 1 for event in progress)
    assert any("cell" in event["message"] for event in progress)


async def test_run_fails_when_owner_lacks_a_component_permission(api, funcs, jp_serverapp):
    carol = api("carol")
    task = await create_task(carol, jobs=[{"type": "command", "config": {"program": "true"}}])
    # Carol loses the permission after saving the task.
    grants = jp_serverapp.authorizer.grants
    grants["carol"] = [g for g in grants["carol"] if g != "taskplanner:shell"]
    run = await wait_for_run(carol, (await carol("POST", f"/tasks/{task['id']}/run")).body["id"])
    assert run["status"] == "failed"
    assert "taskplanner:shell" in run["error"] and "carol" in run["error"]
    assert "jobs[0]" in run["error"]
    assert run["steps"] == []


async def test_command_job_runs_for_an_owner_with_the_shell_permission(api, funcs):
    carol = api("carol")
    task = await create_task(
        carol,
        jobs=[{"type": "command", "config": {"program": "echo", "args": ["hi {who}"]}}],
    )
    reply = await carol("POST", f"/tasks/{task['id']}/run", {"parameters": {"who": "there"}})
    run = await wait_for_run(carol, reply.body["id"])
    assert run["status"] == "succeeded", run
    assert "hi there" in (await carol("GET", f"/runs/{run['id']}/log")).body
