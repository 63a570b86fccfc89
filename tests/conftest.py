"""Fixtures: a real Jupyter server with the planner, and clients acting as several users."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError, HTTPResponse

pytest_plugins = ["pytest_jupyter.jupyter_server"]

TOKENS = {"alice": "alice-token", "bob": "bob-token", "root": "root-token", "eve": "eve-token"}
GRANTS = {
    "alice": ["taskplanner"],
    "bob": ["taskplanner"],
    "root": ["taskplanner", "taskplanner:admin"],
    "eve": [],
}


@pytest.fixture
def jp_server_config(tmp_path):
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
        "TaskPlannerApp": {"db_path": str(tmp_path / "planner" / "tasks.db")},
    }


class Reply:
    """An HTTP reply: status, headers and the decoded JSON body (None when empty)."""

    def __init__(self, response: HTTPResponse) -> None:
        self.status = response.code
        self.headers = response.headers
        self.body: Any = json.loads(response.body) if response.body else None

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.body!r}>"


Api = Callable[..., Awaitable[Reply]]


@pytest.fixture
def api(jp_fetch) -> Callable[[str | None], Api]:
    """``api("alice")`` returns a caller acting as alice; ``api(None)`` is unauthenticated.

    The caller takes ``(method, path, body=None, params=None, headers=None)`` with ``path``
    relative to ``/taskplanner/api`` and never raises for HTTP error statuses.
    """

    def as_user(user: str | None) -> Api:
        async def call(
            method: str,
            path: str,
            body: Any = None,
            params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None,
        ) -> Reply:
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
