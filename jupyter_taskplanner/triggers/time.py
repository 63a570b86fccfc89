"""The ``time`` trigger: a start date and a time of day, once or repeated by a calendar rule."""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from typing import Any, ClassVar

from ..errors import InvalidConfig
from . import TIMEZONE_PROPERTY, WallClockTrigger, check_timezone

REPEATS = ("once", "daily", "weekdays", "weekly", "biweekly", "monthly", "quarterly", "yearly")
DAY_STEPS = {"daily": 1, "weekdays": 1, "weekly": 7, "biweekly": 14}
MONTH_STEPS = {"monthly": 1, "quarterly": 3, "yearly": 12}
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_time(text: str) -> time:
    """A time of day from "HH:MM" or "HH:MM:SS" (24-hour clock)."""
    match = _TIME.match(text)
    try:
        if match is None:
            raise ValueError
        hour, minute, second = match.groups()
        return time(int(hour), int(minute), 0 if second is None else int(second))
    except ValueError:
        raise InvalidConfig(
            f"{text!r} is not a time of day; write HH:MM or HH:MM:SS on a 24-hour clock, "
            "e.g. 09:30 or 17:45:00",
            field="time",
        ) from None


def day_in_month(year: int, month: int, day: int | str) -> date:
    """Day ``day`` (or "last") of a month; months without that day give their last day."""
    last = calendar.monthrange(year, month)[1]
    return date(year, month, last if day == "last" else min(int(day), last))


class TimeTrigger(WallClockTrigger):
    """Fires at a time of day from a start date on: once, daily, weekly, monthly, ..."""

    type_name: ClassVar[str] = "time"
    title: ClassVar[str] = "Date and time"
    description: ClassVar[str] = (
        "Starts the task at a time of day, once on the start date or repeated: daily, on "
        "weekdays, weekly, every two weeks, monthly, quarterly or yearly."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Date and time",
        "required": ["start_date", "time"],
        "additionalProperties": False,
        "properties": {
            "start_date": {
                "type": "string",
                "format": "date",
                "title": "Start date",
                "description": "The first day the task may run (YYYY-MM-DD).",
            },
            "time": {
                "type": "string",
                "title": "Time of day",
                "description": "HH:MM or HH:MM:SS on a 24-hour clock, in the timezone.",
                "examples": ["09:30", "17:45:00"],
            },
            "repeat": {
                "enum": list(REPEATS),
                "default": "once",
                "title": "Repeat",
                "description": "once; daily; weekdays (Monday to Friday); weekly and biweekly "
                "(every two weeks) on the start date's weekday; monthly, quarterly or yearly "
                "on the day of month.",
            },
            "day_of_month": {
                "anyOf": [
                    {"type": "integer", "minimum": 1, "maximum": 31},
                    {"const": "last"},
                ],
                "title": "Day of month",
                "description": 'For monthly, quarterly and yearly repeats: 1-31 or "last"; '
                "empty means the start date's day. Months without that day use their last day.",
            },
            "end_date": {
                "type": "string",
                "format": "date",
                "title": "End date",
                "description": "The last day the task may run (YYYY-MM-DD); empty means no end.",
            },
            "timezone": TIMEZONE_PROPERTY,
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.start_date = date.fromisoformat(config["start_date"])
        self.end_date = date.fromisoformat(config["end_date"]) if config.get("end_date") else None
        self.at = parse_time(config["time"])
        self.repeat: str = config.get("repeat", "once")
        self.day_of_month: int | str = config.get("day_of_month", self.start_date.day)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        check_timezone(config)
        parse_time(config["time"])
        start_date = date.fromisoformat(config["start_date"])
        end_date = date.fromisoformat(config["end_date"]) if config.get("end_date") else None
        if end_date is not None and end_date < start_date:
            raise InvalidConfig(
                f"the end date {end_date} is before the start date {start_date}", field="end_date"
            )
        repeat = config.get("repeat", "once")
        if "day_of_month" in config and repeat not in MONTH_STEPS:
            raise InvalidConfig(
                f"a day of month only applies to monthly, quarterly and yearly repeats, not to "
                f"{repeat!r}; remove it or change the repeat",
                field="day_of_month",
            )

    def wall_times(self, after: datetime) -> Iterator[datetime]:
        for day in self._days(max(self.start_date, after.date())):
            if self.end_date is not None and day > self.end_date:
                return
            when = datetime.combine(day, self.at)
            if when > after:
                yield when

    def _days(self, first: date) -> Iterator[date]:
        """The rule's days from about ``first`` on (never before the start date), ascending."""
        start = self.start_date
        if self.repeat == "once":
            yield start
        elif self.repeat in DAY_STEPS:
            step = DAY_STEPS[self.repeat]
            # Jump straight to the first period at or after ``first``: the trigger may be
            # asked about a date years after its start.
            day = start + timedelta(days=-(-(first - start).days // step) * step)
            while True:
                if self.repeat != "weekdays" or day.weekday() < 5:
                    yield day
                day += timedelta(days=step)
        else:
            step = MONTH_STEPS[self.repeat]
            months = (first.year - start.year) * 12 + first.month - start.month
            index = months // step
            while True:
                year, month = divmod(start.month - 1 + index * step, 12)
                if start.year + year > date.max.year:
                    return  # no day after 9999-12-31
                day = day_in_month(start.year + year, month + 1, self.day_of_month)
                if day >= start:
                    yield day
                index += 1
