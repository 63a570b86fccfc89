"""Values at the edges, on every route: ids, query parameters, headers and bodies a fuzzer
rarely draws (huge and non-finite numbers, invalid UTF-8, NUL, lone surrogates, deep
nesting, every method).  A 5xx (but 503) or a traceback in the server's log fails the row.

``make test`` pins each class down once (tests/test_hostile_values.py); this sweeps all
routes with all of them.
"""

from __future__ import annotations

import http.client
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

from .common import Figures, Workspace

API = "/taskplanner/api"
EDGES = [
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775809",
    "9" * 5000,
    "1e309",
    "NaN",
    "Infinity",
    "",
    "%00",
    "%C3%28",
    "%FF",
    "%ED%A0%80",
    "%D9%A3",
    "%201",
    "1_0",
    "0x10",
    "..%2F..%2Fetc",
    "a" * 300,
]
"""Values for each id and query parameter (percent-encoded where they are bytes)."""
QUERIES = {
    "/tasks": ["limit", "offset", "owner", "enabled", "q", "include", "sort"],
    "/tasks/{task}/runs": ["limit", "offset", "status"],
    "/tasks/{task}/next": ["count", "timezone"],
    "/tasks/{task}/series/preview": ["count"],
    "/runs": ["limit", "offset", "status", "owner", "sort"],
    "/runs/{run}": ["steps_limit", "steps_offset"],
    "/runs/{run}/log": ["step", "tail", "offset", "length"],
}
ID_ROUTES = [
    ("GET", "/tasks/{id}"),
    ("PUT", "/tasks/{id}"),
    ("PATCH", "/tasks/{id}"),
    ("POST", "/tasks/{id}/enable"),
    ("POST", "/tasks/{id}/copy"),
    ("GET", "/tasks/{id}/export"),
    ("POST", "/tasks/{id}/import"),
    ("POST", "/tasks/{id}/run"),
    ("GET", "/tasks/{id}/runs"),
    ("GET", "/tasks/{id}/next"),
    ("GET", "/tasks/{id}/series/preview"),
    ("POST", "/tasks/{id}/trigger/x"),
    ("GET", "/runs/{id}"),
    ("GET", "/runs/{id}/log"),
    ("GET", "/runs/{id}/files/x"),
    ("POST", "/runs/{id}/cancel"),
    ("DELETE", "/tasks/{id}"),
]
BODIES = [
    b'{"name": "\\ud800"}',
    b'{"name": "t", "\\udfff": 1}',
    b'{"name": "t", "settings": {"timeout": NaN}}',
    b'{"name": "t", "settings": {"jitter": Infinity}}',
    b'{"name": "t", "settings": {"timeout": 1e999}}',
    b'{"name": "t", "settings": {"retry_backoff": 1' + b"0" * 400 + b"}}",
    b'{"name": "t", "description": ' + b"9" * 5000 + b"}",
    b"[" * 100_000,
    b'{"a": ' * 10_000,
    b"\xff\xfe",
    b"\x00",
    b'{"name": "t"}garbage',
    b'{"name": "x", "name": "y"}',
    b'"text"',
    b"null",
    b'{"name": "t", "settings": {"timezone": "America"}}',
    b'{"name": "t", "triggers": [{"type": "after_task", '
    b'"config": {"task_id": 9223372036854775808}}]}',
    b'{"name": "t", "triggers": [{"type": "time", "config": {"start_date": "9999-12-31", '
    b'"time": "23:59:59", "repeat": "monthly"}}]}',
    b'{"name": "t", "triggers": [{"type": "cron", "config": {"expression": "* * * * * 2100"}}]}',
    b'{"name": "t", "triggers": [{"type": "cron", "config": {"expression": "0 0 0 LW 2 ? 2099", '
    b'"dialect": "quartz"}}]}',
    b'{"name": "t", "triggers": [{"type": "interval", "config": {"every": 1, '
    b'"start": "9999-12-31T23:59:59-14:00"}}]}',
]
BODY_ROUTES = ["/tasks", "/tasks/import", "/tasks/{task}/import", "/tasks/{task}/copy", "/execute"]
CONTENT_TYPES = [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE", "PROPFIND"]
IF_MATCH = ['"99999999999999999999"', "W/", "*, *", "\x7f", '"-1"', 'W/"1"  ', "9" * 5000]


class Client:
    """Raw HTTP to the server (any bytes in the path, no encoding done for us)."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.cases = 0
        self.bad: list[str] = []

    def __call__(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.putheader("Authorization", f"token {self.token}")
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        reply = connection.getresponse()
        reply.read()
        connection.close()
        self.cases += 1
        if reply.status >= 500 and reply.status != 503:
            self.bad.append(f"{reply.status} {method} {path[:120]} {(body or b'')[:80]!r}")
        # An unknown method (PROPFIND) is tornado's own 405, before any handler.
        allowed = reply.getheader("Allow")
        if reply.status == 405 and not allowed and method in METHODS[:-1]:
            self.bad.append(f"405 without Allow: {method} {path[:120]}")
        return reply.status


def cases(task: int, run: int) -> Iterator[tuple[str, str, bytes | None, dict[str, str]]]:
    """Every request of the sweep: (method, path, body, headers)."""
    for (method, route), value in itertools.product(ID_ROUTES, EDGES):
        body = b'{"name": "x"}' if method in ("PUT", "PATCH", "POST") else None
        yield method, API + route.replace("{id}", value), body, {}
    for route, names in QUERIES.items():
        path = API + route.format(task=task, run=run)
        for name, value in itertools.product(names, EDGES):
            yield "GET", f"{path}?{name}={value}", None, {}
            yield "GET", f"{path}?{name}={value}&{name}=1", None, {}
        for name in names:
            yield "GET", f"{path}?{name}", None, {}
    for route, body, kind in itertools.product(BODY_ROUTES, BODIES, CONTENT_TYPES):
        headers = {"Content-Type": kind} if kind else {}
        yield "POST", API + route.format(task=task), body, headers
    for body in BODIES:
        for method in ("PUT", "PATCH"):
            yield method, f"{API}/tasks/{task}", body, {}
    for header in IF_MATCH:
        yield "PATCH", f"{API}/tasks/{task}", b'{"description": "x"}', {"If-Match": header}
    routes = [route.replace("{id}", str(task)) for _, route in ID_ROUTES if "/runs/" not in route]
    routes += [route.replace("{id}", str(run)) for _, route in ID_ROUTES if "/runs/" in route]
    for method, route in itertools.product(METHODS, sorted(set(routes))):
        if method != "DELETE":
            yield method, API + route, None, {}


def hostile(folder: Path) -> Figures:
    """The sweep against one server; a 5xx or a traceback fails the row."""
    figures = Figures("hostile values: every route x huge, non-finite, non-UTF-8 input")
    started = time.monotonic()
    ws = Workspace(folder)
    server = ws.server()
    try:
        client = Client(server.port, server.token)
        task = server.call("POST", "/tasks", {"name": "target", "enabled": False})["id"]
        run = server.call("POST", f"/tasks/{task}/run")["id"]
        for method, path, body, headers in cases(task, run):
            client(method, path, body, headers)
        # Every task any of it created still reads back as JSON.
        json.dumps(server.call("GET", "/tasks?limit=500"))
    finally:
        server.stop()
    figures.cases = client.cases
    figures.seconds = time.monotonic() - started
    for problem in client.bad:
        figures.fail(problem)
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    return figures
