"""`jupyter taskplanner backup` and `restore`: the task database, copied safely."""

from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path

from traitlets import Bool, TraitError

from .cli import CommandFailed, TaskPlannerCommand, _common_aliases, _common_flags
from .errors import StoreError
from .owners import DATABASE_SIDECARS
from .store import SCHEMA_VERSION, Store, check_database, copy_database


class _DatabaseCommand(TaskPlannerCommand):
    """Base of the commands that work on the database file itself, not on its tasks."""

    arguments = "PATH"
    database: Path

    def start(self) -> None:
        [path] = self.positional()
        try:
            self.database = Path(self.local_settings().db_path)
        except TraitError as exc:
            raise CommandFailed(f"bad configuration: {exc}") from None
        try:
            self.work(Path(path).expanduser())
        except StoreError as exc:
            raise CommandFailed(exc.message) from None
        except OSError as exc:
            raise CommandFailed(f"{exc.filename or path}: {exc.strerror}") from None

    def work(self, path: Path) -> None:
        raise NotImplementedError


class BackupCommand(_DatabaseCommand):
    """Copy the task database to a file, safely while servers use it."""

    description = (
        "Copy the task database (tasks, runs, schedules) to PATH with SQLite's online backup: "
        "a consistent copy, safe while servers use the database. Run files are not included."
    )
    examples = "jupyter taskplanner backup ~/backups/tasks-$(date +%F).db"
    flags = {
        **_common_flags,
        "force": ({"BackupCommand": {"force": True}}, "Replace PATH if it exists."),
    }
    aliases = _common_aliases

    force = Bool(False, config=True, help="Replace PATH if it exists.")

    def work(self, path: Path) -> None:
        if path.exists() and not self.force:
            raise CommandFailed(f"{path} exists; pass --force to replace it")
        if not self.database.exists():
            raise CommandFailed(f"there is no task database at {self.database}")
        check_database(self.database)
        partial = path.with_name(path.name + ".partial")
        partial.unlink(missing_ok=True)
        copy_database(self.database, partial)
        check_database(partial)
        partial.replace(path)
        print(f"backed up {self.database} to {path}")


class RestoreCommand(_DatabaseCommand):
    """Replace the task database with a backup, keeping the replaced one beside it."""

    description = (
        "Replace the task database with the backup PATH (checked first: a damaged file, or one "
        "of a newer version, is refused). No server may use the database meanwhile: stop them "
        "first. The replaced database is kept beside it, renamed *.replaced-<time>."
    )
    examples = "jupyter taskplanner restore ~/backups/tasks-2026-12-01.db"
    aliases = _common_aliases
    flags = _common_flags

    def work(self, path: Path) -> None:
        version = check_database(path)
        self._refuse_when_served()
        kept = self._set_aside()
        copy_database(path, self.database)
        # Migrate an older backup now, so the next server starts on the current schema.
        Store(self.database).close()
        print(
            f"restored {self.database} from {path} (schema {version}"
            + (f", migrated to {SCHEMA_VERSION}" if version < SCHEMA_VERSION else "")
            + ")"
            + (f"; the replaced database is {kept}" if kept else "")
        )

    def _refuse_when_served(self) -> None:
        """A running server holds the lock next to the database (``listeners``)."""
        lock = self.database.with_name(f"{self.database.name}.watch-lock")
        if not lock.exists():
            return
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CommandFailed(
                f"a server uses {self.database}; stop it before restoring"
            ) from None
        finally:
            os.close(fd)

    def _set_aside(self) -> Path | None:
        """Rename the current database (and its WAL files) out of the way; its new name."""
        if not self.database.exists():
            return None
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = self.database.with_name(f"{self.database.name}.replaced-{stamp}")
        for end in DATABASE_SIDECARS:
            current = self.database.with_name(self.database.name + end)
            if current.exists() and end != ".watch-lock":
                current.rename(kept.with_name(kept.name + end))
        return kept
