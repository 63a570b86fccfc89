"""`jupyter taskplanner run` and `runs`, run as real subprocesses against a temp database."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.store import Store
from jupyter_taskplanner.testing import CLI, Cli, cli_environment

# Functions the python jobs call, in the owner's root folder.
OWNER_MODULE = """
import os
import time
from pathlib import Path
from typing import Any


def hello(who):
    print(f"saying hello to {who}")
    return f"hello {who}"


def wait(path):
    Path(path).write_text(str(os.getpid()))
    time.sleep(60)
"""
# A real plugin (module and dist-info on PYTHONPATH): a job that reports progress, then fails.
PLUGIN_MODULE = """
import time

from jupyter_taskplanner.components.base import Job


class StepsJob(Job):
    type_name = "cli_test_steps"
    flavors = frozenset({"none"})
    config_schema = {
        "type": "object",
        "properties": {"steps": {"type": "integer"}},
        "additionalProperties": False,
    }

    def run(self, ctx):
        total = self.config["steps"]
        for done in range(1, total + 1):
            ctx.report_progress(done, total, f"step {done} of {total}")
            time.sleep(0.6)
        raise RuntimeError("failed on purpose after the last step")
"""
TASKS = [
    {
        "name": "Hello",
        "enabled": False,
        "jobs": [
            {
                "type": "python",
                "name": "hello",
                "config": {"function": "greeting:hello", "kwargs": {"who": "{who}"}},
            }
        ],
    },
    {
        "name": "Steps",
        "jobs": [{"type": "cli_test_steps", "name": "steps", "config": {"steps": 3}}],
    },
    {
        "name": "Wait",
        "jobs": [
            {
                "type": "python",
                "name": "wait",
                "config": {"function": "greeting:wait", "kwargs": {"path": "pid.txt"}},
            }
        ],
    },
    {"name": "Bob's", "owner": "bob"},
    {"name": "Chain", "actions": [{"type": "next_task", "config": {"task_ids": [1]}}]},
    {
        "name": "After failed steps",
        "triggers": [{"type": "after_task", "config": {"task_id": 2, "on": "failure"}}],
        "jobs": [
            {
                "type": "python",
                "name": "hello",
                "config": {"function": "greeting:hello", "kwargs": {"who": "after"}},
            }
        ],
    },
]
HELLO, STEPS, WAIT, BOBS, CHAIN, AFTER_STEPS = 1, 2, 3, 4, 5, 6


class Planner(Cli):
    """The CLI on a database holding ``TASKS``, with the owner's root folder set in the config."""

    def __init__(self, env: dict[str, str], db: Path, root: Path) -> None:
        super().__init__(env, db)
        self.root = root

    def runs_in_db(self) -> list[dict[str, Any]]:
        store = Store(self.db)
        try:
            return store.list_runs(None, limit=1000)[0]
        finally:
            store.close()

    def run_in_db(self, run_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        store = Store(self.db)
        try:
            return store.get_run(run_id, None), store.steps(run_id)
        finally:
            store.close()


@pytest.fixture(scope="module")
def planner(tmp_path_factory: pytest.TempPathFactory) -> Planner:
    base = tmp_path_factory.mktemp("cli-run")
    root = base / "alice"
    root.mkdir()
    (root / "greeting.py").write_text(OWNER_MODULE)
    plugin = base / "plugin"
    (plugin / "cli_run_plugin-0.1.dist-info").mkdir(parents=True)
    (plugin / "cli_run_plugin.py").write_text(PLUGIN_MODULE)
    (plugin / "cli_run_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cli-run-plugin\nVersion: 0.1\n"
    )
    (plugin / "cli_run_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[jupyter_taskplanner.components]\njob.cli_test_steps = cli_run_plugin:StepsJob\n"
    )
    config = base / "config"
    config.mkdir()
    # Jobs run in the root folder the server's config names, wherever the command is typed.
    (config / "jupyter_server_config.py").write_text(f"c.ServerApp.root_dir = {str(root)!r}\n")
    env = cli_environment(base, PYTHONPATH=str(plugin))
    planner = Planner(env, base / "tasks.db", root)
    (base / "tasks.json").write_text(json.dumps(TASKS))
    created = planner("import", str(base / "tasks.json"), "--all").stdout.split()
    assert created == [str(number) for number in range(1, len(TASKS) + 1)]
    return planner


def run_id_of(stdout: str) -> int:
    match = re.search(r"^run (\d+) of task", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1))


def test_run_reaches_the_job_and_is_recorded(planner: Planner) -> None:
    # The task is disabled: its triggers would not start it, but a run by hand does.
    out = planner("run", str(HELLO), "--param", "who=World").stdout.splitlines()
    run_id = run_id_of(out[0])
    assert out[0] == f"run {run_id} of task {HELLO} 'Hello' started"
    assert re.fullmatch(rf"run {run_id} succeeded in \d+\.\d s", out[1]), out
    assert len(out) == 2

    run, steps = planner.run_in_db(run_id)
    assert (run["status"], run["trigger"], run["started_by"]) == ("succeeded", "cli", "alice")
    assert run["parameters"] == {"who": "World"}
    assert [(step["name"], step["status"]) for step in steps] == [("hello", "succeeded")]
    assert steps[0]["results"][0]["value"] == "hello World"

    table = planner("runs").stdout.splitlines()
    assert table[0].split() == ["RUN", "TASK", "STATUS", "TRIGGER", "STARTED", "DURATION"]
    row = next(line for line in table[1:] if line.split()[0] == str(run_id))
    assert row.split()[1:7] == [str(HELLO), "Hello", "succeeded", "cli", "by", "alice"]

    listed = planner.json("runs", str(HELLO), "--json")
    assert run_id in [item["id"] for item in listed]
    assert {item["task_id"] for item in listed} == {HELLO}

    log = planner("runs", "--log", str(run_id)).stdout
    assert log.startswith(f"run {run_id} of task {HELLO} 'Hello': succeeded, started ")
    assert "== job hello (step" in log and "): succeeded ==\nsaying hello to World" in log


def test_a_failing_run_shows_its_progress_and_log(planner: Planner) -> None:
    result = planner("run", str(STEPS), "--wait", expect=1)
    lines = result.stdout.splitlines()
    run_id = run_id_of(result.stdout)
    assert lines[0] == f"run {run_id} of task {STEPS} 'Steps' started"
    assert f"run {run_id} running" in lines
    started = lines.index("job 'steps' started")
    ended = next(i for i, line in enumerate(lines) if line.startswith("job 'steps' failed after"))
    # Progress reports come between the job's start and end, in order (quick ones may be
    # folded into the next redraw).
    progress = [line for line in lines[started:ended] if line.startswith("job 'steps': ")]
    assert progress and progress == sorted(progress), lines
    assert lines[ended].endswith(": RuntimeError: failed on purpose after the last step")
    # The task waiting for Steps to fail runs next (see below); the command waits for it.
    assert (
        lines[ended + 1] == f"run {run_id} failed; waiting for the runs that follow it "
        "(next tasks, tasks started after it)"
    )
    tail = lines[ended + 2 :]
    assert tail[0] == f"last lines of the log (all of it: jupyter taskplanner runs --log {run_id}):"
    assert "RuntimeError: failed on purpose after the last step" in tail
    assert result.stderr.strip() == (
        f"error: run {run_id} failed: job 'steps' failed: "
        "RuntimeError: failed on purpose after the last step"
    )
    assert planner.run_in_db(run_id)[0]["status"] == "failed"

    failed = planner("runs", "--status", "failed").stdout.splitlines()[1:]
    assert [line.split()[:4] for line in failed] == [[str(run_id), str(STEPS), "Steps", "failed"]]
    # The task waiting for Steps to fail ran too, before the command ended.
    followed = [run for run in planner.runs_in_db() if run["trigger"] == f"after_task:{STEPS}"]
    assert [(run["task_id"], run["status"], run["chain"]) for run in followed] == [
        (AFTER_STEPS, "succeeded", [STEPS, AFTER_STEPS])
    ]


def test_run_waits_for_the_runs_its_actions_start(planner: Planner) -> None:
    run_id = run_id_of(planner("run", str(CHAIN)).stdout)
    # The command ended only after the run its next_task action started had ended too.
    chained = [run for run in planner.runs_in_db() if run["trigger"] == f"chain:{CHAIN}"]
    assert [(run["task_id"], run["status"]) for run in chained] == [(HELLO, "succeeded")]
    assert chained[0]["chain"] == [CHAIN, HELLO] and chained[0]["id"] > run_id


def test_unknown_or_foreign_tasks_and_runs(planner: Planner) -> None:
    before = planner.runs_in_db()
    assert planner.fails("run", "99") == "error: no task with id 99"
    assert planner.fails("run", str(BOBS), "--param", "a=b") == (
        f"error: task {BOBS} belongs to 'bob'; pass --owner bob or --all to act on it"
    )
    assert planner.fails("runs", "--log", "999") == "error: no run with id 999"
    assert planner.runs_in_db() == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("run", "1", "--param", "who"), "error: --param 'who': expected KEY=VALUE"),
        (("run", "1", "--param", "1st=x"), "error: --param '1st=x': expected KEY=VALUE"),
        (("runs", "--status", "done"), "error: --status: expected one of queued, running,"),
        (("runs", "--limit", "many"), "error: --limit expected an int, not the str 'many'"),
        (("runs", "1", "--log", "2"), "error: give a task ID or --log RUN_ID, not both"),
    ],
)
def test_usage_errors(
    planner: Planner, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    db = tmp_path / "untouched.db"
    assert Cli(planner.env, db).fails(*args, expect=2).startswith(message)
    assert not db.exists()  # a wrong command line touches no database


def read_all(fd: int, into: bytearray) -> None:
    """Collect what a pseudo-terminal shows until its other end closes."""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the program closed the terminal
            return
        if not chunk:
            return
        into.extend(chunk)


@pytest.fixture
def terminal() -> Iterator[tuple[int, int]]:
    controller, terminal = pty.openpty()
    yield controller, terminal
    os.close(controller)


def test_ctrl_c_cancels_the_run(planner: Planner, terminal: tuple[int, int]) -> None:
    controller, screen = terminal
    pid_file = planner.root / "pid.txt"
    process = subprocess.Popen(
        [CLI, "run", str(WAIT), "--wait", f"--db-path={planner.db}"],
        stdout=screen,
        stderr=subprocess.PIPE,
        env=planner.env,
        text=True,
    )
    os.close(screen)
    shown = bytearray()
    reader = threading.Thread(target=read_all, args=(controller, shown))
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline and process.poll() is None, shown
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        # Ctrl-C once the progress line was redrawn with the job running.
        while b"job 'wait'" not in shown:
            assert time.monotonic() < deadline and process.poll() is None, shown
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stderr = process.communicate(timeout=30)[1]
    finally:
        process.kill()
        reader.join(timeout=10)
    assert process.returncode == 130, stderr
    text = shown.decode()
    run_id = run_id_of(text)
    # On a terminal the progress is one line, redrawn in place.
    assert f"\r\x1b[Krun {run_id} running 0:0" in text
    assert "job 'wait'" in text
    assert stderr.strip() == f"error: run {run_id} cancelled (interrupted)"

    run, steps = planner.run_in_db(run_id)
    assert run["status"] == "cancelled" and run["finished"]
    assert run["error"] == "cancelled by alice (Ctrl-C)", run
    assert [step["status"] for step in steps] == ["cancelled"]
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)  # the job's process was killed, not left behind
