"""GET /tasks and GET /runs ``sort`` through a real server: the order over all pages (offset
and the ``next`` links), ties broken by id, nulls last, owners kept apart, bad keys a 400."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from jupyter_taskplanner.client import BadRequest, Task
from jupyter_taskplanner.store import RUN_SORTS, TASK_SORTS, sort_keys
from jupyter_taskplanner.testing import (
    Api,
    create_task,
    in_thread,
    start_run,
    wait_for_run,
    wait_until,
)

API = "/taskplanner/api"


async def pages_by_next(call: Api, path: str, key: str, params: dict[str, Any]) -> list[int]:
    """Every id of a listing, in order, read page by page through its ``next`` links."""
    seen: list[int] = []
    while True:
        page = await call("GET", path, params=params)
        assert page.status == 200, page
        seen += [item["id"] for item in page.body[key]]
        if "next" not in page.body:
            return seen
        url = urlsplit(page.body["next"])
        params = dict(parse_qsl(url.query))
        assert params["sort"], url  # the next page asks for the same order


async def pages_by_offset(
    call: Api, path: str, key: str, params: dict[str, Any], limit: int
) -> list[int]:
    """Every id of a listing, in order, read page by page with explicit offsets."""
    seen: list[int] = []
    offset = 0
    while True:
        page = await call("GET", path, params={**params, "limit": limit, "offset": offset})
        assert page.status == 200, page
        seen += [item["id"] for item in page.body[key]]
        offset += limit
        if offset >= page.body["total"]:
            return seen


def expected(items: list[dict[str, Any]], sort: str, value: Callable[[Any], Any]) -> list[int]:
    """The documented order: by value then id, reversed whole for ``-key``, nulls last."""
    descending = sort.startswith("-")
    valued = sorted(
        (item for item in items if value(item) is not None),
        key=lambda item: (value(item), item["id"]),
        reverse=descending,
    )
    empty = sorted(
        (item for item in items if value(item) is None),
        key=lambda item: item["id"],
        reverse=descending,
    )
    return [item["id"] for item in valued + empty]


async def check_order(
    call: Api, path: str, key: str, sort: str, items: list[dict[str, Any]], value: Any
) -> None:
    want = expected(items, sort, value)
    assert len(set(want)) == len(items) > 3
    by_next = await pages_by_next(call, path, key, {"sort": sort, "limit": 2})
    assert by_next == want, sort
    assert await pages_by_offset(call, path, key, {"sort": sort}, 3) == want, sort


DAILY = "0 {hour} * * *"


async def make_tasks(api: Callable[[str], Api]) -> dict[str, Any]:
    """Alice's tasks (ties in name, enabled, next fire; some never ran) and Bob's, which sort
    among hers by every key."""
    alice, bob = api("alice"), api("bob")

    def daily(hour: int) -> list[dict[str, Any]]:
        return [{"type": "cron", "config": {"expression": DAILY.format(hour=hour)}}]

    specs = [
        {"name": "beta", "triggers": daily(7)},
        {"name": "Alpha", "triggers": daily(3), "enabled": False},
        {"name": "alpha", "triggers": daily(7)},
        {"name": "gamma"},
        {"name": "BETA", "triggers": daily(1)},
        {"name": "delta", "enabled": False},
        {"name": "alpha", "triggers": daily(5)},
    ]
    mine = [await create_task(alice, **spec) for spec in specs]
    theirs = [
        await create_task(bob, name=name, triggers=daily(hour))
        for name, hour in (("0 first", 2), ("alpha", 7), ("zz", 4))
    ]
    for task in (mine[3], mine[0], mine[5], mine[3]):
        await wait_for_run(alice, await start_run(alice, task))
    await wait_for_run(bob, await start_run(bob, theirs[1]))
    return {"alice": alice, "bob": bob, "mine": mine, "theirs": theirs}


async def summaries(call: Api) -> dict[int, dict[str, Any]]:
    page = await call("GET", "/tasks", params={"include": "next,last_run", "limit": 500})
    assert page.status == 200, page
    return {int(task_id): summary for task_id, summary in page.body["summaries"].items()}


async def test_tasks_sort_over_every_page_by_each_key(api):
    tasks = await make_tasks(api)
    alice, mine = tasks["alice"], tasks["mine"]
    found = await summaries(alice)
    enabled = {task["id"]: task["enabled"] for task in mine}

    def next_fire(task: dict[str, Any]) -> str | None:
        # The scheduler holds next fires for enabled tasks only.
        return found[task["id"]]["next_start"] if enabled[task["id"]] else None

    def last_run(task: dict[str, Any]) -> int | None:
        run = found[task["id"]]["last_run"]
        return None if run is None else run["id"]

    values: dict[str, Callable[[dict[str, Any]], Any]] = {
        "id": lambda task: task["id"],
        "name": lambda task: task["name"].lower(),
        "owner": lambda task: task["owner"],
        "enabled": lambda task: int(task["enabled"]),
        "next_fire": next_fire,
        "last_run": last_run,
    }
    assert set(values) == set(TASK_SORTS)
    assert {next_fire(task) for task in mine} - {None}, "some tasks have next fires"

    async def scheduled() -> bool:
        page = await alice("GET", "/tasks", params={"sort": "next_fire", "limit": 500})
        return [task["id"] for task in page.body["tasks"]] == expected(mine, "next_fire", next_fire)

    await wait_until(scheduled)  # the scheduler writes the next fires after each save
    for key, value in values.items():
        for sort in (key, f"-{key}"):
            await check_order(alice, "/tasks", "tasks", sort, mine, value)


async def test_ties_are_broken_by_id_in_the_sort_direction(api):
    tasks = await make_tasks(api)
    alice, mine = tasks["alice"], tasks["mine"]
    alphas = [task["id"] for task in mine if task["name"].lower() == "alpha"]
    assert len(alphas) == 3
    page = await alice("GET", "/tasks", params={"sort": "name", "limit": 3})
    assert [task["id"] for task in page.body["tasks"]] == alphas
    page = await alice("GET", "/tasks", params={"sort": "-name", "offset": 4, "limit": 3})
    assert [task["id"] for task in page.body["tasks"]] == alphas[::-1]


async def test_another_users_tasks_never_appear_whatever_the_sort(api):
    tasks = await make_tasks(api)
    alice, bob = tasks["alice"], tasks["bob"]
    mine = {task["id"] for task in tasks["mine"]}
    theirs = {task["id"] for task in tasks["theirs"]}
    for sort in sort_keys(TASK_SORTS):
        for caller, own in ((alice, mine), (bob, theirs)):
            seen = await pages_by_next(caller, "/tasks", "tasks", {"sort": sort, "limit": 2})
            assert sorted(seen) == sorted(own), sort
            page = await caller("GET", "/tasks", params={"sort": sort, "q": "alpha"})
            assert {task["id"] for task in page.body["tasks"]} <= own
        reply = await alice("GET", "/tasks", params={"sort": sort, "owner": "bob"})
        assert reply.status == 403, reply
    # An admin sorts everyone's tasks as one list, or one owner's.
    root = api("root")
    everyone = await pages_by_next(root, "/tasks", "tasks", {"sort": "name", "owner": "*"})
    assert set(everyone) == mine | theirs
    one = await pages_by_next(root, "/tasks", "tasks", {"sort": "-name", "owner": "bob"})
    assert set(one) == theirs


async def test_runs_sort_over_every_page_by_each_key(api):
    tasks = await make_tasks(api)
    alice, bob = tasks["alice"], tasks["bob"]
    page = await alice("GET", "/runs", params={"limit": 500})
    runs = page.body["runs"]
    bobs = {run["id"] for run in (await bob("GET", "/runs")).body["runs"]}
    assert len(runs) == 4 and len(bobs) == 1
    values: dict[str, Callable[[dict[str, Any]], Any]] = {
        "id": lambda run: run["id"],
        "task_name": lambda run: run["task_name"].lower(),
        "status": lambda run: run["status"],
        "started": lambda run: run["started"],
        "finished": lambda run: run["finished"],
    }
    assert set(values) == set(RUN_SORTS)
    for key, value in values.items():
        for sort in (key, f"-{key}"):
            await check_order(alice, "/runs", "runs", sort, runs, value)
            seen = await pages_by_next(alice, "/runs", "runs", {"sort": sort, "limit": 1})
            assert not set(seen) & bobs
    # A task's runs take the same orders; the default stays newest first.
    gamma = tasks["mine"][3]
    path = f"/tasks/{gamma['id']}/runs"
    ids = await pages_by_next(alice, path, "runs", {"sort": "started", "limit": 1})
    assert len(ids) == 2 and ids == sorted(ids)
    assert [run["id"] for run in (await alice("GET", path)).body["runs"]] == ids[::-1]


@pytest.mark.parametrize("path", ["/tasks", "/runs", "/tasks/{id}/runs"])
async def test_an_unknown_sort_is_a_400_naming_the_keys(api, path):
    alice = api("alice")
    path = path.format(id=(await create_task(alice))["id"])
    allowed = sort_keys(TASK_SORTS if path == "/tasks" else RUN_SORTS)
    for bad in ("bogus", "", "-", "--name", "name,id", "+name", "NAME", "x" * 5000):
        reply = await alice("GET", path, params={"sort": bad})
        assert reply.status == 400, (bad, reply)
        assert reply.body["field"] == "sort"
        assert all(key in reply.body["message"] for key in allowed), reply.body
        assert len(reply.body["message"]) < 400


async def test_the_client_asks_for_the_order(planner_client):
    alice = await planner_client("alice")
    tasks = [await in_thread(alice.create_task, Task(name)) for name in ("b", "C", "a", "B")]
    listed = await in_thread(
        lambda: [t["name"] for t in alice.list_tasks(sort="-name", page_size=3)]
    )
    assert listed == ["C", "B", "b", "a"]
    page = await in_thread(alice.tasks_page, sort="name", limit=2, offset=1)
    assert [task["name"] for task in page.items] == ["b", "B"]
    with pytest.raises(BadRequest) as bad:
        await in_thread(alice.tasks_page, sort="colour")
    assert bad.value.field == "sort"
    started = [(await in_thread(alice.start_run, task))["id"] for task in tasks[:3]]
    runs = await in_thread(lambda: [r["id"] for r in alice.list_runs(sort="id", page_size=2)])
    assert runs == sorted(started)
    names = await in_thread(alice.runs_page, sort="-task_name", limit=2)
    assert [run["task_name"] for run in names.items] == ["C", "b"]
