"""The ``cron`` trigger: a classic 5-field cron line, evaluated by croniter in local time."""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from ..errors import InvalidConfig
from . import TIMEZONE_PROPERTY, WallClockTrigger, check_timezone

FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31, or L for the last day"),
    ("month", "1-12 or jan-dec"),
    (
        "day of week",
        "0-7 or sun-sat (0 and 7 are Sunday), fri#2 for the second Friday, L5 for the last Friday",
    ),
)
ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# croniter's R (random) and H (hashed) values change with every parse: no stable schedule.
_RANDOM_OR_HASHED = re.compile(r"(?<![a-z])[rh](?![a-z])", re.IGNORECASE)


def expression_problem(expression: str) -> str | None:
    """What is wrong with a cron expression, in words, or None when it is fine."""
    text = expression.strip()
    if text.lower() in ALIASES:
        return None
    if text.startswith("@"):
        return (
            f"unknown alias {text!r}; use one of {', '.join(ALIASES)} (to start with the "
            "server, use the trigger on the server's start)"
        )
    fields = text.split()
    if len(fields) in (6, 7):
        return (
            f"{text!r} has {len(fields)} fields; only the 5 standard fields are supported: "
            "minute hour day-of-month month day-of-week (no seconds or years)"
        )
    if len(fields) != 5:
        return (
            f"{text!r} has {len(fields)} field(s); a cron line has 5: minute hour "
            "day-of-month month day-of-week, e.g. '30 9 * * mon-fri'"
        )
    for index, (field, (name, allowed)) in enumerate(zip(fields, FIELDS, strict=True)):
        if _RANDOM_OR_HASHED.search(field):
            return f"the {name} field {field!r} uses R or H, which cron does not support"
        probe = ["*"] * 5
        probe[index] = field
        if not croniter.is_valid(" ".join(probe)):
            return f"the {name} field {field!r} is not valid (allowed: {allowed})"
    if not croniter.is_valid(text):
        return f"{text!r} is not a valid cron expression"
    try:
        croniter(text, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError:
        return f"{text!r} never matches a real date (e.g. 30 February)"
    return None


@functools.lru_cache(maxsize=4096)
def parsed(expression: str) -> croniter[datetime]:
    """A parsed cron line to copy from: parsing costs as much as ~50 copies."""
    return croniter(expression, datetime(2000, 1, 1), ret_type=datetime)


class CronTrigger(WallClockTrigger):
    """Fires whenever the local time matches a cron line."""

    type_name: ClassVar[str] = "cron"
    title: ClassVar[str] = "Cron schedule"
    description: ClassVar[str] = (
        "Starts the task whenever the time matches a cron line (minute hour day-of-month month "
        "day-of-week), e.g. '30 9 * * mon-fri' for 9:30 on weekdays."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Cron schedule",
        "required": ["expression"],
        "additionalProperties": False,
        "properties": {
            "expression": {
                "type": "string",
                "minLength": 1,
                "title": "Cron expression",
                "description": "5 fields: minute hour day-of-month month day-of-week. Supports "
                "names (jan, mon), ranges, steps (*/15), L (last day of month), nth weekday "
                "(fri#2), L5 (last Friday) and @daily-style aliases.",
                "examples": ["30 9 * * mon-fri", "0 8 1 * *", "0 18 L * *", "0 9 * * fri#1"],
            },
            "timezone": TIMEZONE_PROPERTY,
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.expression: str = config["expression"].strip()
        # A private copy of the shared parsed line (a server builds every task's triggers at
        # start-up, and many tasks share a line); the lock guards the copy's position.
        self._cron = copy.copy(parsed(self.expression))
        self._lock = threading.Lock()

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        check_timezone(config)
        problem = expression_problem(config["expression"])
        if problem:
            raise InvalidConfig(problem, field="expression")

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        with self._lock:
            return super().next_fire(after, tz)

    def wall_times(self, after: datetime) -> Iterator[datetime]:
        # Naive datetimes keep croniter in plain wall-clock arithmetic; the DST rule is
        # applied by WallClockTrigger.
        self._cron.set_current(after, force=True)
        while True:
            yield self._cron.get_next(datetime)
