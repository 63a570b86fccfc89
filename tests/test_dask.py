"""The Dask executor on a real cluster: ``LocalCluster(processes=True)`` with two workers.

What only a cluster shows: a series spreads over the workers, a worker killed mid-job, a
server killed mid-job, worker resources, the cap on jobs in flight, where result files go.
The contract both executors share is tested in ``test_executor_suite.py``.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import os
import signal
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components.base import RunContext
from jupyter_taskplanner.executors.slots import FairSlots
from jupyter_taskplanner.jobs.python import PythonJob
from jupyter_taskplanner.testing import (
    ServerProcess,
    create_task,
    python_job,
    start_run,
    wait_for_run,
    wait_until,
)

DASK = "jupyter_taskplanner.executors.DaskExecutor"
JOBS = textwrap.dedent(
    """
    import os, pathlib, time

    def where(seconds=0.3):
        time.sleep(seconds)
        return str(os.getppid())  # the Dask worker process that started this job

    def stall(pidfile, counter):
        path = pathlib.Path(counter)
        count = int(path.read_text()) if path.exists() else 0
        path.write_text(str(count + 1))
        if count:
            return "second attempt"
        pathlib.Path(pidfile).write_text(f"{os.getppid()} {os.getpid()}")
        time.sleep(60)

    def stamp(who, order, seconds=1, hold=None):
        with open(order, "a") as file:
            file.write(who + "\\n")
        while hold and os.path.exists(hold):
            time.sleep(0.05)
        time.sleep(seconds)

    def read(name):
        return pathlib.Path(name).read_text()

    def span(seconds=0.5):
        start = time.time()
        time.sleep(seconds)
        return f"{os.getppid()} {start} {time.time()}"
    """
)


@pytest.fixture(scope="module")
def dask_cluster_options() -> dict[str, Any]:
    """Each worker of ``dask_cluster`` offers one GPU."""
    return {"resources": {"GPU": 1}}


@pytest.fixture
def dask_settings(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """``DaskExecutor`` settings of a test (``indirect`` parameters; "{tmp}" is tmp_path)."""
    settings = getattr(request, "param", {})
    return {
        name: value.format(tmp=tmp_path) if isinstance(value, str) else value
        for name, value in settings.items()
    }


@pytest.fixture
def jp_server_config(
    dask_server_config: dict[str, Any], dask_settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        **dask_server_config,
        "DaskExecutor": {**dask_server_config["DaskExecutor"], **dask_settings},
    }


@pytest.fixture
def root(funcs: Path) -> Path:
    (funcs / "tp_dask.py").write_text(JOBS)
    return funcs


call = functools.partial(python_job, "tp_dask")
"""``call("function", **kwargs)``: a python job calling that function of ``tp_dask``."""


async def test_a_series_of_20_sets_spreads_over_both_workers(api, root, planner):
    alice = api("alice")
    series = {"type": "values", "config": {"values": [{"n": n} for n in range(20)]}}
    task = await create_task(alice, series=series, jobs=[call("where")])
    run = await wait_for_run(alice, await start_run(alice, task))
    assert run["status"] == "succeeded", run
    jobs = [step for step in run["steps"] if step["kind"] == "job"]
    assert sorted(step["set_index"] for step in jobs) == list(range(20))
    workers = {step["results"][0]["value"] for step in jobs}
    assert len(workers) == 2 and str(os.getpid()) not in workers, workers
    assert planner.executor.concurrent_sets == 4


async def test_a_worker_killed_mid_job_fails_the_step_and_the_retry_runs(
    api, root, tmp_path, dask_cluster
):
    alice = api("alice")
    pidfile, counter = tmp_path / "pids", tmp_path / "counter"
    task = await create_task(
        alice,
        jobs=[call("stall", pidfile=str(pidfile), counter=str(counter))],
        settings={"retries": 1, "retry_backoff": 0.1},
    )
    run_id = await start_run(alice, task)
    await wait_until(lambda: _has_text(pidfile))
    worker_pid, job_pid = (int(pid) for pid in pidfile.read_text().split())
    os.kill(worker_pid, signal.SIGKILL)
    run = await wait_for_run(alice, run_id)
    assert run["status"] == "succeeded", run
    first, second = run["steps"]
    assert first["status"] == "failed", first
    assert first["error"].startswith("the Dask worker tcp://127.0.0.1:"), first
    assert "died (or left the cluster) while running the job" in first["error"]
    assert (second["attempt"], second["status"]) == (2, "succeeded")
    assert second["results"][0]["value"] == "second attempt"
    # Dask's own rerun of the task on the other worker did not run the job again.
    assert counter.read_text() == "2"
    # The job the dead worker left behind stopped by itself.
    await wait_until(lambda: _gone(job_pid), within=10)
    dask_cluster.wait_for_workers(2, timeout=30)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_a_server_killed_or_stopped_mid_job_leaves_no_run_stuck(
    server_root, tmp_path, dask_cluster, stop
):
    options = (
        f"--TaskPlannerApp.executor_class={DASK}",
        f"--DaskExecutor.scheduler_address={dask_cluster.scheduler_address}",
    )
    db_path = tmp_path / "planner" / "tasks.db"
    pidfile = tmp_path / "pid"
    server = ServerProcess(server_root, db_path, tmp_path / "server.log", *options)
    try:
        job = {
            "type": "python",
            "config": {
                "function": "tp_funcs:sleep",
                "kwargs": {"seconds": 60, "pidfile": str(pidfile)},
            },
        }
        task = server.call("POST", "/tasks", {"name": "long", "jobs": [job]})
        run = server.call("POST", f"/tasks/{task['id']}/run")
        _wait(lambda: pidfile.exists() and pidfile.read_text() != "")
    finally:
        server.stop(stop)
    # The server cancelled the job as it stopped, or the scheduler dropped the dead server's
    # job; either way its worker stopped it gracefully.
    _wait(lambda: Path(f"{pidfile}.cleaned").exists())
    server = ServerProcess(server_root, db_path, tmp_path / "restarted.log", *options)
    try:
        found = server.call("GET", f"/runs/{run['id']}")
    finally:
        server.stop()
    assert found["status"] == "interrupted", found


async def test_a_job_runs_only_where_its_resources_are(api, root):
    alice = api("alice")
    # Each worker offers one GPU and has two threads: jobs needing a GPU run one at a time
    # on each worker, so four at once take both workers, each in turn.
    series = {"type": "values", "config": {"values": [{"n": n} for n in range(4)]}}
    one = await create_task(
        alice, series=series, jobs=[call("span")], settings={"resources": {"GPU": 1}}
    )
    run = await wait_for_run(alice, await start_run(alice, one))
    assert run["status"] == "succeeded", run
    spans: dict[str, list[tuple[float, float]]] = {}
    for step in run["steps"][1:]:
        worker, began, ended = step["results"][0]["value"].split()
        spans.setdefault(worker, []).append((float(began), float(ended)))
    assert len(spans) == 2, spans
    for worker_spans in spans.values():
        worker_spans.sort()
        assert all(ended <= began for (_, ended), (began, _) in itertools.pairwise(worker_spans))
    two = await create_task(alice, jobs=[call("where")], settings={"resources": {"GPU": 2}})
    run = await wait_for_run(alice, await start_run(alice, two))
    assert run["status"] == "failed"
    assert run["steps"][0]["error"] == (
        "no worker of the Dask cluster offers GPU=2 (settings.resources); the workers offer GPU=1"
    )
    bad = await alice("POST", "/tasks", {"name": "t", "settings": {"resources": {"GPU": 0}}})
    assert bad.status == 400 and bad.body["field"] == "settings.resources.GPU", bad


@pytest.mark.parametrize("dask_settings", [{}, {"shared_filesystem": True}], indirect=True)
async def test_a_plugin_job_runs_on_a_worker(api, root):
    """Its declared inputs (the matched files) travel to a worker without the server's files."""
    (root / "notes").mkdir()
    (root / "notes" / "a.txt").write_text("one two three\nfour\n")
    alice = api("alice")
    job = {"type": "wordcount", "name": "count", "config": {"folder": "notes"}}
    run = await wait_for_run(alice, await start_run(alice, await create_task(alice, jobs=[job])))
    assert run["status"] == "succeeded", run
    table, counts = sorted(run["steps"][0]["results"], key=lambda result: result["flavor"])[::-1]
    assert table["value"].splitlines()[0].split() == ["2", "4", "19", "notes/a.txt"], table
    reply = await alice("GET", f"/runs/{run['id']}/files/{counts['value']}")
    assert reply.status == 200 and "notes/a.txt,2,4,19" in reply.body, reply


@pytest.mark.parametrize("dask_settings", [{"max_jobs_in_flight": 1}], indirect=True)
async def test_the_cap_on_jobs_in_flight_takes_owners_in_turn(api, root, tmp_path):
    order, hold = tmp_path / "order", tmp_path / "hold"
    hold.touch()  # the first job keeps its slot until bob's job waits for one
    alice, bob = api("alice"), api("bob")
    job = call("stamp", who="{owner}", order=str(order), hold=str(hold))
    settings = {"overlap": "parallel"}
    mine = await create_task(alice, jobs=[job], settings=settings)
    theirs = await create_task(bob, jobs=[job], settings=settings)
    runs = [await start_run(alice, mine) for _ in range(3)]
    await wait_until(lambda: _has_text(order))
    runs.append(await start_run(bob, theirs))

    async def bob_waits() -> bool:
        return bool((await bob("GET", f"/runs/{runs[-1]}")).body["steps"])

    await wait_until(bob_waits)
    hold.unlink()
    for run_id, caller in zip(runs, [alice, alice, alice, bob], strict=True):
        assert (await wait_for_run(caller, run_id))["status"] == "succeeded"
    assert order.read_text().split() == ["alice", "bob", "alice", "alice"]


@pytest.mark.parametrize("dask_settings", [{"storage_url": "file://{tmp}/storage"}], indirect=True)
async def test_result_files_come_back_through_the_shared_storage(api, root, tmp_path):
    (root / "made.txt").write_text("made by the owner")
    alice = api("alice")
    job = {"type": "python", "config": {"function": "tp_funcs:hello"}}
    script = {"type": "script", "config": {"path": "write_out.py", "output_glob": "*.out"}}
    (root / "write_out.py").write_text("open('result.out', 'w').write('from the worker')\n")
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[job, script]))
    )
    assert run["status"] == "succeeded", run
    (result,) = next(step for step in run["steps"] if step["type"] == "script")["results"]
    reply = await alice("GET", f"/runs/{run['id']}/files/{result['value']}")
    assert reply.body == "from the worker"
    assert list((tmp_path / "storage").iterdir()) == []  # fetched, then removed


@pytest.mark.parametrize(
    ("dask_settings", "outcome"),
    [({"shared_filesystem": True}, "succeeded"), ({}, "failed")],
    indirect=["dask_settings"],
)
async def test_only_a_shared_filesystem_shows_jobs_the_owners_other_files(api, root, outcome):
    (root / "data.txt").write_text("the owner's data")
    alice = api("alice")
    run = await wait_for_run(
        alice,
        await start_run(alice, await create_task(alice, jobs=[call("read", name="data.txt")])),
    )
    assert run["status"] == outcome, run
    if outcome == "failed":
        assert "FileNotFoundError" in run["steps"][0]["error"]
    else:
        assert run["steps"][0]["results"][0]["value"] == "the owner's data"


@pytest.mark.parametrize("dask_settings", [{"max_input_bytes": 10}], indirect=True)
async def test_inputs_beyond_the_cap_fail_the_job(api, root):
    alice = api("alice")
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[call("where")]))
    )
    assert run["status"] == "failed"
    assert run["steps"][0]["error"] == (
        "the inputs of this job exceed 10 bytes (DaskExecutor.max_input_bytes)"
    )


@pytest.mark.parametrize(
    "dask_settings",
    [
        {
            "scheduler_address": "",
            "cluster_options": {
                "n_workers": 1,
                "processes": False,
                "protocol": "tcp://",
                "dashboard_address": ":0",
                "host": "127.0.0.1",
            },
        }
    ],
    indirect=True,
)
async def test_without_an_address_the_factory_makes_the_cluster(api, root, planner):
    alice = api("alice")
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[call("where", seconds=0)]))
    )
    assert run["status"] == "succeeded", run
    cluster = planner.executor._cluster
    assert type(cluster).__name__ == "LocalCluster"
    await planner.executor.close()
    assert cluster.status.name == "closed"


def test_a_python_job_takes_its_folder_modules_and_package(tmp_path):
    (tmp_path / "reports" / "sub").mkdir(parents=True)
    for name in ("reports/__init__.py", "reports/sub/daily.py", "reports/template.txt"):
        (tmp_path / name).write_text("")
    (tmp_path / "helpers.py").write_text("")
    (tmp_path / "data.csv").write_text("")
    job = PythonJob({"function": "reports.sub.daily:build"})
    ctx = RunContext("alice", tmp_path, 1, "t", 1, datetime.now(UTC), tmp_path)
    found = [path.relative_to(tmp_path.resolve()).as_posix() for path in job.inputs(ctx)]
    assert found == [
        ".",
        "helpers.py",
        "reports/__init__.py",
        "reports/sub/daily.py",
        "reports/template.txt",
    ]


async def test_fair_slots_serve_the_owner_served_least_recently():
    slots = FairSlots(1)
    order: list[str] = []

    async def step(owner: str) -> None:
        async with slots.hold(owner):
            order.append(owner)
            await asyncio.sleep(0.01)

    steps = [asyncio.ensure_future(step(owner)) for owner in ["a", "a", "a", "b", "c"]]
    await asyncio.gather(*steps)
    assert order == ["a", "b", "c", "a", "a"]
    assert slots.busy == 0


async def _has_text(path: Path) -> bool:
    return path.exists() and path.read_text() != ""


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _wait(predicate: Callable[[], bool], within: float = 30) -> None:
    end = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.1)
