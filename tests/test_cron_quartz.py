"""The ``cron`` trigger's quartz dialect: the Task Planner's own lines give the right times."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jupyter_taskplanner.components.base import TimedTrigger
from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import validate_as_saved

REGISTRY = Registry.from_entry_points()
BERLIN = ZoneInfo("Europe/Berlin")
ZONE_UTC = ZoneInfo("UTC")


def cron(expression: str, dialect: str = "quartz", **config: Any) -> TimedTrigger:
    """A cron trigger built the way the server builds it: validated, then instantiated."""
    body = {"type": "cron", "config": {"expression": expression, "dialect": dialect, **config}}
    trigger = REGISTRY.instantiate("trigger", validate_as_saved(REGISTRY, "trigger", body, "t"))
    assert isinstance(trigger, TimedTrigger)
    return trigger


def fires(
    trigger: TimedTrigger, after: str = "2026-01-01T00:00", count: int = 3, tz: ZoneInfo = ZONE_UTC
) -> list[str]:
    """The next fire times after the local time ``after``, as ISO text in ``tz`` (to the minute)."""
    start = datetime.fromisoformat(after)
    start = start if start.tzinfo else start.replace(tzinfo=tz)
    times = trigger.fire_times(start, tz, count)
    assert times == sorted(set(times)), "fire times must strictly increase"
    return [time.astimezone(tz).isoformat(timespec="minutes") for time in times]


def utc(*times: str) -> list[str]:
    return [f"{time}+00:00" for time in times]


def refusal(expression: str, dialect: str = "quartz") -> InvalidConfig:
    body = {"type": "cron", "config": {"expression": expression, "dialect": dialect}}
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(REGISTRY, "trigger", body, "triggers[0]")
    return caught.value


# -- the product's own examples ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("0 8 * * ?", ["2026-01-01T08:00", "2026-01-02T08:00", "2026-01-03T08:00"]),
        (
            "0 8 15,20 JAN ?",
            ["2026-01-15T08:00", "2026-01-20T08:00", "2027-01-15T08:00", "2027-01-20T08:00"],
        ),
        # The first Friday of April, May and June (a Wednesday, a Friday and a Monday first).
        (
            "30 18 ? 4,5,6 6#1",
            ["2026-04-03T18:30", "2026-05-01T18:30", "2026-06-05T18:30", "2027-04-02T18:30"],
        ),
    ],
)
def test_the_products_examples(expression, expected):
    assert fires(cron(expression), count=len(expected)) == utc(*expected)


def test_the_same_text_means_other_days_in_unix_and_quartz():
    # 2026-01-04 is a Sunday.
    assert fires(cron("0 8 * * 1", "unix"), count=2) == utc("2026-01-05T08:00", "2026-01-12T08:00")
    assert fires(cron("0 8 * * 1"), count=2) == utc("2026-01-04T08:00", "2026-01-11T08:00")
    # Read as unix (day 6 = Saturday, '?' = '*'), the product's line fires on Saturdays.
    assert fires(cron("30 18 ? 4,5,6 6#1", "unix")) == utc(
        "2026-04-04T18:30", "2026-05-02T18:30", "2026-06-06T18:30"
    )


def test_unix_is_the_default_dialect():
    entry = REGISTRY.validate(
        "trigger", {"type": "cron", "config": {"expression": "0 8 * * 1"}}, "t"
    )
    assert entry["config"] == {"expression": "0 8 * * 1"}
    trigger = REGISTRY.instantiate("trigger", entry)
    assert isinstance(trigger, TimedTrigger)
    assert fires(trigger, count=1) == utc("2026-01-05T08:00")


# -- each feature ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # L: the last day of the month; in a leap year's February the 29th.
        ("0 18 L * ?", ["2026-01-31T18:00", "2026-02-28T18:00", "2026-03-31T18:00"]),
        ("0 18 L 2 ? 2028", ["2028-02-29T18:00"]),
        # W: the weekday nearest the day, never in another month.
        ("0 9 15W 1-3 ?", ["2026-01-15T09:00", "2026-02-16T09:00", "2026-03-16T09:00"]),
        ("0 9 15W AUG ?", ["2026-08-14T09:00", "2027-08-16T09:00", "2028-08-15T09:00"]),
        ("0 9 1W AUG,NOV ?", ["2026-08-03T09:00", "2026-11-02T09:00", "2027-08-02T09:00"]),
        # 31W in a shorter month: the weekday nearest its last day (2028-04-30 is a Sunday).
        ("0 9 31W APR ?", ["2026-04-30T09:00", "2027-04-30T09:00", "2028-04-28T09:00"]),
        # nL: the last Thursday (5) and the last Friday (6, or FRIL).
        ("0 8 ? * 5L", ["2026-01-29T08:00", "2026-02-26T08:00", "2026-03-26T08:00"]),
        ("0 8 ? * FRIL", ["2026-01-30T08:00", "2026-02-27T08:00", "2026-03-27T08:00"]),
        # #: the third Monday; the fifth Friday only in months that have one.
        ("0 9 ? * 2#3", ["2026-01-19T09:00", "2026-02-16T09:00", "2026-03-16T09:00"]),
        ("0 9 ? * 6#5", ["2026-01-30T09:00", "2026-05-29T09:00", "2026-07-31T09:00"]),
        ("0 9 ? * 6#1,6L", ["2026-01-02T09:00", "2026-01-30T09:00", "2026-02-06T09:00"]),
        # Names of months and of days (three or two letters), in any case.
        ("15 7 ? JAN,jul mon-WED", ["2026-01-05T07:15", "2026-01-06T07:15", "2026-01-07T07:15"]),
        ("15 7 ? jan,JUL MO-we", ["2026-01-05T07:15", "2026-01-06T07:15", "2026-01-07T07:15"]),
        # L alone in day-of-week is Saturday (7).
        ("0 8 ? * L", ["2026-01-03T08:00", "2026-01-10T08:00", "2026-01-17T08:00"]),
        # Ranges wrap; equal ends are the value, not (as croniter has it) the whole cycle.
        ("0 8 ? * FRI-MON", ["2026-01-02T08:00", "2026-01-03T08:00", "2026-01-04T08:00"]),
        ("0 8 ? * 7-1", ["2026-01-03T08:00", "2026-01-04T08:00", "2026-01-10T08:00"]),
        ("0 8 ? * MON-MON", ["2026-01-05T08:00", "2026-01-12T08:00", "2026-01-19T08:00"]),
        ("5-5 8 1 JAN-JAN ?", ["2026-01-01T08:05", "2027-01-01T08:05", "2028-01-01T08:05"]),
        # A step from the last value is that value alone.
        ("0 8 ? * 7/2", ["2026-01-03T08:00", "2026-01-10T08:00", "2026-01-17T08:00"]),
        ("59/15 8 1 * ?", ["2026-01-01T08:59", "2026-02-01T08:59", "2026-03-01T08:59"]),
        # Steps count from 1=SUN: */3 is SUN, WED, SAT.
        ("0 8 ? * */3", ["2026-01-03T08:00", "2026-01-04T08:00", "2026-01-07T08:00"]),
        # A * beside a field that picks days counts as ?; both * is every day.
        ("0 8 * * 2", ["2026-01-05T08:00", "2026-01-12T08:00", "2026-01-19T08:00"]),
        ("0 8 15 * *", ["2026-01-15T08:00", "2026-02-15T08:00", "2026-03-15T08:00"]),
        ("0 8 * * *", ["2026-01-01T08:00", "2026-01-02T08:00", "2026-01-03T08:00"]),
    ],
)
def test_quartz_features(expression, expected):
    assert fires(cron(expression)) == utc(*expected)


def test_lw_is_the_last_weekday_of_every_month():
    # Months of 2026 ending on a Saturday (January, February, October) and on a Sunday (May).
    days = ("01-30", "02-27", "03-31", "04-30", "05-29", "06-30")
    days += ("07-31", "08-31", "09-30", "10-30", "11-30", "12-31")
    assert fires(cron("0 17 LW * ?"), count=12) == utc(*(f"2026-{day}T17:00" for day in days))
    # A leap February ending on a weekday.
    assert fires(cron("0 17 LW FEB ? 2028"), count=2) == utc("2028-02-29T17:00")


def test_year_field():
    assert fires(cron("0 12 ? * MON 2027-2028"), count=1) == utc("2027-01-04T12:00")
    # Years far apart are still found; after the last one the trigger fires no more.
    assert fires(cron("0 8 1 1 ? 2026,2090")) == utc("2026-01-01T08:00", "2090-01-01T08:00")
    assert fires(cron("0 8 1 1 ? 2026-2026")) == utc("2026-01-01T08:00")
    assert fires(cron("0 8 29 FEB ? 2028/4"), count=2) == utc(
        "2028-02-29T08:00", "2032-02-29T08:00"
    )
    assert fires(cron("0 8 * * ? 2020")) == []
    assert fires(cron("0 8 * * ? *"), count=1) == utc("2026-01-01T08:00")


@pytest.mark.parametrize("dialect", ["unix", "quartz"])
def test_dst_rule_is_the_same_in_both_dialects(dialect):
    trigger = cron("30 2 * * *" if dialect == "unix" else "30 2 * * ?", dialect)
    # Spring forward: 02:30 does not exist and fires at 03:30 CEST; fall back: the first 02:30.
    assert fires(trigger, "2026-03-28T12:00", 2, BERLIN) == [
        "2026-03-29T03:30+02:00",
        "2026-03-30T02:30+02:00",
    ]
    assert fires(trigger, "2026-10-24T12:00", 2, BERLIN) == [
        "2026-10-25T02:30+02:00",
        "2026-10-26T02:30+01:00",
    ]


def test_a_quartz_trigger_in_its_own_timezone_round_trips_as_json():
    config = {"expression": "30 18 ? 4,5,6 6#1", "dialect": "quartz", "timezone": "Asia/Tokyo"}
    entry = REGISTRY.validate("trigger", {"type": "cron", "config": config}, "t")
    again = REGISTRY.validate("trigger", json.loads(json.dumps(entry)), "t")
    assert again == entry and again["config"] == config
    trigger = REGISTRY.instantiate("trigger", again)
    assert isinstance(trigger, TimedTrigger)
    # 18:30 in Tokyo is 11:30 in Berlin (CEST).
    assert fires(trigger, count=1, tz=BERLIN) == ["2026-04-03T11:30+02:00"]


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 8 ? * 8", "day-of-week: 8 is not a Quartz day (1=SUN ... 7=SAT)"),
        ("0 8 ? * 0", "day-of-week: 0 is not a Quartz day (1=SUN ... 7=SAT)"),
        ("0 8 ? * XY", "day-of-week: 'XY' is not a Quartz day"),
        ("0 8 ? * 6#6", "day-of-week: in '6#6' the week of the month must be 1-5"),
        ("0 8 ? * 6#1,2", "day-of-week: '6#1,2' mixes 6#1 or 6L with plain days"),
        ("0 8 15 * 2", "day-of-month and day-of-week: one of them must be ?"),
        ("0 8 ? * ?", "day-of-month and day-of-week: only one of them may be ?"),
        ("0 8 L-3 * ?", "day-of-month: 'L-3': L, LW and 15W stand alone"),
        ("0 8 1,L * ?", "day-of-month: '1,L': L, LW and 15W stand alone"),
        ("0 8 32W * ?", "day-of-month: 32 is not a day of the month (1-31)"),
        ("0 8 */0 * ?", "day-of-month: the step in '*/0' must be 1-31"),
        ("61 8 * * ?", "minute: 61 is not a minute (0-59)"),
        ("0 24 * * ?", "hour: 24 is not an hour (0-23)"),
        ("R 8 * * ?", "minute: 'R' is not a minute (0-59)"),
        ("0 8 ? SMARCH 2", "month: 'SMARCH' is not a month (1-12 or JAN-DEC)"),
        ("0 8 ,1 * ?", "day-of-month: '' is not a value, a range (a-b) or a step"),
        ("0 8 * * ? 2100", "year: 2100 is not a year (1970-2099)"),
        ("0 8 * * ? 2030-2026", "year: the range '2030-2026' runs backwards"),
        ("0 0 8 * * ?", "year: '?' is not a year (1970-2099); a Quartz line here has no seconds"),
        ("0 0 8 ? * MON", "year: 'MON' is not a year (1970-2099); a Quartz line here has no"),
        ("0 0 8 * * ? *", "has 7 field(s); a Quartz line here has 5 or 6, without seconds"),
        ("@daily", "has 1 field(s)"),
        ("0 8 30 FEB ?", "never matches a real date"),
        ("0 8 29 FEB ? 2027", "never matches a real date"),
    ],
)
def test_quartz_refusals_name_the_field(expression, message):
    error = refusal(expression)
    assert error.field == "triggers[0].config.expression"
    assert message in error.message


def test_an_unknown_dialect_is_refused():
    body = {"type": "cron", "config": {"expression": "0 8 * * ?", "dialect": "vixie"}}
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(REGISTRY, "trigger", body, "triggers[0]")
    assert caught.value.field == "triggers[0].config.dialect"


def test_unix_keeps_refusing_years_and_points_to_quartz():
    assert "for a year field use the quartz dialect" in refusal("0 8 1 1 * 2027", "unix").message
