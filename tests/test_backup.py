"""Data safety: backup while a server runs, restore, and damaged or newer databases refused."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from jupyter_taskplanner.testing import Cli, ServerProcess, cli_environment, free_port


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(cli_environment(tmp_path), tmp_path / "db" / "tasks.db")


def names(cli: Cli) -> list[str]:
    return [task["name"] for task in cli.json("list", "--json")]


def test_backup_while_served_then_restore_once_stopped(cli: Cli, tmp_path: Path) -> None:
    assert cli.db is not None
    root = tmp_path / "root"
    root.mkdir()
    server = ServerProcess(root, cli.db, tmp_path / "server.log")
    try:
        for name in ("first", "second"):
            server.call("POST", "/tasks", {"name": name, "enabled": False})
        backup = tmp_path / "backups" / "tasks.db"
        assert "backed up" in cli("backup", str(backup)).stdout
        # Refused while the server uses the database, and over an existing file.
        assert "stop it before restoring" in cli.fails("restore", str(backup))
        assert "--force" in cli.fails("backup", str(backup))
        server.call("POST", "/tasks", {"name": "after the backup", "enabled": False})
    finally:
        server.stop()
    assert names(cli) == ["first", "second", "after the backup"]

    restored = cli("restore", str(backup)).stdout
    assert names(cli) == ["first", "second"]
    [replaced] = [
        path
        for path in cli.db.parent.iterdir()
        if ".replaced-" in path.name and path.suffix != ".db-wal"
    ]
    assert str(replaced) in restored
    with sqlite3.connect(replaced) as kept:
        assert kept.execute("SELECT count(*) FROM tasks").fetchone() == (3,)


def test_a_damaged_or_newer_database_is_refused_and_left_as_it_is(cli: Cli, tmp_path: Path) -> None:
    assert cli.db is not None
    cli("create", "-", stdin='{"name": "kept"}')
    good = tmp_path / "good.db"
    cli("backup", str(good))

    cli.db.write_bytes(b"not a database at all" * 100)
    for path in cli.db.parent.glob("tasks.db-*"):
        path.unlink()
    damaged = cli.db.read_bytes()
    assert "cannot be used" in cli.fails("list") and "restore" in cli.fails("list")
    # A server refuses it too, saying why in its log, and writes nothing.
    assert "cannot be used" in server_log_with(
        cli, tmp_path, "jupyter-taskplanner is not available"
    )
    assert cli.db.read_bytes() == damaged
    assert "not a task planner database" in cli.fails("restore", str(cli.db))
    cli("restore", str(good))
    assert names(cli) == ["kept"]

    set_schema_version(cli.db, 99)
    newer = cli.db.read_bytes()
    assert "newer than this jupyter-taskplanner knows" in cli.fails("list")
    assert cli.db.read_bytes() == newer
    set_schema_version(good, 99)
    assert "newer than this jupyter-taskplanner knows" in cli.fails("restore", str(good))


def set_schema_version(path: Path, version: int) -> None:
    """Mark a database as written by another version (checkpointed into the file itself)."""
    with closing(sqlite3.connect(path)) as db:
        db.execute("UPDATE schema_version SET version = ?", [version])
        db.commit()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def server_log_with(cli: Cli, tmp_path: Path, text: str) -> str:
    """Start a Jupyter server on the CLI's database until its log says ``text``; the log."""
    log = tmp_path / "refused.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={free_port()}",
                f"--ServerApp.root_dir={tmp_path}",
                f"--TaskPlannerApp.db_path={cli.db}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=cli.env,
        )
        try:
            deadline = time.monotonic() + 60
            while text not in log.read_text(errors="replace"):
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(30)
    return log.read_text(errors="replace")
