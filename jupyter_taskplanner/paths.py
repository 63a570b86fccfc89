"""Containment of the paths tasks name: inside the owner's root, outside the planner's folders.

Every file or folder a component opens, whatever field or URL names it, goes through
``OwnerFiles``: the path is resolved (symlinks followed) and must lie inside the owner's root
folder and outside the planner's private folders (its database, run records and snapshots),
which no task may read or write, even when they lie inside the root.

Components declare their path fields in their config schema with ``"x-path"``:

- ``"file"``, ``"folder"`` or ``"path"`` (either): resolved against the owner's root;
- ``"glob"``: a pattern relative to another folder, which may not be absolute or climb ``..``;
- ``"url"``: a URL (or a list of them) naming a place elsewhere: one naming this server's
  files (``file:``, ``local:``) is refused; the component checks its own schemes further.

The server checks those fields when a task is saved (placeholders stand for any plain name
then) and again at run time with the placeholders filled, so a path that can never work is
refused with a 400 naming its field, and one that a placeholder turns bad fails the run.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import InvalidConfig

PATH_KINDS = ("file", "folder", "path", "glob", "url")
FILE_KINDS = ("file", "folder", "path")
"""The kinds of ``x-path`` field that name a file or folder of the owner's."""
LOCAL_SCHEMES = frozenset({"file", "local"})
"""URL schemes that name this server's own files (fsspec, urllib, SQLAlchemy spellings)."""
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


@dataclass(frozen=True)
class OwnerFiles:
    """The owner's root folder and the folders no task of theirs may reach."""

    root: Path
    private: tuple[Path, ...] = ()

    # Resolved when a path is first checked (most saved tasks name none), then kept.
    @functools.cached_property
    def _resolved_root(self) -> Path:
        return Path(self.root).resolve()

    @functools.cached_property
    def _resolved_private(self) -> tuple[Path, ...]:
        return tuple(Path(folder).resolve() for folder in self.private)

    def allows(self, resolved: Path) -> bool:
        """Whether an already resolved absolute path is the owner's to use."""
        root = self._resolved_root
        if resolved != root and root not in resolved.parents:
            return False
        return not any(_within(resolved, folder) for folder in self._resolved_private)

    def contains(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` (relative to the root, or absolute) resolves to the owner's files."""
        return self.allows((self._resolved_root / path).resolve())

    def resolve(
        self, path: str | os.PathLike[str], field: str = "path", shown: str | None = None
    ) -> Path:
        """The absolute, resolved ``path``; ``InvalidConfig`` at ``field`` if it escapes.

        ``shown`` is the text the user wrote, for the message (default: ``path``).
        """
        root = self._resolved_root
        resolved = (root / path).resolve()
        what = _shown(path if shown is None else shown)
        if resolved != root and root not in resolved.parents:
            raise InvalidConfig(f"{field}: {what} is outside your root folder {root}", field=field)
        if not self.allows(resolved):
            raise InvalidConfig(
                f"{field}: {what} leads into the task planner's own data folder, which tasks "
                "may not use",
                field=field,
            )
        return resolved

    def keep(self, paths: Iterable[Path]) -> Iterator[Path]:
        """The paths among ``paths`` (from a glob, say) that resolve to the owner's files.

        A glob follows symlinks in the folders it walks, so each match is checked itself.
        """
        for path in paths:
            if self.allows(path.resolve()):
                yield path

    # -- opening what was checked -------------------------------------------------------
    # Checking a path and opening it are two steps: a folder on the way (or the file) swapped
    # for a link in between would lead the open elsewhere, with the server's rights (actions
    # run in the server).  These open a resolved path folder by folder from the root, each
    # below the one before and refusing links, so what they reach is what was checked.

    def open(
        self, resolved: Path, flags: int = os.O_RDONLY, mode: int = 0o666, *, parents: bool = False
    ) -> int:
        """A file descriptor of ``resolved`` (a path ``resolve`` gave), no link followed.

        ``parents``: missing folders on the way are made.  A link put in the way since the
        path was checked is an ``InvalidConfig``; other failures are the usual ``OSError``.
        """
        folder, name = self._folder_of(resolved, parents)
        try:
            return os.open(name, flags | os.O_NOFOLLOW, mode, dir_fd=folder)
        except OSError as exc:
            raise _link_refused(resolved, exc) from None
        finally:
            os.close(folder)

    def make_folders(self, resolved: Path) -> None:
        """``mkdir -p`` of a resolved folder, no link followed (see ``open``)."""
        os.close(self._walk(resolved, self._parts(resolved), parents=True))

    def unlink(self, resolved: Path) -> None:
        """Delete the file ``resolved``, no link followed on the way (see ``open``)."""
        folder, name = self._folder_of(resolved, parents=False)
        try:
            os.unlink(name, dir_fd=folder)
        finally:
            os.close(folder)

    def _parts(self, resolved: Path) -> tuple[str, ...]:
        if not self.allows(resolved):
            raise InvalidConfig(f"{_shown(str(resolved))} is not among your files")
        return resolved.relative_to(self._resolved_root).parts

    def _folder_of(self, resolved: Path, parents: bool) -> tuple[int, str]:
        parts = self._parts(resolved)
        if not parts:
            raise IsADirectoryError(f"{resolved} is your root folder, not a file")
        return self._walk(resolved, parts[:-1], parents), parts[-1]

    def _walk(self, resolved: Path, parts: tuple[str, ...], parents: bool) -> int:
        """A descriptor of the folder ``parts`` below the root, each entered without a link."""
        folder = os.open(self._resolved_root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for part in parts:
                if parents:
                    # There already, or made meanwhile by another run: entered all the same.
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, dir_fd=folder)
                try:
                    inner = os.open(
                        part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=folder
                    )
                except OSError as exc:
                    raise _link_refused(resolved, exc) from None
                os.close(folder)
                folder = inner
        except BaseException:
            os.close(folder)
            raise
        return folder


def _link_refused(resolved: Path, exc: OSError) -> Exception:
    """``exc``, or an ``InvalidConfig`` if it says a link was met where none may be."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return InvalidConfig(
            f"{_shown(str(resolved))}: a link was put in its way since it was checked, so it "
            "is not opened"
        )
    return exc


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _shown(path: str | os.PathLike[str]) -> str:
    text = str(path)
    return repr(text if len(text) <= 120 else text[:117] + "...")


def check_glob(pattern: str, field: str, shown: str | None = None) -> None:
    """Refuse a pattern that could match outside the folder it is relative to."""
    parts = PurePosixPath(pattern.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts:
        what = _shown(pattern if shown is None else shown)
        raise InvalidConfig(
            f"{field}: {what} must stay inside its folder (no leading / and no ..)", field=field
        )


def check_url_field(url: str, field: str) -> None:
    """Refuse a URL naming this server's files (also chained, ``simplecache::file://``).

    The URL is never quoted: it may hold a password or a token.
    """
    for piece in url.split("::"):
        scheme = piece.partition(":")[0] if ":" in piece else ""
        if scheme.lower().partition("+")[0] in LOCAL_SCHEMES:
            raise InvalidConfig(
                f"{field}: a {scheme.lower()}: URL names this server's files, which a URL may "
                "not do; give a file of yours in a path field instead",
                field=field,
            )


def path_fields(schema: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(dotted field, kind)`` of every property marked ``x-path`` in a config schema."""
    for name, spec in (schema.get("properties") or {}).items():
        if not isinstance(spec, dict):
            continue
        dotted = f"{prefix}{name}"
        kind = spec.get("x-path")
        if kind is not None:
            if kind not in PATH_KINDS:
                raise TypeError(f"x-path of {dotted!r} must be one of {PATH_KINDS}, not {kind!r}")
            yield dotted, kind
        if spec.get("type") == "object":
            yield from path_fields(spec, f"{dotted}.")


def config_value(config: dict[str, Any], dotted: str) -> Any:
    """The value of a dotted field of a config (``condition.expression``), or None."""
    value: Any = config
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def check_path_fields(
    schema: dict[str, Any], config: dict[str, Any], files: OwnerFiles, *, template: bool
) -> None:
    """Check every ``x-path`` field of ``config``; ``InvalidConfig`` names the first bad one.

    With ``template`` (when a task is saved), each placeholder stands for a plain name, so
    ``reports/{region}`` passes and ``{region}/../../etc`` does not.
    """
    for dotted, kind in path_fields(schema):
        value = config_value(config, dotted)
        if kind == "url":
            for url in value if isinstance(value, list) else [value]:
                if isinstance(url, str):
                    check_url_field(url, dotted)
            continue
        if not isinstance(value, str) or not value:
            continue
        text = _PLACEHOLDER.sub("x", value) if template else value
        if kind == "glob":
            check_glob(text, dotted, shown=value)
        else:
            files.resolve(text, dotted, shown=value)
