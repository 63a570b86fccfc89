"""Fixtures: a real Jupyter server with the planner, and clients acting as several users."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

from jupyter_taskplanner.vocabulary import FINISHED

pytest_plugins = ["pytest_jupyter.jupyter_server", "helpers_servers"]

TOKENS = {
    "alice": "alice-token",
    "bob": "bob-token",
    "carol": "carol-token",
    "root": "root-token",
    "eve": "eve-token",
    "dan": "dan-token",
}
# The test server serves several identities and runs jobs under its own OS account, so the
# components that run code (notebook, python, script, command jobs; python series) need
# taskplanner:shell: dan has only the planner, eve not even that.
GRANTS = {
    "alice": ["taskplanner", "taskplanner:shell"],
    "bob": ["taskplanner", "taskplanner:shell"],
    "carol": ["taskplanner", "taskplanner:shell"],
    "root": ["taskplanner", "taskplanner:admin", "taskplanner:shell"],
    "eve": [],
    "dan": ["taskplanner"],
}


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    """Extra ``TaskPlannerApp`` settings; override in a test module to change them."""
    return {}


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "planner" / "tasks.db"


@pytest.fixture
def jp_server_config(tmp_path, db_path, planner_settings):
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_taskplanner": True},
            "identity_provider_class": "jupyter_taskplanner.testing.TokenUsersIdentityProvider",
            "authorizer_class": "jupyter_taskplanner.testing.GrantsAuthorizer",
        },
        "TokenUsersIdentityProvider": {
            "user_tokens": {token: user for user, token in TOKENS.items()},
        },
        "GrantsAuthorizer": {"grants": GRANTS},
        "TaskPlannerApp": {"db_path": str(db_path), **planner_settings},
    }


class Reply:
    """An HTTP reply: status, headers and the decoded JSON body (None when empty)."""

    def __init__(self, response: HTTPResponse) -> None:
        self.status = response.code
        self.headers = response.headers
        self.body: Any = None
        if response.body:
            is_json = "json" in response.headers.get("Content-Type", "")
            self.body = json.loads(response.body) if is_json else response.body.decode()

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body!r}>"


Api = Callable[..., Awaitable[Reply]]


@pytest.fixture
def api(jp_fetch, jp_serverapp) -> Callable[[str | None], Api]:
    """``api("alice")`` returns a caller acting as alice; ``api(None)`` is unauthenticated.

    The caller takes ``(method, path, body=None, params=None, headers=None)`` with ``path``
    relative to ``/taskplanner/api`` and never raises for HTTP error statuses.  The first
    call starts the server's extensions (the scheduler) as a running server does.
    """
    started: list[bool] = []

    def as_user(user: str | None) -> Api:
        async def call(
            method: str,
            path: str,
            body: Any = None,
            params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None,
        ) -> Reply:
            if not started:
                started.append(True)
                await jp_serverapp.extension_manager.start_all_extensions()
            all_headers = {"Authorization": f"token {TOKENS[user]}" if user else "token nope"}
            all_headers.update(headers or {})
            if body is not None and not isinstance(body, (str, bytes)):
                body = json.dumps(body)
            if body is None and method in ("POST", "PUT", "PATCH"):
                body = ""
            try:
                response = await jp_fetch(
                    "taskplanner/api" + path,
                    method=method,
                    body=body,
                    params=params,
                    headers=all_headers,
                    allow_nonstandard_methods=True,
                )
            except HTTPClientError as exc:
                assert exc.response is not None, exc
                response = exc.response
            return Reply(response)

        return call

    return as_user


async def wait_for_run(call: Api, run_id: int, within: float = 60) -> dict[str, Any]:
    """Poll a run until it ends; return its detail."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reply = await call("GET", f"/runs/{run_id}")
        assert reply.status == 200, reply
        if reply.body["status"] in FINISHED:
            return reply.body
        await asyncio.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end within {within} s: {reply.body}")


async def wait_until(predicate: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    """Poll an async predicate until it holds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def run_events(jp_serverapp) -> list[dict[str, Any]]:
    """The planner's run events (started, progress, finished) the server emits, in order."""
    seen: list[dict[str, Any]] = []

    async def listener(logger: Any, schema_id: str, data: dict[str, Any]) -> None:
        seen.append(data)

    jp_serverapp.event_logger.add_listener(
        schema_id="https://events.jupyter.org/jupyter_taskplanner/run/v1", listener=listener
    )
    return seen
