"""The ``calendar`` trigger: starts a task some minutes before each event of an iCalendar.

The calendar is an ``.ics`` file below the owner's root folder or an https feed.  Parsing and
recurrence (RRULE, RDATE, EXDATE, moved and cancelled occurrences, X-WR-TIMEZONE) are left to
``icalendar`` and ``recurring-ical-events``; this module turns occurrences into fire times.
Both are cached for the whole process, because the scheduler builds a new trigger for every
fire and previews ask for many fire times in a row: a file is parsed again only when its
(mtime, size, inode) changes, a feed is fetched again after ``REFRESH_SECONDS``.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import requests

from .. import outbound
from ..components.base import TimedTrigger
from ..errors import InvalidConfig, TaskPlannerError, Unavailable
from . import TIMEZONE_PROPERTY, check_timezone, config_zone

if TYPE_CHECKING:
    from icalendar import Component as ICalComponent

log = logging.getLogger(__name__)

DEFAULT_MAX_CALENDAR_BYTES = 10 * 1024 * 1024
"""The largest calendar a trigger reads or fetches, unless
``TaskPlannerApp.max_calendar_bytes`` says otherwise (``Calendars.limit``)."""
FETCH_TIMEOUT = 10.0
"""Seconds one fetch of a calendar URL may take in all: connecting, redirects, reading."""
REFRESH_SECONDS = 15 * 60
"""How long a fetched calendar is used before the URL is fetched again."""
RETRY_SECONDS = 60
"""How long a failed fetch is reported again before the URL is tried again."""
MAX_REDIRECTS = 5
CACHED_CALENDARS = 64
MAX_KNOWN_FIRES = 20_000
"""The most fire times one index keeps; past that it starts over from the time asked about."""
HORIZON = timedelta(days=3653)
"""How far ahead the next fire is looked for: a calendar with no event within ten years has
none."""
MAX_PASSED = 50_000
"""The most occurrences one search may pass over (cancelled, not matching) without a fire."""
# The calendar is expanded window by window: a window grows while it holds few occurrences
# and shrinks while it holds many, so a sparse calendar takes few queries and a dense one
# queries of bounded size (each query of a repeating event costs its occurrences since its
# start).
FIRST_WINDOW = timedelta(days=7)
WINDOWS = (timedelta(hours=1), timedelta(days=366))
FEW, MANY = 100, 1000
# recurring-ical-events reads window bounds against floating and all-day starts in a zone of
# its own (offsets reach ±14 hours): each window is asked with this margin on both sides and
# keeps the occurrences that start inside it by this module's reading.
MARGIN = timedelta(days=2)
_TICK = timedelta(microseconds=1)


def check_https(url: str, what: str = "the URL") -> None:
    """Refuse anything but an https address with a host, without repeating it (it may hold a
    token)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or not parts.hostname:
        hint = " (for a webcal:// address, write https:// instead)" if "webcal" in url[:8] else ""
        raise InvalidConfig(
            f"url: {what} is not an https:// address with a host{hint}; calendars are only "
            "fetched over https",
            field="url",
        )


def shown_url(url: str) -> str:
    """How messages name a calendar URL: scheme and host only, as its path may hold a token."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"the calendar at {parts.scheme}://{parts.hostname}{port}"


def fetch(url: str, max_bytes: int = DEFAULT_MAX_CALENDAR_BYTES) -> bytes:
    """The body of an https calendar URL, following redirects to https addresses only.

    At most ``max_bytes`` (decompressed) within ``FETCH_TIMEOUT`` seconds; ``Unavailable``
    when the server cannot be reached or does not answer with success.
    """
    deadline = time.monotonic() + FETCH_TIMEOUT
    with outbound.session() as session:
        for _ in range(MAX_REDIRECTS + 1):
            where = shown_url(url)
            try:
                # Proxy and CA bundle settings come from the environment (trust_env).
                response = session.get(
                    url,
                    stream=True,
                    allow_redirects=False,
                    timeout=max(0.1, deadline - time.monotonic()),
                    headers={"Accept": "text/calendar, */*;q=0.5"},
                )
            except requests.Timeout:
                raise Unavailable(
                    f"url: {where} did not answer within {FETCH_TIMEOUT:g} s", field="url"
                ) from None
            except requests.RequestException as exc:
                raise Unavailable(
                    f"url: cannot reach {where}: {_root_cause(exc)}", field="url"
                ) from None
            with response:
                if response.is_redirect:
                    url = urljoin(url, response.headers["Location"])
                    check_https(url, f"{where} redirects to an address that")
                    continue
                if not 200 <= response.status_code < 300:
                    raise Unavailable(
                        f"url: {where} answered {response.status_code} {response.reason}",
                        field="url",
                    )
                return _body(response, where, deadline, max_bytes)
    raise Unavailable(f"url: {where} redirected more than {MAX_REDIRECTS} times", field="url")


def _body(response: requests.Response, where: str, deadline: float, max_bytes: int) -> bytes:
    too_large = InvalidConfig(
        f"url: {where} sent more than {_size(max_bytes)} (TaskPlannerApp.max_calendar_bytes)",
        field="url",
    )
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            if time.monotonic() > deadline:
                raise Unavailable(
                    f"url: {where} did not send the calendar within {FETCH_TIMEOUT:g} s",
                    field="url",
                )
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise Unavailable(f"url: reading {where} failed: {_root_cause(exc)}", field="url") from None
    return b"".join(chunks)


def _root_cause(exc: BaseException) -> str:
    """The innermost error of a chain ('Connection refused'): the outer messages of requests
    and urllib3 repeat the URL's path, which may hold a token."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return str(exc) or type(exc).__name__


def start_instant(value: date | datetime, zone: ZoneInfo) -> datetime:
    """When an event starts, in UTC: floating times and all-day dates are read in ``zone``.

    A floating time uses the DST rule of the other timed triggers (fold=0): a time in a
    spring-forward gap moves forward by the gap, a repeated one means its first occurrence.
    An all-day event starts at midnight (by the same rule) of its first day.
    """
    if not isinstance(value, datetime):
        value = datetime.combine(value, clock())
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence of an event that the trigger fires for."""

    summary: str
    start: date | datetime
    end: date | datetime | None
    location: str

    @classmethod
    def of(cls, component: ICalComponent) -> Occurrence | None:
        """The occurrence of a VEVENT that recurring-ical-events produced; None without start."""
        start = component.get("DTSTART")
        if start is None:
            return None
        end = component.get("DTEND")
        return cls(
            summary=str(component.get("SUMMARY", "")),
            start=start.dt,
            end=end.dt if end is not None else None,
            location=str(component.get("LOCATION", "")),
        )

    def placeholders(self, zone: ZoneInfo) -> dict[str, str]:
        """``trigger.event`` (the summary), ``trigger.event_start``, ``trigger.event_end``
        and ``trigger.event_location``; floating times are given in ``zone``."""

        def shown(value: date | datetime | None) -> str:
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=zone)
            return value.isoformat() if value is not None else ""

        return {
            "trigger.event": self.summary,
            "trigger.event_start": shown(self.start),
            "trigger.event_end": shown(self.end),
            "trigger.event_location": self.location,
        }


class ParsedCalendar:
    """One version of a calendar, parsed, with a fire index per trigger setting."""

    def __init__(self, data: bytes, shown: str, field: str) -> None:
        # Imported here: the registry loads every trigger when the server starts.
        import icalendar
        import recurring_ical_events  # type: ignore[import-untyped]

        self.shown = shown
        self.field = field
        self.lock = threading.RLock()
        """Guards the query and every index: the database thread and the event loop both ask."""
        self._indexes: dict[tuple[int, str, str], FireIndex] = {}
        try:
            calendar = icalendar.Calendar.from_ical(data)
            if calendar.name != "VCALENDAR":
                raise ValueError(f"it holds a {calendar.name}, not a VCALENDAR")
            self._query = recurring_ical_events.of(calendar)
        except Exception as exc:  # the parser's many errors all mean "not readable"
            raise self.problem(exc) from None

    def problem(self, exc: Exception) -> InvalidConfig:
        """The error of a calendar whose content cannot be read or expanded."""
        text = str(exc) or type(exc).__name__
        text = text if len(text) <= 300 else text[:297] + "..."
        return InvalidConfig(
            f"{self.field}: {self.shown} is not an iCalendar this trigger can read: {text}",
            field=self.field,
        )

    def occurrences_between(self, start: datetime, stop: datetime) -> list[ICalComponent]:
        """Every event occurrence that overlaps ``start`` to ``stop``."""
        occurrences: list[ICalComponent] = self._query.between(start, stop)
        return occurrences

    def index(self, minutes_before: int, match: str, zone: ZoneInfo) -> FireIndex:
        """The fire index of one trigger setting (shared by every trigger with it)."""
        key = (minutes_before, match, zone.key)
        with self.lock:
            if key not in self._indexes:
                self._indexes[key] = FireIndex(self, minutes_before, match, zone)
            return self._indexes[key]


class FireIndex:
    """The fire times of one calendar for one trigger setting, found lazily and kept.

    ``_times`` is sorted, ``_occurrences`` in step with it: every fire after ``_start`` of an
    occurrence starting before ``_covered`` is in them.
    """

    def __init__(
        self, calendar: ParsedCalendar, minutes_before: int, match: str, zone: ZoneInfo
    ) -> None:
        self.calendar = calendar
        self.before = timedelta(minutes=minutes_before)
        self.match = match
        self.zone = zone
        self._start: datetime | None = None
        self._covered = datetime.min.replace(tzinfo=UTC)
        self._window = FIRST_WINDOW
        self._times: list[datetime] = []
        self._occurrences: list[Occurrence] = []

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire strictly after ``after`` (aware), in UTC, or None."""
        with self.calendar.lock:
            known = self._start is not None and self._start <= after < self._covered - self.before
            # Outside what is known (earlier, or later than expanded), start over from after.
            if not known or len(self._times) > MAX_KNOWN_FIRES:
                self._restart(after)
            passed = 0
            while True:
                index = bisect.bisect_right(self._times, after)
                # Fires of occurrences that start before the covered time are all known.
                if index < len(self._times) and self._times[index] < self._covered - self.before:
                    return self._times[index]
                if self._covered - self.before - after > HORIZON:
                    return None
                passed += self._expand()
                if passed > MAX_PASSED:
                    raise InvalidConfig(
                        f"{self.calendar.field}: {self.calendar.shown} has more than "
                        f"{MAX_PASSED} occurrences before the next event for this trigger; "
                        "narrow the calendar or the match",
                        field=self.calendar.field,
                    )

    def occurrences_at(self, due: datetime) -> list[Occurrence]:
        """The occurrences a fire at ``due`` is for (several events may share a fire)."""
        with self.calendar.lock:
            if self.next_after(due - _TICK) != due:
                return []
            first = bisect.bisect_left(self._times, due)
            last = bisect.bisect_right(self._times, due)
            return self._occurrences[first:last]

    def _restart(self, after: datetime) -> None:
        self._start = after
        self._covered = after + self.before
        self._window = FIRST_WINDOW
        self._times, self._occurrences = [], []

    def _expand(self) -> int:
        """Add the fires of the next window of the calendar; the occurrences it held."""
        assert self._start is not None
        start, stop = self._covered, self._covered + self._window
        try:
            components = self.calendar.occurrences_between(start - MARGIN, stop + MARGIN)
            found = [(component, Occurrence.of(component)) for component in components]
        except OverflowError:
            raise  # the end of representable dates: next_fire_or_none's business
        except Exception as exc:  # a broken series or property: bad RRULE, DTSTART, ...
            raise self.calendar.problem(exc) from None
        count = 0
        for component, occurrence in found:
            if occurrence is None:
                continue
            begins = start_instant(occurrence.start, self.zone)
            if not start <= begins < stop:
                continue  # the margin's, or the next window's
            count += 1
            if str(component.get("STATUS", "")).upper() == "CANCELLED":
                continue
            if self.match and self.match not in occurrence.summary.casefold():
                continue
            fire = begins - self.before
            if fire > self._start:
                index = bisect.bisect_right(self._times, fire)
                self._times.insert(index, fire)
                self._occurrences.insert(index, occurrence)
        self._covered = stop
        if count < FEW:
            self._window = min(self._window * 2, WINDOWS[1])
        elif count > MANY:
            self._window = max(self._window / 2, WINDOWS[0])
        return count


@dataclass
class _Fetched:
    """What the last fetch of a URL gave: a calendar (maybe older), an error, or both."""

    calendar: ParsedCalendar | None
    error: TaskPlannerError | None
    until: float
    """``time.monotonic()`` until which this answers without fetching again."""
    refreshing: bool = False


class Calendars:
    """The parsed calendars of every calendar trigger of this process, least recently used
    first out."""

    def __init__(self) -> None:
        self.max_bytes = DEFAULT_MAX_CALENDAR_BYTES
        """The largest calendar read or fetched (``TaskPlannerApp.max_calendar_bytes``)."""
        self._lock = threading.Lock()
        self._files: OrderedDict[Path, tuple[tuple[int, int, int], ParsedCalendar]] = OrderedDict()
        self._urls: OrderedDict[str, _Fetched] = OrderedDict()

    def file(self, resolved: Path, shown: str) -> ParsedCalendar:
        """The calendar in the file ``resolved``, parsed again only when the file changed.

        ``resolved`` is the path the server resolved (and checked) when the task was saved: a
        link added or changed since then is refused rather than followed.
        """
        if resolved.resolve() != resolved:
            raise InvalidConfig(
                f"path: {shown} leads elsewhere than when the task was saved (a link was "
                "added or changed); save the task again to check the new target",
                field="path",
            )
        try:
            info = resolved.stat()
        except FileNotFoundError:
            raise InvalidConfig(f"path: {shown} does not exist", field="path") from None
        except OSError as exc:
            raise InvalidConfig(
                f"path: cannot read {shown}: {exc.strerror}", field="path"
            ) from None
        if not stat.S_ISREG(info.st_mode):
            raise InvalidConfig(f"path: {shown} is not a file", field="path")
        version = (info.st_mtime_ns, info.st_size, info.st_ino)
        with self._lock:
            cached = self._files.get(resolved)
            if cached is not None and cached[0] == version:
                self._files.move_to_end(resolved)
                return cached[1]
        calendar = ParsedCalendar(_read(resolved, shown, self.max_bytes), shown, "path")
        with self._lock:
            self._files[resolved] = (version, calendar)
            self._files.move_to_end(resolved)
            while len(self._files) > CACHED_CALENDARS:
                self._files.popitem(last=False)
        return calendar

    def url(self, url: str) -> ParsedCalendar:
        """The calendar at ``url``, fetched again after ``REFRESH_SECONDS``.

        A stale copy asked for in an event loop is returned at once while the loop's executor
        fetches anew; without a copy (the first use in this process) the fetch blocks for at
        most ``FETCH_TIMEOUT`` seconds.  A failed fetch keeps an older copy in use.
        """
        with self._lock:
            entry = self._urls.get(url)
            if entry is not None:
                self._urls.move_to_end(url)
                if time.monotonic() < entry.until:
                    if entry.calendar is not None:
                        return entry.calendar
                    assert entry.error is not None
                    # A new exception each time: re-raising one object grows its traceback.
                    raise type(entry.error)(entry.error.message, field=entry.error.field)
                loop = _running_loop()
                if entry.calendar is not None and loop is not None:
                    if not entry.refreshing:
                        entry.refreshing = True
                        loop.run_in_executor(None, self._refresh_quietly, url)
                    return entry.calendar
        return self._refresh(url)

    def limit(self, max_bytes: int) -> None:
        """Read and fetch calendars of at most ``max_bytes`` from now on; a changed limit
        forgets the calendars read under the old one."""
        with self._lock:
            if max_bytes != self.max_bytes:
                self.max_bytes = max_bytes
                self._files.clear()
                self._urls.clear()

    def _refresh(self, url: str) -> ParsedCalendar:
        try:
            calendar = ParsedCalendar(fetch(url, self.max_bytes), shown_url(url), "url")
        except TaskPlannerError as exc:
            with self._lock:
                entry = self._urls.get(url)
                older = entry.calendar if entry is not None else None
                self._store(url, _Fetched(older, exc, time.monotonic() + RETRY_SECONDS))
            if older is None:
                raise
            log.warning("calendar trigger: %s; using the copy fetched before", exc.message)
            return older
        with self._lock:
            self._store(url, _Fetched(calendar, None, time.monotonic() + REFRESH_SECONDS))
        return calendar

    def _refresh_quietly(self, url: str) -> None:
        try:
            self._refresh(url)
        except Exception:
            log.exception("calendar trigger: refreshing %s failed", shown_url(url))
            with self._lock:
                entry = self._urls.get(url)
                if entry is not None:
                    entry.refreshing = False
                    entry.until = time.monotonic() + RETRY_SECONDS

    def _store(self, url: str, entry: _Fetched) -> None:
        self._urls[url] = entry
        self._urls.move_to_end(url)
        while len(self._urls) > CACHED_CALENDARS:
            self._urls.popitem(last=False)


def _read(path: Path, shown: str, max_bytes: int) -> bytes:
    """The bytes of a calendar file, refusing more than ``max_bytes``."""
    try:
        # O_NOFOLLOW: the checked path must not turn into a link between check and open.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise InvalidConfig(f"path: cannot read {shown}: {exc.strerror}", field="path") from None
    if len(data) > max_bytes:
        raise InvalidConfig(
            f"path: {shown} is larger than {_size(max_bytes)} (TaskPlannerApp.max_calendar_bytes)",
            field="path",
        )
    return data


def _size(count: int) -> str:
    mebibytes, rest = divmod(count, 1024 * 1024)
    return f"{mebibytes} MiB" if mebibytes and not rest else f"{count} bytes"


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


CALENDARS = Calendars()


class CalendarTrigger(TimedTrigger):
    """Fires a set number of minutes before each event of an iCalendar file or feed."""

    type_name: ClassVar[str] = "calendar"
    title: ClassVar[str] = "Calendar events"
    description: ClassVar[str] = (
        "Starts the task some minutes before each event of an iCalendar (.ics) file in your "
        "folder or of an https calendar feed, recurring events included; cancelled events "
        "are skipped."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Calendar events",
        "additionalProperties": False,
        "properties": {
            "path": {
                "x-path": "file",
                "type": "string",
                "minLength": 1,
                "title": "Calendar file",
                "description": "An .ics file relative to your root folder. Give this or a URL. "
                "It may not exist yet; a change of the file counts from the next start on.",
                "examples": ["calendars/team.ics"],
            },
            "url": {
                "x-path": "url",
                "type": "string",
                "writeOnly": True,
                "title": "Calendar URL",
                "description": "An https:// address of an iCalendar feed, e.g. the secret "
                "address of a private calendar: never returned by the API. Give this or a "
                "file; an empty text removes a stored URL.",
            },
            "minutes_before": {
                "type": "integer",
                "minimum": 0,
                "maximum": 10080,
                "default": 0,
                "title": "Minutes before",
                "description": "Start the task this many minutes before each event (at most "
                "a week). All-day events count from midnight of their first day.",
            },
            "match": {
                "type": "string",
                "minLength": 1,
                "title": "Summary contains",
                "description": "Only events whose summary contains this text (any case); "
                "empty: every event.",
                "examples": ["Review", "on call"],
            },
            "timezone": {
                **TIMEZONE_PROPERTY,
                "description": "IANA timezone name for events without one of their own "
                "(floating times, all-day events); empty means the task's timezone.",
            },
            "resolved_path": {
                "type": "string",
                "readOnly": True,
                "title": "Resolved file",
                "description": "Set by the server when the task is saved: the absolute path "
                "of the calendar file, the one it reads.",
            },
        },
    }
    example_config: ClassVar[dict[str, Any] | None] = {
        "url": "https://calendar.example.org/team/basic.ics",
        "minutes_before": 15,
        "match": "Review",
        "timezone": "Europe/Berlin",
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.minutes_before: int = config.get("minutes_before", 0)
        self.match: str = config.get("match", "").casefold()

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        check_timezone(config)
        given = [name for name in ("path", "url") if config.get(name)]
        if len(given) != 1:
            raise InvalidConfig(
                "give either path (an .ics file in your folder) or url (an https:// address "
                "of a calendar)" + (", not both" if given else ""),
                field="url" if given else "path",
            )
        if config.get("url"):
            check_https(config["url"])

    @classmethod
    def freeze(cls, config: dict[str, Any], owner_root: Path, snapshot_dir: Path) -> dict[str, Any]:
        """The config to store: with ``resolved_path``, the file the trigger reads.

        A trigger is not told whose task it serves when asked for fire times, so the server
        resolves the (already checked) path now.  An existing file must be a readable
        calendar; a URL is not fetched.
        """
        frozen = {
            key: value
            for key, value in config.items()
            if key != "resolved_path" and (key != "url" or value)
        }
        if "path" not in frozen:
            return frozen
        frozen["resolved_path"] = str((owner_root / frozen["path"]).resolve())
        if Path(frozen["resolved_path"]).exists():
            # A calendar that cannot be read is a 400 now instead of a failed schedule later.
            cls(frozen).next_fire(datetime.now(UTC), ZoneInfo("UTC"))
        return frozen

    def next_fire(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        zone = config_zone(self.config, tz)
        found = self._index(zone).next_after(after.astimezone(UTC))
        return found.astimezone(zone) if found is not None else None

    def fire_placeholders(self, due: datetime, tz: ZoneInfo) -> dict[str, Any]:
        """The placeholders of the event a fire at ``due`` is for (empty if none).

        When several events share the fire, ``trigger.event`` lists their summaries, one a
        line, and the other placeholders describe the first.
        """
        zone = config_zone(self.config, tz)
        occurrences = self._index(zone).occurrences_at(due.astimezone(UTC))
        if not occurrences:
            return {}
        values = occurrences[0].placeholders(zone)
        values["trigger.event"] = "\n".join(occurrence.summary for occurrence in occurrences)
        return values

    def _index(self, zone: ZoneInfo) -> FireIndex:
        return self._calendar().index(self.minutes_before, self.match, zone)

    def _calendar(self) -> ParsedCalendar:
        if self.config.get("url"):
            return CALENDARS.url(self.config["url"])
        shown = repr(self.config["path"])
        resolved = self.config.get("resolved_path")
        if not resolved:
            raise InvalidConfig(
                f"path: {shown} was not located when the task was saved; save it again",
                field="path",
            )
        return CALENDARS.file(Path(resolved), shown)
