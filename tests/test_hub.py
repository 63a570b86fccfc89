"""The planner as a JupyterHub service, on a real hub: who sees what, and jobs that run as
their owners' system accounts (``local_user``).

One hub for the module: alice and bob use the planner (each with a system account and a
private home), carol is a hub admin (a planner admin by that), dave is a hub user without
the planner's scope.  Users reach the service through the proxy with their API tokens, and
alice also through her own server, whose planner extension forwards to the service.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hub_support import (
    SERVICE,
    Hub,
    missing,
    skip_or_fail,
    start_hub,
    task_json,
    unique,
    users_python,
)

ALICE, BOB, CAROL, DAVE = unique("alice"), unique("bob"), unique("carol"), unique("dave")
ERIN, ANALYSTS = unique("erin"), unique("analysts")
"""erin uses the planner only through her hub group, ANALYSTS."""
PROBE = """\
import json, os, pathlib, sys
report = {"uid": os.getuid()}
for target in sys.argv[1:]:
    try:
        open(target, "rb").read(1)
        report[target] = "read"
    except OSError as exc:
        report[target] = type(exc).__name__
pathlib.Path("probe.json").write_text(json.dumps(report))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    if missing():
        skip_or_fail(str(missing()))
    # Not under pytest's tmp folder (mode 700): the users must reach it.
    folder = Path(tempfile.mkdtemp(prefix="taskplanner-python-"))
    os.chmod(folder, 0o711)
    try:
        python = users_python(folder)
        if python is None:
            skip_or_fail("no Python here that other users may run (see tests/hub_support.py)")
        yield from _hub(python)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _hub(python: str) -> Iterator[Hub]:
    hub = start_hub(
        executor="local_user",
        users=[ALICE, BOB],
        admins=[CAROL],
        outsiders=[DAVE],
        groups={ANALYSTS: [ERIN]},
        accounts=True,
        args=[f"--LocalUserExecutor.python={python}"],
    )
    try:
        for name in (ALICE, BOB, ERIN):
            account = pwd.getpwnam(name)
            home = Path(account.pw_dir)
            for path, text in ((home / "probe.py", PROBE), (home / "secret.txt", name)):
                path.write_text(text)
                os.chown(path, account.pw_uid, account.pw_gid)
                os.chmod(path, 0o600)
        yield hub
    finally:
        hub.stop()


def probe_task(hub: Hub, owner: str, *targets: str) -> dict[str, Any]:
    body = {
        "name": f"probe of {owner}",
        "jobs": [
            {
                "type": "script",
                "name": "probe",
                "config": {"path": "probe.py", "args": list(targets), "output_glob": "probe.json"},
            }
        ],
    }
    return task_json(hub.planner(owner, "POST", "/tasks", body))


def run_and_wait(hub: Hub, user: str, task_id: int) -> dict[str, Any]:
    started = task_json(hub.planner(user, "POST", f"/tasks/{task_id}/run"))
    return hub.wait_run(user, int(started["id"]))


def probe_report(hub: Hub, owner: str, run_id: int) -> tuple[dict[str, Any], os.stat_result]:
    assert hub.db is not None
    [found] = (hub.db.parent / "runs" / owner / str(run_id)).rglob("output/probe.json")
    return json.loads(found.read_text()), found.stat()


def test_each_user_sees_only_their_own_tasks(hub: Hub) -> None:
    mine = probe_task(hub, ALICE)
    theirs = probe_task(hub, BOB)
    assert mine["owner"] == ALICE and theirs["owner"] == BOB

    listed = task_json(hub.planner(ALICE, "GET", "/tasks"))["tasks"]
    assert {task["owner"] for task in listed} == {ALICE}
    assert theirs["id"] not in {task["id"] for task in listed}
    assert hub.planner(ALICE, "GET", f"/tasks/{theirs['id']}").status_code == 404
    assert hub.planner(ALICE, "GET", "/tasks?owner=*").status_code == 403
    listed = task_json(hub.planner(BOB, "GET", "/tasks"))["tasks"]
    assert {task["owner"] for task in listed} == {BOB}


def test_the_admin_sees_and_runs_every_users_tasks(hub: Hub) -> None:
    bobs = probe_task(hub, BOB)
    everyone = task_json(hub.planner(CAROL, "GET", "/tasks?owner=*"))["tasks"]
    assert {ALICE, BOB} <= {task["owner"] for task in everyone}

    run = run_and_wait(hub, CAROL, bobs["id"])
    assert run["status"] == "succeeded", run
    assert run["owner"] == BOB and run["started_by"] == CAROL
    # It ran as its owner, whoever started it.
    report, _ = probe_report(hub, BOB, run["id"])
    assert report["uid"] == pwd.getpwnam(BOB).pw_uid


def test_a_user_without_the_scope_is_refused_naming_it(hub: Hub) -> None:
    reply = hub.planner(DAVE, "GET", "/tasks")
    assert reply.status_code == 403
    assert "custom:taskplanner:use" in reply.json()["message"]
    assert hub.planner(DAVE, "POST", "/tasks", {"name": "mine"}).status_code == 403


def test_a_hub_group_grants_the_planner(hub: Hub) -> None:
    """erin's group holds the planner role, she does not: her token's scopes let her in,
    and her run, whose permissions the service looks up through the hub API (her roles and
    her groups' roles), succeeds as her."""
    task = probe_task(hub, ERIN)
    assert task["owner"] == ERIN
    run = run_and_wait(hub, ERIN, task["id"])
    assert run["status"] == "succeeded", run
    report, _ = probe_report(hub, ERIN, run["id"])
    assert report["uid"] == pwd.getpwnam(ERIN).pw_uid
    roles = hub.hub_api("GET", f"users/{ERIN}").json()["roles"]
    assert "taskplanner-user" not in roles


def test_a_jobs_files_belong_to_its_owner(hub: Hub) -> None:
    task = probe_task(hub, ALICE)
    run = run_and_wait(hub, ALICE, task["id"])
    assert run["status"] == "succeeded", run
    report, stat = probe_report(hub, ALICE, run["id"])
    account = pwd.getpwnam(ALICE)
    assert report["uid"] == account.pw_uid
    assert stat.st_uid == account.pw_uid
    download = hub.planner(ALICE, "GET", f"/runs/{run['id']}/files/1-probe/output/probe.json")
    assert download.status_code == 200, download.text
    assert download.json() == report


def test_a_job_reads_neither_other_homes_nor_the_planners_database(hub: Hub) -> None:
    assert hub.db is not None
    bobs_secret = str(Path(pwd.getpwnam(BOB).pw_dir) / "secret.txt")
    own_secret = str(Path(pwd.getpwnam(ALICE).pw_dir) / "secret.txt")
    task = probe_task(hub, ALICE, bobs_secret, str(hub.db), own_secret)
    run = run_and_wait(hub, ALICE, task["id"])
    assert run["status"] == "succeeded", run
    report, _ = probe_report(hub, ALICE, run["id"])
    assert report[bobs_secret] == "PermissionError"
    assert report[str(hub.db)] == "PermissionError"
    assert report[own_secret] == "read"
    assert not os.stat(hub.db).st_mode & 0o077  # the database is root's alone


def test_the_client_in_a_users_server_lists_that_users_tasks(hub: Hub) -> None:
    from jupyter_taskplanner.client import TaskPlanner

    mine = probe_task(hub, ALICE)
    bobs = probe_task(hub, BOB)
    hub.start_server(ALICE)
    base = f"/user/{ALICE}/taskplanner/api"

    # Alice's server has no planner of its own: it forwards to the service.
    listed = task_json(hub.planner(ALICE, "GET", "/tasks", base=base))["tasks"]
    assert {task["owner"] for task in listed} == {ALICE}
    assert mine["id"] in {task["id"] for task in listed}
    created = hub.planner(ALICE, "POST", "/tasks", {"name": "made in the Lab"}, base=base)
    assert created.status_code == 201, created.text
    assert created.headers["Location"].startswith(f"/user/{ALICE}/taskplanner/api/tasks/")
    assert created.json()["owner"] == ALICE

    client = TaskPlanner(url=f"{hub.url}user/{ALICE}/", token=hub.tokens[ALICE])
    names = {task["name"] for task in client.list_tasks()}
    assert "made in the Lab" in names and f"probe of {BOB}" not in names

    # Her runs' events reach her through her server as they come; bob's never do.
    with client.events() as events:
        assert events.connected, events.refusal
        task_json(hub.planner(BOB, "POST", f"/tasks/{bobs['id']}/run"))
        run = client.start_run(mine)
        seen: list[dict[str, Any]] = []
        while not seen or (seen[-1]["action"], seen[-1]["run_id"]) != ("finished", run["id"]):
            event = events.next(60)
            assert event is not None, seen
            seen.append(event)
    assert {event["owner"] for event in seen} == {ALICE}, seen
    assert seen[0]["action"] == "started"
    # The stream keeps the headers that keep proxies from buffering or caching it.
    stream = requests.get(
        f"{hub.url}{base.lstrip('/')}/events",
        headers={"Authorization": f"token {hub.tokens[ALICE]}", "Accept": "text/event-stream"},
        stream=True,
        timeout=30,
    )
    with stream:
        assert stream.status_code == 200, stream.text
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        assert stream.headers["Cache-Control"] == "no-cache"
        assert stream.headers["X-Accel-Buffering"] == "no"


def test_the_client_finds_the_planner_from_a_kernels_environment(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a kernel in alice's server has (the spawner's variables) is enough."""
    from jupyter_taskplanner.client import TaskPlanner

    task_json(hub.planner(ALICE, "POST", "/tasks", {"name": "found from a kernel"}))
    if not (hub.server(ALICE) or {}).get("ready"):
        hub.start_server(ALICE)
    for name in ("TASKPLANNER_URL", "TASKPLANNER_TOKEN", "JPY_PARENT_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", hub.tokens[ALICE])
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", f"{hub.url}user/{ALICE}/")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", f"/user/{ALICE}/")
    client = TaskPlanner()
    assert client.url.startswith(f"{hub.url}user/{ALICE}")
    owners = {task["owner"] for task in client.list_tasks()}
    assert owners == {ALICE}


def test_the_lab_in_a_users_server_lists_that_users_tasks(hub: Hub) -> None:
    from lab_support import chromium, require_browser_setup

    require_browser_setup()
    task_json(hub.planner(ALICE, "POST", "/tasks", {"name": "Alice's Lab task"}))
    task_json(hub.planner(BOB, "POST", "/tasks", {"name": "Bob's Lab task"}))
    if not (hub.server(ALICE) or {}).get("ready"):
        hub.start_server(ALICE)
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        page.set_default_timeout(60_000)
        # Whether she may see every owner's tasks, as her Lab asks (through her server).
        asked: list[int] = []
        page.on("response", lambda reply: "owner=" in reply.url and asked.append(reply.status))
        # The hub's login page (any password: the dummy authenticator), then her Lab.
        page.goto(f"{hub.url}hub/login?next=/user/{ALICE}/lab")
        page.fill("#username_input", ALICE)
        page.fill("#password_input", "any")
        page.click("#login_submit")
        page.wait_for_selector(".jp-LauncherCard", timeout=90_000)
        page.click(".jp-LauncherCard:has-text('Task Planner')")
        view = page.locator(".jp-TaskPlanner-list")
        view.get_by_text("Alice's Lab task").wait_for()
        assert view.get_by_text("Bob's Lab task").count() == 0
        # Not an admin (the service said no): no owner column, no "every owner's tasks".
        for _ in range(100):
            if asked:
                break
            page.wait_for_timeout(100)
        assert asked and set(asked) == {403}, asked
        assert view.get_by_role("columnheader", name="Owner").count() == 0
        assert view.get_by_label("Every owner's tasks").count() == 0

        # The service itself in a browser, no server needed: the hub's OAuth, then the
        # service's cookie.
        page.goto(f"{hub.url}services/{SERVICE}/login")
        assert page.url.startswith(f"{hub.url}services/{SERVICE}/taskplanner/api/tasks")
        listed = json.loads(page.inner_text("body"))["tasks"]
        assert "Alice's Lab task" in {task["name"] for task in listed}
        assert {task["owner"] for task in listed} == {ALICE}
        # Only somewhere in the service comes after the login.
        page.goto(f"{hub.url}services/{SERVICE}/login?next=https://example.org/")
        assert page.url.startswith(f"{hub.url}services/{SERVICE}/")
