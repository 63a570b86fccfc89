"""The `jupyter taskplanner` command line, run as real subprocesses against temp databases."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import BIN, CLI, Cli, cli_environment

# A real plugin, installed by putting its module and dist-info on PYTHONPATH: an action whose
# `token` is a secret (writeOnly), so the tests can check secrets never reach the output.
PLUGIN_MODULE = """
from jupyter_taskplanner.components.base import Action


class TokenAction(Action):
    type_name = "cli_test_token"
    config_schema = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "title": "URL"},
            "token": {"type": "string", "title": "Token", "writeOnly": True},
        },
        "required": ["url"],
        "additionalProperties": False,
    }

    def run(self, ctx, results):
        pass
"""
PLUGIN_ENTRY_POINTS = """[jupyter_taskplanner.components]
action.cli_test_token = cli_test_plugin:TokenAction
"""
SECRET = "s3cret-token-value"


@pytest.fixture(scope="session")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plugin")
    (root / "cli_test_plugin.py").write_text(PLUGIN_MODULE)
    dist_info = root / "cli_test_plugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cli-test-plugin\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(PLUGIN_ENTRY_POINTS)
    return root


@pytest.fixture
def env(tmp_path: Path, plugin_path: Path) -> dict[str, str]:
    """A private Jupyter config and data folder; the acting user is alice."""
    return cli_environment(tmp_path, PYTHONPATH=str(plugin_path))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "tasks.db"


@pytest.fixture
def cli(env: dict[str, str], db: Path) -> Cli:
    return Cli(env, db)


def write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def test_import_list_show_export_round_trip(cli: Cli, db: Path, tmp_path: Path) -> None:
    tasks = [
        {"name": "Morning report", "description": "daily", "settings": {"retries": 2}},
        {"name": "Cleanup", "enabled": False},
    ]
    assert cli("import", write_json(tmp_path / "in.json", tasks)).stdout.split() == ["1", "2"]
    store = Store(db)  # the CLI wrote to the database the server reads
    try:
        stored, total = store.list_tasks("alice")
    finally:
        store.close()
    assert total == 2 and stored[0]["name"] == "Morning report"

    table = cli("list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "ENABLED", "TRIGGERS"]
    assert table[1].split() == ["1", "Morning", "report", "yes", "-"]
    assert table[2].split() == ["2", "Cleanup", "no", "-"]

    listed = cli.json("list", "--json")
    assert [task["name"] for task in listed] == ["Morning report", "Cleanup"]
    assert all(task["owner"] == "alice" for task in listed)

    shown = cli.json("show", "1")
    assert shown["description"] == "daily" and shown["settings"]["retries"] == 2

    export = tmp_path / "export.json"
    assert cli("export", "1", "2", "-o", str(export)).stdout.strip() == (
        f"exported 2 task(s) to {export}"
    )
    document = json.loads(export.read_text())
    assert document["format"] == "jupyter-taskplanner"
    assert [task["name"] for task in document["tasks"]] == ["Morning report", "Cleanup"]

    # Imported again as it is, the export updates tasks 1 and 2 (their ids and revisions).
    assert cli("import", str(export)).stdout.split() == ["1", "2"]
    assert [task["revision"] for task in cli.json("list", "--json")] == [2, 2]
    # Without ids, it makes new tasks.
    for task in document["tasks"]:
        del task["id"], task["revision"]
    write_json(export, document)
    assert cli("import", str(export)).stdout.split() == ["3", "4"]
    again = cli.json("export", "3", "4")
    assert [task.pop("id") for task in again["tasks"]] == [3, 4]
    assert [task.pop("revision") for task in again["tasks"]] == [1, 1]
    assert again == document


async def test_the_server_sees_tasks_imported_by_the_cli(
    api: Any, env: dict[str, str], tmp_path: Path
) -> None:
    # The database of the conftest server (its TaskPlannerApp.db_path).
    cli = Cli(env, tmp_path / "planner" / "tasks.db")
    task_file = write_json(tmp_path / "t.json", {"name": "Seen by the server"})
    result = await asyncio.to_thread(cli, "import", task_file, "--owner", "alice")
    reply = await api("alice")("GET", f"/tasks/{result.stdout.strip()}")
    assert reply.status == 200 and reply.body["name"] == "Seen by the server", reply


def test_list_filters(cli: Cli, tmp_path: Path) -> None:
    tasks = [{"name": "Sales report"}, {"name": "Backup", "enabled": False}, {"name": "Report"}]
    cli("import", write_json(tmp_path / "t.json", tasks))
    names = lambda *args: [task["name"] for task in cli.json("list", "--json", *args)]  # noqa: E731
    assert names("--disabled") == ["Backup"]
    assert names("--enabled", "--search", "REPORT") == ["Sales report", "Report"]
    assert cli("list", "--search", "nothing like it").stdout.strip() == "no tasks"


def test_enable_and_disable(cli: Cli, tmp_path: Path) -> None:
    cli("import", write_json(tmp_path / "t.json", [{"name": "A"}, {"name": "B"}]))
    out = cli("disable", "1", "2").stdout.splitlines()
    assert out == ["task 1 'A' disabled", "task 2 'B' disabled"]
    assert cli("enable", "2").stdout.strip() == "task 2 'B' enabled"
    # One unknown id: nothing changes.
    assert cli.fails("enable", "1", "99") == "error: no task with id 99"
    assert [task["enabled"] for task in cli.json("list", "--json")] == [False, True]


def run_on_terminal(cli: Cli, answer: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with a pseudo-terminal as stdin and type ``answer``."""
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [CLI, *args, f"--db-path={cli.db}"],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=cli.env,
            text=True,
        )
        os.close(terminal)
        os.write(controller, answer.encode() + b"\n")
        stdout, stderr = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def test_delete_asks_for_confirmation(cli: Cli, tmp_path: Path) -> None:
    cli("import", write_json(tmp_path / "t.json", [{"name": "A"}, {"name": "B"}, {"name": "C"}]))
    # No terminal to ask on: refuse rather than guess.
    assert cli.fails("delete", "1", stdin="y\n") == (
        "error: not deleting task 1 'A': stdin is not a terminal; pass --yes"
    )
    declined = run_on_terminal(cli, "n", "delete", "1", "2")
    assert declined.returncode == 1
    assert "Delete task 1 'A', task 2 'B'? [y/N]" in declined.stderr
    assert declined.stderr.rstrip().endswith("error: nothing deleted")

    accepted = run_on_terminal(cli, "y", "delete", "1")
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.strip() == "task 1 'A' deleted"

    assert cli.fails("delete", "2", "9", "-y") == "error: no task with id 9"
    assert cli("delete", "2", "--yes").stdout.strip() == "task 2 'B' deleted"
    assert [task["id"] for task in cli.json("list", "--json")] == [3]


def test_owners(cli: Cli, tmp_path: Path) -> None:
    tasks = write_json(tmp_path / "t.json", [{"name": "Mine"}, {"name": "Bob's", "owner": "bob"}])
    # Without --all every imported task belongs to the acting owner, whatever the file says;
    # --all keeps the stored owner; --owner acts as someone else.
    assert cli("import", tasks).stdout.split() == ["1", "2"]
    assert cli("import", tasks, "--all").stdout.split() == ["3", "4"]
    assert cli("import", tasks, "--owner", "carol").stdout.split() == ["5", "6"]

    table = cli("list", "--all").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "ENABLED", "TRIGGERS", "OWNER"]
    owners = [line.split()[-1] for line in table[1:]]
    assert owners == ["alice", "alice", "alice", "bob", "carol", "carol"]
    assert [task["id"] for task in cli.json("list", "--json")] == [1, 2, 3]

    assert cli.fails("disable", "4") == (
        "error: task 4 belongs to 'bob'; pass --owner bob or --all to act on it"
    )
    assert cli("disable", "4", "--owner", "bob").stdout.strip() == 'task 4 "Bob\'s" disabled'


def test_secrets_are_never_printed(cli: Cli, tmp_path: Path) -> None:
    task = {
        "name": "Notify",
        "actions": [
            {"type": "cli_test_token", "config": {"url": "http://x.test", "token": SECRET}}
        ],
    }
    cli("import", write_json(tmp_path / "t.json", task))
    shown, listed, exported = (
        cli("show", "1").stdout,
        cli("list", "--json").stdout,
        cli("export", "1").stdout,
    )
    assert SECRET not in shown + listed + exported
    action = json.loads(shown)["actions"][0]
    assert action["config"] == {"url": "http://x.test"} and action["secrets"] == ["token"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{nope", "not valid JSON: Expecting property name enclosed in double quotes (line 1"),
        ('{"description": "x"}', "tasks[0].name: a task needs a name"),
        ('{"name": "x", "colour": "red"}', "tasks[0].colour: unknown field"),
        ('{"name": "x", "jobs": [{"type": "no_such_job"}]}', "unknown job type 'no_such_job'"),
        (
            '{"name": "x", "actions": [{"type": "cli_test_token", "config": {}}]}',
            "tasks[0].actions[0].config: 'url' is a required property",
        ),
        # What Python's json reads but JSON or UTF-8 cannot hold (each was a traceback).
        ('{"name": "x", "settings": {"timeout": NaN}}', "NaN is not a JSON number"),
        ('{"name": "\\ud800"}', "name: a text holds a lone surrogate"),
        ("[" * 100 + "]" * 100, "nests lists or objects more than 64 levels deep"),
    ],
)
def test_import_refuses_bad_files(cli: Cli, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    error = cli.fails("import", str(path))
    assert error.startswith(f"error: {path}: ") and message in error, error


def test_ids_and_numbers_past_the_database_are_usage_errors(cli: Cli) -> None:
    # Each was a traceback (OverflowError from SQLite, ValueError from int()).
    for args in (("show", "9" * 30), ("runs", "--log", "9" * 5000)):
        assert "a whole number from 1 to 2^63-1" in cli.fails(*args, expect=2)
    assert "should not be greater than" in cli.fails("runs", "--limit", "9" * 30, expect=2)


def test_import_is_all_or_nothing(cli: Cli, tmp_path: Path) -> None:
    path = write_json(tmp_path / "t.json", [{"name": "good"}, {"name": "bad", "enabled": "yes"}])
    message = cli.fails("import", path)
    assert message == f"error: {path}: tasks[1].enabled: 'yes' is not of type 'boolean'"
    assert cli("list").stdout.strip() == "no tasks"


def test_files_and_stdin(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    assert cli.fails("import", str(missing)) == (
        f"error: cannot read {missing}: No such file or directory"
    )
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes(b'{"name": "caf\xe9"}')
    assert cli.fails("import", str(latin1)) == f"error: {latin1}: not a UTF-8 text file"
    assert cli.fails("import", "-", stdin="[1,") == (
        "error: <stdin>: not valid JSON: Expecting value (line 1, column 4)"
    )
    assert cli("import", "-", stdin='{"name": "From stdin"}').stdout.strip() == "1"
    target = tmp_path / "no" / "such" / "dir.json"
    assert cli.fails("export", "1", "-o", str(target)) == (
        f"error: cannot write {target}: No such file or directory"
    )
    not_a_database = Cli(cli.env, latin1)
    assert not_a_database.fails("list") == (
        f"error: the task database {latin1} cannot be used (file is not a database); "
        "restore a backup with `jupyter taskplanner restore BACKUP`"
    )


def test_unknown_ids(cli: Cli) -> None:
    assert cli.fails("show", "42") == "error: no task with id 42"
    assert cli.fails("export", "abc", expect=2) == (
        "error: 'abc' is not a task id (a whole number from 1 to 2^63-1)"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "error: missing command (commands: list, show, enable, disable, delete, export"),
        (("frobnicate",), "error: unknown command 'frobnicate' (commands: list, show,"),
        (("list", "--jsno"), "error: unknown option --jsno"),
        (("export", "1", "-o"), "error: option -o needs a value"),
        (("list", "extra"), "error: unexpected argument 'extra' (usage: jupyter taskplanner list)"),
        (("enable",), "error: missing ID (usage: jupyter taskplanner enable ID...)"),
        (("show", "1", "2"), "error: one ID only, got 2 (usage: jupyter taskplanner show ID)"),
    ],
)
def test_usage_errors(env: dict[str, str], db: Path, args: tuple[str, ...], message: str) -> None:
    cli = Cli(env, None)
    argv = (*args, f"--db-path={db}") if args else ()
    assert cli.fails(*argv, expect=2).startswith(message)
    assert not db.exists()  # a wrong command line touches no database


def test_help_and_version(cli: Cli) -> None:
    usage = cli("--help").stdout
    assert all(command in usage for command in ("list", "show", "delete", "export", "import"))
    assert cli("--version").stdout.strip() == "0.1.0"


def test_config_files_choose_the_database(env: dict[str, str], tmp_path: Path) -> None:
    cli = Cli(env, None)
    task = write_json(tmp_path / "t.json", {"name": "A"})
    # No config: the database lives in the Jupyter data folder, like the server's.
    cli("import", task)
    assert (tmp_path / "data" / "taskplanner" / "taskplanner.db").is_file()

    config_dir = tmp_path / "config"
    config_dir.mkdir(exist_ok=True)
    server_db, extension_db = tmp_path / "server.db", tmp_path / "extension.db"
    write_json(
        config_dir / "jupyter_jupyter_taskplanner_config.json",
        {"TaskPlannerApp": {"db_path": str(extension_db)}},
    )
    cli("import", task)
    assert extension_db.is_file()
    # jupyter_server_config wins over the extension's own file, as in the server.
    (config_dir / "jupyter_server_config.py").write_text(
        f"c.TaskPlannerApp.db_path = {str(server_db)!r}\n"
    )
    assert cli("import", task).stdout.strip() == "1"
    assert server_db.is_file()
    # The command line wins over every file.
    cli_db = tmp_path / "cli.db"
    cli("list", f"--db-path={cli_db}")
    assert cli_db.is_file()
    # Settings the server would refuse, the CLI refuses too.
    (config_dir / "jupyter_server_config.py").write_text(
        "c.TaskPlannerApp.default_timezone = 'Mars/Olympus'\n"
    )
    assert cli.fails("list") == (
        "error: bad configuration: unknown timezone 'Mars/Olympus'; use an IANA name"
    )


def test_jupyter_finds_the_subcommand(env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "jupyter"), "taskplanner", "list", f"--db-path={tmp_path / 'tasks.db'}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no tasks"


def test_import_and_run_from_another_folder_use_the_configured_root(
    cli: Cli, env: dict[str, str], tmp_path: Path
) -> None:
    """The CLI resolves paths against ServerApp.root_dir, wherever it is started from."""
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    (root / "data").mkdir(parents=True)
    elsewhere.mkdir()
    notebook = Path(__file__).parent.parent / "notebooks" / "report.ipynb"
    (root / "report.ipynb").write_text(notebook.read_text())
    config = Path(env["JUPYTER_CONFIG_DIR"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "jupyter_server_config.py").write_text(f"c.ServerApp.root_dir = {str(root)!r}\n")
    job = {"type": "notebook", "config": {"path": "report.ipynb", "input": "snapshot"}}
    series = {"type": "csv", "config": {"path": "data/regions.csv"}}
    task = {"name": "From elsewhere", "jobs": [job], "series": series}
    cli("import", write_json(tmp_path / "task.json", task), cwd=elsewhere)
    [stored] = cli.json("list", "--json")
    snapshot = Path(stored["jobs"][0]["config"]["snapshot"])
    assert snapshot.is_file() and elsewhere not in snapshot.parents
    assert not (elsewhere / ".snapshots").exists()
    result = cli("run", str(stored["id"]), cwd=elsewhere, expect=1)
    assert f"'data/regions.csv' does not exist in your root folder {root}" in result.stderr


def test_create_from_yaml_or_json_reports_every_problem(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "report.yaml").write_text(
        "name: Morning report\n"
        "triggers:\n"
        "  - type: cron\n"
        "    config: {expression: '0 7 * * 1-5'}\n"
        "jobs:\n"
        "  - type: python\n"
        "    config: {function: 'reports:build'}\n"
    )
    assert cli("create", str(tmp_path / "report.yaml")).stdout.split() == ["1"]
    [task] = cli.json("list", "--json")
    assert task["triggers"][0]["config"]["expression"] == "0 7 * * 1-5"
    # Ids in the file are not this database's: create always creates.
    path = write_json(tmp_path / "two.json", [{"id": 1, "name": "A"}, {"name": "B"}])
    assert cli("create", path).stdout.split() == ["2", "3"]

    bad = [
        {"name": "x", "triggers": [{"type": "cron", "config": {"expression": "61 * * * *"}}]},
        {"name": "y", "settings": {"speed": 11}, "jobs": [{"type": "nope"}]},
    ]
    message = cli.fails("create", write_json(tmp_path / "bad.json", bad))
    for field in ("tasks[0].triggers[0].config.expression", "tasks[1].settings.speed"):
        assert field in message, message
    assert "tasks[1].jobs[0].type" in message
    assert message.count(";") == 2, message
    assert len(cli.json("list", "--json")) == 3
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert "not valid YAML" in cli.fails("create", str(tmp_path / "broken.yaml"))


@pytest.mark.parametrize(
    "args",
    [("run", "abc"), ("show", "1x"), ("enable", "1.5"), ("runs", "--log", "abc"), ("export", "0")],
)
def test_a_malformed_id_is_a_usage_error(cli: Cli, args: tuple[str, ...]) -> None:
    assert "is not a" in cli.fails(*args, expect=2)


def test_inside_a_users_server_under_jupyterhub_it_says_where_the_tasks_are(
    tmp_path: Path,
) -> None:
    """A user's server spawned by JupyterHub forwards to the service: the command line there
    has no database of its own, says so, and creates none."""
    hub = {
        "JUPYTERHUB_API_TOKEN": "server-token",
        "JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api",
    }
    cli = Cli(cli_environment(tmp_path, **hub), None)
    for command in (["list"], ["show", "1"], ["backup", str(tmp_path / "copy.db")]):
        error = cli.fails(*command)
        assert "JupyterHub service 'taskplanner'" in error, error
        assert "--db-path" in error and "jupyter_taskplanner.client" in error, error
    assert not list(tmp_path.rglob("*.db"))
    # With a database named, or the client mode turned off, it works on that database.
    db = tmp_path / "here.db"
    assert Cli(cli_environment(tmp_path, **hub), db).json("list", "--json") == []
    cli("list", "--TaskPlannerApp.hub_client=False")


def test_run_refuses_a_start_past_the_owners_queue_limit(cli: Cli, db: Path, tmp_path: Path):
    tasks = [{"name": "t"}, {"name": "u"}]
    assert cli("import", write_json(tmp_path / "t.json", tasks)).stdout.split() == ["1", "2"]
    store = Store(db)
    try:
        # A run waiting in a server that is alive (this process holds it).
        store.create_run(
            {
                "task_id": 1,
                "owner": "alice",
                "task_name": "t",
                "trigger": "manual",
                "started_by": "alice",
                "status": "queued",
                "holder": f"{socket.gethostname()}:{os.getpid()}",
            }
        )
    finally:
        store.close()
    failed = cli("run", "2", "--TaskPlannerApp.max_queued_runs=1", expect=1)
    assert "max_queued_runs" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr
    store = Store(db)
    try:
        runs, _ = store.list_runs(None, limit=10)
    finally:
        store.close()
    assert [run["status"] for run in runs] == ["queued"]  # nothing recorded for the refusal
