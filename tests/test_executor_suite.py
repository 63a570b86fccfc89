"""The executor contract through the engine, one suite run against every executor.

Each test runs twice: on the local executor (subprocesses of the server) and on the Dask
executor against a real ``LocalCluster(processes=True)`` of two workers, one per module,
whose jobs run in scratch folders of the workers (no shared file system).
"""

from __future__ import annotations

import functools
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import (
    create_task,
    python_job,
    start_run,
    wait_for_run,
    wait_until,
)

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"
SUITE = textwrap.dedent(
    """
    import os, signal, sys, time
    import tp_funcs

    def chatty(pidfile, seconds=60):
        print("started up", flush=True)
        return tp_funcs.sleep(seconds, pidfile)

    def shout(lines):
        for number in range(lines):
            print(f"line {number:05d}")
        print("the last line")

    def die(counter):
        path = __import__("pathlib").Path(counter)
        count = int(path.read_text()) if path.exists() else 0
        path.write_text(str(count + 1))
        if count == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return "lived"
    """
)


@pytest.fixture(params=["local", "dask"])
def executor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def jp_server_config(
    taskplanner_server_config: dict[str, Any], executor: str, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """The planner's test server on the executor under test (the module's Dask cluster
    starts with the first Dask test)."""
    if executor == "local":
        return taskplanner_server_config
    config: dict[str, Any] = request.getfixturevalue("dask_server_config")
    return config


@pytest.fixture
def root(funcs: Path) -> Path:
    """The owner's root, with ``tp_funcs`` and this suite's ``tp_suite``."""
    (funcs / "tp_suite.py").write_text(SUITE)
    return funcs


call = functools.partial(python_job, "tp_suite")
"""``call("function", **kwargs)``: a python job calling that function of ``tp_suite``."""


async def test_a_job_gives_its_result_and_log(api, root, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello", name="{who}")], enabled=False)
    reply = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": {"who": "Ada"}})
    run = await wait_for_run(alice, reply.body["id"])
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["results"][0]["value"] == "hello Ada"
    assert "hello Ada" in (await alice("GET", f"/runs/{run['id']}/log")).body


async def test_a_failing_job_fails_with_its_traceback_in_the_log(api, root, job):
    alice = api("alice")
    run = await wait_for_run(
        alice,
        await start_run(alice, await create_task(alice, jobs=[job("fail", message="no data")])),
    )
    assert run["status"] == "failed"
    assert run["error"] == "job 'fail' failed: RuntimeError: no data", run
    text = (await alice("GET", f"/runs/{run['id']}/log")).body
    assert "Traceback" in text and "RuntimeError: no data" in text


async def test_the_log_streams_while_the_job_runs_and_cancel_stops_it(api, root, tmp_path):
    alice = api("alice")
    pidfile = tmp_path / "pid"
    run_id = await start_run(
        alice, await create_task(alice, jobs=[call("chatty", pidfile=str(pidfile))])
    )

    async def logged() -> bool:
        return "started up" in ((await alice("GET", f"/runs/{run_id}/log")).body or "")

    await wait_until(logged)
    await wait_until(lambda: _has_text(pidfile))
    assert (await alice("GET", f"/runs/{run_id}")).body["status"] == "running"
    reply = await alice("POST", f"/runs/{run_id}/cancel")
    assert reply.status == 200 and reply.body["status"] == "cancelled", reply
    # Stopped where it ran, gracefully first: its cleanup (`finally`) ran.
    assert Path(f"{pidfile}.cleaned").exists()
    await wait_until(lambda: _gone(int(pidfile.read_text())), within=1)
    # Its log ends saying it was cancelled, and by whom, not with the worker's traceback.
    log = (await alice("GET", f"/runs/{run_id}/log")).body
    assert log.rstrip("\n").rpartition("\n")[2] == "cancelled by alice", log
    assert "Traceback" not in log, log


async def test_a_timeout_stops_the_job(api, root, tmp_path, job):
    alice = api("alice")
    pidfile = tmp_path / "pid"
    task = await create_task(
        alice, jobs=[job("sleep", seconds=60, pidfile=str(pidfile))], settings={"timeout": 5}
    )
    # 5 s: time for the job to start first, even on a busy machine.
    run = await wait_for_run(alice, await start_run(alice, task), within=30)
    assert run["status"] == "timed_out", run
    assert pidfile.exists(), "the job had not started when its run timed out"
    assert Path(f"{pidfile}.cleaned").exists()
    await wait_until(lambda: _gone(int(pidfile.read_text())), within=1)


async def test_a_worker_that_dies_fails_the_step_and_the_retry_runs(api, root, tmp_path):
    alice = api("alice")
    task = await create_task(
        alice,
        jobs=[call("die", counter=str(tmp_path / "counter"))],
        settings={"retries": 1, "retry_backoff": 0.1},
    )
    run = await wait_for_run(alice, await start_run(alice, task))
    assert run["status"] == "succeeded", run
    first, second = run["steps"]
    assert first["status"] == "failed" and "died" in first["error"], first
    assert "SIGKILL" in first["error"]
    assert (second["attempt"], second["status"]) == (2, "succeeded")
    assert second["results"][0]["value"] == "lived"


async def test_a_long_log_keeps_its_head_and_tail(api, root, planner):
    planner.settings.max_log_bytes = 4000
    alice = api("alice")
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[call("shout", lines=2000)]))
    )
    assert run["status"] == "succeeded", run
    text = (await alice("GET", f"/runs/{run['id']}/log")).body
    head, marker, tail = text.partition("bytes of log omitted (TaskPlannerApp.max_log_bytes)")
    assert marker and "\nline 00000\n" in head and tail.endswith("the last line\n"), text
    assert 4000 < len(text) < 4200


async def test_a_series_runs_each_set_with_its_values(api, root, job):
    alice = api("alice")
    series = {"type": "values", "config": {"values": [{"who": name} for name in "ABCDE"]}}
    task = await create_task(alice, series=series, jobs=[job("hello", name="{who}")])
    run = await wait_for_run(alice, await start_run(alice, task))
    assert run["status"] == "succeeded", run
    jobs = sorted(
        (step["set_index"], step["results"][0]["value"])
        for step in run["steps"]
        if step["kind"] == "job"
    )
    assert jobs == [(index, f"hello {name}") for index, name in enumerate("ABCDE")]


async def test_a_script_runs_and_its_files_come_back(api, root):
    (root / "scripts").mkdir()
    (root / "scripts" / "export.py").write_text(
        "import pathlib, sys\n"
        "pathlib.Path('out').mkdir()\n"
        "pathlib.Path('out/table.csv').write_text('a,b\\n1,' + sys.argv[1] + '\\n')\n"
        "print('exported')\n"
    )
    alice = api("alice")
    script = {
        "type": "script",
        "config": {"path": "scripts/export.py", "args": ["{run.id}"], "output_glob": "out/*.csv"},
    }
    run = await wait_for_run(alice, await start_run(alice, await create_task(alice, jobs=[script])))
    assert run["status"] == "succeeded", run
    (result,) = run["steps"][0]["results"]
    assert result["flavor"] == "file" and result["value"].endswith("out/table.csv"), result
    reply = await alice("GET", f"/runs/{run['id']}/files/{result['value']}")
    assert reply.status == 200 and reply.body == f"a,b\n1,{run['id']}\n"
    assert "exported" in (await alice("GET", f"/runs/{run['id']}/log")).body


async def test_a_command_runs_in_its_folder_and_its_files_come_back(api, root):
    (root / "exports").mkdir()
    alice = api("alice")
    command = {
        "type": "command",
        "config": {
            "program": "sh",
            "args": [
                "-c",
                'mkdir out && echo "run $1" > out/said.txt && echo said',
                "sh",
                "{run.id}",
            ],
            "cwd": "exports",
            "output_glob": "out/*.txt",
            "stdout_result": True,
        },
    }
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[command]))
    )
    assert run["status"] == "succeeded", run
    file, text = sorted(run["steps"][0]["results"], key=lambda result: result["flavor"])
    assert (text["flavor"], text["value"]) == ("text", "said\n"), text
    assert file["flavor"] == "file" and file["value"].endswith("out/said.txt"), file
    reply = await alice("GET", f"/runs/{run['id']}/files/{file['value']}")
    assert reply.status == 200 and reply.body == f"run {run['id']}\n"


async def test_a_notebook_from_its_snapshot_with_progress_and_files(api, root, run_events):
    (root / "reports").mkdir()
    (root / "reports" / "report.ipynb").write_text((NOTEBOOKS / "report.ipynb").read_text())
    alice = api("alice")
    notebook = {
        "type": "notebook",
        "config": {
            "path": "reports/report.ipynb",
            "input": "snapshot",
            "parameters": {"customer": "ACME"},
        },
    }
    task = await create_task(alice, jobs=[notebook])
    # The snapshot runs, not the notebook as it is now.
    (root / "reports" / "report.ipynb").write_text("not a notebook")
    run = await wait_for_run(alice, await start_run(alice, task))
    assert run["status"] == "succeeded", run
    results = run["steps"][0]["results"]
    assert sorted(result["value"].rsplit("/", 1)[-1] for result in results) == [
        "report.html",
        "report.ipynb",
    ]
    executed = next(result["value"] for result in results if result["value"].endswith("ipynb"))
    reply = await alice("GET", f"/runs/{run['id']}/files/{executed}")
    document = reply.body if isinstance(reply.body, dict) else json.loads(reply.body)
    outputs = [output for cell in document["cells"] for output in cell.get("outputs", [])]
    assert any("Report: 3 rows for ACME" in "".join(output.get("text", "")) for output in outputs)
    assert "Report: 3 rows for ACME" in (await alice("GET", f"/runs/{run['id']}/log")).body
    progress = [event for event in run_events if event["action"] == "progress"]
    assert any("cell" in event["message"] for event in progress), run_events


async def test_a_failing_notebook_keeps_the_partial_notebook(api, root):
    (root / "failing.ipynb").write_text((NOTEBOOKS / "failing.ipynb").read_text())
    alice = api("alice")
    notebook = {"type": "notebook", "config": {"path": "failing.ipynb"}}
    run = await wait_for_run(
        alice, await start_run(alice, await create_task(alice, jobs=[notebook]))
    )
    assert run["status"] == "failed"
    step = run["steps"][0]
    assert "cell 2 of 3 failed: ValueError: the data file is empty" in step["error"], step
    (partial,) = step["results"]
    assert (partial["flavor"], partial["valid"]) == ("file", False)
    assert (await alice("GET", f"/runs/{run['id']}/files/{partial['value']}")).status == 200


async def _has_text(path: Path) -> bool:
    return path.exists() and path.read_text() != ""


async def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False
