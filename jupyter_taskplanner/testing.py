"""Identity and authorization for acting as several users against one server in tests.

Configure the server with::

    c.ServerApp.identity_provider_class = "jupyter_taskplanner.testing.TokenUsersIdentityProvider"
    c.TokenUsersIdentityProvider.user_tokens = {"alice-token": "alice", "root-token": "root"}
    c.ServerApp.authorizer_class = "jupyter_taskplanner.testing.GrantsAuthorizer"
    c.GrantsAuthorizer.grants = {
        "alice": ["taskplanner"],
        "root": ["taskplanner", "taskplanner:admin"],
    }

and send ``Authorization: token alice-token`` to act as alice.  Plugins can use the same
classes in their own tests.  ``ServerProcess`` starts a real server process (for restarts,
several processes on one database, benchmarks).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, List, Unicode


def validate_as_saved(
    registry: Any, kind: str, entry: dict[str, Any], where: str, root: Path | None = None
) -> dict[str, Any]:
    """Check one component entry as saving a task does: schema, ``check_config`` and paths.

    Paths are checked against ``root`` (default: a root folder that does not exist, which
    is enough for paths that climb out of any root).  Raises ``InvalidConfig`` naming the
    field, e.g. ``jobs[0].config.path``; returns the validated entry.
    """
    from .model import check_entry_paths
    from .paths import OwnerFiles

    validated = registry.validate(kind, entry, where)
    files = OwnerFiles(root or Path("/nonexistent/owner-root"))
    check_entry_paths(registry, kind, validated, where, files)
    return validated


class TokenUsersIdentityProvider(IdentityProvider):
    """Maps each of several API tokens to its own user name."""

    user_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="API token -> user name.",
    )

    async def get_user_token(self, handler: Any) -> User | None:
        token = self.get_token(handler)
        name = self.user_tokens.get(token) if token else None
        return User(username=name) if name else None

    def get_user_cookie(self, handler: Any) -> User | None:
        # Each request names its user by token; no cookie may carry one user into another.
        return None

    def set_login_cookie(self, handler: Any, user: User) -> None:
        """No cookies: every request is authenticated by its token."""


class GrantsAuthorizer(Authorizer):
    """Grants planner resources per user name; everything else is allowed."""

    grants = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="user name -> planner resources granted (taskplanner, taskplanner:admin, ...).",
    )

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        if not resource.startswith("taskplanner"):
            return True
        return resource in self.grants.get(user.username, [])


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A real ``jupyter server`` process with the planner, on 127.0.0.1, single-user.

    Started when created; ``startup`` holds the seconds until its scheduler ran.  Always
    ``stop()`` it.
    """

    def __init__(
        self, root: Path, db_path: Path, log: Path, *options: str, owner: str = "alice"
    ) -> None:
        self.port = free_port()
        self.token = "process-token"
        self.log_path = log
        self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={root}",
                f"--TaskPlannerApp.db_path={db_path}",
                f"--TaskPlannerApp.single_user_name={owner}",
                *options,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "JUPYTER_DATA_DIR": str(Path(db_path).parent / "data")},
        )
        self.startup = self.wait_for_log("scheduler started")

    def wait_for_log(self, text: str, within: float = 600) -> float:
        """Wait until the server logged ``text``; the seconds from its start until then."""
        while text.encode() not in self.log_path.read_bytes():
            if self.process.poll() is not None or time.monotonic() - self.started > within:
                self.stop()
                raise RuntimeError(f"the server never logged {text!r}; see {self.log_path}")
            time.sleep(0.05)
        return time.monotonic() - self.started

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the planner's REST API; returns the decoded JSON answer."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/taskplanner/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class WatchRecorder:
    """Runs an event trigger's ``watch`` in a task and records each event and its arrival.

    For tests of event triggers::

        async with WatchRecorder(trigger, root) as watching:
            (root / "inbox" / "a.txt").write_text("a")
            await watching.until(1)
        assert watching.events == [...]
    """

    def __init__(self, trigger: Any, root: Path, startup: float = 0.3) -> None:
        self.trigger = trigger
        self.root = root
        self.startup = startup
        """Seconds to give the watch to be in place before the test changes anything."""
        self.stop = asyncio.Event()
        self.events: list[dict[str, Any]] = []
        self.arrivals: list[float] = []

    async def __aenter__(self) -> WatchRecorder:
        self.task = asyncio.create_task(self._consume())
        await asyncio.sleep(self.startup)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stop.set()
        await asyncio.wait_for(self.task, 2)

    async def _consume(self) -> None:
        async for event in self.trigger.watch(self.root, self.stop):
            self.events.append(event)
            self.arrivals.append(time.monotonic())

    async def until(self, count: int, within: float = 5) -> None:
        """Wait until ``count`` events arrived (fails if the watch ended or time ran out)."""
        deadline = time.monotonic() + within
        while len(self.events) < count:
            assert not self.task.done(), self.task
            assert time.monotonic() < deadline, f"only {len(self.events)} events: {self.events}"
            await asyncio.sleep(0.02)
