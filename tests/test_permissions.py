"""Who may call what: a matrix over every planner route the server serves, plus admin rights."""

from __future__ import annotations

import re
from typing import Any

# Handlers that take no login because a secret in the URL is the credential; a wrong secret
# is 404 to everyone, so the URL reveals nothing.
PUBLIC_HANDLERS = {"TaskTriggerHandler"}


async def _alices_world(api: Any, routes: list[tuple[str, str, type]]) -> dict[str, str]:
    """Alice's task (and a run of it when run routes exist): sample values per URL parameter."""
    alice = api("alice")
    task = (await alice("POST", "/tasks", {"name": "Alice's", "description": "private"})).body
    samples = {"raw_id": str(task["id"]), "token": "not-the-token", "relative": "result.txt"}
    if any("{raw_run_id}" in template for template, _, _ in routes):
        run = await alice("POST", f"/tasks/{task['id']}/run")
        assert run.status == 202, run
        samples["raw_run_id"] = str(run.body["id"])
    return samples


def _fill(template: str, samples: dict[str, str]) -> str:
    def sample(match: re.Match[str]) -> str:
        name = match.group(1)
        assert name in samples, f"{template}: add a sample value for {{{name}}} to this test"
        return samples[name]

    return re.sub(r"\{(\w+)\}", sample, template).removeprefix("/taskplanner/api")


async def test_every_route_refuses_strangers_and_hides_other_users_tasks(
    planner, planner_routes, api
):
    routes = planner_routes
    assert len({(t, m) for t, m, _ in routes}) >= 13, "the route walk missed routes"
    samples = await _alices_world(api, routes)
    task_id = int(samples["raw_id"])
    before = await planner.db.call(planner.store.get_task, task_id, None)

    for template, method, handler in routes:
        path = _fill(template, samples)
        body = {"name": "hijacked"} if method in ("post", "put", "patch") else None
        where = f"{method.upper()} {template}"
        public = handler.__name__ in PUBLIC_HANDLERS
        # Anonymous: 401 (log in); eve, logged in without the planner permission: 403.
        for stranger, refused in ((None, 401), ("eve", 403)):
            reply = await api(stranger)(method.upper(), path, body)
            expected = 404 if public else refused
            assert reply.status == expected, (where, stranger, reply)
            assert reply.body["message"], (where, stranger, reply)
            if reply.status == 401:
                assert reply.headers["WWW-Authenticate"].startswith("token"), (where, reply)
        if "{" in template:
            reply = await api("bob")(method.upper(), path, body)
            assert reply.status == 404, (where, "bob", reply)
            assert "alice" not in reply.body["message"].lower(), (where, reply)

    assert await planner.db.call(planner.store.get_task, task_id, None) == before
    assert (await planner.db.call(planner.store.list_tasks, None))[1] == 1
    bobs = await api("bob")("GET", "/tasks")
    assert bobs.body["tasks"] == []


async def test_admin_reaches_other_users_tasks_and_the_owner_stays(api):
    alice, root = api("alice"), api("root")
    task = (await alice("POST", "/tasks", {"name": "Alice's"})).body
    one = f"/tasks/{task['id']}"

    read = await root("GET", one)
    assert (read.status, read.body) == (200, task)
    for method, path, body in (
        ("PATCH", one, {"description": "checked by root"}),
        ("PUT", one, {"name": "Renamed by root"}),
        ("POST", f"{one}/disable", None),
        ("POST", f"{one}/enable", None),
    ):
        reply = await root(method, path, body)
        assert reply.status == 200, (method, path, reply)
        assert reply.body["owner"] == "alice"
    seen_by_alice = (await alice("GET", one)).body
    assert (seen_by_alice["owner"], seen_by_alice["name"]) == ("alice", "Renamed by root")
    assert seen_by_alice["revision"] == 5

    moved = await root("PATCH", one, {"owner": "root"})
    assert (moved.status, moved.body["field"]) == (400, "owner")

    exported = await root("GET", f"{one}/export")
    assert exported.status == 200
    assert exported.body["tasks"][0]["owner"] == "alice"
    listed = await root("GET", "/tasks", params={"owner": "alice"})
    assert [t["id"] for t in listed.body["tasks"]] == [task["id"]]

    copy = await root("POST", f"{one}/copy")
    assert (copy.status, copy.body["owner"]) == (201, "root")

    assert (await root("DELETE", one)).status == 204
    assert (await alice("GET", one)).status == 404


async def test_import_with_another_owner_needs_admin(api):
    alice, bob, root = api("alice"), api("bob"), api("root")

    for body in (
        {"name": "Bob's", "owner": "bob"},
        [{"name": "Mine"}, {"name": "B", "owner": "bob"}],
    ):
        refused = await alice("POST", "/tasks/import", body)
        assert refused.status == 403, refused
        assert "admin" in refused.body["message"]
    everyone = await root("GET", "/tasks", params={"owner": "*"})
    assert everyone.body["total"] == 0

    own = await alice("POST", "/tasks/import", {"name": "Mine", "owner": "alice"})
    assert (own.status, own.body["tasks"][0]["owner"]) == (201, "alice")

    for_bob = await root("POST", "/tasks/import", {"name": "Bob's", "owner": "bob"})
    assert for_bob.status == 201, for_bob
    [task] = for_bob.body["tasks"]
    assert task["owner"] == "bob"
    assert (await bob("GET", f"/tasks/{task['id']}")).body == task

    kept = await root(
        "POST", "/tasks/import", (await root("GET", f"/tasks/{task['id']}/export")).body
    )
    assert kept.body["tasks"][0]["owner"] == "bob"
    unowned = await root("POST", "/tasks/import", {"name": "Root's"})
    assert unowned.body["tasks"][0]["owner"] == "root"
