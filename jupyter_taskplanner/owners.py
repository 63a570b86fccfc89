"""Where each owner's files and run records live: the one folders policy of the planner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import PermissionDenied
from .paths import OwnerFiles

DATABASE_SIDECARS = ("", "-wal", "-shm", "-journal", ".watch-lock")


def folder_name(owner: str) -> str:
    """``owner`` checked to name one folder: the planner puts it into paths.

    A user name that is empty, ``.`` or ``..``, or holds a slash, a backslash or a NUL
    would lead elsewhere (``/home/{owner}`` with ``..`` is every home), so such a user
    has no folders here and cannot use the planner (``PermissionDenied``).
    """
    if owner in ("", ".", "..") or any(char in owner for char in "/\\\0"):
        raise PermissionDenied(
            f"the user name {owner[:80]!r} cannot name a folder (it is empty, '.' or '..', or "
            "holds '/', '\\' or a NUL), so this user has no files or runs here"
        )
    return owner


@dataclass(frozen=True)
class OwnerFolders:
    """The folders of the planner and of every owner.

    ``root_template`` holds ``{owner}`` (``/home/{owner}``); empty means every owner's root
    is ``default_root`` (the server's root folder).  Run records live in ``runs_dir``,
    snapshots of inputs beside it; neither, nor the database, is any task's to use.
    """

    database: Path
    runs_dir: Path
    default_root: Path
    root_template: str = ""

    def root(self, owner: str) -> Path:
        """The folder of ``owner``'s files, where their jobs run and paths are resolved."""
        folder_name(owner)
        if self.root_template:
            try:
                return Path(self.root_template.format(owner=owner)).expanduser()
            except RuntimeError:  # '~{owner}' of an owner without a system account
                raise PermissionDenied(
                    f"{owner!r} has no home folder on this server, which the planner's "
                    f"owner_root_template {self.root_template!r} needs"
                ) from None
        return self.default_root.expanduser()

    def files(self, owner: str) -> OwnerFiles:
        """What ``owner``'s tasks may open: their root, without the planner's own folders."""
        return OwnerFiles(self.root(owner), self.private(owner))

    def private(self, owner: str) -> tuple[Path, ...]:
        """The planner's own folders (database, run records, snapshots), as ``owner`` sees them.

        The database's folder is private unless it holds ``owner``'s root (a database kept in
        the root itself); then only the database's own files are.
        """
        database = self.database.expanduser()
        folders = [self.runs_dir.expanduser(), self.snapshots_dir]
        root = self.root(owner).resolve()
        if database.parent.resolve() in (root, *root.parents):
            folders.extend(database.with_name(database.name + end) for end in DATABASE_SIDECARS)
        else:
            folders.append(database.parent)
        return tuple(folders)

    @property
    def snapshots_dir(self) -> Path:
        return self.runs_dir.expanduser().parent / "snapshots"

    def snapshots(self, owner: str) -> Path:
        """Where input snapshots of ``owner``'s tasks (frozen notebooks) are kept."""
        return self.snapshots_dir / folder_name(owner)

    def run_folder(self, owner: str, run_id: int) -> Path:
        """Where the logs and result files of one run live."""
        return self.runs_dir.expanduser() / folder_name(owner) / str(run_id)

    def previews(self, owner: str) -> Path:
        """Where series previews of ``owner``'s tasks compute (removed after each)."""
        return self.runs_dir.expanduser() / folder_name(owner) / "previews"
