"""Helpers for testing the planner and its plugins, against a real Jupyter server or without one.

The pytest plugin ``jupyter_taskplanner.pytest_plugin`` builds its fixtures on these; see
"Testing a plugin" in docs/plugins.md.

Several users on one server: ``TokenUsersIdentityProvider`` maps each API token to its own
user and ``GrantsAuthorizer`` grants planner resources per user::

    c.ServerApp.identity_provider_class = "jupyter_taskplanner.testing.TokenUsersIdentityProvider"
    c.TokenUsersIdentityProvider.user_tokens = {"alice-token": "alice", "root-token": "root"}
    c.ServerApp.authorizer_class = "jupyter_taskplanner.testing.GrantsAuthorizer"
    c.GrantsAuthorizer.grants = {
        "alice": ["taskplanner"],
        "root": ["taskplanner", "taskplanner:admin"],
    }

then ``Authorization: token alice-token`` acts as alice.  ``TOKENS`` and ``GRANTS`` are the
users the plugin configures.

- The REST API: ``Reply`` (what an ``Api`` caller returns), ``create_task``, ``runs_of``,
  ``wait_for_run``, ``wait_until``, ``wait_idle``; ``in_thread`` for the blocking client.
- Time: ``FakeClock`` is a scheduler clock only the test moves; ``saved_document``,
  ``store_task`` and ``schedule_as_stopped`` leave a database as a server that stopped long
  ago left it.
- Outside servers: ``smtp_server`` and ``http_server`` record mails and requests on 127.0.0.1.
- Processes: ``ServerProcess`` runs a real server (restarts, several processes on one
  database, benchmarks); ``KernelSession`` runs cells in a kernel such a server started for a
  notebook; ``Cli`` runs the ``jupyter-taskplanner`` command.
- Components: ``validate_as_saved`` checks an entry as saving a task does;
  ``WatchRecorder`` records what an event trigger's ``watch`` yields.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from zoneinfo import ZoneInfo

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, List, Unicode

from .cli_preload import PreloadedCli
from .components.base import TimedTrigger
from .components.registry import Registry
from .model import SaveContext, check_entry_paths, prepare
from .paths import OwnerFiles
from .permissions import ComponentRules
from .scheduler import BATCH, trigger_key
from .store import Store, stamp
from .vocabulary import FINISHED, TaskRecord

if TYPE_CHECKING:
    from tornado.httpclient import HTTPResponse

    from .planner import Planner

HOST = "127.0.0.1"
Item = TypeVar("Item")

# -- several users on one server ---------------------------------------------------------------

TOKENS = {
    "alice": "alice-token",
    "bob": "bob-token",
    "carol": "carol-token",
    "root": "root-token",
    "eve": "eve-token",
    "dan": "dan-token",
}
"""The test users and their API tokens."""
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
"""What each test user may use: root is the planner's admin."""


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


# -- the REST API --------------------------------------------------------------------------------


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
"""A caller of the planner API as one user: ``await call(method, path, body=None, params=None,
headers=None)`` with ``path`` relative to ``/taskplanner/api``; never raises for error statuses."""


async def create_task(call: Api, **body: Any) -> dict[str, Any]:
    """Create a task (named "t" unless ``body`` names it); the stored task."""
    reply = await call("POST", "/tasks", {"name": "t", **body})
    assert reply.status == 201, reply
    return reply.body


async def start_run(call: Api, task: Mapping[str, Any]) -> int:
    """Start the task now (``POST /tasks/{id}/run``); the new run's id."""
    reply = await call("POST", f"/tasks/{task['id']}/run")
    assert reply.status == 202, reply
    return int(reply.body["id"])


def python_job(module: str, function: str, **kwargs: Any) -> dict[str, Any]:
    """A python job entry named ``function`` calling ``module:function(**kwargs)``."""
    config = {"function": f"{module}:{function}", "kwargs": kwargs}
    return {"type": "python", "name": function, "config": config}


async def runs_of(call: Api, task_id: int) -> list[dict[str, Any]]:
    """The task's runs, newest first."""
    reply = await call("GET", f"/tasks/{task_id}/runs", params={"limit": 500})
    assert reply.status == 200, reply
    return reply.body["runs"]


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


async def wait_idle(planner: Planner, within: float = 30) -> None:
    """Wait until no run of ``planner`` executes, finishes or waits.

    A run's finish includes the runs it starts (next tasks, tasks triggered by its end), so
    afterwards a test can check that a run started nothing it should not have.
    """

    async def idle() -> bool:
        return not planner.engine.busy

    await wait_until(idle, within)


async def in_thread(function: Callable[..., Item], *args: Any, **kwargs: Any) -> Item:
    """Call blocking code (the ``client.TaskPlanner``, a widget's ``click()``) off the event
    loop the test server runs on."""
    return await asyncio.to_thread(function, *args, **kwargs)


# -- time ----------------------------------------------------------------------------------------


class FakeClock:
    """The scheduler's clock in a test: time moves only when the test moves it.

    ``FakeClock(planner, start_planner)`` becomes the clock of ``planner.scheduler``; make it
    before the scheduler starts, so the scheduler plans with it from the start.
    ``start_planner`` starts the planner (once) when it has not started yet.  ``now`` is the
    time the clock tells, by default the current second.  Fires come due only through
    ``advance`` and their ``trigger.due`` is on this clock; the runs' own times (``created``,
    ``started``) stay on the wall clock.
    """

    def __init__(
        self,
        planner: Planner,
        start_planner: Callable[[], Awaitable[None]],
        now: datetime | None = None,
    ) -> None:
        self.planner = planner
        self.start_planner = start_planner
        self.now = now or datetime.now(UTC).replace(microsecond=0)
        planner.scheduler.now = self

    def __call__(self) -> datetime:
        return self.now

    async def advance(self, seconds: float) -> datetime:
        """Move the time on by ``seconds`` and wake the scheduler; the new time.

        First starts the planner if needed and waits until the scheduler is done with the
        present: every stored task planned (so one saved just before is scheduled from the
        old time) and every fire due by now taken, catch-up included (a fire with ``jitter``
        once its jitter passed).  A fire the clock passes by more than ``misfire_tolerance``
        (30 s) is late: the task's ``misfire`` setting decides what runs.
        """

        async def caught_up() -> bool:
            return await self.planner.db.call(self._caught_up)

        await self.start_planner()
        await wait_until(caught_up)
        self.now += timedelta(seconds=seconds)
        self.planner.scheduler.notify()
        return self.now

    def _caught_up(self) -> bool:
        """On the database thread: whether the store shows nothing left to plan or fire."""
        store = self.planner.store
        if store.tasks_to_schedule(1):
            return False
        rows, horizon = store.upcoming_fires(BATCH)
        if horizon is not None and datetime.fromisoformat(horizon[0]) <= self.now:
            return False
        for task_id, _, due in rows:
            task = store.find_task(task_id)
            jitter = (task["settings"].get("jitter") or 0) if task else 0
            if datetime.fromisoformat(due) + timedelta(seconds=jitter) <= self.now:
                return False
        return True


def saved_document(
    body: dict[str, Any], registry: Registry | None = None, owner: str = "alice"
) -> dict[str, Any]:
    """The task document saving ``body`` makes (validated, defaults filled), without a server.

    Paths resolve in the current folder and every permission is granted.
    """
    rules = ComponentRules(lambda owner, resource: True, False)
    context = SaveContext(
        registry or Registry.from_entry_points(),
        owner,
        rules,
        OwnerFiles(Path.cwd()),
        Path.cwd() / ".snapshots",
    )
    return prepare(body, context)


def store_task(db_path: Path, body: dict[str, Any], owner: str = "alice") -> TaskRecord:
    """Store a task as saving ``body`` does, without a server (as an import or the CLI does)."""
    store = Store(db_path)
    try:
        return store.create_task(owner, saved_document(body, owner=owner))
    finally:
        store.close()


def schedule_as_stopped(db_path: Path, task: Mapping[str, Any], at: datetime) -> None:
    """Leave the schedule of ``task``'s first trigger, a timed one, as a server stopped ``at``
    left it."""
    trigger = Registry.from_entry_points().instantiate("trigger", task["triggers"][0])
    assert isinstance(trigger, TimedTrigger), trigger
    nxt = trigger.next_fire(at, ZoneInfo("UTC"))
    store = Store(db_path)
    try:
        key = trigger_key(0, task["triggers"][0])
        store.set_schedule(task["id"], task["revision"], {key: (None, stamp(nxt) if nxt else None)})
    finally:
        store.close()


# -- outside servers -----------------------------------------------------------------------------


class _Inbox(Generic[Item]):
    """A thread-safe list that tests can wait on."""

    def __init__(self, what: str) -> None:
        self.items: list[Item] = []
        self._what = what
        self._changed = threading.Condition()

    def add(self, item: Item) -> None:
        with self._changed:
            self.items.append(item)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[Item]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.items) >= count, timeout):
                raise TimeoutError(self._timeout_message(count, timeout))
            return list(self.items)

    # A timeout argument (not asyncio.timeout) so the failure can say how many items arrived.
    async def wait_async(self, count: int, timeout: float) -> list[Item]:  # noqa: ASYNC109
        # Polls so an async test keeps its event loop (and the Jupyter server on it) running.
        deadline = time.monotonic() + timeout
        while len(self.items) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(self._timeout_message(count, timeout))
            await asyncio.sleep(0.05)
        return list(self.items)

    def _timeout_message(self, count: int, timeout: float) -> str:
        return f"expected {count} {self._what} within {timeout}s, got {len(self.items)}"


class ReceivedMessage(EmailMessage):
    """A mail the SMTP server received, parsed, with its SMTP envelope."""

    envelope_from: str = ""
    envelope_to: list[str]


class SmtpServer:
    """A running SMTP server: ``host``, ``port``, received ``messages`` and successful ``logins``.

    A ``ReceivedMessage`` also carries the envelope's sender and recipients, so Bcc
    recipients can be checked.
    """

    def __init__(self, port: int) -> None:
        self.host = HOST
        self.port = port
        self._inbox: _Inbox[ReceivedMessage] = _Inbox("mails")
        self.logins: list[str] = []

    @property
    def messages(self) -> list[ReceivedMessage]:
        return self._inbox.items

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:
        """Block until ``count`` mails arrived; the mails so far."""
        return self._inbox.wait_for(count, timeout)

    async def wait_async(self, count: int, timeout: float = 10) -> list[ReceivedMessage]:  # noqa: ASYNC109
        """Like ``wait_for``, without blocking the event loop."""
        return await self._inbox.wait_async(count, timeout)


@contextmanager
def smtp_server(users: dict[str, str] | None = None) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1 (a free port); with ``users`` (name -> password) it
    offers AUTH, allowed without TLS because the server only listens on loopback.

    Needs ``aiosmtpd`` (in the planner's ``test`` extra).
    """
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    server = SmtpServer(0)

    class Handler:
        async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
            parser = BytesParser(_class=ReceivedMessage, policy=policy.default)
            message = cast(
                ReceivedMessage, parser.parsebytes(envelope.original_content or envelope.content)
            )
            message.envelope_from = envelope.mail_from
            message.envelope_to = list(envelope.rcpt_tos)
            server._inbox.add(message)
            return "250 Message accepted"

    class FreePortController(Controller):
        def _trigger_server(self) -> None:
            # The base class connects to self.port to finish start-up: learn the real port.
            assert isinstance(self.server, asyncio.Server), self.server
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if users and users.get(login) == password:
                server.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    controller = FreePortController(
        Handler(),
        hostname=HOST,
        port=0,
        server_hostname="localhost",
        authenticator=authenticate if users else None,
        auth_require_tls=False,
    )
    controller.start()
    server.port = controller.port
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class FormPart:
    """One field of a multipart/form-data body."""

    name: str
    filename: str | None
    content_type: str
    data: bytes


@dataclass
class ReceivedRequest:
    """An HTTP request the server received."""

    method: str
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> list[FormPart]:
        """The parts of a multipart/form-data body, in order (a name may repeat)."""
        head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
        message = BytesParser(policy=policy.default).parsebytes(head + self.body)
        if not message.is_multipart():
            raise ValueError(f"not a multipart body: {self.headers['Content-Type']}")
        return [
            FormPart(
                name=cast(str, part.get_param("name", header="content-disposition")),
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=cast(bytes, part.get_payload(decode=True)),
            )
            for part in message.iter_parts()
        ]


class HttpServer:
    """A running HTTP server: ``url``, received ``requests``, and the reply it gives.

    Every request gets ``status`` with ``reply_body``; change them with ``reply()``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.status = 200
        self.reply_body = b"ok"
        self.reply_type = "text/plain"
        self._inbox: _Inbox[ReceivedRequest] = _Inbox("requests")

    @property
    def requests(self) -> list[ReceivedRequest]:
        return self._inbox.items

    def reply(self, status: int, body: bytes | str = b"", content_type: str = "text/plain") -> None:
        """Answer later requests with this status and body."""
        self.status = status
        self.reply_body = body.encode() if isinstance(body, str) else body
        self.reply_type = content_type

    def wait_for(self, count: int, timeout: float = 10) -> list[ReceivedRequest]:
        """Block until ``count`` requests arrived; the requests so far."""
        return self._inbox.wait_for(count, timeout)

    async def wait_async(self, count: int, timeout: float = 10) -> list[ReceivedRequest]:  # noqa: ASYNC109
        """Like ``wait_for``, without blocking the event loop."""
        return await self._inbox.wait_async(count, timeout)


@contextmanager
def http_server() -> Iterator[HttpServer]:
    """Run an HTTP server on 127.0.0.1 (a free port) that records every request."""

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            state._inbox.add(ReceivedRequest(self.command, self.path, self.headers, body))
            self.send_response(state.status)
            self.send_header("Content-Type", state.reply_type)
            self.send_header("Content-Length", str(len(state.reply_body)))
            self.end_headers()
            self.wfile.write(state.reply_body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean; the requests are recorded instead

    httpd = ThreadingHTTPServer((HOST, 0), Handler)
    state = HttpServer(f"http://{HOST}:{httpd.server_address[1]}")
    # A short poll interval makes shutdown() return quickly at the end of each test.
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


# -- processes -----------------------------------------------------------------------------------

BIN = Path(sys.executable).parent
"""This environment's folder of console scripts (``jupyter``, ``jupyter-taskplanner``)."""
CLI = str(BIN / "jupyter-taskplanner")


def code_notebook(*sources: str, parameters: str | None = None) -> dict[str, Any]:
    """A Python 3 notebook (nbformat 4) of code cells with ``sources``, after a cell tagged
    ``parameters`` holding ``parameters`` when given."""
    tagged = [(["parameters"], parameters)] if parameters is not None else []
    cells: list[dict[str, Any]] = [
        {
            "cell_type": "code",
            "id": f"cell-{index}",
            "metadata": {"tags": tags} if tags else {},
            "source": source,
            "outputs": [],
            "execution_count": None,
        }
        for index, (tags, source) in enumerate([*tagged, *(([], source) for source in sources)])
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


PORT_ATTEMPTS = 3
"""How many ports a test server is started on before its test gives up."""


def port_was_taken(log: bytes, port: int) -> bool:
    """Whether a Jupyter server started with ``--ServerApp.port_retries=0`` logged that
    ``port`` was in use (it then exits, to be started again on another)."""
    return f"port {port} is".encode() in log


class ServerProcess:
    """A real ``jupyter server`` process with the planner, on 127.0.0.1, single-user.

    Started when created; ``startup`` holds the seconds until its scheduler ran.  Always
    ``stop()`` it.
    """

    def __init__(
        self, root: Path, db_path: Path, log: Path, *options: str, owner: str = "alice"
    ) -> None:
        self.token = "process-token"
        self.log_path = log
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            "--ServerApp.port_retries=0",
            f"--ServerApp.ip={HOST}",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={root}",
            f"--TaskPlannerApp.db_path={db_path}",
            f"--TaskPlannerApp.single_user_name={owner}",
            *options,
        ]
        # A free port can be taken (by any process's connection) before the server binds
        # it: the server then exits, and starts again on another.
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.log = open(log, "ab")  # noqa: SIM115 - closed in stop()
            self._log_from = log.stat().st_size
            self.started = time.monotonic()
            self.process = subprocess.Popen(
                [*command, f"--ServerApp.port={self.port}"],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "JUPYTER_DATA_DIR": str(Path(db_path).parent / "data")},
            )
            try:
                self.startup = self.wait_for_log("scheduler started")
                return
            except RuntimeError:
                if not port_was_taken(self._logged(), self.port):
                    raise
        raise RuntimeError(f"no free port for the server in {PORT_ATTEMPTS} attempts; see {log}")

    def _logged(self) -> bytes:
        """What this start of the server logged."""
        return self.log_path.read_bytes()[self._log_from :]

    def wait_for_log(self, text: str, within: float = 600) -> float:
        """Wait until the server logged ``text``; the seconds from its start until then."""
        while text.encode() not in self._logged():
            if self.process.poll() is not None or time.monotonic() - self.started > within:
                self.stop()
                raise RuntimeError(f"the server never logged {text!r}; see {self.log_path}")
            time.sleep(0.05)
        return time.monotonic() - self.started

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://{HOST}:{self.port}/"

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Call the planner's REST API; returns the decoded JSON answer."""
        return self.request(method, f"/taskplanner/api{path}", body)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """Call any route of the server (``/api/sessions``); the decoded JSON answer."""
        request = urllib.request.Request(
            f"http://{HOST}:{self.port}{path}",
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


def cli_environment(home: Path, user: str = "alice", **extra: str) -> dict[str, str]:
    """An environment for the command line: private Jupyter folders under ``home``, acting as
    ``user`` (``extra`` variables added, e.g. ``PYTHONPATH``)."""
    environ = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("JUPYTER", "PYTHONPATH"))
    }
    environ.update(
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
        JUPYTERHUB_USER=user,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        **extra,
    )
    return environ


@dataclass
class CellOutput:
    """What executing one cell gave: its printed and displayed text, its outputs as a
    notebook stores them, and its error (``ename: evalue``) or None."""

    text: str
    outputs: list[dict[str, Any]]
    error: str | None


class KernelSession:
    """A kernel that a ``ServerProcess`` started for a notebook (``POST /api/sessions``),
    driven as a notebook frontend drives it: ``run(code)`` executes a cell.  Always
    ``stop()`` it (it shuts the kernel down through the server).
    """

    def __init__(self, server: ServerProcess, path: str, runtime_dir: Path) -> None:
        from jupyter_client.blocking.client import BlockingKernelClient

        self.server = server
        body = {"path": path, "type": "notebook", "kernel": {"name": "python3"}}
        session = server.request("POST", "/api/sessions", body)
        self.kernel_id = session["kernel"]["id"]
        self.client = BlockingKernelClient(
            connection_file=str(runtime_dir / f"kernel-{self.kernel_id}.json")
        )
        self.client.load_connection_file()
        # No heartbeat: a heartbeat not yet beating reads as a dead kernel in wait_for_ready.
        self.client.start_channels(hb=False)
        self.client.wait_for_ready(timeout=60)

    def run(self, code: str, timeout: float = 120) -> CellOutput:
        """Execute ``code`` as a cell; what it printed, displayed and raised."""
        outputs: list[dict[str, Any]] = []

        def record(message: dict[str, Any]) -> None:
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                outputs.append(
                    {"output_type": "stream", "name": content["name"], "text": content["text"]}
                )
            elif kind in ("display_data", "execute_result"):
                outputs.append(
                    {
                        "output_type": kind,
                        "data": content["data"],
                        "metadata": content.get("metadata", {}),
                    }
                )
            elif kind == "error":
                outputs.append({"output_type": "error", **content})

        self.client.execute_interactive(
            code, output_hook=record, timeout=timeout, allow_stdin=False
        )
        text = "".join(
            output.get("text") or output.get("data", {}).get("text/plain", "") for output in outputs
        )
        errors = [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]
        return CellOutput(text, outputs, errors[0] if errors else None)

    def stop(self) -> None:
        self.client.stop_channels()
        self.server.request("DELETE", f"/api/kernels/{self.kernel_id}")


_PRELOADED = PreloadedCli()


class Cli:
    """Runs the ``jupyter-taskplanner`` command with a fixed environment and database.

    ``preloaded`` (the default): each command is a fork of one interpreter that imported the
    command line already (``cli_preload``), still a process of its own with this environment,
    seconds sooner; False runs the console script itself.
    """

    def __init__(self, env: dict[str, str], db: Path | None, preloaded: bool = True) -> None:
        self.env = env
        self.db = db
        self.preloaded = preloaded

    def __call__(
        self, *args: str, stdin: str | None = None, expect: int = 0, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the command (on ``db`` when given arguments); fails unless it exits ``expect``
        without a traceback."""
        argv = [CLI, *args] + ([f"--db-path={self.db}"] if self.db and args else [])
        if self.preloaded:
            result = _PRELOADED.run(argv, self.env, cwd=cwd, stdin=stdin, timeout=60)
        else:
            result = subprocess.run(
                argv, input=stdin, capture_output=True, text=True, env=self.env, timeout=60, cwd=cwd
            )
        assert result.returncode == expect, (result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def fails(self, *args: str, expect: int = 1, stdin: str | None = None) -> str:
        """The one error line of a failing command."""
        result = self(*args, expect=expect, stdin=stdin)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1, result.stderr
        assert result.stderr.rstrip().endswith(errors[0]), result.stderr
        return errors[0]


# -- components ----------------------------------------------------------------------------------


def validate_as_saved(
    registry: Any, kind: str, entry: dict[str, Any], where: str, root: Path | None = None
) -> dict[str, Any]:
    """Check one component entry as saving a task does: schema, ``check_config`` and paths.

    Paths are checked against ``root`` (default: a root folder that does not exist, which
    is enough for paths that climb out of any root).  Raises ``InvalidConfig`` naming the
    field, e.g. ``jobs[0].config.path``; returns the validated entry.
    """
    validated = registry.validate(kind, entry, where)
    files = OwnerFiles(root or Path("/nonexistent/owner-root"))
    check_entry_paths(registry, kind, validated, where, files)
    return validated


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
