"""The ``cron`` trigger: a cron line (unix or Quartz dialect), evaluated by croniter in local time.

A Quartz line is translated into a line croniter evaluates the same way (days of week
renumbered, ``?``, ``LW`` and equal ranges rewritten, the year as croniter's 7th field);
croniter does all the date arithmetic for both dialects.
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from ..errors import InvalidConfig
from . import TIMEZONE_PROPERTY, WallClockTrigger, check_timezone

DIALECTS = ("unix", "quartz")
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
# Years croniter may search for the next match of a line with a year field: all of them, so
# that '2026,2090' still finds 2090 (croniter's default gives up after 50).
_YEAR_SPAN = 2099 - 1970 + 1


@functools.lru_cache(maxsize=4096)
def expression_problem(expression: str, dialect: str = "unix") -> str | None:
    """What is wrong with a cron expression of the dialect, in words, or None when it is fine.

    Kept per line: checking one costs a millisecond, and saving tasks checks the same few
    lines again and again.
    """
    if dialect == "quartz":
        try:
            line = quartz_line(expression)
        except QuartzError as error:
            return str(error)
    else:
        problem = _unix_problem(expression)
        if problem:
            return problem
        line = expression.strip()
    try:
        croniter(line, datetime(1970, 1, 1), max_years_between_matches=_YEAR_SPAN).get_next()
    except CroniterBadDateError:
        return f"{expression.strip()!r} never matches a real date (e.g. 30 February)"
    return None


def _unix_problem(expression: str) -> str | None:
    """What is wrong with the syntax of a unix cron line, or None."""
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
            "minute hour day-of-month month day-of-week (no seconds or years; for a year "
            "field use the quartz dialect)"
        )
    if len(fields) != 5:
        return (
            f"{text!r} has {len(fields)} field(s); a cron line has 5: minute hour "
            "day-of-month month day-of-week, e.g. '30 9 * * mon-fri'"
        )
    for index, (field_text, (name, allowed)) in enumerate(zip(fields, FIELDS, strict=True)):
        if _RANDOM_OR_HASHED.search(field_text):
            return f"the {name} field {field_text!r} uses R or H, which cron does not support"
        probe = ["*"] * 5
        probe[index] = field_text
        if not croniter.is_valid(" ".join(probe)):
            return f"the {name} field {field_text!r} is not valid (allowed: {allowed})"
    if not croniter.is_valid(text):
        return f"{text!r} is not a valid cron expression"
    return None


# -- the Quartz dialect --------------------------------------------------------------------------


class QuartzError(ValueError):
    """A Quartz cron line that is refused; the message names the field."""


@dataclass(frozen=True)
class QuartzField:
    """One field of a Quartz line: its range, its names and how croniter numbers it."""

    name: str
    low: int
    high: int
    unit: str
    """What a value is, for messages: "a minute (0-59)"."""
    names: Mapping[str, int] = field(default_factory=dict)
    shift: int = 0
    """Added to a Quartz number to get croniter's (days of week: 1=SUN becomes 0=SUN)."""
    wraps: bool = True
    """Whether a range may run past the end back to the start (FRI-MON, NOV-FEB)."""

    def number(self, token: str) -> int:
        """The Quartz number of a value (digits or a name), checked."""
        if token in self.names:
            return self.names[token]
        if not (token.isascii() and token.isdigit()):
            raise QuartzError(f"{self.name}: {token!r} is not {self.unit}")
        value = int(token)
        if not self.low <= value <= self.high:
            raise QuartzError(f"{self.name}: {value} is not {self.unit}")
        return value

    def item(self, text: str) -> str:
        """croniter's text of one list item: ``*``, a value or a range, with a step or not."""
        match = _ITEM.fullmatch(text)
        if match is None or (match["first"] == "*" and match["last"] is not None):
            raise QuartzError(
                f"{self.name}: {text!r} is not a value, a range (a-b) or a step (a/n, */n) of "
                f"{self.unit}"
            )
        first, last, step = match.group("first", "last", "step")
        size = self.high - self.low + 1
        if step is not None and not 1 <= int(step) <= size:
            raise QuartzError(f"{self.name}: the step in {text!r} must be 1-{size}")
        suffix = "" if step is None else f"/{step}"
        if first == "*":
            return "*" + suffix
        start = self.number(first)
        end = start if last is None else self.number(last)
        if end == start:
            # croniter reads an equal range (JAN-JAN) as the whole cycle; Quartz as the value.
            return f"{start + self.shift}{suffix if last is None else ''}"
        if end < start and not self.wraps:
            raise QuartzError(f"{self.name}: the range {text!r} runs backwards")
        return f"{start + self.shift}-{end + self.shift}{suffix}"

    def values(self, text: str) -> str:
        """croniter's text of a comma-separated list of plain items."""
        return ",".join(self.item(part) for part in text.split(","))


_ITEM = re.compile(r"(?P<first>\*|\w+)(?:-(?P<last>\w+))?(?:/(?P<step>\d+))?", re.ASCII)
_DAY_NAMES = {
    name: number
    for number, names in enumerate(
        ("SUN SU", "MON MO", "TUE TU", "WED WE", "THU TH", "FRI FR", "SAT SA"), start=1
    )
    for name in names.split()
}
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
MINUTE = QuartzField("minute", 0, 59, "a minute (0-59)")
HOUR = QuartzField("hour", 0, 23, "an hour (0-23)")
DAY_OF_MONTH = QuartzField("day-of-month", 1, 31, "a day of the month (1-31)")
MONTH = QuartzField(
    "month", 1, 12, "a month (1-12 or JAN-DEC)", {name: n for n, name in enumerate(_MONTHS, 1)}
)
DAY_OF_WEEK = QuartzField(
    "day-of-week", 1, 7, "a Quartz day (1=SUN ... 7=SAT)", _DAY_NAMES, shift=-1
)
YEAR = QuartzField("year", 1970, 2099, "a year (1970-2099)", wraps=False)
_NTH_OR_LAST = re.compile(r"(?P<day>\w+?)(?:(?P<last>L)|#(?P<nth>\d+))", re.ASCII)
_NEAREST_WEEKDAY = re.compile(r"(?P<day>\d+)W", re.ASCII)
_YEAR_SHAPED = re.compile(r"[\d*,/-]+", re.ASCII)


def quartz_line(expression: str) -> str:
    """The croniter line that fires when the Quartz line (without seconds) does.

    ``minute hour day-of-month month day-of-week [year]``; exactly one of the two day fields
    is ``?``, and a ``*`` beside a restricted day field counts as ``?`` (so ``0 8 * * 2`` is
    Mondays at 8:00); both ``*`` is every day.
    """
    fields = expression.strip().upper().split()
    if len(fields) not in (5, 6):
        hint = " (drop the leading seconds field)" if len(fields) == 7 else ""
        raise QuartzError(
            f"{expression.strip()!r} has {len(fields)} field(s); a Quartz line here has 5 or "
            f"6, without seconds{hint}: minute hour day-of-month month day-of-week [year], "
            "e.g. '0 8 ? * MON-FRI'"
        )
    if len(fields) == 6 and not _YEAR_SHAPED.fullmatch(fields[5]):
        # Most likely a Quartz line with seconds (0 0 8 ? * MON): its day of week comes last.
        raise QuartzError(
            f"year: {fields[5]!r} is not a year (1970-2099); a Quartz line here has no seconds "
            "(drop the leading seconds field): minute hour day-of-month month day-of-week [year]"
        )
    minute, hour, day, month, weekday = fields[:5]
    day_free, weekday_free = day in ("?", "*"), weekday in ("?", "*")
    if day == weekday == "?":
        raise QuartzError("day-of-month and day-of-week: only one of them may be ?")
    if not (day_free or weekday_free):
        raise QuartzError(
            "day-of-month and day-of-week: one of them must be ? (a Quartz line picks days by "
            "one or the other), e.g. '0 8 15 * ?' or '0 8 ? * MON'"
        )
    line = [
        MINUTE.values(minute),
        HOUR.values(hour),
        "*" if day_free else _day_of_month(day),
        MONTH.values(month),
        "*" if weekday_free else _day_of_week(weekday),
    ]
    if len(fields) == 6 and fields[5] != "*":
        # croniter's 7-field form is minute hour day month weekday second year.
        line += ["0", YEAR.values(fields[5])]
    return " ".join(line)


def _day_of_month(text: str) -> str:
    """croniter's day of month for a Quartz one other than ``?`` and ``*``."""
    if text == "L":
        return "l"
    if text == "LW":
        # croniter takes 31W in a shorter month as the weekday nearest its last day, which is
        # the month's last weekday.
        return "31w"
    if match := _NEAREST_WEEKDAY.fullmatch(text):
        return f"{DAY_OF_MONTH.number(match['day'])}w"
    if "L" in text or "W" in text:
        raise QuartzError(
            f"day-of-month: {text!r}: L, LW and 15W stand alone (no lists, ranges or offsets)"
        )
    return DAY_OF_MONTH.values(text)


def _day_of_week(text: str) -> str:
    """croniter's day of week for a Quartz one other than ``?`` and ``*``."""
    items, special = [], 0
    for part in text.split(","):
        if part == "L":  # alone, L is the last day of the week: Saturday, croniter's 6
            items.append("6")
        elif match := _NTH_OR_LAST.fullmatch(part):
            special += 1
            day = DAY_OF_WEEK.number(match["day"]) + DAY_OF_WEEK.shift
            if match["last"]:
                items.append(f"l{day}")
            elif not 1 <= int(match["nth"]) <= 5:
                raise QuartzError(f"day-of-week: in {part!r} the week of the month must be 1-5")
            else:
                items.append(f"{day}#{match['nth']}")
        else:
            items.append(DAY_OF_WEEK.item(part))
    if special and special != len(items):
        raise QuartzError(
            f"day-of-week: {text!r} mixes 6#1 or 6L with plain days; write one or the other"
        )
    return ",".join(items)


# -- the trigger ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def parsed(line: str) -> croniter[datetime]:
    """A parsed croniter line to copy from: parsing costs as much as ~50 copies."""
    return croniter(
        line, datetime(2000, 1, 1), ret_type=datetime, max_years_between_matches=_YEAR_SPAN
    )


class CronTrigger(WallClockTrigger):
    """Fires whenever the local time matches a cron line."""

    type_name: ClassVar[str] = "cron"
    title: ClassVar[str] = "Cron schedule"
    description: ClassVar[str] = (
        "Starts the task whenever the time matches a cron line (minute hour day-of-month month "
        "day-of-week), e.g. '30 9 * * mon-fri' for 9:30 on weekdays; in the quartz dialect "
        "days of week count 1=SUN ... 7=SAT and a year may follow, e.g. '30 18 ? 4,5,6 6#1'."
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
                "description": "unix: 5 fields, minute hour day-of-month month day-of-week "
                "(0-7, 0 and 7 are Sunday). Supports names (jan, mon), ranges, steps (*/15), "
                "L (last day of month), nth weekday (fri#2), L5 (last Friday) and @daily-style "
                "aliases. quartz: minute hour day-of-month month day-of-week [year], "
                "day-of-week 1=SUN ... 7=SAT (SUN-SAT, SU-SA), one day field ?, L, LW, 15W, "
                "6L (last Friday), 6#1 (first Friday), years 1970-2099.",
                "examples": [
                    "30 9 * * mon-fri",
                    "0 8 1 * *",
                    "0 18 L * *",
                    "0 9 * * fri#1",
                    "30 18 ? 4,5,6 6#1",
                ],
            },
            "dialect": {
                "type": "string",
                "enum": list(DIALECTS),
                "default": "unix",
                "title": "Dialect",
                "description": "How the expression reads: unix (classic cron, day-of-week "
                "0=Sunday) or quartz (the Task Planner's own: no seconds, day-of-week 1=Sunday, "
                "?, L, W, LW, 6L, 6#1 and an optional year).",
            },
            "timezone": TIMEZONE_PROPERTY,
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.expression: str = config["expression"].strip()
        self.dialect: str = config.get("dialect", "unix")
        line = quartz_line(self.expression) if self.dialect == "quartz" else self.expression
        # A private copy of the shared parsed line (a server builds every task's triggers at
        # start-up, and many tasks share a line); the lock guards the copy's position.
        self._cron = copy.copy(parsed(line))
        self._lock = threading.Lock()

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        check_timezone(config)
        problem = expression_problem(config["expression"], config.get("dialect", "unix"))
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
            try:
                when = self._cron.get_next(datetime)
            except CroniterBadDateError:  # past the last year of a line's year field
                return
            yield when
