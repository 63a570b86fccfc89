"""The file trigger's watch on real files: debouncing, filters, missing paths, stopping."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components.registry import Registry
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import WatchRecorder
from jupyter_taskplanner.triggers.file import FileTrigger

REGISTRY = Registry.from_entry_points()
DEBOUNCE = 0.4
STARTUP = 0.3  # time for the watch to be in place before a test writes


def make(**config: Any) -> FileTrigger:
    """A file trigger built the way the server builds it."""
    entry = REGISTRY.validate("trigger", {"type": "file", "config": config}, "triggers[0]")
    trigger = REGISTRY.instantiate("trigger", entry)
    assert isinstance(trigger, FileTrigger)
    return trigger


class Watching(WatchRecorder):
    """Records the file trigger's events."""

    def files(self, index: int) -> list[str]:
        return self.events[index]["trigger.files"].split("\n")


async def burst(folder: Path, names: list[str], gap: float = 0.03) -> float:
    """Write the files one after another; return when the last write happened."""
    for name in names:
        (folder / name).write_text(name)
        await asyncio.sleep(gap)
    return time.monotonic() - gap


async def test_a_burst_fires_once_after_the_quiet_period_and_the_next_burst_again(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    names = [f"f{index}.csv" for index in range(10)]
    async with Watching(make(path="in", debounce=DEBOUNCE), tmp_path) as watching:
        last_write = await burst(inbox, names)
        await watching.until(1)
        assert watching.arrivals[0] - last_write >= DEBOUNCE
        assert sorted(watching.files(0)) == [f"in/{name}" for name in names]
        assert watching.events[0]["trigger.file"] == "in/f9.csv"
        await asyncio.sleep(DEBOUNCE + 0.3)
        assert len(watching.events) == 1

        last_write = await burst(inbox, ["g0.csv", "f3.csv"])
        await watching.until(2)
        assert watching.arrivals[1] - last_write >= DEBOUNCE
        assert sorted(watching.files(1)) == ["in/f3.csv", "in/g0.csv"]
        assert watching.events[1]["trigger.file"] == "in/f3.csv"
        await asyncio.sleep(DEBOUNCE + 0.3)
        assert len(watching.events) == 2


async def test_pattern_keeps_only_matching_names(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    async with Watching(make(path="in", pattern="*.csv", debounce=DEBOUNCE), tmp_path) as watching:
        await burst(inbox, ["notes.txt", "data.csv", "data.CSV", "more.txt"])
        await watching.until(1)
        assert watching.events[0] == {"trigger.files": "in/data.csv", "trigger.file": "in/data.csv"}
        # Only non-matching changes: nothing fires.
        await burst(inbox, ["notes.txt", "other.json"])
        await asyncio.sleep(DEBOUNCE + 0.3)
        assert len(watching.events) == 1


@pytest.mark.parametrize("recursive", [False, True])
async def test_subfolders_count_only_when_recursive(tmp_path, recursive):
    sub = tmp_path / "in" / "sub"
    sub.mkdir(parents=True)
    checkpoints = tmp_path / "in" / ".ipynb_checkpoints"
    checkpoints.mkdir()
    trigger = make(path="in", recursive=recursive, debounce=DEBOUNCE)
    async with Watching(trigger, tmp_path) as watching:
        # Jupyter's checkpoints never count.
        await burst(checkpoints, ["deep-checkpoint.csv"])
        await burst(sub, ["deep.csv"])
        await asyncio.sleep(DEBOUNCE + 0.3)
        if recursive:
            assert watching.files(0) == ["in/sub/deep.csv"]
        else:
            assert watching.events == []
        await burst(tmp_path / "in", ["top.csv"])
        await watching.until(2 if recursive else 1)
        assert watching.events[-1]["trigger.file"] == "in/top.csv"


async def test_a_single_file_survives_atomic_saves(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "report.csv").write_text("old")
    async with Watching(make(path="in/report.csv", debounce=DEBOUNCE), tmp_path) as watching:
        await burst(inbox, ["other.csv"])
        # Editors save by writing a temporary file and renaming it over the old one.
        (inbox / "report.csv.tmp").write_text("new")
        os.replace(inbox / "report.csv.tmp", inbox / "report.csv")
        await watching.until(1)
        assert watching.files(0) == ["in/report.csv"]
        (inbox / "report.csv").write_text("newer")
        await watching.until(2)
        assert watching.files(1) == ["in/report.csv"]


async def test_a_path_that_does_not_exist_yet_is_waited_for(tmp_path):
    trigger = make(path="later/inbox", debounce=DEBOUNCE)
    async with Watching(trigger, tmp_path) as watching:
        (tmp_path / "unrelated.csv").write_text("x")
        (tmp_path / "later" / "inbox").mkdir(parents=True)
        await asyncio.sleep(0.1)
        await burst(tmp_path / "later" / "inbox", ["a.csv"])
        await watching.until(1)
        files = watching.files(0)
        assert "later/inbox/a.csv" in files
        assert set(files) <= {"later/inbox", "later/inbox/a.csv"}


async def test_a_deleted_and_recreated_folder_is_still_watched(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    async with Watching(make(path="in", debounce=DEBOUNCE), tmp_path) as watching:
        shutil.rmtree(inbox)
        await watching.until(1)
        inbox.mkdir()
        await asyncio.sleep(0.2)
        await burst(inbox, ["new.csv"])
        await watching.until(2)
        assert "in/new.csv" in watching.files(1)


async def test_stop_ends_the_watch_promptly_and_drops_a_pending_burst(tmp_path):
    (tmp_path / "in").mkdir()
    async with Watching(make(path="in", debounce=5), tmp_path) as watching:
        await burst(tmp_path / "in", ["a.csv"])
        await asyncio.sleep(0.2)
        started = time.monotonic()
        watching.stop.set()
        await asyncio.wait_for(watching.task, 1)
        assert time.monotonic() - started < 0.5
        assert watching.events == []


async def test_cancelling_a_watch_leaves_the_shared_stop_event_alone(tmp_path):
    stop = asyncio.Event()

    async def consume() -> None:
        async for _ in make(path=".", debounce=DEBOUNCE).watch(tmp_path, stop):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(STARTUP)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 0.5
    assert not stop.is_set()


async def first_event(trigger: FileTrigger, root: Path) -> dict[str, Any]:
    async for event in trigger.watch(root, asyncio.Event()):
        return event
    raise AssertionError("the watch ended without an event")


async def test_paths_outside_the_root_are_refused(tmp_path):
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    for path in (str(outside), "link/data", "/etc"):
        with pytest.raises(InvalidConfig, match="outside your root folder") as caught:
            await first_event(make(path=path), root)
        assert caught.value.field == "path"
    # An absolute path inside the root is fine.
    assert make(path=str(root / "in")).target(root) == (root / "in").resolve()


async def test_missing_root_and_file_parents_are_refused(tmp_path):
    with pytest.raises(InvalidConfig, match=r"root folder .* does not exist"):
        await first_event(make(path="in"), tmp_path / "nobody")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidConfig, match=r"notes\.txt is a file"):
        await first_event(make(path="notes.txt/inner"), tmp_path)
