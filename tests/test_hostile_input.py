"""Hostile input through the real server: odd bodies, names, placeholders, huge series, floods.

Bodies over the size limit and nested too deeply are in test_security.py; the catch-up
computation itself in test_misfire.py.  Here: what a client can send beyond those, and that
the server keeps answering others while it copes.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from jupyter_taskplanner.model import NAME_MAX
from jupyter_taskplanner.ratelimit import RateLimit
from jupyter_taskplanner.testing import (
    FakeClock,
    create_task,
    runs_of,
    schedule_as_stopped,
    store_task,
    wait_for_run,
    wait_until,
)

FORMAT_TRICKS = (
    "{owner.__class__}",
    "{owner.__class__.__mro__}",
    "{owner!r}",
    "{0}",
    "{}",
    "{owner[0]}",
    "{owner:{run.id}}",
    "{owner:%}",
    "{run.id:n}",
    "{run.started:%s%n%n%n%s}",
    "{task.name:>{owner}}",
    "{{owner}}",
    "{owner:>99999999999999999999999999999999}",
    "{__import__}",
    "%(owner)s %s %n",
)


async def run_task(call: Any, task_id: int, **parameters: Any) -> dict[str, Any]:
    started = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert started.status == 202, started
    return await wait_for_run(call, started.body["id"])


async def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[float, Any]:
    started = time.monotonic()
    reply = await call(*args, **kwargs)
    return time.monotonic() - started, reply


async def test_format_string_tricks_stay_text(api, funcs, job):
    """No attribute, item or positional lookup: a placeholder is a name, filled or left as
    written; a width past the limit fails the step, never the server."""
    alice = api("alice")
    for trick in FORMAT_TRICKS:
        task = await create_task(alice, enabled=False, jobs=[job("hello", name=trick)])
        run = await run_task(alice, task["id"])
        [step] = run["steps"]
        if run["status"] == "failed":
            assert "max_filled_length" in step["error"], (trick, step)
            continue
        value = step["results"][0]["value"]
        assert "<class" not in value and "object at 0x" not in value, (trick, value)
        assert len(value) < 1000, (trick, len(value))
    assert (await alice("GET", "/tasks")).status == 200


async def test_names_with_control_characters_or_too_long_are_refused(api, funcs, job):
    alice = api("alice")
    for name in ("a\x00b", "two\r\nBcc: mallory@example.org", "\x1b[31mred", "tab\t", "del\x7f"):
        for body in ({"name": name}, {"name": "t", "jobs": [{**job("hello"), "name": name}]}):
            reply = await alice("POST", "/tasks", body)
            field = "name" if body["name"] == name else "jobs[0].name"
            assert (reply.status, reply.body["field"]) == (400, field), (name, reply)
            assert "control characters" in reply.body["message"], reply
    # Other unusual characters are names like any: stored, found, filled in exactly.
    name = "\u202eevil\u202c, 100% {x} _é_ 🗓 \\ ' \" <b>"
    task = await create_task(
        alice, name=name, enabled=False, jobs=[job("hello", name="{task.name}")]
    )
    assert (await alice("GET", f"/tasks/{task['id']}")).body["name"] == name
    listed = await alice("GET", "/tasks", params={"q": "evil"})
    assert [each["name"] for each in listed.body["tasks"]] == [name]
    assert (await alice("GET", "/tasks", params={"q": "100%"})).body["total"] == 1
    assert (await alice("GET", "/tasks", params={"q": "_é_"})).body["total"] == 1
    run = await run_task(alice, task["id"])
    assert run["status"] == "succeeded", run
    assert run["steps"][0]["results"][0]["value"] == f"hello {name}"
    # A name past the limit: 400 at the field, quoting an excerpt only.
    for long in ("n" * (NAME_MAX + 1), "\x00" * 100_000, "é" * 300_000):
        reply = await alice("POST", "/tasks", {"name": long})
        assert (reply.status, reply.body["field"]) == (400, "name"), reply
        assert len(json.dumps(reply.body)) < 2000
    long_job = {**job("hello"), "name": "j" * 10_000}
    reply = await alice("POST", "/tasks", {"name": "t", "jobs": [long_job]})
    assert (reply.status, reply.body["field"]) == (400, "jobs[0].name"), reply


async def test_wide_and_chunked_bodies(api, planner, jp_base_url, jp_http_port, jp_fetch):
    alice = api("alice")
    # Many small members within the size limit: a 400 naming a field, soon.
    wide = {"name": "t", **{f"k{i}": i for i in range(100_000)}}
    seconds, reply = await timed(alice, "POST", "/tasks", wide)
    assert reply.status == 400 and seconds < 30, (seconds, reply)
    assert len(reply.body["errors"]) <= 100, len(reply.body["errors"])  # not 100,000
    deep_config = {
        "name": "t",
        "series": {"type": "values", "config": {"values": [[[[]]]] * 50_000}},
    }
    reply = await alice("POST", "/tasks", deep_config)
    assert reply.status == 400, reply
    # A body with no Content-Length (chunked) past the limit is refused when it ends.
    limit = planner.settings.max_body_bytes

    async def produce(write: Callable[[bytes], Any]) -> None:
        await write(b'{"name": "t", "description": "')
        for _ in range(limit // 65536 + 2):
            await write(b"d" * 65536)
        await write(b'"}')

    request = HTTPRequest(
        f"http://127.0.0.1:{jp_http_port}{jp_base_url}taskplanner/api/tasks",
        method="POST",
        headers={"Authorization": "token alice-token", "Content-Type": "application/json"},
        body_producer=produce,
        request_timeout=60,
    )
    response = await AsyncHTTPClient().fetch(request, raise_error=False)
    assert response.code == 413, response.body[:300]
    assert b"max_body_bytes" in response.body and len(response.body) < 2000
    assert (await alice("GET", "/tasks")).body["total"] == 0


@pytest.fixture
def many_rows(jp_root_dir: Path) -> str:
    (jp_root_dir / "many.csv").write_text("i\n" + "\n".join(map(str, range(100_000))) + "\n")
    return "many.csv"


async def test_a_series_of_100000_sets_leaves_the_server_responsive(api, many_rows):
    alice, bob = api("alice"), api("bob")
    series = {"type": "csv", "config": {"path": many_rows}}
    task = await create_task(alice, enabled=False, series=series)
    preview = await alice("GET", f"/tasks/{task['id']}/series/preview", params={"count": 5})
    assert preview.status == 200 and len(preview.body["sets"]) == 5, preview
    started = await alice("POST", f"/tasks/{task['id']}/run")
    assert started.status == 202, started
    slowest, deadline = 0.0, time.monotonic() + 120
    while time.monotonic() < deadline:
        seconds, _ = await timed(bob, "GET", "/tasks")
        slowest = max(slowest, seconds)
        seconds, run = await timed(alice, "GET", f"/runs/{started.body['id']}")
        slowest = max(slowest, seconds)
        if run.body["status"] not in ("queued", "running"):
            break
        await asyncio.sleep(0.2)
    assert run.body["status"] == "succeeded", run
    assert slowest < 2, slowest
    assert len(json.dumps(run.body)) < 10_000  # the sets are not copied into the detail


async def test_a_minutely_cron_with_misfire_all_after_30_days_down(
    api, db_path, planner_clock: FakeClock
):
    """43,200 missed fires: the latest ``misfire_limit`` ones run, at once, oldest first."""
    task = store_task(
        db_path,
        {
            "name": "every minute",
            "triggers": [{"type": "cron", "config": {"expression": "* * * * *"}}],
            "settings": {"misfire": "all", "misfire_limit": 20, "overlap": "queue"},
        },
    )
    now = planner_clock.now
    schedule_as_stopped(db_path, task, now - timedelta(days=30))
    alice = api("alice")
    started = time.monotonic()
    await planner_clock.advance(0)

    async def caught_up() -> bool:
        return len(await runs_of(alice, task["id"])) >= 20

    await wait_until(caught_up, within=60)
    assert time.monotonic() - started < 30
    await asyncio.sleep(0.5)
    runs = await runs_of(alice, task["id"])
    assert len(runs) == 20 and {run["trigger"] for run in runs} == {"misfire"}, runs
    dues = sorted(datetime.fromisoformat(run["parameters"]["trigger.due"]) for run in runs)
    assert now - timedelta(minutes=21) < dues[0] and dues[-1] <= now, dues
    assert len(set(dues)) == 20


class TestHttpTriggerRate:
    """``TaskPlannerApp.http_trigger_rate``: a trigger URL called in a tight loop."""

    @pytest.fixture
    def planner_settings(self) -> dict[str, Any]:
        return {"http_trigger_rate": 5}

    async def test_calls_past_the_rate_are_429_with_retry_after(self, api, jp_fetch):
        alice = api("alice")
        token, other_token = "tight-loop-0123456789abcdef", "other-0123456789abcdef"
        http = [{"type": "http", "config": {"token": token}}]
        task = await create_task(alice, triggers=http)
        other = await create_task(
            alice, triggers=[{"type": "http", "config": {"token": other_token}}]
        )

        async def call(task_id: int, secret: str) -> Any:
            return await jp_fetch(
                f"taskplanner/api/tasks/{task_id}/trigger",
                secret,
                method="POST",
                body="",
                headers={"Authorization": ""},
                raise_error=False,
            )

        codes = [(await call(task["id"], token)).code for _ in range(50)]
        assert codes == [202] * 5 + [429] * 45, codes
        refused = await call(task["id"], token)
        retry = int(refused.headers["Retry-After"])
        assert 1 <= retry <= 12, retry  # one call back every 60 / 5 s
        assert b"http_trigger_rate" in refused.body
        # A wrong token is 404 as ever (the limit says nothing of the URL), and another
        # task's URL has a rate of its own.
        assert (await call(task["id"], "wrong-0123456789abcdef")).code == 404
        assert (await call(other["id"], other_token)).code == 202
        seconds, listed = await timed(alice, "GET", "/tasks")
        assert listed.status == 200 and seconds < 2
        runs = await runs_of(alice, task["id"])
        assert len(runs) == 5, runs
        for run in runs:
            await wait_for_run(alice, run["id"])


def test_the_rate_limit_gives_calls_back_as_the_minute_passes() -> None:
    now = [0.0]
    limit = RateLimit(clock=lambda: now[0])
    assert [limit.take("t", 6) for _ in range(6)] == [0.0] * 6
    assert limit.take("t", 6) == pytest.approx(10)
    now[0] = 9.0
    assert limit.take("t", 6) == pytest.approx(1)
    now[0] = 10.0
    assert limit.take("t", 6) == 0.0 and limit.take("t", 6) > 0
    assert limit.take("other", 6) == 0.0
    now[0] = 1000.0  # a long pause refills to the rate, not beyond
    assert [limit.take("t", 6) for _ in range(7)].count(0.0) == 6
    assert limit.take("t", 0) == 0.0  # no limit
