"""A run's steps a page at a time: ``GET /runs/{id}?steps_offset=&steps_limit=``, the client."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jupyter_taskplanner.run_handlers import STEPS_PAGE
from jupyter_taskplanner.testing import create_task, in_thread, wait_for_run

SETS = 620
"""More parameter sets than a page holds: a step per set, and the series' own step."""


async def run_of_many_sets(alice: Any) -> dict[str, Any]:
    """A finished run of alice's with ``SETS + 1`` steps: the series, then an action per set
    (skipped: there are no results to save, so the sets cost little)."""
    series = {"type": "values", "config": {"values": [{"n": n} for n in range(SETS)]}}
    action = {"type": "save", "name": "save {n}", "config": {"folder": "out"}}
    task = await create_task(alice, actions=[action], series=series)
    started = await alice("POST", f"/tasks/{task['id']}/run")
    assert started.status == 202, started
    return await wait_for_run(alice, started.body["id"], within=120)


async def test_the_run_detail_sends_a_page_of_steps_with_the_total(api):
    alice = api("alice")
    long_run = await run_of_many_sets(alice)
    run_id = long_run["id"]
    assert long_run["status"] == "succeeded", long_run["error"]
    # The default page: the first STEPS_PAGE steps, the counts of all, the next page's URL.
    assert len(long_run["steps"]) == STEPS_PAGE
    assert long_run["steps_total"] == SETS + 1
    assert long_run["step_counts"] == {"succeeded": 1, "skipped": SETS}
    assert (long_run["steps_offset"], long_run["steps_limit"]) == (0, STEPS_PAGE)
    assert long_run["steps_next"].endswith(f"/taskplanner/api/runs/{run_id}?steps_offset=500")
    ids = [step["id"] for step in long_run["steps"]]
    assert ids == sorted(ids) and long_run["steps"][0]["kind"] == "series"
    rest = await alice("GET", f"/runs/{run_id}", params={"steps_offset": STEPS_PAGE})
    assert rest.status == 200, rest
    assert len(rest.body["steps"]) == SETS + 1 - STEPS_PAGE and "steps_next" not in rest.body
    whole = ids + [step["id"] for step in rest.body["steps"]]
    assert whole == sorted(set(whole)) and len(whole) == SETS + 1
    # Any slice: the same steps in the same order as the whole.
    middle = await alice("GET", f"/runs/{run_id}", params={"steps_offset": 7, "steps_limit": 3})
    assert [step["id"] for step in middle.body["steps"]] == whole[7:10]
    assert [step["set_values"] for step in middle.body["steps"]] == [{"n": n} for n in (6, 7, 8)]
    query = parse_qs(urlsplit(middle.body["steps_next"]).query)
    assert query == {"steps_offset": ["10"], "steps_limit": ["3"]}
    # Counts only, and past the end: no steps, the same total, no next page.
    for params in ({"steps_limit": 0}, {"steps_offset": 10_000}):
        empty = await alice("GET", f"/runs/{run_id}", params=params)
        assert empty.status == 200, empty
        assert empty.body["steps"] == [] and empty.body["steps_total"] == SETS + 1
        assert "steps_next" not in empty.body
    # The detail of a run of many sets stays small: a short page is a small reply.
    small = await alice("GET", f"/runs/{run_id}", params={"steps_limit": 10})
    assert len(json.dumps(small.body)) < 10_000
    assert len(json.dumps(small.body)) * 20 < len(json.dumps(long_run))


async def test_the_client_reads_every_step_or_one_page(api, planner_client):
    long_run = await run_of_many_sets(api("alice"))
    client = await planner_client("alice")
    run = await in_thread(client.get_run, long_run["id"])
    assert len(run["steps"]) == run["steps_total"] == SETS + 1
    assert "steps_next" not in run and "steps_limit" not in run
    steps = await in_thread(lambda: list(client.run_steps(long_run["id"])))
    assert [step["id"] for step in steps] == [step["id"] for step in run["steps"]]
    page = await in_thread(client.get_run, long_run["id"], steps_offset=SETS - 1, steps_limit=5)
    assert [step["id"] for step in page["steps"]] == [step["id"] for step in run["steps"][-2:]]
    # A finished run waited for comes back whole.
    waited = await in_thread(client.wait, long_run["id"], progress=False)
    assert len(waited["steps"]) == SETS + 1


async def test_bad_page_values_are_400_naming_the_parameter(api, funcs, job):
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_for_run(alice, run_id)
    for params, field in (
        ({"steps_limit": "-1"}, "steps_limit"),
        ({"steps_limit": str(STEPS_PAGE + 1)}, "steps_limit"),
        ({"steps_limit": "ten"}, "steps_limit"),
        ({"steps_offset": "-1"}, "steps_offset"),
        ({"steps_offset": "1.5"}, "steps_offset"),
        ({"steps_offset": str(2**31 + 1)}, "steps_offset"),
    ):
        reply = await alice("GET", f"/runs/{run_id}", params=params)
        assert reply.status == 400, (params, reply)
        assert reply.body["field"] == field and field in reply.body["message"], reply


async def test_another_users_run_is_404_like_a_missing_one(api, funcs, job):
    alice, bob, root = api("alice"), api("bob"), api("root")
    task = await create_task(alice, jobs=[job("hello")])
    run_id = (await alice("POST", f"/tasks/{task['id']}/run")).body["id"]
    await wait_for_run(alice, run_id)
    page = {"steps_offset": 0, "steps_limit": 1}
    theirs = await bob("GET", f"/runs/{run_id}", params=page)
    missing = await bob("GET", "/runs/99999", params=page)
    assert theirs.status == missing.status == 404
    assert theirs.body["message"].replace(str(run_id), "N") == missing.body["message"].replace(
        "99999", "N"
    )
    admin = await root("GET", f"/runs/{run_id}", params=page)
    assert admin.status == 200 and admin.body["steps_total"] == 1, admin
