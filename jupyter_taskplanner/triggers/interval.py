"""The ``interval`` trigger: every N seconds, minutes, hours or days of elapsed time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ..components.base import TimedTrigger
from ..errors import InvalidConfig
from . import TIMEZONE_PROPERTY, check_timezone, config_zone

UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
DEFAULT_ANCHOR = datetime(2000, 1, 1)
MINIMUM_SECONDS = 1
MAXIMUM_SECONDS = 100 * 366 * 86400


def parse_start(text: str) -> datetime:
    """The ``start`` of an interval: an ISO date-time, naive or with an offset."""
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidConfig(
            f"{text!r} is not an ISO date-time; write e.g. 2026-01-31T09:00 (in the timezone) "
            "or 2026-01-31T09:00+01:00",
            field="start",
        ) from None


def seconds_of(config: dict[str, Any]) -> float:
    """The interval's length in seconds."""
    every: float = config["every"]
    return every * UNIT_SECONDS[config.get("unit", "minutes")]


class IntervalTrigger(TimedTrigger):
    """Fires at start + k * every (k = 0, 1, ...), in elapsed time (DST does not shift it)."""

    type_name: ClassVar[str] = "interval"
    title: ClassVar[str] = "Interval"
    description: ClassVar[str] = (
        "Starts the task every N seconds, minutes, hours or days, counted from a start time "
        "(default: midnight of 2000-01-01, so every 15 minutes means :00, :15, :30 and :45)."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Interval",
        "required": ["every"],
        "additionalProperties": False,
        "properties": {
            "every": {
                "type": "number",
                "exclusiveMinimum": 0,
                # 100 years in the smallest unit; in a larger unit the type's check refuses
                # more than 100 years.
                "maximum": MAXIMUM_SECONDS,
                "title": "Every",
                "description": "How many units between two starts (at least 1 second in all).",
            },
            "unit": {
                "enum": list(UNIT_SECONDS),
                "default": "minutes",
                "title": "Unit",
            },
            "start": {
                "type": "string",
                "title": "Start",
                "description": "ISO date-time of the first start, e.g. 2026-01-31T09:00; without "
                "an offset it is in the timezone. Empty: aligned to midnight of 2000-01-01.",
                "examples": ["2026-01-31T09:00", "2026-01-31T09:00:00+01:00"],
            },
            "timezone": TIMEZONE_PROPERTY,
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        # Whole microseconds: exact integer steps, no float drift over many periods.
        self.period = timedelta(microseconds=round(seconds_of(config) * 1_000_000))
        self.start = parse_start(config["start"]) if config.get("start") else DEFAULT_ANCHOR

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        check_timezone(config)
        seconds = seconds_of(config)
        every = f"every {config['every']} {config.get('unit', 'minutes')}"
        if seconds < MINIMUM_SECONDS:
            raise InvalidConfig(f"{every} is shorter than the minimum of 1 second", field="every")
        if seconds > MAXIMUM_SECONDS:
            raise InvalidConfig(f"{every} is longer than the maximum of 100 years", field="every")
        if config.get("start"):
            parse_start(config["start"])

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        zone = config_zone(self.config, tz)
        anchor = self.start if self.start.tzinfo else self.start.replace(tzinfo=zone)
        # In UTC: arithmetic on datetimes of one tzinfo would count wall-clock time.
        anchor = anchor.astimezone(UTC)
        elapsed = after.astimezone(UTC) - anchor
        count = 0 if elapsed < timedelta() else elapsed // self.period + 1
        return (anchor + count * self.period).astimezone(zone)
