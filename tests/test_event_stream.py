"""``GET /taskplanner/api/events``: each user's own run events as Server-Sent Events, through
real HTTP; Jupyter Server's event bus gets none unless ``server_events`` is on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_taskplanner.planner import EVENT_SCHEMA
from jupyter_taskplanner.testing import (
    TOKENS,
    ServerProcess,
    create_task,
    wait_for_run,
    wait_until,
)

STREAM = {"Accept": "text/event-stream"}


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    return {"event_heartbeat_seconds": 0.3, "max_event_streams_per_user": 3}


class Stream:
    """An open event stream: its status, and what it sent (events, heartbeats, its end)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.heartbeats = 0
        self.ended = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        kind = ""
        with contextlib.suppress(httpx.HTTPError):
            async for line in self.response.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    assert kind == "run", line
                    self.events.put_nowait(json.loads(line.removeprefix("data: ")))
                elif line == ": heartbeat":
                    self.heartbeats += 1
        self.ended.set()
        self.events.put_nowait(None)

    async def next(self, within: float = 30) -> dict[str, Any]:
        event = await asyncio.wait_for(self.events.get(), within)
        assert event is not None, "the stream ended"
        return event

    def pending(self) -> list[dict[str, Any]]:
        """The events received and not yet taken."""
        taken = []
        while not self.events.empty():
            event = self.events.get_nowait()
            if event is not None:
                taken.append(event)
        return taken

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        await self.response.aclose()


@contextlib.asynccontextmanager
async def _streams(url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await open_stream("alice", task_id=3)``: an event stream of that user (``Stream``);
    every stream is closed on leaving."""
    client = httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(10, read=None))
    opened: list[Stream] = []

    async def open_stream(
        user: str | None, headers: dict[str, str] | None = None, **params: Any
    ) -> Stream:
        token = TOKENS[user] if user else "nope"
        request = client.build_request(
            "GET",
            "/events",
            params={key: str(value).lower() for key, value in params.items()},
            headers={"Authorization": f"token {token}", **STREAM, **(headers or {})},
        )
        stream = Stream(await client.send(request, stream=True))
        opened.append(stream)
        return stream

    try:
        yield open_stream
    finally:
        for stream in opened:
            await stream.close()
        await client.aclose()


@pytest.fixture
def event_streams(api: Any, jp_http_port: int, jp_base_url: str) -> Any:
    """``async with event_streams() as streams``: event streams of the test server's users
    (the planner started)."""

    @contextlib.asynccontextmanager
    async def started() -> AsyncIterator[Callable[..., Any]]:
        await api("alice")("GET", "/tasks")
        async with _streams(f"http://127.0.0.1:{jp_http_port}{jp_base_url}taskplanner/api") as o:
            yield o

    return started


async def _refusal(streams: Any, user: str | None, **params: Any) -> tuple[int, dict[str, Any]]:
    stream = await streams(user, **params)
    assert stream.response.status_code != 200, (user, params)
    body = json.loads(await stream.response.aread())
    return stream.response.status_code, body


def _count_is(planner: Any, user: str, count: int) -> Callable[[], Awaitable[bool]]:
    async def holds() -> bool:
        return bool(planner.streams.count(user) == count)

    return holds


async def _run(call: Any, task_id: int) -> dict[str, Any]:
    started = await call("POST", f"/tasks/{task_id}/run")
    assert started.status == 202, started
    return await wait_for_run(call, started.body["id"])


async def _until_finished(stream: Stream, run_id: int) -> list[dict[str, Any]]:
    seen = []
    while not seen or not (seen[-1]["run_id"] == run_id and seen[-1]["action"] == "finished"):
        seen.append(await stream.next())
    return seen


async def test_each_user_sees_only_their_own_runs_and_admins_all_on_request(
    api, event_streams, funcs, job
):
    async with event_streams() as streams:
        alice, bob = api("alice"), api("bob")
        hers = await create_task(alice, name="hers", jobs=[job("hello", name="alice")])
        his = await create_task(bob, name="his", jobs=[job("hello", name="bob")])
        alices, bobs = await streams("alice"), await streams("bob")
        everyone, roots = await streams("root", all=True), await streams("root")
        for stream in (alices, bobs, everyone, roots):
            assert stream.response.status_code == 200
            assert stream.response.headers["Content-Type"].startswith("text/event-stream")
            assert stream.response.headers["Cache-Control"] == "no-cache"

        her_run = await _run(alice, hers["id"])
        his_run = await _run(bob, his["id"])
        seen_by_alice = await _until_finished(alices, her_run["id"])
        seen_by_bob = await _until_finished(bobs, his_run["id"])
        assert [(e["action"], e["run_id"], e.get("step_status")) for e in seen_by_alice] == [
            ("started", her_run["id"], None),
            ("step", her_run["id"], "running"),
            ("step", her_run["id"], "succeeded"),
            ("finished", her_run["id"], None),
        ]
        assert seen_by_alice[1]["step_kind"] == "job" and seen_by_alice[1]["step_name"]
        assert seen_by_alice[0] | {"status": "x"} == {
            "action": "started",
            "run_id": her_run["id"],
            "task_id": hers["id"],
            "owner": "alice",
            "status": "x",
            "trigger": "api",
        }
        assert seen_by_alice[-1]["status"] == "succeeded"
        assert {e["owner"] for e in seen_by_bob} == {"bob"}
        seen_by_all = await _until_finished(everyone, his_run["id"])
        assert {(e["owner"], e["action"]) for e in seen_by_all} == {
            (owner, action)
            for owner in ("alice", "bob")
            for action in ("started", "step", "finished")
        }
        # Bob's run never reached alice's stream (nor the admin's own one), even later on.
        await asyncio.sleep(0.5)
        assert alices.pending() == [] and roots.pending() == []
        assert everyone.pending() == []


async def test_refusals(event_streams, api):
    async with event_streams() as streams:
        bobs = await create_task(api("bob"), name="bob's")
        assert (await _refusal(streams, None))[0] == 401
        assert (await _refusal(streams, "eve"))[0] == 403
        status, body = await _refusal(streams, "alice", all=True)
        assert status == 403 and "taskplanner:admin" in body["message"], body
        # A task or run the caller may not read is answered like one that does not exist.
        status, body = await _refusal(streams, "alice", task_id=bobs["id"])
        assert (status, "bob" in body["message"]) == (404, False), body
        assert (await _refusal(streams, "alice", task_id=987654))[0] == 404
        assert (await _refusal(streams, "alice", run_id=987654))[0] == 404
        for bad in ({"task_id": "x"}, {"run_id": 0}, {"all": "maybe"}):
            status, body = await _refusal(streams, "alice", **bad)
            assert (status, body["field"]) == (400, next(iter(bad))), (bad, body)
        # A plain GET (no Accept: text/event-stream) is not held open.
        status, body = await _refusal(streams, "alice", headers={"Accept": "application/json"})
        assert status == 406 and "text/event-stream" in body["message"]


async def test_task_and_run_filters(api, event_streams, funcs, job):
    async with event_streams() as streams:
        alice = api("alice")
        one = await create_task(alice, name="one", jobs=[job("hello")])
        two = await create_task(alice, name="two", jobs=[job("hello")])
        of_one = await streams("alice", task_id=one["id"])
        # An admin follows another owner's task by naming it.
        admins = await streams("root", task_id=two["id"])
        first = (await alice("POST", f"/tasks/{one['id']}/run")).body
        of_run = await streams("alice", run_id=first["id"])
        await wait_for_run(alice, first["id"])
        second = await _run(alice, two["id"])
        seen = await _until_finished(of_one, first["id"])
        assert [e["run_id"] for e in seen] == [first["id"]] * 4
        assert [e["action"] for e in await _until_finished(of_run, first["id"])][-1] == "finished"
        seen = await _until_finished(admins, second["id"])
        assert [(e["run_id"], e["owner"]) for e in seen] == [(second["id"], "alice")] * 4
        await asyncio.sleep(0.3)
        assert of_run.pending() == [] and of_one.pending() == [] and admins.pending() == []


async def test_heartbeats_cap_and_shutdown(api, event_streams, planner):
    async with event_streams() as streams:
        quiet = await streams("alice")

        async def beating() -> bool:
            return quiet.heartbeats >= 2  # every 0.3 s here

        await wait_until(beating, within=10)
        more = [await streams("alice"), await streams("alice")]
        status, body = await _refusal(streams, "alice")
        assert status == 429 and "max_event_streams_per_user" in body["message"], body
        assert (await streams("bob")).response.status_code == 200  # a cap per user
        # A stream the client closes is released at once.
        await more[0].close()
        await wait_until(_count_is(planner, "alice", 2), within=5)
        assert planner.streams.count("alice") == 2
        assert (await streams("alice")).response.status_code == 200
        # The server stopping ends every stream cleanly (a whole response, then EOF).
        planner.streams.close()
        await asyncio.wait_for(quiet.ended.wait(), 5)
        assert quiet.response.is_stream_consumed
        assert (await _refusal(streams, "bob"))[0] == 503


async def test_jupyter_event_bus_gets_nothing_by_default(api, jp_serverapp, funcs, job):
    seen: list[dict[str, Any]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        seen.append(data)

    jp_serverapp.event_logger.add_listener(listener=listener)
    alice = api("alice")
    task = await create_task(alice, jobs=[job("hello")])
    await _run(alice, task["id"])
    await asyncio.sleep(0.2)
    assert EVENT_SCHEMA not in jp_serverapp.event_logger.schemas.schema_ids
    assert not [data for data in seen if "run_id" in data], seen


class TestServerEventsOptIn:
    @pytest.fixture
    def planner_settings(self) -> dict[str, Any]:
        return {"server_events": True}

    async def test_runs_are_emitted_on_jupyters_bus(self, api, jp_serverapp, funcs, job):
        seen: list[tuple[str, dict[str, Any]]] = []

        async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
            seen.append((schema_id, data))

        jp_serverapp.event_logger.add_listener(schema_id=EVENT_SCHEMA, listener=listener)
        alice = api("alice")
        task = await create_task(alice, jobs=[job("hello")])
        run = await _run(alice, task["id"])

        async def finished() -> bool:
            # The run's end is recorded before it is announced.
            return any(data["action"] == "finished" for _, data in seen)

        await wait_until(finished, within=10)
        assert [(data["action"], data["run_id"]) for _, data in seen] == [
            ("started", run["id"]),
            ("step", run["id"]),
            ("step", run["id"]),
            ("finished", run["id"]),
        ]


def test_a_stopping_server_ends_its_streams(server_root: Path, tmp_path: Path) -> None:
    server = ServerProcess(server_root, tmp_path / "p" / "tasks.db", tmp_path / "server.log")
    try:
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=20)) as client,
            client.stream(
                "GET",
                f"{server.url}taskplanner/api/events",
                headers={"Authorization": f"token {server.token}", **STREAM},
            ) as response,
        ):
            assert response.status_code == 200
            lines = response.iter_lines()
            assert next(lines) == "retry: 3000"
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            rest = list(lines)  # ends when the server closes the stream cleanly
            took = time.monotonic() - started
        assert ": connected" in rest
        assert took < 10, took
        server.process.wait(30)
    finally:
        server.stop()


class TestThroughTheHubForwarder:
    """A user's server in hub client mode relays the service's stream as it comes."""

    @pytest.fixture
    def service(self, server_root: Path, tmp_path: Path) -> Iterator[ServerProcess]:
        server = ServerProcess(
            server_root,
            tmp_path / "service" / "tasks.db",
            tmp_path / "service.log",
            "--ServerApp.base_url=/services/taskplanner/",
            "--TaskPlannerApp.event_heartbeat_seconds=0.2",
        )
        yield server
        server.stop()

    @pytest.fixture
    def planner_settings(
        self, service: ServerProcess, monkeypatch: pytest.MonkeyPatch
    ) -> dict[str, Any]:
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", service.token)
        monkeypatch.setenv("JUPYTERHUB_BASE_URL", "/")
        return {"hub_client": True, "hub_service_url": f"http://127.0.0.1:{service.port}"}

    async def test_the_stream_passes_through(self, api, event_streams, job):
        async with event_streams() as streams:
            alice = api("alice")
            task = await create_task(alice, jobs=[job("hello")])
            stream = await streams("alice")
            assert stream.response.status_code == 200
            assert stream.response.headers["Content-Type"].startswith("text/event-stream")
            run = await _run(alice, task["id"])
            seen = await _until_finished(stream, run["id"])
            assert [(e["action"], e["owner"]) for e in seen] == [
                ("started", "alice"),
                ("step", "alice"),
                ("step", "alice"),
                ("finished", "alice"),
            ]

            async def beating() -> bool:
                return stream.heartbeats >= 1

            await wait_until(beating, within=10)
            plain = await streams("alice", headers={"Accept": "application/json"})
            assert plain.response.status_code == 406
