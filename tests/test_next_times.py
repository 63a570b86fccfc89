"""``GET /tasks/{id}/next`` through a real server: quartz lines, server and viewer zones."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import jsonschema
import pytest

from jupyter_taskplanner import openapi

DOCUMENT = json.loads(openapi.DOCUMENT.read_text(encoding="utf-8"))
NEXT_FIRES = DOCUMENT["components"]["schemas"]["NextFires"]


def documented(body: dict[str, Any]) -> dict[str, Any]:
    """``body``, checked against the NextFires schema of openapi.json, every field described."""
    jsonschema.Draft202012Validator({**NEXT_FIRES, "components": DOCUMENT["components"]}).validate(
        body
    )
    assert set(body) <= set(NEXT_FIRES["properties"])
    fire_fields = NEXT_FIRES["properties"]["next"]["items"]["properties"]
    assert all(set(fire) <= set(fire_fields) for fire in body["next"])
    return body


async def new_task(call: Any, *triggers: dict[str, Any]) -> int:
    """A disabled task in Berlin with the cron ``triggers`` (configs); its id."""
    reply = await call(
        "POST",
        "/tasks",
        {
            "name": "t",
            "enabled": False,
            "settings": {"timezone": "Europe/Berlin"},
            "triggers": [{"type": "cron", "config": config} for config in triggers],
        },
    )
    assert reply.status == 201, reply
    return int(reply.body["id"])


async def test_a_quartz_line_shows_its_times(api):
    alice = api("alice")
    task_id = await new_task(alice, {"expression": "30 18 ? 4,5,6 6#1 2031", "dialect": "quartz"})
    reply = await alice("GET", f"/tasks/{task_id}/next", params={"count": 5})
    assert reply.status == 200, reply
    # The first Fridays of April, May and June 2031, and no more after the last year.
    assert [fire["time"] for fire in documented(reply.body)["next"]] == [
        "2031-04-04T18:30:00+02:00",
        "2031-05-02T18:30:00+02:00",
        "2031-06-06T18:30:00+02:00",
    ]


async def test_the_same_line_in_both_dialects(api):
    alice = api("alice")
    line = "0 8 * * 1"
    task_id = await new_task(alice, {"expression": line}, {"expression": line, "dialect": "quartz"})
    reply = await alice("GET", f"/tasks/{task_id}/next", params={"count": 6})
    assert reply.status == 200, reply
    weekdays = {
        (fire["trigger"], datetime.fromisoformat(fire["time"]).strftime("%a"))
        for fire in documented(reply.body)["next"]
    }
    assert weekdays == {(0, "Mon"), (1, "Sun")}


async def test_times_in_the_task_server_and_viewer_zones(api, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    alice = api("alice")
    task_id = await new_task(alice, {"expression": "0 9 1 1 ? 2031", "dialect": "quartz"})
    path = f"/tasks/{task_id}/next"
    reply = await alice("GET", path, params={"timezone": "Asia/Tokyo"})
    assert reply.status == 200, reply
    assert documented(reply.body) == {
        "timezone": "Europe/Berlin",
        "server_timezone": "America/New_York",
        "viewer_timezone": "Asia/Tokyo",
        "enabled": False,
        "next": [
            {
                "trigger": 0,
                "type": "cron",
                "time": "2031-01-01T09:00:00+01:00",
                "server_time": "2031-01-01T03:00:00-05:00",
                "viewer_time": "2031-01-01T17:00:00+09:00",
            }
        ],
    }
    # Without a viewer's zone, the server's (and, as before, the task's) alone.
    reply = await alice("GET", path)
    assert reply.status == 200, reply
    assert "viewer_timezone" not in documented(reply.body)
    assert reply.body["next"] == [
        {
            "trigger": 0,
            "type": "cron",
            "time": "2031-01-01T09:00:00+01:00",
            "server_time": "2031-01-01T03:00:00-05:00",
        }
    ]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd"])
async def test_an_unknown_viewer_zone_is_a_400_naming_timezone(api, zone):
    alice = api("alice")
    task_id = await new_task(alice, {"expression": "0 9 * * ?", "dialect": "quartz"})
    reply = await alice("GET", f"/tasks/{task_id}/next", params={"timezone": zone})
    assert reply.status == 400, reply
    assert reply.body["field"] == "timezone"
    assert reply.body["message"].startswith(f"timezone: unknown timezone {zone!r}")


async def test_a_bad_quartz_line_is_refused_at_save(api):
    reply = await api("alice")(
        "POST",
        "/tasks",
        {"name": "t", "triggers": [{"type": "cron", "config": {"expression": "0 8 ? * 8"}}]},
    )
    # Day 8 is no day in either dialect; the message says it in the dialect's terms.
    assert reply.status == 400 and "day of week" in reply.body["message"]
    reply = await api("alice")(
        "POST",
        "/tasks",
        {
            "name": "t",
            "triggers": [
                {"type": "cron", "config": {"expression": "0 8 ? * 8", "dialect": "quartz"}}
            ],
        },
    )
    assert reply.status == 400, reply
    assert reply.body["field"] == "triggers[0].config.expression"
    assert reply.body["message"].endswith("day-of-week: 8 is not a Quartz day (1=SUN ... 7=SAT)")
