"""Pure unit tests of the built-in triggers: fire times, DST, config validation, JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jupyter_taskplanner.components.base import (
    EventTrigger,
    PlannerEventTrigger,
    TimedTrigger,
    Trigger,
)
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import validate_as_saved

REGISTRY = Registry.from_entry_points()
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONE_UTC = ZoneInfo("UTC")
WEEKLY = Path(__file__).parent / "data" / "calendars" / "weekly.ics"


def make(type_name: str, **config: Any) -> Trigger:
    """A trigger built the way the server builds it: validated, then instantiated."""
    entry = REGISTRY.validate("trigger", {"type": type_name, "config": config}, "triggers[0]")
    trigger = REGISTRY.instantiate("trigger", entry)
    assert isinstance(trigger, Trigger)
    return trigger


def fires(trigger: Trigger, after: str, count: int = 5, tz: ZoneInfo = ZONE_UTC) -> list[str]:
    """The next fire times after the ISO time ``after`` (naive: in ``tz``), as ISO text in tz."""
    start = datetime.fromisoformat(after)
    start = start if start.tzinfo else start.replace(tzinfo=tz)
    times = trigger.fire_times(start, tz, count)
    assert all(time.tzinfo is not None for time in times)
    assert times == sorted(set(times)), "fire times must strictly increase"
    return [time.astimezone(tz).isoformat() for time in times]


def invalid(type_name: str, **config: Any) -> InvalidConfig:
    """The error of validating a config that must be refused."""
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(REGISTRY, "trigger", {"type": type_name, "config": config}, "triggers[0]")
    return caught.value


# -- time --------------------------------------------------------------------------------------


def test_time_once_fires_only_at_its_start():
    trigger = make("time", start_date="2026-05-04", time="09:30")
    assert fires(trigger, "2026-01-01T00:00") == ["2026-05-04T09:30:00+00:00"]
    assert fires(trigger, "2026-05-04T09:29:59") == ["2026-05-04T09:30:00+00:00"]
    # Strictly after: the fire instant itself is past.
    assert fires(trigger, "2026-05-04T09:30") == []
    assert trigger.next_fire(datetime(2027, 1, 1, tzinfo=UTC), ZONE_UTC) is None


def test_time_daily_with_seconds_and_never_before_start():
    trigger = make("time", start_date="2026-05-04", time="17:45:30", repeat="daily")
    assert fires(trigger, "2020-01-01T00:00", 2) == [
        "2026-05-04T17:45:30+00:00",
        "2026-05-05T17:45:30+00:00",
    ]
    assert fires(trigger, "2026-07-10T17:45:30", 2) == [
        "2026-07-11T17:45:30+00:00",
        "2026-07-12T17:45:30+00:00",
    ]


def test_time_weekdays_skip_the_weekend():
    trigger = make("time", start_date="2026-01-01", time="08:00", repeat="weekdays")
    # 2026-01-09 is a Friday.
    assert fires(trigger, "2026-01-09T09:00", 3) == [
        "2026-01-12T08:00:00+00:00",
        "2026-01-13T08:00:00+00:00",
        "2026-01-14T08:00:00+00:00",
    ]
    starts_on_saturday = make("time", start_date="2026-01-10", time="08:00", repeat="weekdays")
    assert fires(starts_on_saturday, "2026-01-01T00:00", 1) == ["2026-01-12T08:00:00+00:00"]


def test_time_weekly_keeps_the_start_weekday_years_later():
    # 2026-01-07 is a Wednesday; 2031-06-04 is one too.
    trigger = make("time", start_date="2026-01-07", time="12:00", repeat="weekly")
    assert fires(trigger, "2031-06-02T00:00", 2) == [
        "2031-06-04T12:00:00+00:00",
        "2031-06-11T12:00:00+00:00",
    ]


def test_time_biweekly_counts_weeks_from_the_start_date():
    trigger = make("time", start_date="2026-01-05", time="10:00", repeat="biweekly")
    assert fires(trigger, "2026-01-01T00:00", 3) == [
        "2026-01-05T10:00:00+00:00",
        "2026-01-19T10:00:00+00:00",
        "2026-02-02T10:00:00+00:00",
    ]
    # The off week is skipped.
    assert fires(trigger, "2026-01-12T00:00", 1) == ["2026-01-19T10:00:00+00:00"]
    assert fires(trigger, "2026-01-19T10:00", 1) == ["2026-02-02T10:00:00+00:00"]


def test_time_monthly_clamps_to_month_end_and_returns_to_the_day():
    trigger = make("time", start_date="2026-01-31", time="06:00", repeat="monthly")
    assert fires(trigger, "2026-01-01T00:00", 4) == [
        "2026-01-31T06:00:00+00:00",
        "2026-02-28T06:00:00+00:00",
        "2026-03-31T06:00:00+00:00",
        "2026-04-30T06:00:00+00:00",
    ]


def test_time_monthly_on_the_last_day_and_on_a_fixed_day():
    last = make(
        "time", start_date="2027-12-15", time="06:00", repeat="monthly", day_of_month="last"
    )
    assert fires(last, "2028-01-31T07:00", 2) == [
        "2028-02-29T06:00:00+00:00",
        "2028-03-31T06:00:00+00:00",
    ]
    # Day 5 of the start month is before the start date: the first fire is a month later.
    fifth = make("time", start_date="2026-01-20", time="06:00", repeat="monthly", day_of_month=5)
    assert fires(fifth, "2026-01-01T00:00", 2) == [
        "2026-02-05T06:00:00+00:00",
        "2026-03-05T06:00:00+00:00",
    ]


def test_time_quarterly():
    trigger = make("time", start_date="2026-01-31", time="06:00", repeat="quarterly")
    assert fires(trigger, "2026-02-01T00:00", 4) == [
        "2026-04-30T06:00:00+00:00",
        "2026-07-31T06:00:00+00:00",
        "2026-10-31T06:00:00+00:00",
        "2027-01-31T06:00:00+00:00",
    ]


def test_time_yearly_on_february_29():
    trigger = make("time", start_date="2024-02-29", time="00:00", repeat="yearly")
    assert fires(trigger, "2024-01-01T00:00", 5) == [
        "2024-02-29T00:00:00+00:00",
        "2025-02-28T00:00:00+00:00",
        "2026-02-28T00:00:00+00:00",
        "2027-02-28T00:00:00+00:00",
        "2028-02-29T00:00:00+00:00",
    ]


def test_time_end_date_is_the_last_day():
    trigger = make(
        "time", start_date="2026-01-01", time="09:00", repeat="daily", end_date="2026-01-03"
    )
    assert fires(trigger, "2025-12-31T00:00", 10) == [
        "2026-01-01T09:00:00+00:00",
        "2026-01-02T09:00:00+00:00",
        "2026-01-03T09:00:00+00:00",
    ]
    assert trigger.next_fire(datetime(2026, 1, 3, 9, tzinfo=UTC), ZONE_UTC) is None


def test_time_is_computed_in_the_task_timezone_unless_its_own_wins():
    trigger = make("time", start_date="2026-01-10", time="09:00", repeat="daily")
    # The same instant asked in another zone gives the same answer.
    after = datetime(2026, 1, 10, 7, tzinfo=UTC).astimezone(NEW_YORK)
    assert trigger.next_fire(after, BERLIN) == datetime(2026, 1, 10, 8, tzinfo=UTC)
    own = make("time", start_date="2026-01-10", time="09:00", repeat="daily", timezone="Asia/Tokyo")
    assert own.next_fire(after, BERLIN) == datetime(2026, 1, 11, 0, tzinfo=UTC)


def fires_on(trigger: Trigger, day: str, tz: ZoneInfo) -> list[str]:
    """The fire times falling on one local calendar day."""
    times = fires(trigger, f"{day}T00:00", 4, tz=tz)
    return [time for time in times if time.startswith(day)]


DAILY_0230 = [
    ("time", {"start_date": "2026-01-01", "time": "02:30", "repeat": "daily"}),
    ("cron", {"expression": "30 2 * * *"}),
]


@pytest.mark.parametrize(("type_name", "config"), DAILY_0230, ids=["time", "cron"])
def test_daily_0230_in_berlin_fires_once_on_both_dst_days(type_name, config):
    trigger = make(type_name, **config)
    # Spring forward: 02:30 does not exist; it fires at 03:30 CEST (01:30 UTC).
    assert fires_on(trigger, "2026-03-29", BERLIN) == ["2026-03-29T03:30:00+02:00"]
    # Fall back: 02:30 happens twice; it fires at the first one, in CEST.
    assert fires_on(trigger, "2026-10-25", BERLIN) == ["2026-10-25T02:30:00+02:00"]
    # Asked right after a fire (as the scheduler does), it never fires twice that day.
    assert fires(trigger, "2026-10-25T02:30:00+02:00", 1, tz=BERLIN) == [
        "2026-10-26T02:30:00+01:00"
    ]
    assert fires(trigger, "2026-03-29T03:30:00+02:00", 1, tz=BERLIN) == [
        "2026-03-30T02:30:00+02:00"
    ]
    # In the second, repeated 02:xx hour the day's fire is already past, however the
    # time is given (a fixed offset, or the zone itself with fold=1).
    assert fires(trigger, "2026-10-25T02:10:00+01:00", 1, tz=BERLIN) == [
        "2026-10-26T02:30:00+01:00"
    ]
    second_pass = datetime(2026, 10, 25, 2, 10, fold=1, tzinfo=BERLIN)
    assert trigger.next_fire(second_pass, BERLIN) == datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("type_name", "config"),
    [
        ("time", {"start_date": "2026-01-01", "time": "02:30", "repeat": "daily"}),
        ("cron", {"expression": "30 2 * * *"}),
    ],
    ids=["time", "cron"],
)
def test_new_york_spring_forward_shifts_the_missing_time(type_name, config):
    trigger = make(type_name, **config)
    assert fires(trigger, "2026-03-07T12:00", 3, tz=NEW_YORK) == [
        "2026-03-08T03:30:00-04:00",
        "2026-03-09T02:30:00-04:00",
        "2026-03-10T02:30:00-04:00",
    ]


def test_new_york_fall_back_fires_the_first_0130_once():
    trigger = make("time", start_date="2026-01-01", time="01:30", repeat="daily")
    assert fires(trigger, "2026-10-31T12:00", 2, tz=NEW_YORK) == [
        "2026-11-01T01:30:00-04:00",
        "2026-11-02T01:30:00-05:00",
    ]


# -- cron --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 18 L * *", ["2026-01-31T18:00", "2026-02-28T18:00", "2026-03-31T18:00"]),
        ("0 9 * * fri#2", ["2026-01-09T09:00", "2026-02-13T09:00", "2026-03-13T09:00"]),
        ("0 9 * * L5", ["2026-01-30T09:00", "2026-02-27T09:00", "2026-03-27T09:00"]),
        ("15 7 * JAN,jul MON-wed", ["2026-01-05T07:15", "2026-01-06T07:15", "2026-01-07T07:15"]),
        ("*/20 9 1 * *", ["2026-01-01T09:00", "2026-01-01T09:20", "2026-01-01T09:40"]),
        ("@monthly", ["2026-02-01T00:00", "2026-03-01T00:00", "2026-04-01T00:00"]),
    ],
)
def test_cron_expressions(expression, expected):
    trigger = make("cron", expression=expression)
    assert fires(trigger, "2026-01-01T00:00", 3) == [f"{when}:00+00:00" for when in expected]


def test_cron_own_timezone_wins_over_the_task_timezone():
    trigger = make("cron", expression="0 9 * * *", timezone="America/New_York")
    after = datetime(2026, 1, 15, tzinfo=UTC)
    assert trigger.next_fire(after, BERLIN) == datetime(2026, 1, 15, 14, tzinfo=UTC)
    assert make("cron", expression="0 9 * * *").next_fire(after, BERLIN) == datetime(
        2026, 1, 15, 8, tzinfo=UTC
    )


def test_cron_every_20_minutes_keeps_real_time_slots_across_dst():
    trigger = make("cron", expression="*/20 * * * *")
    # The skipped hour's slots land in real time once each; none repeats.
    assert fires(trigger, "2026-03-29T01:30", 5, tz=BERLIN) == [
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:20:00+02:00",
        "2026-03-29T03:40:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    # The repeated hour fires at its first pass only.
    assert fires(trigger, "2026-10-25T02:30", 3, tz=BERLIN) == [
        "2026-10-25T02:40:00+02:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:20:00+01:00",
    ]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * * * *", "has 6 fields; only the 5 standard fields"),
        ("0 0 9 * * * 2026", "has 7 fields"),
        ("0 9", "has 2 field(s); a cron line has 5"),
        ("61 * * * *", "the minute field '61' is not valid (allowed: 0-59)"),
        ("0 24 * * *", "the hour field '24' is not valid"),
        ("0 9 * * fri#6", "the day of week field 'fri#6' is not valid"),
        ("0 9 * smarch *", "the month field 'smarch' is not valid"),
        ("R 9 * * *", "uses R or H"),
        ("0 0 30 2 *", "never matches a real date"),
        ("@reboot", "trigger on the server's start"),
    ],
)
def test_cron_refuses_bad_expressions_with_a_reason(expression, message):
    error = invalid("cron", expression=expression)
    assert error.field == "triggers[0].config.expression"
    assert message in error.message


# -- interval ----------------------------------------------------------------------------------


def test_interval_without_start_aligns_to_the_clock():
    trigger = make("interval", every=15)
    assert fires(trigger, "2026-06-01T10:07", 3, tz=BERLIN) == [
        "2026-06-01T10:15:00+02:00",
        "2026-06-01T10:30:00+02:00",
        "2026-06-01T10:45:00+02:00",
    ]


def test_interval_of_seconds_is_exact():
    trigger = make("interval", every=1, unit="seconds")
    assert fires(trigger, "2026-06-01T10:00:00.500000", 2) == [
        "2026-06-01T10:00:01+00:00",
        "2026-06-01T10:00:02+00:00",
    ]
    half_minute = make("interval", every=0.5, unit="minutes")
    assert fires(half_minute, "2026-06-01T10:00:00", 2) == [
        "2026-06-01T10:00:30+00:00",
        "2026-06-01T10:01:00+00:00",
    ]
    # No float drift over 26 years of 7-second steps.
    seven = make("interval", every=7, unit="seconds")
    after = datetime(2026, 6, 1, tzinfo=UTC)
    nxt = seven.next_fire(after, ZONE_UTC)
    assert nxt is not None
    assert (nxt - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() % 7 == 0
    assert 0 < (nxt - after).total_seconds() <= 7


def test_interval_from_a_start_never_fires_before_it():
    trigger = make("interval", every=2, unit="hours", start="2026-06-01T09:30")
    assert fires(trigger, "2026-01-01T00:00", 2, tz=BERLIN) == [
        "2026-06-01T09:30:00+02:00",
        "2026-06-01T11:30:00+02:00",
    ]
    assert fires(trigger, "2026-06-01T09:30", 1, tz=BERLIN) == ["2026-06-01T11:30:00+02:00"]
    with_offset = make("interval", every=1, unit="days", start="2026-06-01T09:30+00:00")
    assert fires(with_offset, "2026-06-03T00:00", 1) == ["2026-06-03T09:30:00+00:00"]


def test_interval_counts_elapsed_time_across_dst():
    trigger = make("interval", every=1, unit="days", start="2026-03-28T12:00")
    assert fires(trigger, "2026-03-28T12:00", 2, tz=BERLIN) == [
        "2026-03-29T13:00:00+02:00",
        "2026-03-30T13:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"every": 0}, "every", "0 is less than or equal to the minimum of 0"),
        ({"every": 0.5, "unit": "seconds"}, "every", "shorter than the minimum of 1 second"),
        ({"every": 1e9, "unit": "days"}, "every", "longer than the maximum of 100 years"),
        ({"every": 1, "unit": "weeks"}, "unit", "'weeks' is not one of"),
        ({"every": 1, "start": "tomorrow"}, "start", "not an ISO date-time"),
        ({"every": 1, "timezone": "Mars/Olympus"}, "timezone", "unknown timezone 'Mars/Olympus'"),
        ({"unit": "seconds"}, "", "'every' is a required property"),
    ],
)
def test_interval_refuses_bad_configs(config, field, message):
    error = invalid("interval", **config)
    assert error.field == "triggers[0].config" + (f".{field}" if field else "")
    assert message in error.message


# -- time config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"time": "09:00"}, "", "'start_date' is a required property"),
        ({"start_date": "2026-02-30", "time": "09:00"}, "start_date", "is not a 'date'"),
        ({"start_date": "2026-01-01", "time": "9am"}, "time", "write HH:MM or HH:MM:SS"),
        ({"start_date": "2026-01-01", "time": "24:00"}, "time", "not a time of day"),
        ({"start_date": "2026-01-01", "time": "09:00", "repeat": "hourly"}, "repeat", "hourly"),
        (
            {"start_date": "2026-01-05", "time": "09:00", "end_date": "2026-01-04"},
            "end_date",
            "the end date 2026-01-04 is before the start date 2026-01-05",
        ),
        (
            {"start_date": "2026-01-05", "time": "09:00", "repeat": "daily", "day_of_month": 3},
            "day_of_month",
            "only applies to monthly, quarterly and yearly",
        ),
        (
            {"start_date": "2026-01-05", "time": "09:00", "repeat": "monthly", "day_of_month": 32},
            "day_of_month",
            "32",
        ),
        ({"start_date": "2026-01-05", "time": "09:00", "colour": "red"}, "", "'colour'"),
    ],
)
def test_time_refuses_bad_configs(config, field, message):
    error = invalid("time", **config)
    assert error.field == "triggers[0].config" + (f".{field}" if field else "")
    assert message in error.message


# -- event triggers ----------------------------------------------------------------------------


def test_each_trigger_type_is_of_exactly_one_kind():
    kinds = (TimedTrigger, EventTrigger, PlannerEventTrigger)
    for cls in REGISTRY.of_kind("trigger"):
        assert sum(issubclass(cls, kind) for kind in kinds) == 1, cls
    assert issubclass(REGISTRY.get("trigger", "file"), EventTrigger)
    for name in ("after_task", "server_start", "http"):
        assert issubclass(REGISTRY.get("trigger", name), PlannerEventTrigger)


def test_event_trigger_defaults():
    after_task = make("after_task", task_id=3)
    assert (after_task.task_id, after_task.on) == (3, "success")
    assert make("server_start").delay == 0
    file = make("file", path="in")
    assert (file.recursive, file.pattern, file.debounce) == (True, None, 5)


def test_http_token_is_visible_and_compared_exactly():
    assert REGISTRY.secret_fields("trigger", "http") == []
    trigger = make("http", token="abc_DEF-0123456789")
    assert trigger.accepts("abc_DEF-0123456789")
    assert not trigger.accepts("abc_DEF-012345678")
    assert not trigger.accepts("")


@pytest.mark.parametrize(
    ("type_name", "config", "field", "message"),
    [
        ("after_task", {}, "", "'task_id' is a required property"),
        ("after_task", {"task_id": "3"}, "task_id", "'3' is not of type 'integer'"),
        ("after_task", {"task_id": 3, "on": "error"}, "on", "'error' is not one of"),
        ("server_start", {"delay": -1}, "delay", "-1 is less than the minimum of 0"),
        ("http", {"token": "short"}, "token", "is too short"),
        ("http", {"token": "has spaces in the token"}, "token", "does not match"),
        ("file", {"path": ""}, "path", "should be non-empty"),
        ("file", {"path": "../elsewhere"}, "path", "is outside your root folder"),
        ("file", {"path": "a/../../b"}, "path", "is outside your root folder"),
        ("file", {"path": "/etc"}, "path", "is outside your root folder"),
        ("file", {"path": "in", "pattern": "sub/*.csv"}, "pattern", "file names only"),
        ("file", {"path": "in", "debounce": 0.01}, "debounce", "less than the minimum of 0.1"),
    ],
)
def test_event_triggers_refuse_bad_configs(type_name, config, field, message):
    error = invalid(type_name, **config)
    assert error.field == "triggers[0].config" + (f".{field}" if field else "")
    assert message in error.message


# -- every trigger type ------------------------------------------------------------------------

SAMPLES: dict[str, list[dict[str, Any]]] = {
    "time": [
        {"start_date": "2026-01-31", "time": "06:00"},
        {
            "start_date": "2026-01-31",
            "time": "06:00:15",
            "repeat": "quarterly",
            "day_of_month": "last",
            "end_date": "2030-12-31",
            "timezone": "Europe/Berlin",
        },
    ],
    "cron": [{"expression": "0 9 * * fri#2", "timezone": "America/New_York"}],
    "interval": [
        {"every": 15},
        {"every": 1.5, "unit": "hours", "start": "2026-01-01T08:00+01:00", "timezone": "UTC"},
    ],
    "file": [{"path": "data/in", "recursive": True, "pattern": "*.csv", "debounce": 0.5}],
    "after_task": [{"task_id": 7, "on": "always"}],
    "server_start": [{}, {"delay": 30}],
    "http": [{"token": "0123456789abcdef_-XYZ"}],
    # As saved: the file located (resolved_path) under the owner's root.
    "calendar": [
        {
            "path": "calendars/weekly.ics",
            "resolved_path": str(WEEKLY),
            "minutes_before": 15,
            "match": "Team meeting",
            "timezone": "Europe/Berlin",
        }
    ],
}


def test_every_trigger_type_has_samples_and_a_described_schema():
    # Installed plugins' triggers are checked by the component contract suite.
    types = {
        cls.type_name
        for cls in REGISTRY.of_kind("trigger")
        if cls.__module__.startswith("jupyter_taskplanner.")
    }
    assert types == set(SAMPLES)
    for cls in REGISTRY.of_kind("trigger"):
        described = json.loads(json.dumps(cls.describe()))
        assert described["kind"] == "trigger" and described["title"] and described["description"]
        assert described["schema"]["additionalProperties"] is False
        for name, spec in described["schema"]["properties"].items():
            assert spec.get("title"), f"{cls.type_name}.{name} has no title"


@pytest.mark.parametrize(
    ("type_name", "config"),
    [(type_name, config) for type_name, configs in SAMPLES.items() for config in configs],
)
def test_config_json_round_trip(type_name, config):
    entry = REGISTRY.validate("trigger", {"type": type_name, "config": config}, "triggers[0]")
    again = REGISTRY.validate("trigger", json.loads(json.dumps(entry)), "triggers[0]")
    assert again == entry
    assert again["config"] == config
    after = datetime(2026, 3, 1, tzinfo=UTC)
    first = REGISTRY.instantiate("trigger", entry)
    second = REGISTRY.instantiate("trigger", again)
    assert isinstance(first, Trigger) and isinstance(second, Trigger)
    if isinstance(first, TimedTrigger):
        assert isinstance(second, TimedTrigger)
        assert first.fire_times(after, BERLIN, 5) == second.fire_times(after, BERLIN, 5)


@pytest.mark.parametrize("type_name", ["time", "cron", "interval"])
def test_timed_triggers_preview_several_fire_times(type_name):
    trigger = make(type_name, **SAMPLES[type_name][-1])
    times = trigger.fire_times(datetime(2026, 3, 1, tzinfo=UTC), BERLIN, 5)
    assert len(times) == 5
    assert times == sorted(set(times))
