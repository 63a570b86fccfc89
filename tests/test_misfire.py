"""Misfire catch-up after a long downtime: the most recent fires, cheaply.

``missed_fires`` on its own; the catch-up in a server is in test_scheduler.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from jupyter_taskplanner.components.base import Trigger
from jupyter_taskplanner.scheduler import MAX_NEXT_FIRE_CALLS, missed_fires
from jupyter_taskplanner.triggers.cron import CronTrigger
from jupyter_taskplanner.triggers.interval import IntervalTrigger

UTC_ZONE = ZoneInfo("UTC")
NOW = datetime(2026, 3, 14, 12, 0, 0, 500_000, tzinfo=UTC)
"""Half a second after the latest fire of both the 1 s interval and the minutely cron line."""
LATEST = NOW.replace(microsecond=0)
DOWNTIMES = [timedelta(hours=1), timedelta(days=1), timedelta(days=30)]


class Counting(Trigger):
    """Wraps a trigger to count its ``next_fire`` calls: the cost, without wall-clock timing."""

    type_name: ClassVar[str] = "counting"

    def __init__(self, inner: Trigger) -> None:
        super().__init__({})
        self.inner = inner
        self.calls = 0

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        self.calls += 1
        return self.inner.next_fire(after, tz)


class Listed(Trigger):
    """Fires at the given times only, then never again."""

    type_name: ClassVar[str] = "listed"

    def __init__(self, *times: datetime) -> None:
        super().__init__({})
        self.times = sorted(times)

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return next((when for when in self.times if when > after), None)


class EveryMicrosecond(Trigger):
    """Far denser than any real schedule: only the call cap stops the search."""

    type_name: ClassVar[str] = "every_microsecond"

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        return after + timedelta(microseconds=1)


def every_second() -> Counting:
    return Counting(IntervalTrigger({"every": 1, "unit": "seconds"}))


def every_minute() -> Counting:
    return Counting(CronTrigger({"expression": "* * * * *"}))


SCHEDULES = [(every_second, timedelta(seconds=1)), (every_minute, timedelta(minutes=1))]


def _down(
    make: Any, down: timedelta, grace: float | None, limit: int, now: datetime = NOW
) -> tuple[list[datetime], Counting]:
    """The missed fires of a new trigger whose stored next fire is the first after ``down``."""
    trigger = make()
    first = trigger.inner.next_fire(now - down, UTC_ZONE)
    return missed_fires(trigger, UTC_ZONE, first, now, grace, limit), trigger


@pytest.mark.parametrize("down", DOWNTIMES, ids=["1h", "1d", "30d"])
@pytest.mark.parametrize(("make", "step"), SCHEDULES, ids=["interval-1s", "cron-minutely"])
def test_all_with_a_limit_gives_the_most_recent_fires(make, step, down):
    fires, trigger = _down(make, down, None, 5)
    assert fires == [LATEST - k * step for k in (4, 3, 2, 1, 0)]
    assert trigger.calls <= 40


@pytest.mark.parametrize("down", DOWNTIMES, ids=["1h", "1d", "30d"])
@pytest.mark.parametrize(("make", "step"), SCHEDULES, ids=["interval-1s", "cron-minutely"])
def test_once_with_grace_gives_the_latest_fire(make, step, down):
    fires, trigger = _down(make, down, 600, 1)
    assert fires == [LATEST]
    assert trigger.calls <= 40


@pytest.mark.parametrize("down", DOWNTIMES, ids=["1h", "1d", "30d"])
@pytest.mark.parametrize(("make", "step"), SCHEDULES, ids=["interval-1s", "cron-minutely"])
def test_grace_keeps_every_fire_of_its_window(make, step, down):
    fires, trigger = _down(make, down, 600, 1000)
    # 12:00:00.5 minus 600 s: the fires from 11:50:01 (interval) or 11:51 (cron) on.
    count = {timedelta(seconds=1): 600, timedelta(minutes=1): 10}[step]
    assert fires == [LATEST - k * step for k in range(count - 1, -1, -1)]
    assert trigger.calls <= count + 64


def test_a_fire_exactly_grace_old_counts():
    fires, _ = _down(every_second, timedelta(hours=1), 10, 1000, now=LATEST)
    assert fires == [LATEST - timedelta(seconds=k) for k in range(10, -1, -1)]


@pytest.mark.parametrize("down", DOWNTIMES, ids=["1h", "1d", "30d"])
def test_the_limit_bounds_the_cost_not_the_downtime(down):
    fires, trigger = _down(every_second, down, None, 1000)
    assert fires == [LATEST - timedelta(seconds=k) for k in range(999, -1, -1)]
    assert trigger.calls <= 2 * 1000 + 64


@pytest.mark.parametrize(
    ("make", "now", "grace"),
    [(every_second, NOW, 0.4), (every_minute, LATEST + timedelta(seconds=30.5), 30)],
    ids=["interval-1s", "cron-minutely"],
)
def test_grace_can_exclude_every_fire(make, now, grace):
    fires, trigger = _down(make, timedelta(days=30), grace, 1000, now=now)
    assert fires == []
    assert trigger.calls <= 64


@pytest.mark.parametrize(
    ("grace", "expected"), [(None, True), (1200, True), (1199, False)], ids=str
)
def test_first_alone_was_missed(grace, expected):
    trigger = Counting(CronTrigger({"expression": "0 * * * *"}))
    first = datetime(2026, 3, 14, 12, tzinfo=UTC)
    fires = missed_fires(trigger, UTC_ZONE, first, first + timedelta(minutes=20), grace, 5)
    assert fires == ([first] if expected else [])
    assert trigger.calls <= 64


def test_a_yearly_fire_costs_a_few_calls():
    trigger = Counting(CronTrigger({"expression": "0 0 1 1 *"}))
    first = datetime(2026, 1, 1, tzinfo=UTC)
    assert missed_fires(trigger, UTC_ZONE, first, NOW, None, 5) == [first]
    assert trigger.calls <= 64


def test_a_trigger_that_ends_gives_its_remaining_fires():
    times = [datetime(2026, 3, 14, hour, tzinfo=UTC) for hour in (9, 10, 11)]
    assert missed_fires(Listed(*times), UTC_ZONE, times[0], NOW, None, 5) == times
    assert missed_fires(Listed(*times), UTC_ZONE, times[0], NOW, None, 2) == times[1:]


def test_the_zone_of_the_times_does_not_matter():
    berlin = ZoneInfo("Europe/Berlin")
    trigger = CronTrigger({"expression": "* * * * *"})
    first = trigger.next_fire(NOW - timedelta(days=1), berlin)
    fires = missed_fires(trigger, berlin, first, NOW.astimezone(berlin), None, 2)
    assert fires == [LATEST - timedelta(minutes=1), LATEST]
    assert all(when.tzinfo is UTC for when in fires)


def test_a_pathologically_dense_trigger_stops_at_the_call_cap():
    trigger = Counting(EveryMicrosecond({}))
    fires = missed_fires(trigger, UTC_ZONE, NOW - timedelta(days=1), NOW, None, 5)
    # Too dense to reach the latest fires within the cap: nothing rather than older ones.
    assert fires == []
    assert trigger.calls == MAX_NEXT_FIRE_CALLS
