"""The sample plugin (plugins/taskplanner-sample): its components, installed like any plugin.

End to end through the REST API with a real server, its scheduler and real worker processes,
plus the components called directly where only a direct call can show it (progress reports,
cancellation, the inbox's timing and the files it leaves alone).
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from taskplanner_sample.append_line import AppendLineAction, AppendLineSettings
from taskplanner_sample.inbox import InboxGone, InboxTrigger
from taskplanner_sample.wordcount import WordCountFailed, WordCountJob

from jupyter_taskplanner.components import Registry, Result, RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import WatchRecorder, wait_for_run, wait_until

MAX_LINE = 120
SETTLE = 0.2
WATCH_START = 0.5  # time for the scheduler to load a new task and start its watch
TABLE = " 2  4 19 notes/a.txt\n 1  2 11 notes/sub/b.txt\n 3  6 30 total"


@pytest.fixture
def jp_server_config(jp_server_config):
    return {**jp_server_config, "AppendLineSettings": {"max_line_length": MAX_LINE}}


@pytest.fixture
def root(jp_root_dir: Path) -> Path:
    """alice's root folder (the server's root): two text files to count, and some not to."""
    notes = jp_root_dir / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / ".hidden").mkdir()
    (notes / "a.txt").write_text("one two three\nfour\n", encoding="utf-8")
    (notes / "sub" / "b.txt").write_text("héllo wörld", encoding="utf-8")
    (notes / ".hidden" / "c.txt").write_text("not counted\n", encoding="utf-8")
    (notes / "skip.md").write_text("not a txt file\n", encoding="utf-8")
    return jp_root_dir


def wordcount(**config: Any) -> dict[str, Any]:
    return {
        "type": "wordcount",
        "name": "count",
        "config": {"folder": "notes", "pattern": "**/*.txt", **config},
    }


def append_line(**config: Any) -> dict[str, Any]:
    return {"type": "append_line", "config": {"path": "logs/{task.name}.log", **config}}


def inbox(**config: Any) -> dict[str, Any]:
    return {
        "type": "inbox",
        "name": "drop",
        "config": {"folder": "inbox", "settle": SETTLE, **config},
    }


async def create(call, **body: Any) -> dict[str, Any]:
    reply = await call("POST", "/tasks", {"name": "Notes", **body})
    assert reply.status == 201, reply
    return reply.body


async def start(call, task_id: int, **parameters: Any) -> dict[str, Any]:
    reply = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert reply.status == 202, reply
    return await wait_for_run(call, reply.body["id"])


def steps(run: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [step for step in run["steps"] if step["kind"] == kind]


async def test_components_lists_the_plugin_types_with_schemas(api):
    reply = await api("alice")("GET", "/components")
    assert reply.status == 200, reply
    found = {(item["kind"], item["type"]): item for item in reply.body["components"]}
    job = found[("job", "wordcount")]
    action = found[("action", "append_line")]
    trigger = found[("trigger", "inbox")]
    assert trigger["title"] == "Inbox folder" and "{inbox.file}" in trigger["description"]
    assert trigger["schema"]["required"] == ["folder"]
    assert trigger["schema"]["properties"]["settle"] == {
        **trigger["schema"]["properties"]["settle"],
        "minimum": 0,
        "default": 1,
    }
    assert job["title"] == "Count words" and job["description"]
    assert job["flavors"] == ["file", "text"]
    assert action["title"] == "Append a line to a file" and action["description"]
    assert action["accepts"] == ["text"]
    for item in (job, action, trigger):
        schema = item["schema"]
        assert schema["additionalProperties"] is False
        assert all(spec["title"] and spec["description"] for spec in schema["properties"].values())
        assert item["version"] == 1 and item["permission"] is None
    assert job["schema"]["properties"]["errors"]["enum"] == ["replace", "ignore", "strict"]
    assert job["schema"]["properties"]["max_files"]["minimum"] == 1
    assert action["schema"]["required"] == ["path"]
    assert (await api("eve")("GET", "/components")).status == 403


async def test_counts_files_and_appends_a_line_per_run(api, root):
    alice = api("alice")
    task = await create(
        alice,
        jobs=[wordcount()],
        actions=[
            append_line(template="{run.started:%Y-%m-%d} {task.name}: {job.count.words} words"),
            append_line(path="logs/long.log", template="{results} {results} {results}"),
        ],
    )
    first = await start(alice, task["id"])
    assert first["status"] == "succeeded", first
    (job,) = steps(first, "job")
    text, table = job["results"]
    assert (text["flavor"], text["value"], text["valid"]) == ("text", TABLE, True)
    assert text["metadata"] == {"files": 2, "lines": 3, "words": 6, "characters": 30}
    assert table["flavor"] == "file" and table["value"].endswith("/wordcount.csv")
    download = await alice("GET", f"/runs/{first['id']}/files/{table['value']}")
    assert download.status == 200, download
    assert download.headers["Content-Type"] == "text/csv"
    assert list(csv.reader(io.StringIO(download.body))) == [
        ["file", "lines", "words", "characters"],
        ["notes/a.txt", "2", "4", "19"],
        ["notes/sub/b.txt", "1", "2", "11"],
    ]
    second = await start(alice, task["id"])
    assert second["status"] == "succeeded", second
    timezone = ZoneInfo(task["settings"]["timezone"])
    days = [
        datetime.fromisoformat(run["started"]).astimezone(timezone).strftime("%Y-%m-%d")
        for run in (first, second)
    ]
    log = (root / "logs" / "Notes.log").read_text(encoding="utf-8")
    assert log == "".join(f"{day} Notes: 6 words\n" for day in days)
    # The table's line breaks became the separator, and the server's setting cut the line.
    long_line = (root / "logs" / "long.log").read_text(encoding="utf-8").splitlines()[0]
    assert len(long_line) == MAX_LINE and long_line.endswith(" [...]")
    assert long_line.startswith(TABLE.replace("\n", " | ") + " ")
    action_log = (await alice("GET", f"/runs/{first['id']}/log")).body
    assert "appended a line to logs/Notes.log" in action_log


async def test_other_users_cannot_reach_the_results(api, root):
    alice, bob = api("alice"), api("bob")
    task = await create(alice, jobs=[wordcount()])
    run = await start(alice, task["id"])
    (table,) = [r for r in steps(run, "job")[0]["results"] if r["flavor"] == "file"]
    assert (await bob("GET", f"/runs/{run['id']}")).status == 404
    assert (await bob("GET", f"/runs/{run['id']}/files/{table['value']}")).status == 404
    assert (await bob("GET", f"/runs/{run['id']}/log")).status == 404


@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        (wordcount(max_files="many"), "jobs[0].config.max_files", "not of type 'integer'"),
        (wordcount(max_files=0), "jobs[0].config.max_files", "less than the minimum"),
        (wordcount(errors="loud"), "jobs[0].config.errors", "is not one of"),
        (wordcount(colour="red"), "jobs[0].config", "'colour' was unexpected"),
        (wordcount(encoding="klingon"), "jobs[0].config.encoding", "not a known text encoding"),
        (wordcount(folder="../elsewhere"), "jobs[0].config.folder", "outside your root folder"),
        (wordcount(folder="/etc"), "jobs[0].config.folder", "outside your root folder"),
        (wordcount(pattern="../../*.txt"), "jobs[0].config.pattern", "stay inside its folder"),
        ({"type": "append_line", "config": {}}, "actions[0].config", "'path' is a required"),
        (append_line(path="a/../../x.log"), "actions[0].config.path", "outside your root"),
        (append_line(separator=3), "actions[0].config.separator", "not of type 'string'"),
        ({"type": "inbox", "config": {}}, "triggers[0].config", "'folder' is a required"),
        (inbox(folder="../elsewhere"), "triggers[0].config.folder", "outside your root folder"),
        (inbox(folder="/srv/drop"), "triggers[0].config.folder", "outside your root folder"),
        (inbox(done_folder="in/../../done"), "triggers[0].config.done_folder", "outside your"),
        (inbox(done_folder="inbox/."), "triggers[0].config.done_folder", "must differ"),
        (inbox(pattern="sub/*.csv"), "triggers[0].config.pattern", "file names only"),
        (inbox(settle=-1), "triggers[0].config.settle", "less than the minimum of 0"),
        (inbox(recursive=True), "triggers[0].config", "'recursive' was unexpected"),
    ],
)
async def test_bad_config_is_a_400_naming_the_field(api, root, entry, field, words):
    alice = api("alice")
    key = {"wordcount": "jobs", "append_line": "actions", "inbox": "triggers"}[entry["type"]]
    reply = await alice("POST", "/tasks", {"name": "bad", key: [entry]})
    assert reply.status == 400, reply
    assert reply.body["field"] == field and words in reply.body["message"], reply.body
    assert (await alice("GET", "/tasks")).body["total"] == 0
    # An update with the same mistake leaves the stored task as it was.
    task = await create(alice)
    reply = await alice("PATCH", f"/tasks/{task['id']}", {key: [entry]})
    assert reply.status == 400 and reply.body["field"] == field, reply
    assert (await alice("GET", f"/tasks/{task['id']}")).body[key] == []


async def test_a_newer_config_version_asks_for_a_plugin_upgrade(api, root):
    reply = await api("alice")(
        "POST", "/tasks", {"name": "x", "jobs": [wordcount() | {"version": 2}]}
    )
    assert reply.status == 400 and reply.body["field"] == "jobs[0].version", reply
    assert "upgrade the plugin" in reply.body["message"]


async def test_paths_escaping_the_root_at_run_time_fail_the_run(api, root, tmp_path):
    alice = api("alice")
    # A placeholder passes the check at save time and leads outside once filled in.
    task = await create(
        alice, jobs=[wordcount(folder="{where}")], actions=[append_line(path="{where}/x.log")]
    )
    run = await start(alice, task["id"], where="..")
    assert run["status"] == "failed", run
    (job,) = steps(run, "job")
    assert job["status"] == "failed" and "outside your root folder" in job["error"]
    # Nothing to log from a failed count: the action accepts text results only.
    assert [step["status"] for step in steps(run, "action")] == ["skipped"]
    log = (await alice("GET", f"/runs/{run['id']}/log")).body
    assert "folder: '..' is outside your root folder" in log

    escaping_action = await create(
        alice, jobs=[wordcount()], actions=[append_line(path="{where}/x.log")]
    )
    run = await start(alice, escaping_action["id"], where="..")
    assert run["status"] == "failed", run
    (action,) = steps(run, "action")
    assert action["status"] == "failed" and "outside your root folder" in action["error"]
    assert not (root.parent / "x.log").exists()

    # A link inside the root that points outside it is refused, not followed.
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret\n", encoding="utf-8")
    os.symlink(secret, root / "notes" / "leak.txt")
    run = await start(alice, escaping_action["id"], where=".")
    assert run["status"] == "failed", run
    (job,) = steps(run, "job")
    assert "notes/leak.txt leads outside your root folder" in job["error"], job


async def runs_of(call, task_id: int) -> list[dict[str, Any]]:
    reply = await call("GET", f"/tasks/{task_id}/runs")
    assert reply.status == 200, reply
    return sorted(reply.body["runs"], key=lambda run: run["id"])


async def wait_for_runs(call, task_id: int, count: int) -> list[dict[str, Any]]:
    """The task's first ``count`` runs, each waited for until it ended."""

    async def started() -> bool:
        return len(await runs_of(call, task_id)) >= count

    await wait_until(started)
    return [await wait_for_run(call, run["id"]) for run in (await runs_of(call, task_id))[:count]]


def counted(run: dict[str, Any]) -> tuple[str, int]:
    """The file a wordcount run counted, and its words."""
    (text, _) = steps(run, "job")[0]["results"]
    return text["value"].splitlines()[0].split()[-1], text["metadata"]["words"]


async def test_inbox_starts_a_run_per_dropped_file_and_moves_it_to_done(api, root):
    alice = api("alice")
    drop = root / "inbox"
    drop.mkdir()
    # Waiting before the task exists: with a done folder it is handled first.
    (drop / "first.txt").write_text("one two\n", encoding="utf-8")
    task = await create(
        alice,
        triggers=[inbox(pattern="*.txt", done_folder="inbox/done")],
        jobs=[wordcount(folder=".", pattern="{inbox.file}")],
        actions=[append_line(path="logs/inbox.log", template="{inbox.name}: {job.count.words}")],
        settings={"overlap": "queue"},
    )
    (first,) = await wait_for_runs(alice, task["id"], 1)
    (drop / "second.txt").write_text("three four five\n", encoding="utf-8")
    (drop / "ignored.csv").write_text("not a txt file\n", encoding="utf-8")
    first, second = await wait_for_runs(alice, task["id"], 2)
    assert [run["status"] for run in (first, second)] == ["succeeded"] * 2, (first, second)
    assert [run["trigger"] for run in (first, second)] == ["inbox:drop"] * 2
    assert first["parameters"] == {"inbox.file": "inbox/done/first.txt", "inbox.name": "first.txt"}
    assert second["parameters"] == {
        "inbox.file": "inbox/done/second.txt",
        "inbox.name": "second.txt",
    }
    # Each run found its file where the trigger had moved it.
    assert [counted(run) for run in (first, second)] == [
        ("inbox/done/first.txt", 2),
        ("inbox/done/second.txt", 3),
    ]
    log = (root / "logs" / "inbox.log").read_text(encoding="utf-8")
    assert log == "first.txt: 2\nsecond.txt: 3\n"
    assert sorted(os.listdir(drop)) == ["done", "ignored.csv"]
    assert sorted(os.listdir(drop / "done")) == ["first.txt", "second.txt"]
    assert len(await runs_of(alice, task["id"])) == 2


async def test_inbox_leaves_waiting_files_alone_without_a_done_folder_and_stops_disabled(api, root):
    alice = api("alice")
    drop = root / "inbox"
    drop.mkdir()
    (drop / "old.txt").write_text("old news\n", encoding="utf-8")
    task = await create(
        alice,
        triggers=[inbox()],
        jobs=[wordcount(folder=".", pattern="{inbox.file}")],
        settings={"overlap": "queue"},
    )
    await asyncio.sleep(WATCH_START)
    (drop / "new.txt").write_text("brand new stuff\n", encoding="utf-8")
    # old.txt would have settled first, so its run would be in by the time new.txt's is.
    (run,) = await wait_for_runs(alice, task["id"], 1)
    assert run["parameters"] == {"inbox.file": "inbox/new.txt", "inbox.name": "new.txt"}
    assert run["status"] == "succeeded" and counted(run) == ("inbox/new.txt", 3), run
    assert sorted(os.listdir(drop)) == ["new.txt", "old.txt"]

    reply = await alice("POST", f"/tasks/{task['id']}/disable")
    assert reply.status == 200 and reply.body["enabled"] is False, reply
    (drop / "later.txt").write_text("too late\n", encoding="utf-8")
    await asyncio.sleep(SETTLE + 1)
    assert [item["id"] for item in await runs_of(alice, task["id"])] == [run["id"]]
    # Another user's inbox trigger is no way into alice's task either.
    assert (await api("bob")("GET", f"/tasks/{task['id']}/runs")).status == 404


# --- the job and the action called directly ------------------------------------------------


def context(root: Path, output: Path, **extra: Any) -> RunContext:
    output.mkdir(exist_ok=True)
    return RunContext(
        owner="alice",
        owner_root=root,
        task_id=1,
        task_name="Notes",
        run_id=7,
        started=datetime(2024, 5, 1, 6, 30, tzinfo=UTC),
        output_dir=output,
        **extra,
    )


def test_progress_per_file_and_cancel_between_files(root, tmp_path):
    reports: list[tuple[int, int, str]] = []
    ctx = context(root, tmp_path / "out", progress=lambda *report: reports.append(report))
    WordCountJob(wordcount()["config"]).run(ctx)
    assert reports == [
        (0, 2, "counting notes/a.txt"),
        (1, 2, "counting notes/sub/b.txt"),
        (2, 2, "counted 2 files"),
    ]

    def cancel_during_the_first_file(done: int, total: int, message: str) -> None:
        if done == 0:
            ctx.cancelled.set()

    ctx = context(root, tmp_path / "cancelled", progress=cancel_during_the_first_file)
    with pytest.raises(WordCountFailed, match="cancelled after 1 of 2 files"):
        WordCountJob(wordcount()["config"]).run(ctx)
    assert not (tmp_path / "cancelled" / "wordcount.csv").exists()


def test_no_match_is_an_invalid_result_and_limits_fail_clearly(root, tmp_path):
    ctx = context(root, tmp_path / "out")
    text, table = WordCountJob({"folder": "notes", "pattern": "*.csv"}).run(ctx)
    assert (text.value, text.valid, table.valid) == ("no file matches", False, False)
    assert (tmp_path / "out" / "wordcount.csv").read_bytes() == b"file,lines,words,characters\r\n"
    with pytest.raises(WordCountFailed, match=r"matches more than max_files \(1\)"):
        WordCountJob(wordcount(max_files=1)["config"]).run(ctx)
    (root / "notes" / "latin.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(WordCountFailed, match=r"notes/latin\.txt is not utf-8 text"):
        WordCountJob(wordcount(errors="strict")["config"]).run(ctx)
    text, _ = WordCountJob(wordcount(pattern="latin.txt", encoding="latin-1")["config"]).run(ctx)
    assert text.value.splitlines()[0] == "1 1 5 notes/latin.txt"
    with pytest.raises(WordCountFailed, match="'missing' is not a folder"):
        WordCountJob({"folder": "missing"}).run(ctx)
    hidden, _ = WordCountJob(wordcount(include_hidden=True)["config"]).run(ctx)
    assert "notes/.hidden/c.txt" in hidden.value


def test_append_line_joins_texts_and_refuses_a_folder(root, tmp_path):
    ctx = context(root, tmp_path / "out", settings=AppendLineSettings(max_line_length=30))
    results = [Result("text", "a\nb", job="one"), Result("text", "c", job="two")]
    AppendLineAction({"path": "log.txt", "template": "{run.id} {results}", "separator": "; "}).run(
        ctx, results
    )
    AppendLineAction({"path": "log.txt", "template": "{unknown} " + "x" * 40}).run(ctx, results)
    assert (root / "log.txt").read_text(encoding="utf-8").splitlines() == [
        "7 a; b; c",
        "{unknown} " + "x" * 14 + " [...]",
    ]
    with pytest.raises(IsADirectoryError, match="'notes' is a folder"):
        AppendLineAction({"path": "notes"}).run(ctx, results)


# --- the inbox trigger's watch on real files --------------------------------------------------

REGISTRY = Registry.from_entry_points()


def inbox_trigger(**config: Any) -> InboxTrigger:
    """An inbox trigger built the way the server builds it."""
    entry = REGISTRY.validate("trigger", inbox(**config), "triggers[0]")
    trigger = REGISTRY.instantiate("trigger", entry)
    assert isinstance(trigger, InboxTrigger)
    return trigger


class Watching(WatchRecorder):
    """Records the inbox trigger's events."""

    def __init__(self, trigger: InboxTrigger, root: Path) -> None:
        super().__init__(trigger, root, startup=0.1)

    def names(self) -> list[str]:
        return [event["inbox.name"] for event in self.events]


async def test_a_file_counts_once_it_stopped_changing(tmp_path):
    drop = tmp_path / "inbox"
    async with Watching(inbox_trigger(settle=0.4), tmp_path) as watching:
        assert drop.is_dir()  # the watch created the missing folder
        with open(drop / "big.csv", "w", encoding="utf-8") as slow:
            for part in range(4):
                slow.write(f"part {part}\n")
                slow.flush()
                await asyncio.sleep(0.15)
            last_write = time.monotonic()
        await watching.until(1)
        await asyncio.sleep(0.6)
    assert watching.events == [{"inbox.file": "inbox/big.csv", "inbox.name": "big.csv"}]
    assert watching.arrivals[0] - last_write >= 0.4 - 0.15


async def test_only_new_matching_regular_files_directly_in_the_folder_count(tmp_path):
    drop = tmp_path / "inbox"
    (drop / "sub").mkdir(parents=True)
    (drop / "before.csv").write_text("was here first")
    outside = tmp_path / "elsewhere.csv"
    outside.write_text("not in the inbox")
    async with Watching(inbox_trigger(pattern="*.csv"), tmp_path) as watching:
        (drop / "notes.txt").write_text("pattern does not match")
        (drop / ".hidden.csv").write_text("hidden")
        (drop / "sub" / "nested.csv").write_text("in a subfolder")
        (drop / "folder.csv").mkdir()
        os.symlink(outside, drop / "link.csv")
        (drop / "before.csv").write_text("changed, but no new file")
        (drop / "a.csv").write_text("new")
        await watching.until(1)
        # Changing a file that started a run is no new file; deleting and dropping it again is.
        (drop / "a.csv").write_text("new, changed")
        await asyncio.sleep(SETTLE + 0.3)
        (drop / "a.csv").unlink()
        await asyncio.sleep(0.1)
        (drop / "a.csv").write_text("dropped again")
        await watching.until(2)
        await asyncio.sleep(SETTLE + 0.3)
    assert watching.names() == ["a.csv", "a.csv"]
    assert watching.events[0] == {"inbox.file": "inbox/a.csv", "inbox.name": "a.csv"}
    assert (drop / "before.csv").exists() and (drop / "a.csv").exists()


async def test_a_done_folder_takes_waiting_files_oldest_first_and_never_overwrites(tmp_path):
    drop, done = tmp_path / "inbox", tmp_path / "inbox" / "done"
    done.mkdir(parents=True)
    (done / "report.csv").write_text("handled yesterday")
    for age, name in ((30, "report.csv"), (60, "older.csv"), (10, "newest.csv")):
        (drop / name).write_text(name)
        stamp = time.time() - age
        os.utime(drop / name, (stamp, stamp))
    async with Watching(inbox_trigger(done_folder="inbox/done"), tmp_path) as watching:
        await watching.until(3)
        (drop / "report.csv").write_text("today's")
        await watching.until(4)
    assert watching.events == [
        {"inbox.file": "inbox/done/older.csv", "inbox.name": "older.csv"},
        {"inbox.file": "inbox/done/report-2.csv", "inbox.name": "report.csv"},
        {"inbox.file": "inbox/done/newest.csv", "inbox.name": "newest.csv"},
        {"inbox.file": "inbox/done/report-3.csv", "inbox.name": "report.csv"},
    ]
    assert os.listdir(drop) == ["done"]
    assert (done / "report.csv").read_text() == "handled yesterday"
    assert (done / "report-2.csv").read_text() == "report.csv"
    assert (done / "report-3.csv").read_text() == "today's"


async def test_the_watch_refuses_bad_folders_and_stops_when_the_folder_goes(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    os.symlink(tmp_path, root / "up")
    (root / "notes.txt").write_text("a file, not a folder")
    for config, field, words in (
        ({"folder": "up/inbox"}, "folder", "outside your root folder"),
        ({"folder": "inbox", "done_folder": "up/done"}, "done_folder", "outside your root"),
        ({"folder": "notes.txt"}, "folder", "'notes.txt' is a file"),
    ):
        stop = asyncio.Event()
        with pytest.raises(InvalidConfig, match=words) as info:
            async for _ in inbox_trigger(**config).watch(root, stop):
                pass
        assert info.value.field == field
    assert not (tmp_path / "inbox").exists() and not (tmp_path / "done").exists()

    stop = asyncio.Event()
    events = inbox_trigger().watch(root, stop)
    waiting = asyncio.create_task(anext(events))
    await asyncio.sleep(0.1)
    (root / "inbox").rmdir()
    with pytest.raises(InboxGone, match="was removed"):
        await asyncio.wait_for(waiting, 5)
    # The other triggers sharing the stop event are not stopped by this one ending.
    assert not stop.is_set()
