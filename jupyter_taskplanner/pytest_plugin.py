"""Pytest fixtures for testing the planner and its plugins against a real Jupyter server.

Installed as the ``taskplanner`` pytest plugin (a ``pytest11`` entry point), so pytest loads
it in every run of an environment that has the planner: it imports nothing but pytest until
a test asks for one of its fixtures, has no autouse fixtures and no hooks, and so changes no
other project's tests.  Its server fixtures build on pytest-jupyter's ``jp_*`` fixtures,
which the test suite loads itself (``pytest-jupyter[server]``); this plugin does not load
them, as they take over every async test and clean up a server after every test.  In the
suite's top ``conftest.py``::

    pytest_plugins = ["pytest_jupyter.jupyter_server"]


    @pytest.fixture
    def jp_server_config(taskplanner_server_config):
        return taskplanner_server_config

(a plugin's fixture cannot replace pytest-jupyter's ``jp_server_config``, which is
registered after it, and should not, as that would change every server in the
environment).  Then ``api("alice")`` calls the planner as alice; see "Testing a plugin" in
docs/plugins.md for every fixture.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from distributed import LocalCluster
    from jupyter_server.serverapp import ServerApp

    from .client import TaskPlanner
    from .planner import Planner
    from .testing import Api, FakeClock, HttpServer, SmtpServer


@pytest.fixture
def planner_settings() -> dict[str, Any]:
    """Extra ``TaskPlannerApp`` settings; override in a test module to change them."""
    return {}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """The planner's database; run folders go beside it."""
    return tmp_path / "planner" / "tasks.db"


@pytest.fixture
def taskplanner_server_config(db_path: Path, planner_settings: dict[str, Any]) -> dict[str, Any]:
    """Server config with the planner, its ``db_path`` and ``planner_settings``, serving the
    users of ``testing.TOKENS`` with the grants of ``testing.GRANTS``."""
    from .testing import GRANTS, TOKENS

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


@pytest.fixture(scope="module")
def dask_cluster_options() -> dict[str, Any]:
    """Extra ``LocalCluster`` options of ``dask_cluster`` (``{"resources": {"GPU": 1}}``);
    override in a test module to change them."""
    return {}


@pytest.fixture(scope="module")
def dask_cluster(dask_cluster_options: dict[str, Any]) -> Iterator[LocalCluster]:
    """A real Dask cluster shared by a test module (needs ``distributed``): two worker
    processes on 127.0.0.1 of two threads each, on free ports, preloading the Dask executor
    as ``dask worker --preload`` does (so a first job does not spend its time importing)."""
    from distributed import LocalCluster

    options: dict[str, Any] = {
        "n_workers": 2,
        "threads_per_worker": 2,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": ":0",
        "preload": ["jupyter_taskplanner.executors.dask"],
        **dask_cluster_options,
    }
    with LocalCluster(**options) as cluster:
        yield cluster


@pytest.fixture
def dask_server_config(
    taskplanner_server_config: dict[str, Any], dask_cluster: LocalCluster
) -> dict[str, Any]:
    """``taskplanner_server_config`` with the ``DaskExecutor`` running jobs on
    ``dask_cluster``."""
    return {
        **taskplanner_server_config,
        "TaskPlannerApp": {
            **taskplanner_server_config["TaskPlannerApp"],
            "executor_class": "jupyter_taskplanner.executors.DaskExecutor",
        },
        "DaskExecutor": {"scheduler_address": dask_cluster.scheduler_address},
    }


@pytest.fixture
def planner(jp_serverapp: ServerApp) -> Planner:
    """The planner of the test server: its store, engine, scheduler, registry, settings."""
    found: Planner = jp_serverapp.web_app.settings["taskplanner"]
    return found


@pytest.fixture
def start_planner(jp_serverapp: ServerApp) -> Callable[[], Awaitable[None]]:
    """``await start_planner()`` starts the server's extensions (the scheduler) once, as a
    running server does.

    The first ``api`` call and the first ``planner_clock.advance`` do it, so until then a test
    can prepare what the planner finds when it starts (tasks stored without a server).
    """
    started: list[bool] = []

    async def start() -> None:
        if not started:
            started.append(True)
            await jp_serverapp.extension_manager.start_all_extensions()

    return start


@pytest.fixture
def api(
    jp_fetch: Any, jp_serverapp: ServerApp, start_planner: Callable[[], Awaitable[None]]
) -> Callable[[str | None], Api]:
    """``api("alice")`` returns a caller acting as alice; ``api(None)`` is unauthenticated.

    The caller takes ``(method, path, body=None, params=None, headers=None)`` with ``path``
    relative to ``/taskplanner/api`` and never raises for HTTP error statuses.  Users are
    those of the server's ``TokenUsersIdentityProvider``.  The first call starts the planner
    (``start_planner``).
    """
    import json

    from tornado.httpclient import HTTPClientError

    from .testing import Reply, TokenUsersIdentityProvider

    provider = jp_serverapp.identity_provider
    assert isinstance(provider, TokenUsersIdentityProvider), "see taskplanner_server_config"
    tokens = {user: token for token, user in provider.user_tokens.items()}

    def as_user(user: str | None) -> Api:
        token = tokens[user] if user else "nope"

        async def call(
            method: str,
            path: str,
            body: Any = None,
            params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None,
        ) -> Reply:
            await start_planner()
            all_headers = {"Authorization": f"token {token}", **(headers or {})}
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


@pytest.fixture
def planner_client(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    start_planner: Callable[[], Awaitable[None]],
) -> Callable[[str], Awaitable[TaskPlanner]]:
    """``await planner_client("alice")``: a ``client.TaskPlanner`` of the (started) test server
    acting as that user.  It blocks: call it off the event loop with ``testing.in_thread``.
    (``jp_fetch`` makes the test server listen on its port.)"""
    from .client import TaskPlanner
    from .testing import TOKENS

    async def as_user(user: str) -> TaskPlanner:
        await start_planner()
        url = f"http://127.0.0.1:{jp_http_port}{jp_base_url}"
        return TaskPlanner(url=url, token=TOKENS[user])

    return as_user


@pytest.fixture
def run_events(planner: Planner) -> list[dict[str, Any]]:
    """The planner's run events (started, progress, finished), in order, as its event
    streams (``GET /taskplanner/api/events``) deliver them."""
    from .event_stream import follow_runs

    seen: list[dict[str, Any]] = []
    follow_runs(planner.bus, seen.append)
    return seen


@pytest.fixture
def planner_clock(planner: Planner, start_planner: Callable[[], Awaitable[None]]) -> FakeClock:
    """The scheduler's clock (a ``testing.FakeClock``), at the current second until
    ``await planner_clock.advance(seconds)`` moves it."""
    from .testing import FakeClock

    return FakeClock(planner, start_planner)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 recording the mails it gets (needs ``aiosmtpd``).

    It starts before the Jupyter server, so its port can go into the server's config.
    """
    from .testing import smtp_server

    with smtp_server() as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpServer]:
    """An HTTP server on 127.0.0.1 recording the requests it gets."""
    from .testing import http_server

    with http_server() as server:
        yield server
