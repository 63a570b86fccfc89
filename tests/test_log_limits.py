"""Logs and downloads within bounds: capped step logs, log tails and ranges, streamed files.

The runs belong to carol, who may run python jobs (``taskplanner:shell``).
"""

from __future__ import annotations

import hashlib
import re
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.components.base import Action, Result, RunContext
from jupyter_taskplanner.logs import MARKER, CappedLog
from jupyter_taskplanner.testing import TOKENS, wait_for_run, wait_until

CAP = 20_000
FUNCS = textwrap.dedent(
    """
    import pathlib, sys, time

    def chatter(lines):
        for number in range(lines):
            print(f"line {number:06d}")
        return "done"

    def mixed(lines):
        for number in range(lines):
            stream = sys.stderr if number % 2 else sys.stdout
            print(f"line {number:06d}", file=stream)

    def announce_and_sleep(seconds):
        print("started", flush=True)
        time.sleep(seconds)

    def big_file(megabytes):
        path = pathlib.Path("big.bin")
        block = bytes(range(256)) * 4096
        with path.open("wb") as out:
            for _ in range(megabytes):
                out.write(block)
        return path
    """
)
OMITTED = re.compile(
    rb"\n\[\.\.\. (\d+) bytes of log omitted \(TaskPlannerApp\.max_log_bytes\) \.\.\.\]\n"
)
HUGE = "99999999999999999999"


class ChattyAction(Action):
    """An action that logs ``lines`` numbered lines (its log goes through the cap too)."""

    type_name = "log_limits_chatty"
    config_schema = {"type": "object", "properties": {"lines": {"type": "integer"}}}

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        for number in range(self.config["lines"]):
            ctx.log.info("action line %06d", number)


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"max_log_bytes": CAP}


@pytest.fixture
def funcs(jp_root_dir: Path) -> Path:
    (jp_root_dir / "tp_logs.py").write_text(FUNCS)
    return jp_root_dir


def job(function: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "type": "python",
        "name": function,
        "config": {"function": f"tp_logs:{function}", "kwargs": kwargs},
    }


async def finished_run(call, **body: Any) -> dict[str, Any]:
    """Create a task, run it, and return the ended run's detail."""
    task = await call("POST", "/tasks", {"name": "t", "enabled": False, **body})
    assert task.status == 201, task
    started = await call("POST", f"/tasks/{task.body['id']}/run")
    assert started.status == 202, started
    return await wait_for_run(call, started.body["id"])


def step_log(db_path: Path, run: dict[str, Any], step: dict[str, Any]) -> bytes:
    """The step's log.txt as stored on disk."""
    run_folder = db_path.parent / "runs" / run["owner"] / str(run["id"])
    (path,) = [
        path for path in run_folder.rglob("log.txt") if path.parent.name.endswith(step["name"])
    ]
    return path.read_bytes()


def assert_capped(log: bytes, first: bytes, last: bytes) -> None:
    """A capped log: the head (starting with ``first``), the marker, the tail (ending ``last``)."""
    marker = OMITTED.search(log)
    assert marker, log[:200]
    assert len(log) == CAP + len(marker[0])
    assert marker.start() == CAP // 2
    assert log.startswith(first) and log.endswith(last)


def test_capped_log_keeps_head_and_tail_over_many_writes(tmp_path: Path) -> None:
    data = b"".join(f"{number:05d}\n".encode() for number in range(10_000))
    log = CappedLog(tmp_path / "log.txt", 1001)
    for start in range(0, len(data), 7):  # writes that straddle the head and the tail
        log.write(data[start : start + 7])
    log.close()
    log.write(b"after close")  # a late line of a cancelled action is dropped
    marker = MARKER.format(omitted=len(data) - 1001).encode()
    assert (tmp_path / "log.txt").read_bytes() == data[:500] + marker + data[-501:]


def test_short_log_is_kept_whole(tmp_path: Path) -> None:
    log = CappedLog(tmp_path / "log.txt", 1000)
    for _ in range(3):
        log.write(b"x" * 300)
    log.close()
    assert (tmp_path / "log.txt").read_bytes() == b"x" * 900


async def test_a_job_log_is_capped_keeping_head_and_tail(api, funcs, db_path):
    carol = api("carol")
    run = await finished_run(carol, jobs=[job("chatter", lines=50_000), job("mixed", lines=9)])
    assert run["status"] == "succeeded", run
    chatter, mixed = run["steps"]
    on_disk = step_log(db_path, run, chatter)
    assert_capped(on_disk, b"line 000000\n", b"line 049999\n")
    # stdout and stderr both reach the log.
    lines = step_log(db_path, run, mixed).decode().splitlines()
    assert [f"line {n:06d}" for n in range(9)] == [
        line for line in lines if line.startswith("line")
    ]

    whole = await carol("GET", f"/runs/{run['id']}/log")
    assert whole.status == 200 and whole.headers["Content-Type"].startswith("text/plain")
    header = f"== job chatter (step {chatter['id']}): succeeded ==\n"
    assert whole.body.startswith(header + on_disk.decode())
    assert f"== job mixed (step {mixed['id']}): succeeded ==\n" in whole.body

    tail = await carol("GET", f"/runs/{run['id']}/log", params={"tail": 24})
    assert tail.body.startswith(header + "line 049998\nline 049999\n\n== job mixed")
    assert tail.body.endswith("line 000007\nline 000008\n")

    one = await carol("GET", f"/runs/{run['id']}/log", params={"step": chatter["id"], "tail": 0})
    assert one.body == header


async def test_an_action_log_is_capped(api, funcs, db_path, planner):
    planner.registry.add(ChattyAction)
    carol = api("carol")
    action = {"type": "log_limits_chatty", "name": "chatty", "config": {"lines": 5_000}}
    run = await finished_run(carol, jobs=[job("chatter", lines=1)], actions=[action])
    assert run["status"] == "succeeded", run
    on_disk = step_log(db_path, run, run["steps"][1])
    assert_capped(on_disk, b"", b"INFO action line 004999\n")
    assert b"INFO action line 000000\n" in on_disk[:100]


async def test_log_byte_ranges_of_one_step(api, funcs, db_path):
    carol = api("carol")
    run = await finished_run(carol, jobs=[job("chatter", lines=100)])
    (step,) = run["steps"]
    on_disk = step_log(db_path, run, step)
    path = f"/runs/{run['id']}/log"

    async def byte_range(**params: Any) -> str:
        reply = await carol("GET", path, params={"step": step["id"], **params})
        assert reply.status == 200, reply
        return reply.body or ""

    assert await byte_range(offset=12, length=24) == on_disk[12:36].decode()
    assert await byte_range(offset=12) == on_disk[12:].decode()
    assert await byte_range(length=5) == on_disk[:5].decode()
    assert await byte_range(offset=len(on_disk)) == ""
    assert await byte_range(offset=10**15, length=10) == ""


async def test_bad_log_options_are_400_naming_the_field(api):
    carol = api("carol")
    for params, field in [
        ({"tail": "-1"}, "tail"),
        ({"tail": "lots"}, "tail"),
        ({"tail": str(2**64)}, "tail"),
        ({"step": "1", "offset": "-3"}, "offset"),
        ({"step": "1", "length": "1.5"}, "length"),
        ({"offset": "0"}, "offset"),
        ({"length": "10"}, "length"),
        ({"step": "1", "offset": "0", "tail": "10"}, "tail"),
    ]:
        reply = await carol("GET", "/runs/1/log", params=params)
        assert reply.status == 400, (params, reply)
        assert reply.body["field"] == field, (params, reply)


async def test_a_running_step_log_can_be_followed_and_the_run_cancelled(api, funcs):
    carol = api("carol")
    task = await carol(
        "POST", "/tasks", {"name": "t", "jobs": [job("announce_and_sleep", seconds=60)]}
    )
    run_id = (await carol("POST", f"/tasks/{task.body['id']}/run")).body["id"]
    seen: list[str] = []

    async def announced() -> bool:
        steps = (await carol("GET", f"/runs/{run_id}")).body["steps"]
        if not steps:
            return False
        reply = await carol(
            "GET", f"/runs/{run_id}/log", params={"step": steps[0]["id"], "offset": 0}
        )
        seen[:] = [reply.body or ""]
        return "started" in seen[0]

    await wait_until(announced)
    assert seen[0].startswith("started\n")
    cancelled = await carol("POST", f"/runs/{run_id}/cancel")
    assert cancelled.status == 200 and cancelled.body["status"] == "cancelled", cancelled
    log = (await carol("GET", f"/runs/{run_id}/log")).body
    assert "started\n" in log and ": cancelled ==" in log


async def download(jp_fetch, path: str, user: str = "carol") -> tuple[Any, str, int]:
    """GET a planner path, hashing the body as it arrives: (response, sha256, traced peak).

    The peak is the most memory Python allocated meanwhile (server and client share the
    process; the client keeps nothing of the body).
    """
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        response = await jp_fetch(
            "taskplanner/api" + path,
            headers={"Authorization": f"token {TOKENS[user]}"},
            streaming_callback=digest.update,
            request_timeout=120,
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return response, digest.hexdigest(), peak


async def test_a_large_result_file_downloads_whole_in_chunks(api, funcs, jp_fetch):
    carol = api("carol")
    run = await finished_run(carol, jobs=[job("big_file", megabytes=30)])
    assert run["status"] == "succeeded", run
    (result,) = run["steps"][0]["results"]
    source = (funcs / "big.bin").read_bytes()
    response, digest, peak = await download(jp_fetch, f"/runs/{run['id']}/files/{result['value']}")
    assert response.code == 200
    assert response.headers["Content-Length"] == str(len(source))
    assert response.headers["Content-Disposition"] == 'attachment; filename="big.bin"'
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert digest == hashlib.sha256(source).hexdigest()
    assert peak < len(source) // 4, f"{peak} bytes allocated to send {len(source)}"


async def test_a_large_log_from_before_the_cap_streams(api, funcs, db_path, jp_fetch):
    carol = api("carol")
    run = await finished_run(carol, jobs=[job("chatter", lines=1)])
    (step,) = run["steps"]
    run_folder = db_path.parent / "runs" / "carol" / str(run["id"])
    (log_path,) = run_folder.rglob("log.txt")
    line = b"0123456789" * 9 + b"abcdefghi\n"
    with log_path.open("wb") as out:
        for _ in range(300):
            out.write(line * 1000)
    header = f"== job chatter (step {step['id']}): succeeded ==\n".encode()
    expected = hashlib.sha256(header + log_path.read_bytes()).hexdigest()
    response, digest, peak = await download(jp_fetch, f"/runs/{run['id']}/log")
    assert response.code == 200 and digest == expected
    assert peak < log_path.stat().st_size // 4, peak


async def test_run_ids_beyond_the_database_range_are_404(api):
    carol = api("carol")
    for raw in (HUGE, str(2**63)):
        for method, suffix in [
            ("GET", ""),
            ("GET", "/log"),
            ("GET", "/files/x"),
            ("POST", "/cancel"),
        ]:
            reply = await carol(method, f"/runs/{raw}{suffix}")
            assert reply.status == 404, (method, suffix, reply)
            assert "message" in reply.body, reply
    reply = await carol("GET", "/runs/1/log", params={"step": HUGE})
    assert reply.status == 404 and "message" in reply.body, reply


async def test_other_users_get_404_with_the_new_options(api, funcs):
    carol, bob = api("carol"), api("bob")
    run = await finished_run(carol, jobs=[job("big_file", megabytes=1)])
    step_id = run["steps"][0]["id"]
    value = run["steps"][0]["results"][0]["value"]
    log = f"/runs/{run['id']}/log"
    for params in ({"tail": 10}, {"step": step_id, "offset": 0, "length": 10}, {"step": step_id}):
        assert (await carol("GET", log, params=params)).status == 200, params
        reply = await bob("GET", log, params=params)
        assert reply.status == 404 and "message" in reply.body, (params, reply)
    assert (await bob("GET", f"/runs/{run['id']}/files/{value}")).status == 404
    assert (await api("root")("GET", log, params={"tail": 10})).status == 200
