"""The save action's pruning by name pattern, and saving to remote storage (a real FTP server).

Every name pattern the documentation shows is pruned in a folder under the root and on the
FTP server alike; remote URLs are checked so that none reaches this server's own files, and
their passwords stay out of the API, the messages and the logs.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jupyter_taskplanner.actions.save import SaveAction, SaveError, name_glob
from jupyter_taskplanner.components import Registry, Result, RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import create_task, validate_as_saved, wait_for_run

# pyftpdlib builds on asyncore and asynchat, deprecated in the Python versions that have them.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.ioloop import IOLoop
    from pyftpdlib.servers import FTPServer

STARTED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
USER, PASSWORD = "reports", "s3cret-Passw0rd"
DAY = 86400


@dataclass
class Ftp:
    """A running FTP server: one user, whose files are under ``home``."""

    host: str
    port: int
    home: Path

    def url(self, path: str = "") -> str:
        return f"ftp://{USER}@{self.host}:{self.port}/{path}"


def ftp_server(home: Path, handler_class: type | None = None) -> Iterator[Ftp]:
    """Serve ``home`` over FTP on 127.0.0.1 from a thread, until the generator is closed."""
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(home), perm="elradfmwMT")
    # A refused login is answered at once, not after pyftpdlib's 3 s against guessing.
    settings = {"authorizer": authorizer, "auth_failed_timeout": 0}
    handler = type("Handler", (handler_class or FTPHandler,), settings)
    server = FTPServer(("127.0.0.1", 0), handler, ioloop=IOLoop())
    stop = threading.Event()

    def serve() -> None:
        # One loop turn at a time, so the thread notices stop; close_all in the same thread.
        while not stop.is_set():
            server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, name="test-ftp", daemon=True)
    thread.start()
    try:
        yield Ftp(*server.address, home)
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[Ftp]:
    home = tmp_path / "ftp-home"
    home.mkdir()
    yield from ftp_server(home)


@pytest.fixture
def ftp_without_mlsd(tmp_path: Path) -> Iterator[Ftp]:
    """An FTP server that lists folders with LIST only, whose dates tell no year."""
    home = tmp_path / "old-ftp-home"
    home.mkdir()
    commands = {name: spec for name, spec in FTPHandler.proto_cmds.items() if name != "MLSD"}
    yield from ftp_server(home, type("NoMlsd", (FTPHandler,), {"proto_cmds": commands}))


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """A run of task 3 (run 7) for alice, for the region north."""
    root, output = tmp_path / "root", tmp_path / "output"
    root.mkdir()
    output.mkdir()
    return RunContext(
        owner="alice",
        owner_root=root,
        task_id=3,
        task_name="Monthly",
        run_id=7,
        started=STARTED,
        output_dir=output,
        placeholders={"region": "north", "customer": "ACME"},
        private_folders=(root / ".planner",),
        log=logging.getLogger("test.save"),
    )


def file_result(ctx: RunContext, name: str, content: str = "new") -> Result:
    (ctx.output_dir / name).write_text(content)
    return Result("file", name, job="report")


def make_files(folder: Path, names: list[str], age_days: float) -> None:
    """Files under ``folder`` last changed ``age_days`` ago."""
    when = time.time() - age_days * DAY
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old")
        os.utime(path, (when, when))


def files_in(folder: Path) -> list[str]:
    return sorted(
        path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()
    )


def invalid(registry: Registry, config: dict) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(registry, "action", {"type": "save", "config": config}, "actions[0]")
    return caught.value


# --- which files the pattern prunes ---------------------------------------------------------

# Every name pattern of docs/usage.md, the README and the schema's descriptions, and some the
# docs allow (subfolders, formats, a literal [ and *), with what the run saves, then names it
# could have made in another run and names it could not.
PATTERNS = {
    "{filename}": ("report.html", ["data.csv", ".hidden"], ["sub/report.html"]),
    "{stem}_{date}{suffix}": (
        "report_2024-05-06.html",
        ["report_2024-01-01.html", "data_2023-12-31.csv", "x_"],
        ["report-2024-01-01.html", "report.html", "sub/report_2024-01-01.html"],
    ),
    "{stem}-{date}{suffix}": (
        "report-2024-05-06.html",
        ["sales-north-2026-12-01.html", "report-2024-01-01.ipynb"],
        ["sales_north.html", "report"],
    ),
    "{region}-{date}{suffix}": (
        "north-2024-05-06.html",
        ["south-2024-01-01.csv", "east-2023-01-01.html"],
        ["south_2024.csv", "north.html"],
    ),
    "{stem}_{date}_{time}{suffix}": (
        "report_2024-05-06_070809.html",
        ["report_2024-01-01_070000.html", "data_2023-01-01_000000.csv"],
        ["report_2024.html"],
    ),
    "{run.id}-{filename}": ("7-report.html", ["3-report.html", "4-data.csv"], ["report.html"]),
    "{date}/{stem}{suffix}": (
        "2024-05-06/report.html",
        ["2024-01-01/report.html", "2023-12-31/data.csv"],
        ["report.html", "2024-01-01/deeper/report.html"],
    ),
    "{run.started:%Y}/{region}/{filename}": (
        "2024/north/report.html",
        ["2023/south/report.html", "2022/north/data.csv"],
        ["2023/report.html", "2023/south/x/report.html"],
    ),
    "[draft] {stem}*{suffix}": (
        "[draft] report*.html",
        ["[draft] old*.html", "[draft] x*.csv"],
        ["d old*.html", "[draft] old.html"],
    ),
}


@pytest.mark.parametrize("where", ["folder", "ftp"])
@pytest.mark.parametrize("pattern", PATTERNS)
def test_pruning_deletes_old_matching_files_only(request, ctx, where, pattern):
    saved, matching, other = PATTERNS[pattern]
    if where == "ftp":
        server = request.getfixturevalue("ftp")
        folder = server.home / "archive"
        config = {"url": server.url("archive"), "storage_options": {"password": PASSWORD}}
    else:
        folder = ctx.owner_root / "archive"
        config = {"folder": "archive"}
    make_files(folder, [*matching[1:], *other], age_days=10)
    make_files(folder, matching[:1], age_days=6)

    config |= {"name": pattern, "delete_older_than_days": 7}
    SaveAction(config).run(ctx, [file_result(ctx, "report.html")])

    assert files_in(folder) == sorted([saved, matching[0], *other])
    assert (folder / saved).read_text() == "new"


@pytest.mark.parametrize("where", ["folder", "ftp"])
def test_files_saved_by_the_run_are_never_pruned(request, ctx, where):
    if where == "ftp":
        server = request.getfixturevalue("ftp")
        folder = server.home
        config = {"url": server.url(), "storage_options": {"password": PASSWORD}}
    else:
        folder = ctx.owner_root / "out"
        config = {"folder": "out"}
    make_files(folder, ["data_2024-01-01.csv"], age_days=0.01)
    # A nanosecond makes everything old, even what this run just wrote: only its own files stay.
    config |= {"name": "{stem}_{date}{suffix}", "delete_older_than_days": 1e-14}
    results = [file_result(ctx, "report.html"), file_result(ctx, "data.csv")]
    SaveAction(config | {"overwrite": False, "save_text": True}).run(
        ctx, [*results, Result("text", "42", job="count")]
    )
    assert files_in(folder) == [
        "count_2024-05-06.txt",
        "data_2024-05-06.csv",
        "report_2024-05-06.html",
    ]


def test_the_glob_of_a_pattern():
    assert name_glob("{stem}_{date}{suffix}") == "*_*"
    assert name_glob("{a}{b}{c}") == "*"
    assert name_glob("[x] {stem}_{run.started:%Y}*.html") == "[[]x] *_*[*].html"
    assert name_glob("{date}/{filename}") == "*/*"
    # What fill_placeholders leaves as it is is matched as it is.
    assert name_glob("{not a placeholder} {}.csv") == "{not a placeholder} {}.csv"


def test_pruning_stays_inside_the_folder_and_the_owners_files(ctx, tmp_path):
    folder = ctx.owner_root / "archive"
    outside = tmp_path / "outside"
    make_files(outside, ["report_2024-01-01.html", "2024-01-01/report_x.html"], age_days=10)
    make_files(ctx.owner_root, ["report_2024-01-01.html"], age_days=10)
    make_files(folder, ["report_2024-02-01.html"], age_days=10)
    (folder / "link_2024-01-01.html").symlink_to(outside / "report_2024-01-01.html")
    (folder / "linked_dir").symlink_to(outside / "2024-01-01")
    (folder / "up_2024").symlink_to(ctx.owner_root / "report_2024-01-01.html")

    for name in ("{stem}_{date}{suffix}", "{date}/{stem}{suffix}"):
        SaveAction({"folder": "archive", "name": name, "delete_older_than_days": 7}).run(
            ctx, [file_result(ctx, "report.html")]
        )
    assert files_in(outside) == ["2024-01-01/report_x.html", "report_2024-01-01.html"]
    assert (ctx.owner_root / "report_2024-01-01.html").exists()
    assert sorted(path.name for path in folder.iterdir()) == [
        "2024-05-06",
        "link_2024-01-01.html",
        "linked_dir",
        "report_2024-05-06.html",
        "up_2024",
    ]

    # The planner's own folders, even inside the folder, are not the owner's to prune.
    private = ctx.private_folders[0]
    make_files(ctx.owner_root, [".planner/db_2024.sqlite", "2024-01-01/a.html"], age_days=10)
    SaveAction({"folder": ".", "name": "{date}/{filename}", "delete_older_than_days": 7}).run(
        ctx, []
    )
    assert (private / "db_2024.sqlite").exists()
    assert not (ctx.owner_root / "2024-01-01" / "a.html").exists()


# --- saving to FTP --------------------------------------------------------------------------


def ftp_config(ftp: Ftp, path: str = "", **config) -> dict:
    return {"url": ftp.url(path), "storage_options": {"password": PASSWORD}, **config}


def test_saves_files_and_texts_with_placeholders_in_the_path_and_name(ctx, ftp, caplog):
    results = [
        file_result(ctx, "report.html", "<h1>ACME</h1>"),
        file_result(ctx, "archive.tar.gz", "zipped"),
        Result("text", "42 customers", job="count"),
        Result("none", job="ping"),
    ]
    config = ftp_config(ftp, "reports/{customer}/", name="{region}/{stem}_{date}{suffix}")
    with caplog.at_level(logging.INFO, "test.save"):
        SaveAction(config | {"save_text": True}).run(ctx, results)
    folder = ftp.home / "reports" / "ACME"
    assert files_in(folder) == [
        "north/archive.tar_2024-05-06.gz",
        "north/count_2024-05-06.txt",
        "north/report_2024-05-06.html",
    ]
    assert (folder / "north" / "report_2024-05-06.html").read_text() == "<h1>ACME</h1>"
    assert (folder / "north" / "count_2024-05-06.txt").read_text() == "42 customers"
    assert f"saved {ftp.url('reports/ACME/north/report_2024-05-06.html')}" in caplog.text
    assert PASSWORD not in caplog.text

    # Without save_text, texts are not saved; the folder is made even when nothing is.
    SaveAction(ftp_config(ftp, "texts")).run(ctx, results[2:3])
    assert (ftp.home / "texts").is_dir()
    assert files_in(ftp.home / "texts") == []


def test_the_protocol_may_be_written_in_capitals(ctx, ftp):
    config = {
        "url": ftp.url("out").replace("ftp://", "FTP://"),
        "storage_options": {"password": PASSWORD},
    }
    SaveAction(config).run(ctx, [file_result(ctx, "report.html")])
    assert files_in(ftp.home / "out") == ["report.html"]


def test_numbers_the_names_unless_it_overwrites(ctx, ftp):
    result = file_result(ctx, "data.csv")
    for content in ("one", "two", "three"):
        (ctx.output_dir / "data.csv").write_text(content)
        SaveAction(ftp_config(ftp, "keep", overwrite=False)).run(ctx, [result])
        SaveAction(ftp_config(ftp, "latest")).run(ctx, [result])
    assert {
        name: (ftp.home / "keep" / name).read_text() for name in files_in(ftp.home / "keep")
    } == {
        "data.csv": "one",
        "data-1.csv": "two",
        "data-2.csv": "three",
    }
    assert files_in(ftp.home / "latest") == ["data.csv"]
    assert (ftp.home / "latest" / "data.csv").read_text() == "three"


def test_a_wrong_password_fails_without_repeating_it(ctx, ftp):
    config = {"url": ftp.url("out"), "storage_options": {"password": "wrong-Passw0rd"}}
    with pytest.raises(SaveError) as caught:
        SaveAction(config).run(ctx, [file_result(ctx, "report.html")])
    message = str(caught.value)
    assert message.startswith(f"could not connect to {ftp.url('out')}: 530")
    assert "wrong-Passw0rd" not in message
    # No chained exception for the traceback in the step's log to quote.
    assert caught.value.__suppress_context__
    assert not (ftp.home / "out").exists()


def test_an_unreachable_server_fails_clearly(ctx, ftp):
    config = {"url": f"ftp://{USER}@127.0.0.1:1/out", "storage_options": {"password": PASSWORD}}
    with pytest.raises(SaveError, match=r"could not connect to ftp://reports@127\.0\.0\.1:1/out"):
        SaveAction(config).run(ctx, [file_result(ctx, "report.html")])


def test_pruning_fails_where_the_server_tells_no_times(ctx, ftp_without_mlsd):
    ftp = ftp_without_mlsd
    make_files(ftp.home, ["report_2024-01-01.html"], age_days=400)
    config = ftp_config(ftp, name="{stem}_{date}{suffix}", delete_older_than_days=7)
    with pytest.raises(SaveError, match=r"nothing deleted: ftp:// does not tell when .*changed"):
        SaveAction(config).run(ctx, [file_result(ctx, "report.html")])
    # Saved all the same; nothing deleted.
    assert files_in(ftp.home) == ["report_2024-01-01.html", "report_2024-05-06.html"]


def test_a_placeholder_cannot_lead_the_path_up(ctx, ftp):
    ctx.placeholders["customer"] = "../../elsewhere"
    with pytest.raises(InvalidConfig, match="may not climb") as caught:
        SaveAction(ftp_config(ftp, "reports/{customer}")).run(ctx, [file_result(ctx, "a.csv")])
    assert caught.value.field == "url"
    ctx.placeholders["customer"] = "../x"
    with pytest.raises(InvalidConfig, match="leads outside the folder") as caught:
        SaveAction(ftp_config(ftp, "out", name="{customer}/{filename}")).run(
            ctx, [file_result(ctx, "a.csv")]
        )
    assert caught.value.field == "name"
    assert files_in(ftp.home) == []


# --- what a task may name -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///etc", "this server's own file system"),
        ("local:///etc", "this server's own file system"),
        ("FILE:///etc", "this server's own file system"),
        ("memory://reports", "this server's memory"),
        ("simplecache::ftp://host/out", "chained URLs"),
        ("dir://etc", "another file system"),
        ("reference://x", "another file system"),
        ("zip://x", "another file system"),
        ("tar://x", "another file system"),
        ("blockcache://x", "another file system"),
        ("generic://x", "another file system"),
        ("jupyter://127.0.0.1:8888/", "Jupyter server"),
        ("/etc", "must be a URL"),
        ("reports/out", "must be a URL"),
        ("nosuchfs://host/x", "not a protocol fsspec knows"),
        ("ftp://host/a/../../etc", "may not climb"),
        ("ftp://host/{region}/../..", "may not climb"),
        ("ftp://{host}/x", "in the path only"),
        ("{proto}://host/x", "must be a URL"),
    ],
)
def test_urls_that_could_reach_this_servers_files_are_refused(registry, url, problem):
    error = invalid(registry, {"url": url})
    assert error.field == "actions[0].config.url"
    assert problem in error.message


def test_a_password_in_the_url_is_refused_without_repeating_it(registry):
    error = invalid(registry, {"url": "ftp://reports:Top-Secret-1@host/out"})
    assert error.field == "actions[0].config.url"
    assert "put it in storage_options" in error.message
    assert "Top-Secret-1" not in error.message


def test_exactly_one_destination_and_options_only_for_remote(registry):
    error = invalid(registry, {"folder": "out", "url": "ftp://host/out"})
    assert error.field == "actions[0].config.url"
    error = invalid(registry, {"name": "{filename}"})
    assert error.field == "actions[0].config"
    assert "give folder" in error.message
    error = invalid(registry, {"folder": "out", "storage_options": {"password": "x"}})
    assert error.field == "actions[0].config.storage_options"


def test_storage_options_that_reach_this_servers_files_or_keys_are_refused(registry):
    for options in ({"protocol": "file"}, {"fs": "x"}, {"target_protocol": "file"}):
        error = invalid(registry, {"url": "ftp://host/out", "storage_options": options})
        assert error.field == "actions[0].config.storage_options"
    # sftp logs in with a password: never with this server's keys, agent or Kerberos ticket.
    for option in ("key_filename", "look_for_keys", "allow_agent", "gss_auth"):
        config = {"url": "sftp://host/out", "storage_options": {"password": "x", option: True}}
        error = invalid(registry, config)
        assert error.field == "actions[0].config.storage_options"
        assert option in error.message


def test_a_protocol_whose_package_is_missing_is_named(registry):
    try:
        import s3fs  # noqa: F401
    except ImportError:
        error = invalid(registry, {"url": "s3://bucket/reports"})
        assert error.field == "actions[0].config.url"
        assert "needs a package this server lacks" in error.message
        assert "s3fs" in error.message
    else:
        pytest.skip("s3fs is installed")


# --- through the server ---------------------------------------------------------------------


def program_job(**config) -> dict:
    """A command job: the files of data/ as file results, what it prints as a text result."""
    return {
        "type": "command",
        "name": "export",
        "config": {
            "program": "echo",
            "args": ["42 customers"],
            "output_glob": "data/*.csv",
            "stdout_result": True,
            **config,
        },
    }


async def test_a_task_saves_to_ftp_and_never_shows_the_password(api, jp_root_dir, ftp):
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "sales.csv").write_text("region,total\nnorth,3\n")
    make_files(ftp.home / "archive" / "north", ["sales-0.csv", "sales-1.csv"], age_days=30)
    alice = api("alice")
    save = {
        "type": "save",
        "config": {
            "url": ftp.url("archive/{region}"),
            "storage_options": {"password": PASSWORD},
            "name": "{stem}-{run.id}{suffix}",
            "save_text": True,
            "delete_older_than_days": 7,
        },
    }
    task = await create_task(alice, jobs=[program_job()], actions=[save])
    (saved,) = task["actions"]
    assert saved["secrets"] == ["storage_options"]
    assert "storage_options" not in saved["config"]
    read = await alice("GET", f"/tasks/{task['id']}")
    assert read.status == 200, read
    assert read.body["actions"][0]["secrets"] == ["storage_options"]
    assert PASSWORD not in str(read.body)

    # Sent back as read, the password stays stored.
    replaced = await alice(
        "PUT", f"/tasks/{task['id']}", read.body, headers={"If-Match": read.headers["ETag"]}
    )
    assert replaced.status == 200, replaced
    assert PASSWORD not in str(replaced.body)

    started = await alice("POST", f"/tasks/{task['id']}/run", {"parameters": {"region": "north"}})
    assert started.status == 202, started
    run = await wait_for_run(alice, started.body["id"])
    assert run["status"] == "succeeded", run
    folder, number = ftp.home / "archive" / "north", run["id"]
    assert files_in(folder) == [f"export-{number}.txt", f"sales-{number}.csv"]
    assert (folder / f"sales-{number}.csv").read_text() == "region,total\nnorth,3\n"
    assert (folder / f"export-{number}.txt").read_text().strip() == "42 customers"
    log = await alice("GET", f"/runs/{run['id']}/log")
    assert PASSWORD not in str(log.body)


async def test_a_wrong_password_fails_the_step_and_the_log_keeps_it_secret(api, jp_root_dir, ftp):
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "sales.csv").write_text("x")
    alice = api("alice")
    save = {
        "type": "save",
        "config": {"url": ftp.url("out"), "storage_options": {"password": "Not-The-0ne"}},
    }
    task = await create_task(alice, jobs=[program_job(stdout_result=False)], actions=[save])
    started = await alice("POST", f"/tasks/{task['id']}/run", {})
    assert started.status == 202, started
    run = await wait_for_run(alice, started.body["id"])
    assert run["status"] == "failed", run
    (step,) = [step for step in run["steps"] if step["kind"] == "action"]
    assert step["status"] == "failed"
    assert step["error"].startswith(f"SaveError: could not connect to {ftp.url('out')}: 530")
    log = await alice("GET", f"/runs/{run['id']}/log")
    assert log.status == 200, log
    assert "530" in str(log.body)
    assert "Not-The-0ne" not in str(log.body) + str(run)


async def test_the_api_refuses_a_local_url(api):
    alice = api("alice")
    for url in ("file:///etc", "memory://x", "/etc"):
        reply = await alice(
            "POST", "/tasks", {"name": "x", "actions": [{"type": "save", "config": {"url": url}}]}
        )
        assert reply.status == 400, reply
        assert reply.body["field"] == "actions[0].config.url", reply
