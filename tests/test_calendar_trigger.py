"""The calendar trigger: fire times from real .ics files and an https feed, and end to end."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig, Unavailable
from jupyter_taskplanner.testing import validate_as_saved
from jupyter_taskplanner.triggers import calendar
from jupyter_taskplanner.triggers.calendar import Calendars, CalendarTrigger
from jupyter_taskplanner.vocabulary import FINISHED

DATA = Path(__file__).parent / "data"
CALENDARS = DATA / "calendars"
# A CA and a certificate for 127.0.0.1 made for these tests only (valid until 2126).
TLS = DATA / "tls"
REGISTRY = Registry.from_entry_points()
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
ZONE_UTC = ZoneInfo("UTC")
START = datetime(2025, 1, 1, tzinfo=UTC)
TOKEN = "s3cret-feed-token"


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> Calendars:
    """A calendar cache of this test's own."""
    cache = Calendars()
    monkeypatch.setattr(calendar, "CALENDARS", cache)
    return cache


def saved(root: Path, **config: Any) -> CalendarTrigger:
    """A trigger as saving a task makes it: validated, paths checked, frozen."""
    entry = validate_as_saved(
        REGISTRY, "trigger", {"type": "calendar", "config": config}, "triggers[0]", root
    )
    frozen = CalendarTrigger.freeze(entry["config"], root, root / ".snapshots")
    return CalendarTrigger(frozen)


def from_file(tmp_path: Path, name: str, **config: Any) -> CalendarTrigger:
    shutil.copy(CALENDARS / name, tmp_path / name)
    return saved(tmp_path, path=name, **config)


def fires(trigger: CalendarTrigger, tz: ZoneInfo, after: datetime = START) -> list[str]:
    """Every fire time after ``after`` (at most 50), as ISO text in ``tz``."""
    times = trigger.fire_times(after, tz, 50)
    assert times == sorted(set(times)), "fire times must strictly increase"
    return [when.astimezone(tz).isoformat() for when in times]


def invalid(root: Path, **config: Any) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        saved(root, **config)
    return caught.value


# -- files ----------------------------------------------------------------------------------


def test_a_weekly_meeting_with_exceptions(tmp_path):
    trigger = from_file(tmp_path, "weekly.ics", minutes_before=10)
    # Mondays at 09:00 Berlin, 8 times from 3 March: 17 March is excluded (EXDATE), 24 March
    # moved to Tuesday 10:00 (RECURRENCE-ID), 7 April cancelled, Thursday 3 April added
    # (RDATE); the clocks change on 30 March.
    assert fires(trigger, BERLIN) == [
        "2025-03-03T08:50:00+01:00",
        "2025-03-10T08:50:00+01:00",
        "2025-03-25T09:50:00+01:00",
        "2025-03-31T08:50:00+02:00",
        "2025-04-03T08:50:00+02:00",
        "2025-04-14T08:50:00+02:00",
        "2025-04-21T08:50:00+02:00",
    ]
    # Strictly after: a fire instant itself is past.
    after = datetime(2025, 3, 10, 8, 50, tzinfo=BERLIN)
    assert trigger.next_fire(after, BERLIN) == datetime(2025, 3, 25, 9, 50, tzinfo=BERLIN)
    assert trigger.next_fire(datetime(2025, 5, 1, tzinfo=UTC), BERLIN) is None


def test_events_keep_their_own_timezone_across_dst(tmp_path):
    # Berlin 09:00 seen from New York: the US changes clocks on 9 March, Europe on 30 March.
    trigger = from_file(tmp_path, "weekly.ics")
    assert fires(trigger, NEW_YORK)[:4] == [
        "2025-03-03T03:00:00-05:00",
        "2025-03-10T04:00:00-04:00",
        "2025-03-25T05:00:00-04:00",
        "2025-03-31T03:00:00-04:00",
    ]
    # An Outlook export: a Windows zone name with its VTIMEZONE, across the October change.
    outlook = from_file(tmp_path, "outlook.ics", minutes_before=5)
    assert fires(outlook, ZONE_UTC) == [
        "2025-10-20T06:55:00+00:00",
        "2025-10-27T07:55:00+00:00",
        "2025-11-03T07:55:00+00:00",
        "2025-11-10T07:55:00+00:00",
    ]


def test_all_day_and_floating_events_are_read_in_the_trigger_zone(tmp_path):
    days = from_file(tmp_path, "days.ics", minutes_before=60)
    assert fires(days, BERLIN) == [
        # 02:30 does not exist on 30 March: the DST rule moves it to 03:30 CEST.
        "2025-03-30T01:30:00+01:00",
        # All-day events: an hour before midnight of their first day; the cancelled party
        # on 3 May does not fire.
        "2025-04-30T23:00:00+02:00",
        "2025-05-04T23:00:00+02:00",
        # 02:30 happens twice on 26 October: its first occurrence (CEST) counts.
        "2025-10-26T01:30:00+02:00",
    ]
    # The task's timezone, unless the trigger names its own.
    assert fires(days, NEW_YORK)[1] == "2025-04-30T23:00:00-04:00"
    in_tokyo = from_file(tmp_path, "days.ics", minutes_before=60, timezone="Asia/Tokyo")
    assert fires(in_tokyo, NEW_YORK)[1] == "2025-04-30T10:00:00-04:00"


def test_match_keeps_events_whose_summary_contains_the_text(tmp_path):
    trigger = from_file(tmp_path, "weekly.ics", match="MOVED")
    assert fires(trigger, BERLIN) == ["2025-03-25T10:00:00+01:00"]
    nothing = from_file(tmp_path, "weekly.ics", match="no such event")
    assert fires(nothing, BERLIN) == []


def test_an_endless_series_that_never_matches_ends_the_search(tmp_path):
    (tmp_path / "daily.ics").write_text(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:d\r\nDTSTART:20250101T080000Z\r\n"
        "RRULE:FREQ=DAILY\r\nSUMMARY:Stand-up\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    started = time.monotonic()
    assert saved(tmp_path, path="daily.ics", match="retro").next_fire(START, ZONE_UTC) is None
    assert time.monotonic() - started < 20
    daily = saved(tmp_path, path="daily.ics")
    later = datetime(2031, 6, 1, 12, tzinfo=UTC)
    assert daily.next_fire(later, ZONE_UTC) == datetime(2031, 6, 2, 8, tzinfo=UTC)


def test_placeholders_describe_the_event_of_a_fire(tmp_path):
    trigger = from_file(tmp_path, "weekly.ics", minutes_before=10)
    first = trigger.next_fire(START, BERLIN)
    assert first is not None
    assert trigger.fire_placeholders(first, BERLIN) == {
        "trigger.event": "Team meeting",
        "trigger.event_start": "2025-03-03T09:00:00+01:00",
        "trigger.event_end": "2025-03-03T09:30:00+01:00",
        "trigger.event_location": "Room 4.2",
    }
    assert trigger.fire_placeholders(first + timedelta(minutes=1), BERLIN) == {}
    days = from_file(tmp_path, "days.ics")
    labour_day = datetime(2025, 5, 1, tzinfo=BERLIN)
    assert days.fire_placeholders(labour_day, BERLIN)["trigger.event_start"] == "2025-05-01"


def test_an_edited_file_is_read_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    parsed: list[str] = []

    class Counting(calendar.ParsedCalendar):
        def __init__(self, data: bytes, shown: str, field: str) -> None:
            parsed.append(shown)
            super().__init__(data, shown, field)

    monkeypatch.setattr(calendar, "ParsedCalendar", Counting)
    trigger = from_file(tmp_path, "weekly.ics")
    assert len(fires(trigger, BERLIN)) == 7
    # Saving parsed it once; the scheduler builds a new trigger for every fire.
    assert len(fires(CalendarTrigger(trigger.config), BERLIN)) == 7
    assert parsed == ["'weekly.ics'"]

    path = tmp_path / "weekly.ics"
    path.write_bytes(path.read_bytes().replace(b"COUNT=8", b"COUNT=2"))
    # The moved meeting and the added one stay: they are occurrences of their own.
    assert fires(trigger, BERLIN) == [
        "2025-03-03T09:00:00+01:00",
        "2025-03-10T09:00:00+01:00",
        "2025-03-25T10:00:00+01:00",
        "2025-04-03T09:00:00+02:00",
    ]
    assert len(parsed) == 2


def test_calendars_that_cannot_be_read_are_refused_when_saved(tmp_path):
    (tmp_path / "notes.ics").write_text("hello, this is not a calendar\n")
    error = invalid(tmp_path, path="notes.ics")
    assert error.field == "path"
    assert "'notes.ics' is not an iCalendar this trigger can read" in error.message
    (tmp_path / "event.ics").write_text(
        "BEGIN:VEVENT\r\nUID:e\r\nDTSTART:20250101T080000Z\r\nEND:VEVENT\r\n"
    )
    assert "not a VCALENDAR" in invalid(tmp_path, path="event.ics").message
    (tmp_path / "broken.ics").write_text(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART:20250101T080000Z\r\n"
        "RRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    assert invalid(tmp_path, path="broken.ics").field == "path"
    (tmp_path / "folder.ics").mkdir()
    assert "is not a file" in invalid(tmp_path, path="folder.ics").message
    # Paths leave neither the root nor are they hidden behind a link out of it.
    assert invalid(tmp_path, path="../elsewhere.ics").field == "triggers[0].config.path"


def test_a_missing_or_relinked_file_fails_with_a_reason(tmp_path):
    trigger = saved(tmp_path, path="later.ics")
    assert trigger.config["resolved_path"] == str(tmp_path / "later.ics")
    with pytest.raises(InvalidConfig, match=r"path: 'later.ics' does not exist"):
        trigger.next_fire(START, BERLIN)
    shutil.copy(CALENDARS / "weekly.ics", tmp_path / "later.ics")
    assert len(fires(trigger, BERLIN)) == 7

    (tmp_path / "later.ics").unlink()
    (tmp_path / "later.ics").symlink_to(tmp_path / "elsewhere.ics")
    with pytest.raises(InvalidConfig, match=r"leads elsewhere than when the task was saved"):
        trigger.next_fire(START, BERLIN)


def test_config_problems_name_the_field(tmp_path):
    assert invalid(tmp_path).field == "triggers[0].config.path"
    both = invalid(tmp_path, path="a.ics", url=f"https://calendar.example.org/{TOKEN}.ics")
    assert (both.field, "not both" in both.message) == ("triggers[0].config.url", True)
    for url in (f"http://calendar.example.org/{TOKEN}", f"webcal://example.org/{TOKEN}"):
        error = invalid(tmp_path, url=url)
        assert error.field == "triggers[0].config.url"
        assert TOKEN not in error.message
    assert "write https:// instead" in invalid(tmp_path, url="webcal://example.org/x").message
    assert invalid(tmp_path, path="a.ics", timezone="Mars/Olympus").field == (
        "triggers[0].config.timezone"
    )
    assert invalid(tmp_path, path="a.ics", minutes_before=-5).field == (
        "triggers[0].config.minutes_before"
    )
    # resolved_path is the server's: whatever a client sends is replaced.
    trigger = saved(tmp_path, path="a.ics", resolved_path="/etc/passwd")
    assert trigger.config["resolved_path"] == str(tmp_path / "a.ics")
    # An empty URL stands for none, so a task can move from a URL to a file.
    assert "url" not in saved(tmp_path, path="a.ics", url="").config


def test_the_calendar_libraries_are_imported_only_when_a_calendar_is_read():
    code = (
        "import sys; from jupyter_taskplanner.components.registry import Registry; "
        "Registry.from_entry_points().get('trigger', 'calendar'); "
        "print(sorted(m for m in ('icalendar', 'recurring_ical_events') if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout.strip() == "[]"


# -- an https feed --------------------------------------------------------------------------


class Feed:
    """An https server on 127.0.0.1 serving one calendar, with the answer tests set."""

    def __init__(self, port: int) -> None:
        self.url = f"https://127.0.0.1:{port}/calendars/{TOKEN}/basic.ics"
        self.body = (CALENDARS / "weekly.ics").read_bytes()
        self.status = 200
        self.location = ""
        self.requests: list[str] = []


@pytest.fixture
def feed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Feed]:
    """The feed's server, trusted through REQUESTS_CA_BUNDLE, stopped after the test."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            self.send_response(state.status)
            if state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "server.pem", TLS / "server-key.pem")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state = Feed(httpd.server_address[1])
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(TLS / "ca.pem"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def test_a_feed_is_fetched_once_then_again_after_a_while(feed, monkeypatch):
    monkeypatch.setattr(calendar, "REFRESH_SECONDS", 0.5)
    trigger = saved(Path("/nonexistent"), url=feed.url, minutes_before=10)
    assert fires(trigger, BERLIN)[0] == "2025-03-03T08:50:00+01:00"
    assert len(fires(CalendarTrigger(trigger.config), BERLIN)) == 7
    assert feed.requests == [f"/calendars/{TOKEN}/basic.ics"]

    feed.body = (CALENDARS / "days.ics").read_bytes()
    assert len(fires(trigger, BERLIN)) == 7  # still the copy fetched before
    time.sleep(0.6)
    assert fires(trigger, BERLIN)[0] == "2025-03-30T03:20:00+02:00"
    assert len(feed.requests) == 2


def test_a_failed_refresh_keeps_the_copy_fetched_before(feed, monkeypatch, caplog):
    monkeypatch.setattr(calendar, "REFRESH_SECONDS", 0.3)
    trigger = saved(Path("/nonexistent"), url=feed.url)
    assert len(fires(trigger, BERLIN)) == 7
    feed.status = 500
    time.sleep(0.4)
    with caplog.at_level(logging.WARNING, logger="jupyter_taskplanner"):
        assert len(fires(trigger, BERLIN)) == 7
    assert "answered 500 Internal Server Error; using the copy fetched before" in caplog.text
    assert TOKEN not in caplog.text
    # Not tried again until RETRY_SECONDS passed.
    assert len(fires(trigger, BERLIN)) == 7
    assert len(feed.requests) == 2


async def test_a_stale_feed_is_refreshed_beside_the_event_loop(feed, monkeypatch):
    monkeypatch.setattr(calendar, "REFRESH_SECONDS", 0.3)
    trigger = saved(Path("/nonexistent"), url=feed.url)
    assert len(fires(trigger, BERLIN)) == 7  # the first use fetches at once
    feed.body = (CALENDARS / "days.ics").read_bytes()
    await asyncio.sleep(0.4)
    # In the event loop the stale copy answers at once, while an executor fetches anew.
    assert len(fires(trigger, BERLIN)) == 7
    deadline = time.monotonic() + 10
    while len(fires(trigger, BERLIN)) != 4:
        assert time.monotonic() < deadline, feed.requests
        await asyncio.sleep(0.05)
    assert len(feed.requests) >= 2


def test_feed_failures_are_clear_and_never_show_the_path(feed, monkeypatch):
    def failure(url: str) -> Unavailable | InvalidConfig:
        fresh = Calendars()
        monkeypatch.setattr(calendar, "CALENDARS", fresh)
        with pytest.raises((Unavailable, InvalidConfig)) as caught:
            CalendarTrigger({"url": url}).next_fire(START, BERLIN)
        assert TOKEN not in caught.value.message
        assert caught.value.field == "url"
        return caught.value

    host = feed.url.split("/calendars/")[0]
    feed.status = 404
    assert failure(feed.url).message == f"url: the calendar at {host} answered 404 Not Found"
    assert isinstance(failure(feed.url), Unavailable)

    feed.status, feed.location = 302, f"http://127.0.0.1/{TOKEN}"
    assert "redirects to an address that is not an https:// address" in failure(feed.url).message
    feed.status, feed.location = 301, f"{host}/moved/{TOKEN}.ics"
    assert "redirected more than 5 times" in failure(feed.url).message
    assert feed.requests[-1] == f"/moved/{TOKEN}.ics"

    feed.status, feed.location = 200, ""
    monkeypatch.setattr(calendar, "DEFAULT_MAX_CALENDAR_BYTES", 1000)
    assert failure(feed.url).message == (
        f"url: the calendar at {host} sent more than 1000 bytes (TaskPlannerApp.max_calendar_bytes)"
    )

    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert "certificate verify failed" in failure(feed.url).message

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    refused = failure(f"https://127.0.0.1:{port}/{TOKEN}")
    assert refused.message.startswith(f"url: cannot reach the calendar at https://127.0.0.1:{port}")
    assert "refused" in refused.message


def test_a_silent_feed_times_out(monkeypatch):
    monkeypatch.setattr(calendar, "FETCH_TIMEOUT", 0.3)
    with socket.socket() as silent:
        # Accepts connections (the backlog does) but never answers the TLS handshake.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/{TOKEN}"
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"did not answer within 0\.3 s"):
            CalendarTrigger({"url": url}).next_fire(START, BERLIN)
        assert time.monotonic() - started < 5


# -- end to end -----------------------------------------------------------------------------


def weekly_calendar(first: datetime, *, exdate: datetime | None = None) -> str:
    """A weekly meeting in Berlin from ``first`` (a Berlin wall time), maybe with an EXDATE."""
    stamp = "%Y%m%dT%H%M%S"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//jupyter-taskplanner//tests//EN",
        "BEGIN:VEVENT",
        "UID:weekly@example.org",
        "DTSTAMP:20250101T000000Z",
        f"DTSTART;TZID=Europe/Berlin:{first.strftime(stamp)}",
        "RRULE:FREQ=WEEKLY",
        "SUMMARY:Weekly report",
    ]
    if exdate is not None:
        lines.append(f"EXDATE;TZID=Europe/Berlin:{exdate.strftime(stamp)}")
    return "\r\n".join([*lines, "END:VEVENT", "END:VCALENDAR", ""])


def at_nine(day: date) -> datetime:
    """09:00 (naive, a Berlin wall time) on ``day``."""
    return datetime(day.year, day.month, day.day, 9)


async def next_times(call: Any, task_id: int, count: int = 3) -> list[str]:
    reply = await call("GET", f"/tasks/{task_id}/next", params={"count": count})
    assert reply.status == 200, reply
    assert {fire["type"] for fire in reply.body["next"]} <= {"calendar"}
    return [fire["time"] for fire in reply.body["next"]]


async def test_a_saved_calendar_task_shows_its_next_times(api, jp_root_dir):
    alice = api("alice")
    now = datetime.now(BERLIN)
    # Weekly at 09:00 from a week ago; the second meeting to come is excluded.
    first = at_nine(now.date() - timedelta(days=7))
    meetings = [first + timedelta(days=7 * week) for week in range(8)]
    coming = [
        when for when in meetings if when.replace(tzinfo=BERLIN) - timedelta(minutes=15) > now
    ]
    folder = jp_root_dir / "calendars"
    folder.mkdir()
    (folder / "team.ics").write_text(weekly_calendar(first, exdate=coming[1]))

    trigger = {"type": "calendar", "config": {"path": "calendars/team.ics", "minutes_before": 15}}
    reply = await alice(
        "POST",
        "/tasks",
        {
            "name": "before the meeting",
            "triggers": [trigger],
            "settings": {"timezone": "Europe/Berlin"},
        },
    )
    assert reply.status == 201, reply
    task = reply.body
    config = task["triggers"][0]["config"]
    assert config["resolved_path"] == str((folder / "team.ics").resolve())

    def expected(wall_times: list[datetime], minutes: int) -> list[str]:
        return [
            (when.replace(tzinfo=BERLIN) - timedelta(minutes=minutes)).isoformat()
            for when in wall_times
        ]

    assert await next_times(alice, task["id"]) == expected([coming[0], *coming[2:4]], 15)

    # Only the file changes (an hour later now): the next read of it sees the change.
    later = first + timedelta(hours=1)
    (folder / "team.ics").write_text(weekly_calendar(later))
    shifted = [when + timedelta(hours=1) for when in meetings]
    upcoming = [
        when for when in shifted if when.replace(tzinfo=BERLIN) - timedelta(minutes=15) > now
    ]
    assert await next_times(alice, task["id"]) == expected(upcoming[:3], 15)


async def test_a_bad_calendar_file_is_a_400_when_saved(api, jp_root_dir):
    (jp_root_dir / "bad.ics").write_text("BEGIN:VCALENDAR\r\nthis is no calendar\r\n")
    trigger = {"type": "calendar", "config": {"path": "bad.ics"}}
    reply = await api("alice")("POST", "/tasks", {"name": "bad", "triggers": [trigger]})
    assert reply.status == 400, reply
    assert reply.body["field"] == "triggers[0].config.path"
    assert "'bad.ics' is not an iCalendar this trigger can read" in reply.body["message"]


class Records(logging.Handler):
    """The log records of the planner's logger during a test."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(
            f"{record.getMessage()} {record.exc_info[1] if record.exc_info else ''}"
            for record in self.records
        )


async def test_a_missing_calendar_file_fails_the_schedule_until_the_task_is_saved(
    api, jp_serverapp, jp_root_dir
):
    alice = api("alice")
    planner = jp_serverapp.web_app.settings["taskplanner"]
    records = Records()
    planner.scheduler.log.addHandler(records)
    try:
        trigger = {"type": "calendar", "config": {"path": "calendars/missing.ics"}}
        reply = await alice("POST", "/tasks", {"name": "no file yet", "triggers": [trigger]})
        assert reply.status == 201, reply
        task_id = reply.body["id"]
        deadline = time.monotonic() + 10
        while "'calendars/missing.ics' does not exist" not in records.text():
            assert time.monotonic() < deadline, records.text()
            await asyncio.sleep(0.05)
        assert f"task {task_id}: cannot compute its next fire times" in records.text()
    finally:
        planner.scheduler.log.removeHandler(records)
    preview = await alice("GET", f"/tasks/{task_id}/next")
    assert preview.status == 400, preview
    assert preview.body["message"] == (
        "triggers[0].config.path: 'calendars/missing.ics' does not exist"
    )
    assert preview.body["field"] == "triggers[0].config.path"

    # The file appears: saving the task again, unchanged, plans its next start.
    first = at_nine(datetime.now(BERLIN).date() + timedelta(days=2))
    (jp_root_dir / "calendars").mkdir()
    (jp_root_dir / "calendars" / "missing.ics").write_text(weekly_calendar(first))
    read = await alice("GET", f"/tasks/{task_id}")
    saved = await alice(
        "PUT", f"/tasks/{task_id}", read.body, headers={"If-Match": read.headers["ETag"]}
    )
    assert saved.status == 200, saved
    planned = first.replace(tzinfo=BERLIN)
    deadline = time.monotonic() + 10
    while True:
        rows = await planner.db.call(planner.store.schedule_rows, task_id)
        found = [row["next_fire"] for row in rows.values() if row["next_fire"]]
        if found and datetime.fromisoformat(found[0]) == planned:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)


async def test_a_calendar_event_starts_a_run(api, jp_root_dir):
    alice = api("alice")
    # An event 65 seconds from now, with the trigger a minute before it: a start in ~5 s,
    # still to come when the scheduler plans the saved task on a loaded machine (a start
    # already past when it plans is never made).
    event = (datetime.now(UTC) + timedelta(seconds=65)).replace(microsecond=0)
    (jp_root_dir / "soon.ics").write_text(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:soon\r\n"
        f"DTSTART:{event.strftime('%Y%m%dT%H%M%SZ')}\r\nSUMMARY:Soon\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    trigger = {
        "type": "calendar",
        "name": "cal",
        "config": {"path": "soon.ics", "minutes_before": 1},
    }
    reply = await alice("POST", "/tasks", {"name": "soon", "triggers": [trigger]})
    assert reply.status == 201, reply
    deadline = time.monotonic() + 30
    while True:
        runs = await alice("GET", f"/tasks/{reply.body['id']}/runs")
        assert runs.status == 200, runs
        if runs.body["runs"] and runs.body["runs"][0]["status"] in FINISHED:
            break
        assert time.monotonic() < deadline, runs.body
        await asyncio.sleep(0.2)
    [run] = runs.body["runs"]
    assert run["trigger"] == "calendar:cal"
    due = datetime.fromisoformat(run["parameters"]["trigger.due"])
    assert due == event - timedelta(minutes=1)
    assert run["parameters"]["trigger.event"] == "Soon"
    assert datetime.fromisoformat(run["parameters"]["trigger.event_start"]) == event
    assert await next_times(alice, reply.body["id"]) == []


class TestCalendarSizeLimit:
    @pytest.fixture
    def planner_settings(self) -> dict[str, Any]:
        return {"max_calendar_bytes": 4096}

    async def test_a_calendar_past_the_limit_fails_the_schedule_and_is_refused(
        self, api, jp_root_dir
    ):
        alice = api("alice")
        path = jp_root_dir / "team.ics"
        first = at_nine(datetime.now(BERLIN).date() + timedelta(days=2))
        small = weekly_calendar(first)
        path.write_text(small)
        trigger = {"type": "calendar", "config": {"path": "team.ics"}}
        reply = await alice("POST", "/tasks", {"name": "meetings", "triggers": [trigger]})
        assert reply.status == 201, reply
        task_id = reply.body["id"]
        assert await next_times(alice, task_id)

        # The file grows past the limit: the schedule fails, saying which limit.
        padding = "".join(f"X-PAD-{line}:{'x' * 60}\r\n" for line in range(80))
        path.write_text(small.replace("END:VCALENDAR", f"{padding}END:VCALENDAR"))
        assert path.stat().st_size > 4096
        too_large = (
            "triggers[0].config.path: 'team.ics' is larger than 4096 bytes "
            "(TaskPlannerApp.max_calendar_bytes)"
        )
        preview = await alice("GET", f"/tasks/{task_id}/next")
        assert preview.status == 400, preview
        assert preview.body["message"] == too_large
        read = await alice("GET", f"/tasks/{task_id}")
        saved = await alice(
            "PUT", f"/tasks/{task_id}", read.body, headers={"If-Match": read.headers["ETag"]}
        )
        assert saved.status == 400, saved
        assert saved.body["message"] == too_large
