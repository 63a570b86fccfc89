"""The ``inbox`` trigger: start the task once per file dropped into a folder under the root."""

from __future__ import annotations

import asyncio
import os
import posixpath
import shutil
import stat
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import aclosing
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

from watchfiles import Change, DefaultFilter, awatch

from jupyter_taskplanner.components import EventTrigger, StopSignal
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.paths import OwnerFiles
from jupyter_taskplanner.vocabulary import MAX_SECONDS

from . import with_defaults

Signature = tuple[int, int]
"""(size, modification time in ns) of a file: a file that keeps it has settled."""


class InboxGone(RuntimeError):
    """The watched folder was removed while the trigger watched it."""


class InboxFilter(DefaultFilter):
    """Passes changes of the files an inbox takes, and of the inbox folder itself.

    A file counts when it lies directly in the folder, its name matches the pattern and is
    not hidden, and watchfiles does not ignore it by default (editor swap files and such).
    """

    def __init__(self, folder: Path, pattern: str) -> None:
        super().__init__()
        self.folder = folder
        self.pattern = pattern

    def __call__(self, change: Change, path: str) -> bool:
        changed = Path(path)
        # The folder's own events tell the watch that it was removed.
        return changed == self.folder or (
            changed.parent == self.folder and self.takes(change, changed.name)
        )

    def takes(self, change: Change, name: str) -> bool:
        """Whether a file of this name belongs to the inbox."""
        # Only the name goes to the default filter: the root's own path may contain an
        # ignored folder name (a .venv somewhere above), which must not hide every file.
        return (
            not name.startswith(".")
            and fnmatchcase(name, self.pattern)
            and super().__call__(change, name)
        )


def signature(path: Path) -> tuple[Signature, int] | None:
    """The signature and modification time of a regular file, or None for anything else.

    Links are not followed, so a link in the inbox never starts a run for a file elsewhere.
    """
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return (info.st_size, info.st_mtime_ns), info.st_mtime_ns


def move_into(source: Path, folder: Path) -> Path:
    """Move a file into ``folder``, renamed ``name-2.ext``, ... if the name is taken there.

    Never overwrites: the new name is reserved by creating it exclusively, then replaced.
    """
    folder.mkdir(parents=True, exist_ok=True)
    stem, suffix = posixpath.splitext(source.name)
    target, number = folder / source.name, 1
    while True:
        try:
            os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            number += 1
            target = folder / f"{stem}-{number}{suffix}"
    try:
        shutil.move(source, target)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target


class InboxTrigger(EventTrigger):
    """Starts the task once per file that appears in a folder, when the file is complete."""

    type_name: ClassVar[str] = "inbox"
    title: ClassVar[str] = "Inbox folder"
    description: ClassVar[str] = (
        "Starts the task once per file dropped into a folder under your root folder, when the "
        "file has stopped changing; {inbox.file} is its path and {inbox.name} its name. With "
        "a done folder, each file is moved there as its run starts."
    )
    example_config: ClassVar[dict[str, Any] | None] = {
        "folder": "inbox",
        "pattern": "*.csv",
        "done_folder": "inbox/done",
    }
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "Inbox folder",
        "additionalProperties": False,
        "required": ["folder"],
        "properties": {
            "folder": {
                "x-path": "folder",
                "type": "string",
                "minLength": 1,
                "title": "Folder",
                "description": "The inbox, relative to your root folder; created when missing. "
                "Only files directly in it count, not those in subfolders.",
                "examples": ["inbox", "data/incoming"],
            },
            "pattern": {
                "type": "string",
                "minLength": 1,
                "title": "File name pattern",
                "description": "Only files whose name matches this glob count, e.g. *.csv. "
                "Hidden files (names starting with a dot) never count.",
                "default": "*",
                "examples": ["*.csv", "order-*.json"],
            },
            "done_folder": {
                "x-path": "folder",
                "type": "string",
                "minLength": 1,
                "title": "Move handled files to",
                "description": "A folder relative to your root folder, created when missing. "
                "Each file is moved there as its run starts ({inbox.file} names it there), "
                "renamed name-2.ext if the name is taken, and files already waiting when the "
                "watch starts are handled first, oldest first. Set the task's overlap to "
                "queue or parallel so that no file's run is skipped. Empty: files stay where "
                "they are and only new ones start the task.",
                "examples": ["inbox/done"],
            },
            "settle": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_SECONDS,
                "default": 1,
                "title": "Settle time (seconds)",
                "description": "A file counts once it has not changed for this long, so a "
                "file still being written or copied is not taken half done.",
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if "/" in config.get("pattern", ""):
            raise InvalidConfig(
                "the pattern matches file names only, without '/'; put the folder in folder",
                field="pattern",
            )
        done = config.get("done_folder")
        if done is not None and posixpath.normpath(done) == posixpath.normpath(config["folder"]):
            raise InvalidConfig(
                "done_folder must differ from folder, or each moved file would arrive again",
                field="done_folder",
            )

    def place(self, root: Path, path: str, field: str) -> Path:
        """The absolute folder ``path`` below ``root`` (resolved); refuses one outside it or
        in the planner's own folders (``files``, set by the server).

        The server checked the ``x-path`` fields when the task was saved; a link made since
        may lead elsewhere, so the resolved path is checked again here.
        """
        return (self.files or OwnerFiles(root)).resolve(path, field)

    async def watch(self, root: Path, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        """Yield ``inbox.file`` and ``inbox.name`` once per settled new file, until ``stop``.

        Files due at the same moment come oldest first.  With a done folder the file is moved
        before its event is yielded, so the run finds it at ``inbox.file``.
        """
        config = with_defaults(self.config_schema, self.config)
        settle: float = config["settle"]
        root = root.resolve()
        folder = self.place(root, config["folder"], "folder")
        done = config.get("done_folder")
        done_folder = self.place(root, done, "done_folder") if done else None
        if done_folder == folder:
            raise InvalidConfig("done_folder must differ from folder", field="done_folder")
        try:
            # mkdir is quick, but on a slow network file system it would stall every task.
            await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        except FileExistsError:
            raise InvalidConfig(
                f"folder {config['folder']!r} is a file; give a folder", field="folder"
            ) from None

        watch_filter = InboxFilter(folder, config["pattern"])
        halt = StopSignal(stop)
        changes: asyncio.Queue[set[tuple[Change, str]] | None] = asyncio.Queue()
        clock = asyncio.get_running_loop().time
        # name -> (when it last changed, on the loop's clock; its signature then)
        pending: dict[str, tuple[float, Signature]] = {}
        # Names already started (or there at the start without a done folder): a change
        # of such a file is no new file; it counts again once it was deleted.
        handled: set[str] = set()
        pump = asyncio.create_task(self._pump(folder, watch_filter, halt, changes))
        try:
            # awatch has its watch in place before it first waits, so once the pump has had
            # a turn no file is missed: what appears from now on is scanned and reported.
            await asyncio.sleep(0)
            for name, (sig, mtime) in await asyncio.to_thread(self._scan, folder, watch_filter):
                if done_folder is None:
                    handled.add(name)
                else:
                    # Dated by its modification time: a file resting there for long is due.
                    age = max(time.time() - mtime / 1e9, 0)
                    pending[name] = (clock() - age, sig)
            while True:
                due = min(when for when, _ in pending.values()) + settle if pending else None
                batch = await self._next_batch(changes, due)
                if batch is None:
                    break
                self._note(folder, batch, pending, handled, clock())
                for name in self._settled(folder, pending, settle, clock()):
                    path = folder / name
                    if done_folder is not None:
                        try:
                            path = await asyncio.to_thread(move_into, path, done_folder)
                        except FileNotFoundError:
                            continue  # taken away before it could be moved
                    else:
                        handled.add(name)
                    yield {"inbox.file": path.relative_to(root).as_posix(), "inbox.name": name}
        finally:
            halt.set()
            await pump  # ends within one watchfiles step; re-raises what stopped it

    @staticmethod
    async def _pump(
        folder: Path,
        watch_filter: InboxFilter,
        halt: StopSignal,
        changes: asyncio.Queue[set[tuple[Change, str]] | None],
    ) -> None:
        """Put each batch of changes into ``changes``; None when the watch ends."""
        try:
            batches = awatch(folder, watch_filter=watch_filter, recursive=False, stop_event=halt)
            async with aclosing(batches):
                async for batch in batches:
                    changes.put_nowait(batch)
        finally:
            changes.put_nowait(None)

    @staticmethod
    async def _next_batch(
        changes: asyncio.Queue[set[tuple[Change, str]] | None], due: float | None
    ) -> set[tuple[Change, str]] | None:
        """The next batch of changes, or an empty one once the loop's clock reaches ``due``."""
        try:
            async with asyncio.timeout_at(due):
                return await changes.get()
        except TimeoutError:
            return set()

    @staticmethod
    def _scan(folder: Path, watch_filter: InboxFilter) -> list[tuple[str, tuple[Signature, int]]]:
        """The files in the inbox now, with signature and modification time."""
        found = []
        with os.scandir(folder) as entries:
            for entry in entries:
                if watch_filter.takes(Change.added, entry.name):
                    known = signature(Path(entry.path))
                    if known is not None:
                        found.append((entry.name, known))
        return found

    @staticmethod
    def _note(
        folder: Path,
        batch: Iterable[tuple[Change, str]],
        pending: dict[str, tuple[float, Signature]],
        handled: set[str],
        now: float,
    ) -> None:
        """Record a batch of changes: a new or changed file waits (again) to settle."""
        by_name: dict[str, set[Change]] = {}
        for change, path in batch:
            if Path(path) == folder:
                if not folder.is_dir():
                    raise InboxGone(
                        f"the inbox folder {folder} was removed; save the task again to watch "
                        "it once it is back"
                    )
                continue
            by_name.setdefault(Path(path).name, set()).add(change)
        for name, kinds in by_name.items():
            # A batch is a set: a file deleted and created again shows both, in no order.
            if Change.deleted in kinds:
                handled.discard(name)
                pending.pop(name, None)
            known = signature(folder / name)
            if known is None:
                pending.pop(name, None)
            elif name not in handled:
                pending[name] = (now, known[0])

    @staticmethod
    def _settled(
        folder: Path, pending: dict[str, tuple[float, Signature]], settle: float, now: float
    ) -> list[str]:
        """Take the files that have not changed for ``settle`` seconds, oldest first.

        A file whose signature changed without a reported change waits again.
        """
        ready: list[tuple[int, str]] = []
        for name, (when, sig) in list(pending.items()):
            if when + settle > now:
                continue
            known = signature(folder / name)
            if known is None:
                del pending[name]
            elif known[0] != sig:
                pending[name] = (now, known[0])
            else:
                del pending[name]
                ready.append((known[1], name))
        return [name for _, name in sorted(ready)]
