"""Built-in triggers, and what the timed ones share: a timezone setting and the DST rule.

Each trigger module registers its classes through the ``jupyter_taskplanner.components``
entry points, exactly like a plugin does.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ..components.base import TimedTrigger
from ..errors import InvalidConfig
from ..timezones import is_timezone

TIMEZONE_PROPERTY: dict[str, Any] = {
    "type": "string",
    "title": "Timezone",
    "description": "IANA timezone name (e.g. Europe/Berlin) for this trigger; empty means the "
    "task's timezone.",
    "examples": ["UTC", "Europe/Berlin", "America/New_York"],
}


def check_timezone(config: dict[str, Any]) -> None:
    """Refuse an unknown ``timezone`` in a trigger config."""
    name = config.get("timezone")
    if name and not is_timezone(name):
        raise InvalidConfig(
            f"unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin' or 'UTC'",
            field="timezone",
        )


def config_zone(config: dict[str, Any], tz: ZoneInfo) -> ZoneInfo:
    """The zone a trigger computes in: its own ``timezone`` if set, else the task's."""
    name = config.get("timezone")
    return ZoneInfo(name) if name else tz


class WallClockTrigger(TimedTrigger):
    """A trigger firing at local wall-clock times (``time``, ``cron``).

    Subclasses implement ``wall_times``; this class turns those naive local times into
    instants with the DST rule of cron and systemd: a wall time inside a spring-forward gap
    fires once, shifted forward by the gap (02:30 becomes 03:30 CEST); a wall time that
    occurs twice at fall-back fires once, at its first occurrence.
    """

    def wall_times(self, after: datetime) -> Iterator[datetime]:
        """Naive local fire times strictly after the naive local time ``after``, ascending."""
        raise NotImplementedError

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        zone = config_zone(self.config, tz)
        # Search from the earliest local reading of ``after`` over the past day: just after a
        # spring-forward gap, wall times inside the gap (earlier on the wall) still map to
        # future instants.
        offsets = [
            moment.astimezone(zone).utcoffset() or timedelta()
            for moment in (after, after - timedelta(days=1))
        ]
        # Compare in UTC: Python compares two datetimes of one tzinfo by wall time alone.
        after_utc = after.astimezone(UTC)
        start = after_utc.replace(tzinfo=None) + min(offsets)
        for wall in self.wall_times(start):
            # fold=0 gives both halves of the rule: the pre-gap offset shifts a missing time
            # forward, and an ambiguous time resolves to its first occurrence.
            instant = wall.replace(tzinfo=zone).astimezone(UTC)
            if instant > after_utc:
                return instant.astimezone(zone)
        return None
