"""The ``file`` trigger: a file or folder changed, debounced, watched with watchfiles."""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator
from contextlib import aclosing
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, ClassVar

from watchfiles import Change, DefaultFilter, awatch

from ..components.base import EventTrigger, StopSignal
from ..errors import InvalidConfig
from ..paths import OwnerFiles
from ..vocabulary import MAX_SECONDS


class ChangeFilter(DefaultFilter):
    """Keeps the changes a file trigger fires for, plus those of the watched folder itself.

    Ignores what watchfiles ignores by default (``.git``, ``__pycache__``, editor swap
    files, ...) and Jupyter's checkpoints, below the target only.
    """

    ignore_dirs = (*DefaultFilter.ignore_dirs, ".ipynb_checkpoints")

    def __init__(self, target: Path, folder: Path, recursive: bool, pattern: str | None) -> None:
        super().__init__()
        self.target = target
        self.folder = str(folder)
        self.recursive = recursive
        self.pattern = pattern

    def __call__(self, change: Change, path: str) -> bool:
        # The watched folder's own events tell the watch that the folder vanished.
        return path == self.folder or self.matches(change, path)

    def matches(self, change: Change, path: str) -> bool:
        """Whether a change of ``path`` fires the trigger."""
        changed = Path(path)
        if changed != self.target and self.target not in changed.parents:
            return False
        below = changed.relative_to(self.target)
        if len(below.parts) > 1 and not self.recursive:
            return False
        if self.pattern and not fnmatchcase(changed.name, self.pattern):
            return False
        return super().__call__(change, str(below) if below.parts else changed.name)


def changed_at(path: str) -> tuple[float, str]:
    """Order of changes inside one batch: by modification time; deleted paths come last."""
    try:
        return os.stat(path).st_mtime_ns, path
    except OSError:
        return math.inf, path


class FileTrigger(EventTrigger):
    """Fires after changes of a file or folder below the owner's root, once things go quiet."""

    type_name: ClassVar[str] = "file"
    title: ClassVar[str] = "File change"
    description: ClassVar[str] = (
        "Starts the task when a file or folder changes, once no further change came for a "
        "few seconds; {trigger.files} and {trigger.file} name what changed."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "title": "File change",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "x-path": "path",
                "type": "string",
                "minLength": 1,
                "title": "File or folder",
                "description": "Relative to your root folder ('.' is the root itself). It may "
                "not exist yet: the trigger then waits for it to appear.",
                "examples": ["data/incoming", "reports/input.csv"],
            },
            "recursive": {
                "type": "boolean",
                "default": True,
                "title": "Include subfolders",
                "description": "Changes anywhere below the folder count; off: only files "
                "directly in it.",
            },
            "pattern": {
                "type": "string",
                "minLength": 1,
                "title": "File name pattern",
                "description": "Only names matching this glob count, e.g. *.csv; empty: all.",
                "examples": ["*.csv", "report-*.xlsx"],
            },
            "debounce": {
                "type": "number",
                "minimum": 0.1,
                "maximum": MAX_SECONDS,
                "default": 5,
                "title": "Quiet period (seconds)",
                "description": "Fire only after this long without a further change, so a burst "
                "of changes starts the task once.",
            },
        },
    }

    def __init__(self, config: dict[str, Any], name: str = "") -> None:
        super().__init__(config, name)
        self.path: str = config["path"]
        self.recursive: bool = config.get("recursive", True)
        self.pattern: str | None = config.get("pattern")
        self.debounce: float = config.get("debounce", 5)

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if "/" in config.get("pattern", ""):
            raise InvalidConfig(
                "the pattern matches file names only, without '/'; put folders in the path "
                "(and tick 'Include subfolders' for nested ones)",
                field="pattern",
            )

    def target(self, root: Path) -> Path:
        """The absolute watched path below ``root`` (symlinks followed); refuses one that
        escapes it or leads into the planner's own folders (``files``, when set)."""
        files = self.files if self.files is not None else OwnerFiles(root)
        return files.resolve(self.path, "path")

    async def watch(self, root: Path, stop: asyncio.Event) -> AsyncIterator[dict[str, Any]]:
        """Yield the run's placeholders once per burst of changes, until ``stop`` is set.

        A burst ends after ``debounce`` seconds without a further matching change.  The
        placeholders are ``trigger.files`` (the changed paths relative to ``root``, one a
        line, oldest change first) and ``trigger.file`` (the last changed path).
        """
        root = root.resolve()
        target = self.target(root)
        halt = StopSignal(stop)
        changes: asyncio.Queue[list[str] | None] = asyncio.Queue()
        pump = asyncio.create_task(self._pump(root, target, halt, changes))
        pending: dict[str, None] = {}  # an ordered set: the latest change last
        try:
            while True:
                try:
                    async with asyncio.timeout(self.debounce if pending else None):
                        batch = await changes.get()
                except TimeoutError:
                    if halt.is_set():
                        break
                    paths = [Path(path).relative_to(root).as_posix() for path in pending]
                    pending.clear()
                    yield {"trigger.files": "\n".join(paths), "trigger.file": paths[-1]}
                    continue
                if batch is None:
                    break
                for path in batch:
                    pending.pop(path, None)
                    pending[path] = None
        finally:
            halt.set()
            await pump  # ends within one watchfiles step; re-raises what stopped it

    async def _pump(
        self, root: Path, target: Path, halt: StopSignal, changes: asyncio.Queue[list[str] | None]
    ) -> None:
        """Put each batch of matching changes into ``changes``; None when the watch ends."""
        try:
            while not halt.is_set():
                folder, recursive = self._watched_folder(root, target)
                watch_filter = ChangeFilter(target, folder, self.recursive, self.pattern)
                batches = awatch(
                    folder, watch_filter=watch_filter, recursive=recursive, stop_event=halt
                )
                async with aclosing(batches):
                    async for batch in batches:
                        matched = sorted(
                            {p for c, p in batch if watch_filter.matches(c, p)}, key=changed_at
                        )
                        if matched:
                            changes.put_nowait(matched)
                        if not folder.is_dir():
                            # A deleted folder's watch never reports again: start over
                            # from its nearest existing parent.
                            break
        finally:
            changes.put_nowait(None)

    def _watched_folder(self, root: Path, target: Path) -> tuple[Path, bool]:
        """The folder to watch for ``target`` and whether to watch it recursively."""
        if target.is_dir():
            return target, self.recursive
        if target.exists():
            # A file: watch its folder, so a save that replaces the file is still seen.
            return target.parent, False
        folder = target
        while not folder.exists():
            if folder == root:
                raise InvalidConfig(f"your root folder {root} does not exist", field="path")
            folder = folder.parent
        if not folder.is_dir():
            raise InvalidConfig(
                f"{folder.relative_to(root)} is a file, so {self.path!r} cannot appear below it",
                field="path",
            )
        # Recursively: the target may appear as a folder whose contents count too.
        return folder, True
