"""Real local servers for tests: an SMTP server (aiosmtpd) and an HTTP server, on 127.0.0.1.

Both are context managers that stop their server on exit::

    with smtp_server() as smtp, http_server() as http:
        ...  # configure the planner with smtp.port and http.url
        mail = smtp.wait_for(1)[0]          # blocking; in async tests: await smtp.wait_async(1)
        request = http.wait_for(1)[0]

As pytest fixtures (``smtp``, ``http``: add ``"helpers_servers"`` to ``pytest_plugins`` in
conftest.py, or import them into a test module), the SMTP server starts before the Jupyter server
so its port can go into the server's config::

    @pytest.fixture
    def jp_server_config(jp_server_config, smtp):
        return {**jp_server_config, "EmailSettings": {"host": smtp.host, "port": smtp.port}}

``smtp.messages`` holds :class:`ReceivedMessage` (an ``EmailMessage`` that also carries the
envelope sender and recipients, so Bcc recipients can be checked); ``http.requests`` holds
:class:`ReceivedRequest` (method, path, headers, body, with ``json()`` and ``form()``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from http.client import HTTPMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"
Item = TypeVar("Item")


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
    """A running SMTP server: ``port``, received ``messages`` and successful ``logins``."""

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


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(_class=ReceivedMessage, policy=policy.default).parsebytes(
            envelope.original_content or envelope.content
        )
        message.envelope_from = envelope.mail_from
        message.envelope_to = list(envelope.rcpt_tos)
        self.server._inbox.add(message)
        return "250 Message accepted"


class _Controller(Controller):
    """aiosmtpd's threaded controller, bound to a free port chosen by the OS."""

    def _trigger_server(self) -> None:
        # The base class connects to self.port to finish start-up, so learn the real port first.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@contextmanager
def smtp_server(users: dict[str, str] | None = None) -> Iterator[SmtpServer]:
    """Run an SMTP server on 127.0.0.1; with ``users`` (name -> password) it offers AUTH.

    AUTH is allowed without TLS here because the server only listens on loopback.
    """
    server = SmtpServer(0)

    def authenticate(smtp: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        if isinstance(data, LoginPassword):
            login, password = data.login.decode(), data.password.decode()
            if users and users.get(login) == password:
                server.logins.append(login)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    controller = _Controller(
        _Handler(server),
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
    headers: HTTPMessage
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
                name=part.get_param("name", header="content-disposition"),
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=part.get_payload(decode=True),
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


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1 for one test."""
    with smtp_server() as server:
        yield server


@pytest.fixture
def http() -> Iterator[HttpServer]:
    """An HTTP server on 127.0.0.1 for one test."""
    with http_server() as server:
        yield server
