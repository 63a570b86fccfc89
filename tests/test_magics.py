"""The magics in a real kernel that a real Jupyter server started for a notebook: the
client finds that server by itself, ``%%schedule`` saves a cell as a task that then fires
and succeeds, ``%taskplanner`` lists, runs and switches tasks."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_taskplanner.client import TaskPlanner
from jupyter_taskplanner.testing import KernelSession, ServerProcess

pytestmark = pytest.mark.timeout(300)


def poll(predicate: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


@pytest.fixture
def server(server_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(server_root, tmp_path / "db" / "tasks.db", tmp_path / "server.log")
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
def kernel(server: ServerProcess, server_root: Path, tmp_path: Path) -> Iterator[KernelSession]:
    (server_root / "analysis.ipynb").write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    )
    session = KernelSession(server, "analysis.ipynb", tmp_path / "db" / "data" / "runtime")
    try:
        yield session
    finally:
        session.stop()


def test_schedule_a_cell_that_then_fires_and_succeeds(
    server: ServerProcess, kernel: KernelSession, server_root: Path
) -> None:
    found = kernel.run(
        "from jupyter_taskplanner.client import TaskPlanner\n"
        "planner = TaskPlanner()\n"
        "print(planner.connection.source, planner.current_notebook())"
    )
    assert found.error is None, found
    assert found.text.strip() == "kernel ('analysis.ipynb', 'python3')"

    assert kernel.run("%load_ext jupyter_taskplanner").error is None
    cell = (
        '%%schedule --cron "0 7 * * 1-5" --name "refresh cache"\n'
        "import pathlib\n"
        "pathlib.Path('refreshed.txt').write_text('fresh')\n"
    )
    created = kernel.run(cell)
    assert created.error is None, created
    lines = created.text.splitlines()
    assert lines[0] == "task 1 'refresh cache' created; next runs:"
    assert len(lines) == 4 and all("T07:00:00+00:00 (" in line for line in lines[1:])
    # The cell's code was saved, not executed, as a notebook named after the task in a
    # hidden folder of the root (the file browser does not list it).
    generated = server_root / ".taskplanner" / "scheduled" / "refresh-cache.ipynb"
    assert generated.is_file()
    assert not (server_root / "refreshed.txt").exists()
    assert not (server_root / "scheduled").exists()
    listed = server.request("GET", "/api/contents")["content"]
    assert [item["name"] for item in listed if item["name"].startswith(".")] == []

    client = TaskPlanner(url=server.url, token=server.token)
    [task] = client.list_tasks()
    [job] = task["jobs"]
    assert (job["type"], job["config"]["path"], job["config"]["input"]) == (
        "notebook",
        ".taskplanner/scheduled/refresh-cache.ipynb",
        "snapshot",
    )
    assert job["config"]["kernel"] == "python3"
    assert task["triggers"][0]["config"]["expression"] == "0 7 * * 1-5"

    # The same name updates the task: now every three seconds, and it fires by itself.
    updated = kernel.run(cell.replace('--cron "0 7 * * 1-5"', "--every 0.05"))
    assert updated.text.startswith("task 1 'refresh cache' updated; next runs:"), updated
    poll(lambda: client.runs_page(1).total > 0, within=120)
    run = client.wait(client.runs_page(1).items[-1]["id"], timeout=120, progress=False)
    assert run["status"] == "succeeded", client.run_log(run)
    assert run["trigger"].startswith("interval")
    # It ran in the folder of the notebook the cell was written in, as the cell would here.
    assert (server_root / "refreshed.txt").read_text() == "fresh"
    assert not (generated.parent / "refreshed.txt").exists()
    (server_root / "refreshed.txt").unlink()

    # --run-now also runs the cell here.
    now = kernel.run(cell.replace('--name "refresh cache"', '--name "now" --run-now'))
    assert now.error is None and "task 2 'now' created" in now.text, now
    assert (server_root / "refreshed.txt").read_text() == "fresh"

    # A name of the same file name ("refresh-cache") gets a notebook of its own.
    other = kernel.run(cell.replace('--name "refresh cache"', '--name "refresh-cache"'))
    assert other.error is None and "task 3 'refresh-cache' created" in other.text, other
    [hashed] = generated.parent.glob("refresh-cache-*.ipynb")
    assert json.loads(hashed.read_text())["metadata"]["taskplanner"] == {"task": "refresh-cache"}
    assert json.loads(generated.read_text())["metadata"]["taskplanner"] == {"task": "refresh cache"}
    assert client.get_task(3)["jobs"][0]["config"]["path"] == (
        f".taskplanner/scheduled/{hashed.name}"
    )

    # Deleting the task through the magic removes the notebook it saved, and only that one.
    deleted = kernel.run("%taskplanner delete 'refresh cache'")
    assert deleted.text == "task 1 'refresh cache' deleted\n", deleted
    assert not generated.exists()
    assert (generated.parent / "now.ipynb").is_file() and hashed.is_file()
    assert [task["name"] for task in client.list_tasks()] == ["now", "refresh-cache"]
    assert kernel.run("%taskplanner delete 'refresh cache'").text == (
        "error: no task named 'refresh cache'\n"
    )


def test_taskplanner_line_magic(server: ServerProcess, kernel: KernelSession) -> None:
    client = TaskPlanner(url=server.url, token=server.token)
    client.create_task(
        {"name": "hello", "jobs": [{"type": "python", "config": {"function": "tp_funcs:hello"}}]}
    )
    assert kernel.run("%load_ext jupyter_taskplanner").error is None
    assert kernel.run("%taskplanner list").text == "    1  on   hello\n"
    assert kernel.run("%taskplanner disable hello").text == "task 1 'hello' disabled\n"
    assert kernel.run("%taskplanner list").text == "    1  off  hello\n"
    assert kernel.run("%taskplanner enable 1").text == "task 1 'hello' enabled\n"
    ran = kernel.run("%taskplanner run hello")
    assert "run 1 succeeded" in ran.text, ran
    assert kernel.run("%taskplanner runs hello").text.split()[:2] == ["1", "succeeded"]
    assert kernel.run("%taskplanner run nope").text == "error: no task named 'nope'\n"
    assert kernel.run("%taskplanner frobnicate").text.startswith("usage: %taskplanner list")


def test_a_cell_scheduled_in_a_subfolder_runs_there(
    server: ServerProcess, server_root: Path, tmp_path: Path
) -> None:
    (server_root / "reports").mkdir()
    (server_root / "reports" / "data.txt").write_text("north")
    (server_root / "reports" / "monthly.ipynb").write_text(
        json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": []})
    )
    session = KernelSession(server, "reports/monthly.ipynb", tmp_path / "db" / "data" / "runtime")
    try:
        assert session.run("%load_ext jupyter_taskplanner").error is None
        cell = (
            '%%schedule --name "monthly copy"\n'
            "import pathlib\n"
            "pathlib.Path('copy.txt').write_text(pathlib.Path('data.txt').read_text())\n"
        )
        assert "task 1 'monthly copy' created" in session.run(cell).text
        ran = session.run("%taskplanner run 'monthly copy'")
        assert "run 1 succeeded" in ran.text, ran
    finally:
        session.stop()
    assert (server_root / "reports" / "copy.txt").read_text() == "north"
    assert (server_root / ".taskplanner" / "scheduled" / "monthly-copy.ipynb").is_file()
