"""How a stopped step's log ends, through the real server: a cancelled or timed-out job's
log ends with one line saying so (who cancelled it, or the timeout), not a traceback, for
each kind of job; a failed job keeps its traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import code_notebook, create_task, wait_for_run, wait_until

pytestmark = pytest.mark.timeout(120)


def _notebook(root: Path, *sources: str) -> dict[str, Any]:
    (root / "slow.ipynb").write_text(json.dumps(code_notebook(*sources)))
    return {"type": "notebook", "name": "slow", "config": {"path": "slow.ipynb"}}


def _script(root: Path) -> dict[str, Any]:
    (root / "slow.py").write_text(
        "import pathlib, time\npathlib.Path('started').touch()\ntime.sleep(60)\n"
    )
    return {"type": "script", "name": "slow", "config": {"path": "slow.py"}}


def _started(root: Path) -> Any:
    async def check() -> bool:
        return (root / "started").exists()

    return check


def _last_line(text: str) -> str:
    return text.rstrip("\n").rpartition("\n")[2]


JOBS = {
    "python": lambda root, job: job("sleep", seconds=60, pidfile=str(root / "started")),
    "script": lambda root, job: _script(root),
    "notebook": lambda root, job: _notebook(
        root, "import pathlib, time\npathlib.Path('started').touch()\ntime.sleep(60)"
    ),
}


@pytest.mark.parametrize("kind", list(JOBS))
async def test_a_cancelled_step_log_ends_with_who_cancelled_it(api, funcs, job, kind):
    alice = api("alice")
    task = await create_task(alice, jobs=[JOBS[kind](funcs, job)])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_until(_started(funcs), within=60)
    assert (await alice("POST", f"/runs/{run_id}/cancel")).status == 200
    run = await wait_for_run(alice, run_id)
    assert run["status"] == "cancelled" and run["error"] == "cancelled by alice", run
    assert run["steps"][0]["status"] == "cancelled"
    log = (await alice("GET", f"/runs/{run_id}/log")).body
    assert _last_line(log) == "cancelled by alice", log
    assert "Traceback" not in log and "KeyboardInterrupt" not in log, log


@pytest.mark.parametrize("kind", ["python", "notebook"])
async def test_a_timed_out_step_log_ends_with_the_timeout(api, funcs, job, kind):
    alice = api("alice")
    task = await create_task(alice, jobs=[JOBS[kind](funcs, job)], settings={"timeout": 8})
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    run = await wait_for_run(alice, run_id, within=60)
    assert run["status"] == "timed_out", run
    log = (await alice("GET", f"/runs/{run_id}/log")).body
    assert _last_line(log) == "timed out after 8 s", log
    assert "Traceback" not in log, log


async def test_a_failed_notebook_step_keeps_its_traceback(api, funcs):
    alice = api("alice")
    task = await create_task(alice, jobs=[_notebook(funcs, "1 / 0")])
    run = await wait_for_run(alice, (await alice("POST", f"/tasks/{task['id']}/run")).body["id"])
    assert run["status"] == "failed", run
    log = (await alice("GET", f"/runs/{run['id']}/log")).body
    assert "Traceback" in log and "ZeroDivisionError" in log, log
