"""Timezone helpers: the server's IANA zone name and validation."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def is_timezone(name: str) -> bool:
    """True when ``name`` is a known IANA timezone."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.cache
def known_timezones() -> list[str]:
    """Every IANA timezone name this machine knows, sorted."""
    return sorted(name for name in available_timezones() if is_timezone(name))


def local_timezone() -> str:
    """The IANA name of the machine's timezone (TZ, then /etc/localtime), else 'UTC'."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name and is_timezone(name):
        return name
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    if "zoneinfo/" in target:
        name = target.split("zoneinfo/", 1)[1]
        if is_timezone(name):
            return name
    return "UTC"
