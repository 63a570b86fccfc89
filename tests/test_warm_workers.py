"""Warm workers (fork servers per owner) and the warm kernel pool of the local executor.

Real processes throughout: the executor starts real fork servers, the jobs are real worker
processes forked by them, the pooled kernels real ipykernels.  An owner's first job starts a
fresh interpreter while that owner's fork server starts beside it (``warm``); the jobs
after it are forked (notebook jobs by the server's full copy, its child that imported the
notebook modules).
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import signal
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from hub_support import add_account, remove_account, unique, users_python
from traitlets import Unicode
from traitlets.config import Configurable

from jupyter_taskplanner.executors.base import StepOutcome, StepRequest
from jupyter_taskplanner.executors.local import LocalExecutor
from jupyter_taskplanner.hub.executors import LocalUserExecutor
from jupyter_taskplanner.testing import code_notebook

FUNCS = textwrap.dedent(
    """
    import json, os, sys, time

    remembered = []

    def whoami(note="x"):
        remembered.append(note)
        return json.dumps({
            "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0),
            "sid": os.getsid(0), "uid": os.getuid(), "cwd": os.getcwd(),
            "remembered": remembered, "heavy": "nbclient" in sys.modules,
            "forked": "jupyter_taskplanner.jobs.command" in sys.modules,  # fork servers preload it
        })

    def sleep(seconds, pidfile):
        with open(pidfile, "w") as out:
            out.write(str(os.getpid()))
        time.sleep(seconds)
    """
)
NOTEBOOK = code_notebook(
    "import os\nprint('leaked' if 'secret' in globals() else 'clean', os.getcwd())\nsecret = 42"
)
steps = count()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "reports").mkdir(parents=True)
    (root / "tp_warm.py").write_text(FUNCS)
    (root / "reports" / "nb.ipynb").write_text(json.dumps(NOTEBOOK))
    return root


@pytest.fixture
def make_executor(jp_asyncio_loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    """Local executors with the given settings, closed (their fork servers ended) after."""
    made: list[LocalExecutor] = []

    def make(kind: type[LocalExecutor] = LocalExecutor, **settings: Any) -> LocalExecutor:
        made.append(kind(**settings))
        return made[-1]

    yield make
    for executor in made:
        jp_asyncio_loop.run_until_complete(executor.close())


def request(
    root: Path, entry: dict[str, Any], owner: str = "alice", runs: Path | None = None
) -> StepRequest:
    number = next(steps)
    folder = (runs or root.parent / "runs") / owner / f"step{number}"
    folder.mkdir(parents=True)
    context = {
        "owner": owner,
        "owner_root": str(root),
        "task_id": 1,
        "task_name": "warm",
        "run_id": number,
        "started": datetime.now(UTC).isoformat(),
        "placeholders": {},
    }
    return StepRequest("job", entry, context, folder, folder / "output", root)


def call(function: str, module: str = "tp_warm", **kwargs: Any) -> dict[str, Any]:
    config = {"function": f"{module}:{function}", "kwargs": kwargs}
    return {"type": "python", "name": function, "config": config}


NOTEBOOK_JOB = {"type": "notebook", "name": "nb", "config": {"path": "reports/nb.ipynb"}}


async def run(executor: LocalExecutor, step: StepRequest) -> StepOutcome:
    return await executor.run_step(step, lambda *_: None)


async def whoami(
    executor: LocalExecutor, root: Path, owner: str = "alice", runs: Path | None = None
) -> dict[str, Any]:
    outcome = await run(executor, request(root, call("whoami"), owner, runs))
    assert outcome.error is None, outcome
    answer: dict[str, Any] = json.loads(outcome.results[0]["value"])
    return answer


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


async def until(predicate: Callable[[], Any], within: float = 30.0) -> None:
    """Wait until ``predicate()`` holds (processes start and end on their own time)."""
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def command_line(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def full_copy(server: int) -> int:
    """The full copy of fork server ``server``: its child in its session (a worker has a
    session of its own), of the same command line."""
    (full,) = [
        pid
        for pid in children(server)
        if stat(pid)[3] == stat(server)[3] and command_line(pid) == command_line(server)
    ]
    return full


def stat(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command (state, parent, group, session...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent(pid: int) -> int:
    return int(stat(pid)[1])


def log_of(step: StepRequest) -> str:
    return (step.folder / "log.txt").read_text()


async def warm(
    executor: LocalExecutor,
    root: Path,
    owner: str = "alice",
    runs: Path | None = None,
    servers: int = 1,
) -> dict[str, Any]:
    """Run ``owner``'s first job, which starts fresh, and wait until ``servers`` fork
    servers run (that owner's included); the job's answer."""
    first = await whoami(executor, root, owner, runs)
    assert first["ppid"] == os.getpid() and first["forked"] is False
    await until(lambda: len(executor.fork_servers()) == servers)
    return first


async def test_jobs_run_in_fresh_forks_of_a_warm_worker_per_owner(make_executor, root):
    executor = make_executor()
    await warm(executor, root)
    first = await whoami(executor, root)
    second = await whoami(executor, root)
    (server,) = executor.fork_servers()
    for job in (first, second):
        # Forked by the owner's fork server, which imported the modules of python jobs
        # already (not the notebook ones, which only its full copy has); its own session and
        # process group; the owner's root; nothing kept from the last job.
        assert job["ppid"] == server.process.pid
        assert job["pgid"] == job["sid"] == job["pid"]
        assert job["cwd"] == str(root)
        assert job["forked"] is True and job["heavy"] is False
        assert job["remembered"] == ["x"]
    assert first["pid"] != second["pid"]
    await warm(executor, root, owner="bob", servers=2)
    bob = await whoami(executor, root, owner="bob")
    assert bob["ppid"] not in (os.getpid(), server.process.pid)
    assert len(executor.fork_servers()) == 2


SLOW_PRELOAD = """
import os, time
with open("fork-servers.txt", "a") as out:
    out.write(f"{os.getpid()}\\n")
time.sleep(60)
"""
"""A module whose import holds a fork server's start for a minute (it notes the pid)."""


async def test_a_first_job_does_not_wait_for_its_fork_server_to_start(make_executor, root):
    (root / "tp_slow.py").write_text(SLOW_PRELOAD)
    executor = make_executor(warm_preload=["tp_slow"])
    # Well within the fork server's start: the jobs run in fresh interpreters meanwhile.
    for _ in range(2):
        job = await asyncio.wait_for(whoami(executor, root), 20)
        assert job["ppid"] == os.getpid() and job["forked"] is False
    starting = root / "fork-servers.txt"
    await until(starting.exists)
    assert executor.fork_servers() == []
    (pid,) = map(int, starting.read_text().split())  # one start for both jobs
    assert alive(pid)
    # Closing the executor ends the fork server still starting.
    await executor.close()
    await until(lambda: not alive(pid))


async def test_off_every_job_starts_a_fresh_interpreter(make_executor, root):
    executor = make_executor(warm_workers=False)
    job = await whoami(executor, root)
    assert job["ppid"] == os.getpid()
    assert job["forked"] is False
    assert executor.fork_servers() == []


async def test_a_cancelled_forked_job_stops_with_its_process_group(make_executor, root, tmp_path):
    executor = make_executor(kill_grace=0.5)
    await warm(executor, root)
    pidfile = tmp_path / "pid"
    step = asyncio.ensure_future(
        run(executor, request(root, call("sleep", seconds=60, pidfile=str(pidfile))))
    )
    await until(lambda: pidfile.exists() and pidfile.read_text())
    pid = int(pidfile.read_text())
    step.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step
    assert not alive(pid)


async def sleeping_job(executor: Any, root: Path, tmp_path: Path) -> tuple[Any, Path]:
    """A 60 s job on a warm fork server, running (its process wrote its pid file)."""
    await warm(executor, root)
    pidfile = tmp_path / "pid"
    step = request(root, call("sleep", seconds=60, pidfile=str(pidfile)))
    running = asyncio.ensure_future(run(executor, step))
    await until(lambda: pidfile.exists() and pidfile.read_text())
    return running, pidfile


async def assert_killed_and_replaced(
    executor: Any, root: Path, server: Any, running: Any, pidfile: Path
) -> None:
    """The job failed as killed, its process is gone (nothing reports on it any more, so it
    was stopped rather than left running), and the next jobs get a new fork server: the
    next starts fresh while it starts, the one after is forked."""
    outcome = await asyncio.wait_for(running, 30)
    assert outcome.error is not None and "SIGKILL" in outcome.error
    await until(lambda: not alive(int(pidfile.read_text())))
    await warm(executor, root)
    job = await whoami(executor, root)
    (again,) = executor.fork_servers()
    assert again is not server and job["ppid"] == again.process.pid


async def test_a_dead_fork_server_fails_its_jobs_and_is_replaced(make_executor, root, tmp_path):
    executor = make_executor()
    running, pidfile = await sleeping_job(executor, root, tmp_path)
    (server,) = executor.fork_servers()
    os.kill(server.process.pid, signal.SIGKILL)
    await assert_killed_and_replaced(executor, root, server, running, pidfile)


PARENT_NOTEBOOK = code_notebook(
    "import os\n"
    "with open(f'/proc/{os.getppid()}/stat') as stat:\n"
    "    print('worker forked by', stat.read().rsplit(')', 1)[1].split()[1])"
)
"""Prints the parent of its kernel's parent: of the notebook job's worker."""


async def test_notebook_jobs_are_forked_by_the_full_copy_of_the_fork_server(make_executor, root):
    (root / "reports" / "parent.ipynb").write_text(json.dumps(PARENT_NOTEBOOK))
    executor = make_executor()
    await warm(executor, root)
    (server,) = executor.fork_servers()
    full = full_copy(server.process.pid)
    step = request(root, {**NOTEBOOK_JOB, "config": {"path": "reports/parent.ipynb"}})
    outcome = await run(executor, step)
    assert outcome.error is None, log_of(step)
    assert f"worker forked by {full}" in log_of(step)
    assert parent(full) == server.process.pid


async def test_a_dead_full_copy_ends_its_fork_server_which_is_replaced(
    make_executor, root, tmp_path
):
    executor = make_executor()
    running, pidfile = await sleeping_job(executor, root, tmp_path)
    (server,) = executor.fork_servers()
    os.kill(full_copy(server.process.pid), signal.SIGKILL)
    # The server ends with it; its running job is stopped like those of any fork server
    # that ended, and the next jobs get a new one.
    await asyncio.wait_for(server.process.wait(), 10)
    await assert_killed_and_replaced(executor, root, server, running, pidfile)


async def test_an_idle_fork_server_ends(make_executor, root):
    executor = make_executor(warm_idle_seconds=2)
    await warm(executor, root)
    assert (await whoami(executor, root))["forked"] is True
    (server,) = executor.fork_servers()
    await asyncio.wait_for(server.process.wait(), 10)
    assert executor.fork_servers() == []
    # The next job starts a new one (and does not wait for it).
    await warm(executor, root)
    assert executor.fork_servers() != [server]


async def test_a_worker_never_serves_two_owners_beyond_the_cap(make_executor, root):
    executor = make_executor(max_warm_servers=1)
    await warm(executor, root)
    alice = await whoami(executor, root)
    (alices,) = executor.fork_servers()
    assert alice["ppid"] == alices.process.pid
    # Bob's first job starts fresh; his fork server replaces alice's idle one.
    await whoami(executor, root, owner="bob")
    await until(lambda: executor.fork_servers() not in ([], [alices]))
    bob = await whoami(executor, root, owner="bob")
    (server,) = executor.fork_servers()
    assert bob["ppid"] == server.process.pid != alice["ppid"]
    assert not alive(alices.process.pid)


async def test_the_interpreter_teardown_is_skipped_but_atexit_runs(make_executor, root):
    (root / "tp_exit.py").write_text(
        "import atexit\n\ndef register(path):\n"
        "    atexit.register(lambda: open(path, 'w').write('ran'))\n"
    )
    marker = root / "atexit.txt"
    for settings in ({}, {"warm_workers": False}):
        marker.unlink(missing_ok=True)
        executor = make_executor(**settings)
        if executor.warm_workers:
            await warm(executor, root)
        step = request(root, call("register", module="tp_exit", path=str(marker)))
        outcome = await run(executor, step)
        assert outcome.error is None, outcome
        assert marker.read_text() == "ran"


class Planner(Configurable):
    """The two settings of the planner a local_user executor reads."""

    db_path = Unicode()
    runs_dir = Unicode()


@pytest.fixture
def account() -> Iterator[tuple[str, Path, str, Path]]:
    """A system account: its name, home, a Python it can run and a folder others may pass
    through (for the planner's files); all removed after."""
    if os.geteuid() != 0 or shutil.which("useradd") is None:
        pytest.skip("needs root and useradd to make a system account")
    base = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        os.chmod(base, 0o711)
        python = users_python(base)
        if python is None:
            pytest.skip("no Python a system account can run with these packages")
        name = unique("warm")
        add_account(name)
        try:
            yield name, Path(pwd.getpwnam(name).pw_dir), python, base
        finally:
            remove_account(name)
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def test_local_user_fork_servers_run_as_their_owner(make_executor, account):
    name, home, python, base = account
    (home / "tp_warm.py").write_text(FUNCS)
    planner = Planner(db_path=str(base / "db" / "tasks.db"), runs_dir=str(base / "runs"))
    executor = make_executor(LocalUserExecutor, parent=planner, python=python)
    first = await warm(executor, home, owner=name, runs=base / "runs")
    job = await whoami(executor, home, owner=name, runs=base / "runs")
    (server,) = executor.fork_servers()
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    uid = pwd.getpwnam(name).pw_uid
    # The warm worker itself runs as the owner (so a job forked from it does too), and
    # serves that owner only.
    assert f"\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n" in status
    assert job["uid"] == uid and job["ppid"] == server.process.pid and job["forked"]
    assert first["uid"] == uid  # the fresh first job too
    assert (await whoami(executor, home, owner=name, runs=base / "runs"))["uid"] == uid
    assert executor.fork_servers() == [server]


# -- the warm kernel pool ------------------------------------------------------------------


def tickets(executor: LocalExecutor, kernel: str = "python3") -> list[int]:
    """The pids of the idle pooled kernels of the (single) fork server (none while it
    starts)."""
    servers = executor.fork_servers()
    if not servers:
        return []
    (server,) = servers
    assert server.kernel_pool is not None
    return sorted(int(path.stem) for path in (server.kernel_pool / kernel).glob("*.json"))


async def test_pooled_kernels_serve_one_job_each_and_refill(make_executor, root):
    executor = make_executor(kernel_pool={"python3": 1})
    first = request(root, NOTEBOOK_JOB)
    outcome = await run(executor, first)
    assert outcome.error is None, log_of(first)
    assert sorted(result["value"] for result in outcome.results) == ["nb.html", "nb.ipynb"]
    await until(lambda: len(tickets(executor)) == 1)
    (ready,) = tickets(executor)
    second = request(root, NOTEBOOK_JOB)
    outcome = await run(executor, second)
    assert outcome.error is None, log_of(second)
    # The variable the first run set is not there in the second; both ran in the
    # notebook's folder, though the pooled kernels started in the root.
    for step in (first, second):
        assert f"clean {root / 'reports'}" in log_of(step)
        assert "leaked" not in log_of(step)
    # The kernel the second run took is gone and another has taken its place.
    assert not alive(ready)
    await until(lambda: len(tickets(executor)) == 1 and tickets(executor) != [ready])


async def test_a_dead_pooled_kernel_is_replaced(make_executor, root):
    executor = make_executor(kernel_pool={"python3": 1})
    await whoami(executor, root)
    await until(lambda: len(tickets(executor)) == 1)
    (kernel,) = tickets(executor)
    os.kill(kernel, signal.SIGKILL)
    await until(lambda: len(tickets(executor)) == 1 and tickets(executor) != [kernel])
    step = request(root, NOTEBOOK_JOB)
    outcome = await run(executor, step)
    assert outcome.error is None, log_of(step)


async def test_without_a_pool_no_kernel_is_started_ahead(make_executor, root):
    executor = make_executor()
    await warm(executor, root)
    (server,) = executor.fork_servers()
    assert server.kernel_pool is None
    # Its one child is its full copy, not a kernel.
    assert children(server.process.pid) == [full_copy(server.process.pid)]
    step = request(root, NOTEBOOK_JOB)
    outcome = await run(executor, step)
    assert outcome.error is None, log_of(step)


async def test_a_kernel_of_another_name_is_started_fresh(make_executor, root):
    executor = make_executor(kernel_pool={"no-such-kernel": 1})
    await warm(executor, root)
    step = request(root, NOTEBOOK_JOB)
    outcome = await run(executor, step)
    assert outcome.error is None, log_of(step)
    (server,) = executor.fork_servers()
    assert server.kernel_pool is not None
    assert list((server.kernel_pool / "no-such-kernel").glob("*.json")) == []


async def test_notebook_runs_in_a_row_and_at_once_each_get_a_fresh_pooled_kernel(
    make_executor, root
):
    # A forked worker collecting garbage (as any job may) must not remove the connection
    # files of the kernels the pool started, which its copy of the server's heap refers to.
    executor = make_executor(kernel_pool={"python3": 1})
    runs = [request(root, NOTEBOOK_JOB)]
    assert (await run(executor, runs[0])).error is None, log_of(runs[0])
    used = set()
    for _ in range(3):
        await until(lambda: len(tickets(executor)) == 1)
        (ready,) = tickets(executor)
        used.add(ready)
        assert (await run(executor, request(root, call("collect", module="gc")))).error is None
        runs.append(request(root, NOTEBOOK_JOB))
        assert (await run(executor, runs[-1])).error is None, log_of(runs[-1])
        assert not alive(ready)
    assert len(used) == 3
    await until(lambda: len(tickets(executor)) == 1)
    assert (await run(executor, request(root, call("collect", module="gc")))).error is None
    pair = [request(root, NOTEBOOK_JOB), request(root, NOTEBOOK_JOB)]
    outcomes = await asyncio.gather(*(run(executor, step) for step in pair))
    for step, outcome in zip(pair, outcomes, strict=True):
        assert outcome.error is None, log_of(step)
    for step in runs + pair:
        assert f"clean {root / 'reports'}" in log_of(step)
        assert "leaked" not in log_of(step)
