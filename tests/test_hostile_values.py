"""Values at the edges of what JSON, URLs and the clocks hold, through the real server: each a
clear 4xx (or an empty answer), never a 500.

Found by probing every endpoint with huge, non-finite and non-Unicode values; the classes are
pinned down here at the shared place each was fixed (the body parser, the id parser, the
timezone check, the schemas' maxima, a result file's path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, wait_for_run
from jupyter_taskplanner.vocabulary import MAX_SECONDS

HUGE = "1" + "0" * 400  # a JSON integer past a float's range
TOO_MANY_DIGITS = "9" * 5000  # past what Python's int() converts (4,300 digits)


NOT_JSON_OR_UNICODE = [
    (b'{"name": "t", "settings": {"timeout": NaN}}', None),
    (b'{"name": "t", "settings": {"timeout": Infinity}}', None),
    (b'{"name": "t", "settings": {"timeout": 1e999}}', None),
    (b'{"name": "t", "description": ' + TOO_MANY_DIGITS.encode() + b"}", None),
    (b'{"name": "\\ud800"}', "name"),
    (b'{"name": "t", "jobs": [{"type": "python", "name": "a\\udfff"}]}', "jobs[0].name"),
    (b'{"name": "t", "\\ud800": 1}', None),
]
"""Bodies Python's json reads but JSON or UTF-8 cannot hold, and the field to blame."""


async def test_what_json_or_utf8_cannot_hold_is_a_400(api):
    alice = api("alice")
    task = await create_task(alice, enabled=False)
    cases = [
        (body, field, method, path)
        for body, field in NOT_JSON_OR_UNICODE
        for method, path in (
            ("POST", "/tasks"),
            ("PUT", f"/tasks/{task['id']}"),
            ("POST", "/tasks/import"),
            ("POST", f"/tasks/{task['id']}/import"),
            ("POST", f"/tasks/{task['id']}/copy"),
            ("POST", "/execute"),
        )
    ]
    for body, field, method, path in cases:
        reply = await alice(method, path, body)
        assert reply.status == 400, (method, path, reply)
        if field and method in ("POST", "PUT") and path in ("/tasks", f"/tasks/{task['id']}"):
            assert reply.body.get("field") == field, reply
    # Nothing was stored, and what is stored still reads back as JSON.
    assert (await alice("GET", "/tasks")).body["total"] == 1
    lone = await alice("POST", f"/tasks/{task['id']}/run", b'{"parameters": {"x": "\\ud800"}}')
    assert (lone.status, lone.body["field"]) == (400, "parameters.x"), lone


async def test_ids_and_file_paths_of_any_length_are_not_found(api):
    alice = api("alice")
    for path in (
        f"/tasks/{TOO_MANY_DIGITS}",
        f"/tasks/{TOO_MANY_DIGITS}/next",
        f"/runs/{TOO_MANY_DIGITS}",
        f"/runs/{TOO_MANY_DIGITS}/log",
        f"/runs/{TOO_MANY_DIGITS}/files/x",
    ):
        reply = await alice("GET", path)
        assert reply.status == 404, (path, reply)
        assert len(reply.body["message"]) < 200, reply
    # The longest settings are taken, and run.
    settings = {"timeout": MAX_SECONDS, "jitter": MAX_SECONDS, "retry_backoff": MAX_SECONDS}
    task = await create_task(alice, settings=settings)
    run = (await alice("POST", f"/tasks/{task['id']}/run")).body
    assert (await wait_for_run(alice, run["id"]))["status"] == "succeeded"
    log = f"/runs/{run['id']}/log"
    assert (await alice("GET", log, params={"step": TOO_MANY_DIGITS})).status == 404
    for name in ("tail", "offset"):
        reply = await alice("GET", log, params={name: TOO_MANY_DIGITS})
        assert (reply.status, reply.body["field"]) == (400, name), reply
    # A NUL, or a name too long for the file system: no such file (was a 500).
    for relative in ("%00", "a%00b", "x" * 5000, "/".join(["d"] * 3000)):
        reply = await alice("GET", f"/runs/{run['id']}/files/{relative}")
        assert reply.status == 404, (relative[:20], reply)


ZONE_FILES = ["America", "__pycache__", "tzdata.zi", "a" * 300, "posixrules"]
"""Names ``ZoneInfo`` opens as files under its folder without being zones: a folder (an
IsADirectoryError), an index file, a name too long for the file system, a link."""


async def test_only_names_of_zones_are_timezones(api):
    alice = api("alice")
    task = await create_task(alice)
    document = (await alice("GET", "/openapi.json")).body
    zones = document["components"]["schemas"]["Settings"]["properties"]["timezone"]["enum"]
    for zone in ZONE_FILES:
        reply = await alice("POST", "/tasks", {"name": "t", "settings": {"timezone": zone}})
        assert (reply.status, reply.body["field"]) == (400, "settings.timezone"), reply
        trigger = {"type": "cron", "config": {"expression": "0 7 * * *", "timezone": zone}}
        reply = await alice("POST", "/tasks", {"name": "t", "triggers": [trigger]})
        assert reply.status == 400, reply
        reply = await alice("GET", f"/tasks/{task['id']}/next", params={"timezone": zone})
        assert (reply.status, reply.body["field"]) == (400, "timezone"), reply
        assert zone not in zones  # the served document lists exactly the names taken


PAST_THEIR_MAXIMUM = [
    ({"settings": {"timeout": int(HUGE)}}, "settings.timeout"),
    ({"settings": {"jitter": 2**63}}, "settings.jitter"),
    ({"settings": {"misfire_grace": 1e308}}, "settings.misfire_grace"),
    ({"settings": {"retry_backoff": int(HUGE)}}, "settings.retry_backoff"),
    ({"settings": {"resources": {"GPU": 1e300}}}, "settings.resources.GPU"),
    (
        {"triggers": [{"type": "after_task", "config": {"task_id": 2**63}}]},
        "triggers[0].config.task_id",
    ),
    (
        {"triggers": [{"type": "server_start", "config": {"delay": int(HUGE)}}]},
        "triggers[0].config.delay",
    ),
    (
        {"actions": [{"type": "next_task", "config": {"task_ids": [2**63]}}]},
        "actions[0].config.task_ids",
    ),
    (
        {
            "actions": [
                {"type": "webhook", "config": {"url": "http://127.0.0.1:9/", "timeout": 2**63}}
            ]
        },
        "actions[0].config.timeout",
    ),
    ({"triggers": [{"type": "cron", "version": 2**63, "config": {}}]}, "triggers[0].version"),
]


async def test_numbers_past_their_maximum_are_refused_when_saved(api):
    """A timeout of 10**400 s overflowed the run's timer (the run failed with OverflowError),
    a jitter of 2**63 s the scheduler's, a task id of 2**63 the database (500)."""
    alice = api("alice")
    for body, field in PAST_THEIR_MAXIMUM:
        reply = await alice("POST", "/tasks", {"name": "t", **body})
        assert reply.status == 400, reply
        fields = [reply.body.get("field")] + [e["field"] for e in reply.body.get("errors", [])]
        assert any(f and f.startswith(field) for f in fields), (field, reply)
    document = (await alice("GET", "/openapi.json")).body
    properties = document["components"]["schemas"]["Settings"]["properties"]
    names = ("timeout", "jitter", "retry_backoff", "misfire_grace")
    assert {name: properties[name]["maximum"] for name in names} == dict.fromkeys(
        names, MAX_SECONDS
    )


async def test_schedules_that_reach_the_year_9999_end_quietly(api):
    alice = api("alice")
    monthly = {
        "type": "time",
        "config": {"start_date": "9999-12-31", "time": "23:59:59", "repeat": "monthly"},
    }
    task = await create_task(alice, triggers=[monthly])
    reply = await alice("GET", f"/tasks/{task['id']}/next", params={"count": 100})
    assert reply.status == 200, reply
    listed = await alice("GET", "/tasks", params={"include": "next"})
    assert listed.status == 200, listed


async def test_a_calendar_gone_since_saving_does_not_break_the_task_list(api, jp_root_dir: Path):
    alice = api("alice")
    calendar = jp_root_dir / "cal.ics"
    calendar.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:1\r\n"
        "DTSTART:20990101T070000Z\r\nSUMMARY:x\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    task = await create_task(
        alice, enabled=False, triggers=[{"type": "calendar", "config": {"path": "cal.ics"}}]
    )
    other = await create_task(alice, enabled=False)
    calendar.unlink()
    listed = await alice("GET", "/tasks", params={"include": "next"})
    assert listed.status == 200, listed
    assert listed.body["summaries"][str(task["id"])]["next_start"] is None
    assert str(other["id"]) in listed.body["summaries"]
    reply = await alice("GET", f"/tasks/{task['id']}/next")
    assert (reply.status, reply.body["field"]) == (400, "triggers[0].config.path"), reply


class TestSeriesSetsLimit:
    """``TaskPlannerApp.max_series_sets``: a series of 2,000,000 rows grew the server from
    111 MB to 660 MB while its run read them; one that never ends filled the worker."""

    @pytest.fixture
    def planner_settings(self) -> dict[str, Any]:
        return {"max_series_sets": 5}

    async def test_a_series_past_the_limit_fails_before_any_set_runs(self, api, jp_root_dir):
        alice = api("alice")
        (jp_root_dir / "five.csv").write_text("i\n1\n2\n3\n4\n5\n")
        (jp_root_dir / "six.csv").write_text("i\n1\n2\n3\n4\n5\n6\n")
        (jp_root_dir / "endless.py").write_text(
            "import itertools\n\ndef sets():\n    return ({'i': i} for i in itertools.count())\n"
        )
        for series, status in (
            ({"type": "csv", "config": {"path": "five.csv"}}, "succeeded"),
            ({"type": "csv", "config": {"path": "six.csv"}}, "failed"),
            ({"type": "python", "config": {"function": "endless:sets"}}, "failed"),
        ):
            task = await create_task(alice, enabled=False, series=series)
            preview = await alice("GET", f"/tasks/{task['id']}/series/preview")
            assert preview.status == 200 and len(preview.body["sets"]) == 5, preview
            started = (await alice("POST", f"/tasks/{task['id']}/run")).body
            run = await wait_for_run(alice, started["id"])
            assert run["status"] == status, run
            if status == "failed":
                assert "max_series_sets" in run["error"], run
                assert [step["kind"] for step in run["steps"]] == ["series"], run


async def test_answers_any_request_may_get_are_declared_on_every_operation(api, planner):
    """A body over the limit is a 413 on any method, and a planner shutting down answers any
    call that reaches its database with 503: the document says so for every operation."""
    alice = api("alice")
    task = await create_task(alice)
    big = b"x" * (planner.settings.max_body_bytes + 1)
    for method, path in (("GET", f"/tasks/{task['id']}"), ("DELETE", f"/tasks/{task['id']}")):
        reply = await alice(method, path, big)
        assert reply.status == 413, (method, reply)
    assert (await alice("GET", f"/tasks/{task['id']}")).status == 200  # nothing deleted
    document = (await alice("GET", "/openapi.json")).body
    undeclared = [
        f"{method.upper()} {path} {code}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in ("get", "put", "post", "delete", "patch")
        for code in ("413", "503")
        if code not in operation["responses"]
    ]
    assert undeclared == []


class TestFilledLength:
    """``TaskPlannerApp.max_filled_length`` over a whole config: 600 ``"{x}"`` in a job's
    kwargs, filled with a parameter of 900,000 characters, had the server build 540 MB."""

    @pytest.fixture
    def planner_settings(self) -> dict[str, Any]:
        return {"max_filled_length": 1000}

    async def test_filling_all_texts_of_a_config_together_is_capped(self, api):
        alice = api("alice")
        x = "x" * 100
        for copies, status in ((9, "succeeded"), (11, "failed")):
            job = {"type": "python", "config": {"function": "builtins:dict"}}
            job["config"]["kwargs"] = {"a": ["{x}"] * copies, "b": "fixed text " * 200}
            task = await create_task(alice, enabled=False, jobs=[job])
            started = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": {"x": x}})
            run = await wait_for_run(alice, started.body["id"])
            assert run["status"] == status, run
            if status == "failed":
                assert "max_filled_length" in run["steps"][0]["error"], run
