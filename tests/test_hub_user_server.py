"""The ``user_server`` executor on a real hub: a schedule fires while its owner's server is
stopped, the service has the hub start it, the job runs inside it, and its log and result
are the planner's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hub_support import Hub, missing, skip_or_fail, start_hub, task_json, unique

BOB = unique("bob")
HELLO = """\
import os, pathlib
print("hello from the server of", os.environ.get("JUPYTERHUB_USER"))
pathlib.Path("result.txt").write_text(f"made by {os.environ.get('JUPYTERHUB_USER')}")
"""


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    if missing():
        skip_or_fail(str(missing()))
    # The service checks tasks' paths against the folder users' servers serve.
    hub = start_hub(
        executor="user_server",
        users=[BOB],
        args=["--UserServerExecutor.activity_interval=1"],
        owner_root="homes/{owner}",
    )
    try:
        root = hub.folder / "homes" / BOB
        root.mkdir(parents=True, exist_ok=True)
        (root / "hello.py").write_text(HELLO)
        yield hub
    finally:
        hub.stop()


def wait_for_run(hub: Hub, user: str, task_id: int, timeout: float = 90) -> dict[str, Any]:
    """The task's first run once it ended (it starts by its schedule)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = task_json(hub.planner(user, "GET", f"/tasks/{task_id}/runs"))["runs"]
        if runs and runs[0]["status"] not in ("queued", "running"):
            run: dict[str, Any] = runs[0]
            return run
        time.sleep(0.5)
    raise AssertionError(f"no run of task {task_id} ended\n{hub.logs()}")


def test_a_schedule_fires_while_the_server_is_stopped(hub: Hub) -> None:
    assert hub.server(BOB) is None
    # Far enough ahead that the fire is still to come when the task is saved through the hub.
    at = datetime.now(UTC) + timedelta(seconds=8)
    body = {
        "name": "while away",
        "triggers": [
            {
                "type": "time",
                "config": {"start_date": at.date().isoformat(), "time": at.strftime("%H:%M:%S")},
            }
        ],
        "jobs": [
            {
                "type": "script",
                "name": "hello",
                "config": {"path": "hello.py", "output_glob": "result.txt"},
            }
        ],
        "settings": {"timezone": "UTC"},
    }
    task = task_json(hub.planner(BOB, "POST", "/tasks", body))

    run = wait_for_run(hub, BOB, task["id"])
    assert run["status"] == "succeeded", (run, hub.logs())
    assert run["trigger"] != "api"
    # The hub started the server for the job, and left it running.
    assert (hub.server(BOB) or {}).get("ready")

    detail = task_json(hub.planner(BOB, "GET", f"/runs/{run['id']}"))
    [step] = [step for step in detail["steps"] if step["kind"] == "job"]
    [result] = [item for item in step["results"] if item["flavor"] == "file"]
    download = hub.planner(BOB, "GET", f"/runs/{run['id']}/files/{result['value']}")
    assert download.status_code == 200, download.text
    assert download.text == f"made by {BOB}"
    log = hub.planner(BOB, "GET", f"/runs/{run['id']}/log")
    assert f"hello from the server of {BOB}" in log.text

    # The service told the hub the server was in use while the job ran.
    user = hub.hub_api("GET", f"users/{BOB}").json()
    last = datetime.fromisoformat(user["last_activity"].replace("Z", "+00:00"))
    assert last >= at - timedelta(seconds=1)


def test_the_planners_files_stay_on_the_service(hub: Hub) -> None:
    # The user's server keeps no database of its own: it is a client of the service.
    assert hub.db is not None and hub.db.exists()
    root = Path(hub.folder / "homes" / BOB)
    assert not list(root.rglob("taskplanner.db"))
