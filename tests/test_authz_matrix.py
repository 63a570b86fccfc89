"""Authorization, generated from the route table: every planner route x every kind of caller.

The callers: the owner of the resources (alice), another user (bob), the planner's admin
(root), a user without the planner permission (eve) and nobody (anonymous).  Every route the
server serves is walked (``planner_routes``), so a new route is in the matrix without being
listed here; a route whose URL the matrix cannot fill in fails it, saying what to add.

Besides alice's own resources the matrix guesses: ids that never existed, another user's
run and step ids, result paths that climb out of the run's folder, tasks named inside a
body.  Another user's resource answers exactly like one that never existed: the same status
and, the id aside, the same body.  Writes with a login cookie need the XSRF token.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from jupyter_taskplanner.testing import ServerProcess, create_task, wait_for_run

API = "/taskplanner/api"
# Handlers whose URL carries its own credential: no login, and any mismatch is 404.
PUBLIC_HANDLERS = {"TaskTriggerHandler"}
TOKEN = "matrix-token-0123456789abcdef"
NEVER = 987_654_321
"""An id no task, run or step of these tests has."""
REPORT = textwrap.dedent(
    """
    import pathlib

    def report():
        pathlib.Path("report.txt").write_text("alice's figures")
        return pathlib.Path("report.txt")
    """
)
BODIES: dict[str, Any] = {
    "post /tasks": {"name": "made by the matrix"},
    "post /tasks/import": {"name": "imported by the matrix"},
    "post /tasks/{raw_id}/import": {"name": "imported into by the matrix"},
    "put /tasks/{raw_id}": {"name": "replaced by the matrix"},
    "patch /tasks/{raw_id}": {"description": "patched by the matrix"},
    "post /execute": {"name": "ad hoc by the matrix"},
}
"""A body for each route that takes one (method and template); the others get none."""


def _fill(template: str, samples: dict[str, str]) -> str:
    def sample(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in samples, f"{template}: add a sample value for {{{name}}} to this test"
        return samples[name]

    return re.sub(r"\{(\w+)\}", sample, template).removeprefix(API)


def _body(method: str, template: str) -> Any:
    return BODIES.get(f"{method} {template.removeprefix(API)}")


def _same_but_the_id(reply: Any, other: Any, ids: tuple[int, int]) -> bool:
    """Whether two replies are the same once the id each asked for is blanked out."""
    texts = [
        re.sub(rf"\b{asked}\b", "<id>", json.dumps(each.body))
        for each, asked in zip((reply, other), ids, strict=True)
    ]
    return reply.status == other.status and texts[0] == texts[1]


async def make_world(api: Any, jp_root_dir: Path) -> dict[str, Any]:
    """Alice's task (an http trigger, a job writing a result file) and a finished run of it,
    and bob's own task and run: sample values per URL parameter."""
    (jp_root_dir / "tp_report.py").write_text(REPORT)
    alice, bob = api("alice"), api("bob")
    job = {"type": "python", "name": "report", "config": {"function": "tp_report:report"}}
    task = await create_task(
        alice,
        name="Alice's",
        description="private",
        jobs=[job],
        triggers=[{"type": "http", "config": {"token": TOKEN}}],
    )
    started = await alice("POST", f"/tasks/{task['id']}/run")
    run = await wait_for_run(alice, started.body["id"])
    assert run["status"] == "succeeded", run
    [step] = run["steps"]
    [result] = step["results"]
    bobs_task = await create_task(bob, name="Bob's")
    bobs_run = await wait_for_run(
        bob, (await bob("POST", f"/tasks/{bobs_task['id']}/run")).body["id"]
    )
    return {
        "task": task,
        "run": run,
        "step": step,
        "bobs_task": bobs_task,
        "bobs_run": bobs_run,
        "samples": {
            "raw_id": str(task["id"]),
            "raw_run_id": str(run["id"]),
            "token": TOKEN,
            "relative": result["value"],
        },
    }


async def test_strangers_get_401_403_or_exactly_a_never_existing_resource(
    api, planner, planner_routes, jp_root_dir
):
    world = await make_world(api, jp_root_dir)
    assert len({(t, m) for t, m, _ in planner_routes}) >= 25, "the route walk missed routes"
    samples = world["samples"]
    task_id = world["task"]["id"]
    before = await planner.db.call(planner.store.get_task, task_id, None)
    runs_before = (await planner.db.call(planner.store.list_runs, None, task_id=task_id))[1]
    checked = 0
    for template, method, handler in planner_routes:
        where = f"{method.upper()} {template}"
        path, body = _fill(template, samples), _body(method, template)
        public = handler.__name__ in PUBLIC_HANDLERS
        if public:
            continue  # the token is the credential: see the test of public routes
        for caller, refused in ((None, 401), ("eve", 403)):
            reply = await api(caller)(method.upper(), path, body)
            assert reply.status == refused, (where, caller, reply)
            assert reply.body["message"], (where, caller, reply)
        if "{" not in template:
            continue
        # Bob on alice's resource, and on one that never existed.
        bobs = await api("bob")(method.upper(), path, body)
        ids = (int(samples["raw_run_id" if "raw_run_id" in template else "raw_id"]), NEVER)
        guessed = {"raw_id": str(NEVER), "raw_run_id": str(NEVER)}
        never = await api("bob")(method.upper(), _fill(template, {**samples, **guessed}), body)
        assert bobs.status == 404, (where, bobs)
        assert _same_but_the_id(bobs, never, ids), (where, bobs, never)
        assert "alice" not in json.dumps(bobs.body).lower(), (where, bobs)
        checked += 1
    assert checked >= 15, checked
    # Nothing of alice's changed, and nobody started her task.
    assert await planner.db.call(planner.store.get_task, task_id, None) == before
    assert (await planner.db.call(planner.store.list_runs, None, task_id=task_id))[1] == runs_before


async def test_the_owner_and_the_admin_reach_every_route(api, planner_routes, jp_root_dir):
    world = await make_world(api, jp_root_dir)
    samples = world["samples"]
    for caller in ("alice", "root"):
        for template, method, handler in planner_routes:
            if handler.__name__ in PUBLIC_HANDLERS:
                continue  # the token decides, whoever calls: see the test of public routes
            where = f"{method.upper()} {template} as {caller}"
            values = dict(samples)
            if method == "delete":  # a task of alice's of its own, so the others stay
                values["raw_id"] = str((await create_task(api("alice"), name="to delete"))["id"])
            reply = await api(caller)(
                method.upper(), _fill(template, values), _body(method, template)
            )
            assert reply.status < 500 and reply.status not in (401, 403, 404), (where, reply)


async def test_public_routes_answer_the_token_not_the_caller(api, planner_routes, jp_root_dir):
    world = await make_world(api, jp_root_dir)
    public = [(t, m) for t, m, h in planner_routes if h.__name__ in PUBLIC_HANDLERS]
    assert len(public) == 2, public
    samples = world["samples"]
    wrong = {**samples, "token": "not-the-token-0123456789"}
    for template, method in public:
        for caller in (None, "eve", "bob", "alice", "root"):
            right = await api(caller)(method.upper(), _fill(template, samples))
            assert right.status == 202, (template, method, caller, right)
            refused = await api(caller)(method.upper(), _fill(template, wrong))
            elsewhere = {**samples, "raw_id": str(world["bobs_task"]["id"])}
            not_bobs = await api(caller)(method.upper(), _fill(template, elsewhere))
            assert refused.status == not_bobs.status == 404, (caller, refused, not_bobs)
            assert refused.body == not_bobs.body


async def test_guessed_runs_steps_and_result_paths(api, jp_root_dir):
    world = await make_world(api, jp_root_dir)
    alice, bob = api("alice"), api("bob")
    run, step, bobs_run = world["run"], world["step"], world["bobs_run"]
    # Alice's step on bob's own run is a step bob's run does not have, like any other.
    log = f"/runs/{bobs_run['id']}/log"
    theirs = await bob("GET", log, params={"step": str(step["id"])})
    never = await bob("GET", log, params={"step": str(NEVER)})
    assert theirs.status == 404 and _same_but_the_id(theirs, never, (step["id"], NEVER))
    # Result paths: only files inside the run's own folder, whatever the spelling.
    files = f"/runs/{run['id']}/files"
    for relative in (
        "../../../../etc/passwd",
        "..%2F..%2F..%2Fetc%2Fpasswd",
        "%2e%2e/%2e%2e/tasks.db",
        "/etc/passwd",
        "report/../../tasks.db",
        f"../{bobs_run['id']}/log.txt",
        "1-report/log.txt/../../../tasks.db",
        "",
    ):
        reply = await alice("GET", f"{files}/{relative}")
        assert reply.status == 404, (relative, reply)
    # Bob's run with alice's file path: not there either.
    assert (
        await bob("GET", f"/runs/{bobs_run['id']}/files/{world['samples']['relative']}")
    ).status == 404


async def test_tasks_named_in_a_body_are_hidden_like_missing_ones(api, jp_root_dir):
    world = await make_world(api, jp_root_dir)
    bob = api("bob")
    alices = world["task"]["id"]

    async def save(method: str, path: str, task_ids: int) -> tuple[Any, Any]:
        replies = []
        for task_id in (task_ids, NEVER):
            body: Any = {
                "name": "follows",
                "enabled": False,
                "triggers": [{"type": "after_task", "config": {"task_id": task_id}}],
                "actions": [{"type": "next_task", "config": {"task_ids": [task_id]}}],
            }
            if path == "/execute":
                body = {"task_id": task_id}
            replies.append(await bob(method, path, body))
        return replies[0], replies[1]

    for method, path in (("POST", "/tasks"), ("POST", "/tasks/import"), ("POST", "/execute")):
        theirs, never = await save(method, path, alices)
        if theirs.status < 300:  # an import may name tasks it brings: both are taken
            assert theirs.status == never.status, (path, theirs, never)
        else:
            assert _same_but_the_id(theirs, never, (alices, NEVER)), (path, theirs, never)
    # Listing another user's tasks or runs is refused the same for every name.
    for path in ("/tasks", "/runs"):
        real = await bob("GET", path, params={"owner": "alice"})
        made_up = await bob("GET", path, params={"owner": "nobody-at-all"})
        assert (real.status, real.body) == (made_up.status, made_up.body) == (403, real.body)


class TestWithoutUnauthenticatedAccess:
    """``ServerApp.allow_unauthenticated_access = False`` (a hardened server): jupyter_server
    then refuses unknown users itself, before the planner's handlers run."""

    @pytest.fixture
    def jp_server_config(self, taskplanner_server_config: dict[str, Any]) -> dict[str, Any]:
        config = dict(taskplanner_server_config)
        config["ServerApp"] = {**config["ServerApp"], "allow_unauthenticated_access": False}
        return config

    async def test_http_triggers_still_need_no_login_and_the_rest_answers_401(self, api, jp_fetch):
        alice = api("alice")
        token = "hardened-0123456789abcdef"
        task = await create_task(alice, triggers=[{"type": "http", "config": {"token": token}}])
        response = await jp_fetch(
            f"taskplanner/api/tasks/{task['id']}/trigger",
            token,
            method="POST",
            body="",
            headers={"Authorization": ""},
        )
        assert response.code == 202, response
        await wait_for_run(alice, json.loads(response.body)["run_id"])
        for method, path in (("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/openapi.json")):
            reply = await api(None)(method, path, {"name": "x"} if method == "POST" else None)
            assert reply.status == 401, (method, path, reply)
            assert reply.headers["WWW-Authenticate"].startswith("token"), reply


def test_writes_with_a_login_cookie_need_the_xsrf_token(tmp_path: Path) -> None:
    """A browser logged in by cookie: a page of another site can make it send requests, but
    cannot read the ``_xsrf`` cookie to send it back as ``X-XSRFToken``."""
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, tmp_path / "planner" / "tasks.db", tmp_path / "server.log")
    base = f"http://127.0.0.1:{server.port}"
    try:
        browser = requests.Session()
        browser.get(f"{base}/login", timeout=30)
        login = browser.post(
            f"{base}/login",
            data={"password": server.token, "_xsrf": browser.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=30,
        )
        assert login.status_code == 302, login.text
        api = f"{base}{API}"
        # Refused before its body is read, a request still gets its answer (not a reset).
        anonymous = requests.post(f"{api}/tasks", json={"name": "x" * 10_000}, timeout=30)
        assert anonymous.status_code == 401, anonymous.text
        listed = browser.get(f"{api}/tasks", timeout=30)
        assert listed.status_code == 200, listed.text  # the cookie logs in
        task = {"name": "from a browser"}
        for method, path, body in (
            ("POST", "/tasks", task),
            ("POST", "/execute", {"name": "x"}),
            ("POST", "/tasks/import", task),
        ):
            forged = browser.request(method, f"{api}{path}", json=body, timeout=30)
            assert forged.status_code == 403, (method, path, forged.text)
            assert "_xsrf" in forged.json()["message"]
        headers = {"X-XSRFToken": browser.cookies["_xsrf"]}
        made = browser.post(f"{api}/tasks", json=task, headers=headers, timeout=30)
        assert made.status_code == 201, made.text
        one = f"{api}/tasks/{made.json()['id']}"
        for method in ("PUT", "PATCH", "DELETE"):
            forged = browser.request(method, one, json=task, timeout=30)
            assert forged.status_code == 403, (method, forged.text)
        for verb in ("run", "disable", "copy"):
            forged = browser.post(f"{one}/{verb}", timeout=30)
            assert forged.status_code == 403, (verb, forged.text)
        assert browser.get(one, timeout=30).json()["enabled"] is True
        assert browser.get(f"{one}/runs", timeout=30).json()["total"] == 0
        assert browser.delete(one, headers=headers, timeout=30).status_code == 204
    finally:
        server.stop()
