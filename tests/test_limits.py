"""Run limits and history retention, with the server configured for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, runs_of, wait_for_run


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"max_concurrent_runs": 1, "max_runs_per_owner": 1, "keep_runs": 2}


async def test_waiting_runs_start_fairly_across_owners(api, funcs, job):
    alice, bob = api("alice"), api("bob")
    slow = await create_task(
        alice, jobs=[job("sleep", seconds=0.8)], settings={"overlap": "parallel"}, enabled=False
    )
    quick = await create_task(bob, jobs=[job("hello")], enabled=False)
    alice_runs = [(await alice("POST", f"/tasks/{slow['id']}/run")).body for _ in range(2)]
    bob_run = (await bob("POST", f"/tasks/{quick['id']}/run")).body
    assert [alice_runs[1]["status"], bob_run["status"]] == ["queued", "queued"]
    finished = [await wait_for_run(alice, run["id"]) for run in alice_runs]
    bob_done = await wait_for_run(bob, bob_run["id"])
    # Bob's run went before alice's second: owners take turns when slots free up.
    assert finished[0]["finished"] <= bob_done["started"] <= finished[1]["started"]
    assert all(run["status"] == "succeeded" for run in [*finished, bob_done])


async def test_history_keeps_the_newest_runs_and_deletes_their_files(api, funcs, db_path, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")], enabled=False)
    ids = []
    for _ in range(4):
        run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
        await wait_for_run(alice, run_id)
        ids.append(run_id)
    kept = [run["id"] for run in await runs_of(alice, task["id"])]
    assert kept == ids[:1:-1]
    runs_dir = Path(db_path).parent / "runs" / "alice"
    assert sorted(int(path.name) for path in runs_dir.iterdir()) == sorted(kept)
    assert (await alice("GET", f"/runs/{ids[0]}")).status == 404
