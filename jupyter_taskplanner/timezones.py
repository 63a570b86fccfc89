"""Timezone helpers: the server's IANA zone name and validation."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


def is_timezone(name: str) -> bool:
    """True when ``name`` is a known IANA timezone (one of ``known_timezones``)."""
    return name in _known()


@functools.cache
def _known() -> frozenset[str]:
    return frozenset(known_timezones())


@functools.cache
def known_timezones() -> list[str]:
    """Every IANA timezone name this machine knows, sorted: the names the served API document
    lists, and the only ones taken (``ZoneInfo`` itself also opens any file under the zone
    folder, such as a folder's name or ``tzdata.zi``, and fails on a name too long)."""
    return sorted(name for name in available_timezones() if _loads(name))


def _loads(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True


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
