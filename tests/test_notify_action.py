"""The notify action against a real HTTP receiver on 127.0.0.1, directly and through a server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.actions.notify import NotifyAction, NotifyError
from jupyter_taskplanner.components import Registry, Result, RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import validate_as_saved
from jupyter_taskplanner.vocabulary import FINISHED

REGISTRY = Registry.from_entry_points()
TOKEN = "s3cret-hook-token"
STARTED = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


@dataclass
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers with ``status``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.status = 200
        self.requests: list[Received] = []

    def url(self, scheme: str = "json", path: str = f"/hooks/{TOKEN}") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    async def wait_async(self, count: int, within: float = 10) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.requests) < count:
            assert time.monotonic() < deadline, f"only {len(self.requests)} requests"
            await asyncio.sleep(0.05)
        return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """The receiver, stopped (with its threads) at the end of the test."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.requests.append(
                Received(self.command, self.path, dict(self.headers.items()), body)
            )
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = False  # so server_close() joins the request threads

    httpd = Server(("127.0.0.1", 0), Handler)
    state = Receiver(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """Run 7 of task 3 "Monthly" for alice, with a series set and two result files."""
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "report.csv").write_text("region,total\nnorth,42\n")
    (tmp_path / "output" / "chart.png").write_bytes(b"\x89PNG fake")
    return RunContext(
        owner="alice",
        owner_root=tmp_path,
        task_id=3,
        task_name="Monthly",
        run_id=7,
        started=STARTED,
        output_dir=tmp_path / "output",
        placeholders={"region": "north", "run.status": "succeeded"},
        log=logging.getLogger("test.notify"),
    )


RESULTS = [
    Result("file", "report.csv", job="report"),
    Result("file", "chart.png", job="chart"),
    Result("text", "42", job="count"),
]


def invalid(config: dict[str, Any]) -> InvalidConfig:
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(REGISTRY, "action", {"type": "notify", "config": config}, "actions[0]")
    return caught.value


# -- the action -----------------------------------------------------------------------------


def test_the_message_reaches_the_receiver_with_placeholders_filled(ctx, receiver):
    action = NotifyAction(
        {
            "urls": [receiver.url(path="/hooks/{region}/" + TOKEN)],
            "title": "{task.name} for {region}",
            "body": "Run {run.id} {run.status} on {run.started:%Y-%m-%d}",
        }
    )
    action.run(ctx, RESULTS)
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", f"/hooks/north/{TOKEN}")
    sent = request.json()
    assert (sent["title"], sent["message"]) == (
        "Monthly for north",
        "Run 7 succeeded on 2026-03-02",
    )
    assert sent["attachments"] == []


def test_defaults_and_attachments(ctx, receiver):
    NotifyAction({"urls": [receiver.url()], "attach_results": True}).run(ctx, RESULTS)
    sent = receiver.requests[0].json()
    assert (sent["title"], sent["message"]) == ("Monthly", "Run 7 of Monthly succeeded.")
    assert [
        (item["filename"], base64.b64decode(item["base64"])) for item in sent["attachments"]
    ] == [
        ("report.csv", b"region,total\nnorth,42\n"),
        ("chart.png", b"\x89PNG fake"),
    ]


def test_a_service_without_attachments_gets_the_message_alone(ctx, receiver, caplog):
    gotify = receiver.url("gotify", f"/{TOKEN}")
    with caplog.at_level(logging.INFO, logger="test.notify"):
        NotifyAction({"urls": [gotify], "attach_results": True}).run(ctx, RESULTS)
    [request] = receiver.requests
    assert request.json()["message"] == "Run 7 of Monthly succeeded."
    assert "destination 1 (Gotify) takes no attachments" in caplog.text


def test_a_refused_connection_fails_clearly_without_the_secret(ctx, caplog):
    url = f"json://user:{TOKEN}@127.0.0.1:{closed_port()}/hooks/{TOKEN}"
    with caplog.at_level(logging.DEBUG), pytest.raises(NotifyError) as caught:
        NotifyAction({"urls": [url]}).run(ctx, [])
    message = str(caught.value)
    assert message.startswith("could not notify destination 1 (JSON): ")
    assert "connection error" in message.lower() and "127.0.0.1" in message
    assert TOKEN not in message
    assert TOKEN not in caplog.text


def test_one_failing_destination_does_not_stop_the_others(ctx, receiver):
    urls = [receiver.url("json", f"/missing/{TOKEN}"), receiver.url("form", "/good")]
    receiver.status = 500
    with pytest.raises(NotifyError) as caught:
        NotifyAction({"urls": urls}).run(ctx, [])
    assert "destination 1 (JSON)" in str(caught.value)
    assert "destination 2 (Form)" in str(caught.value)
    assert TOKEN not in str(caught.value)

    receiver.status = 200
    failing = [f"json://127.0.0.1:{closed_port()}/hooks", receiver.url("form", "/good")]
    with pytest.raises(NotifyError, match=r"destination 1 \(JSON\).*\(1 other destination"):
        NotifyAction({"urls": failing}).run(ctx, [])
    assert receiver.requests[-1].path == "/good"


def test_bad_urls_are_refused_when_saved_without_repeating_them(caplog):
    cases = {
        f"slack://{TOKEN}": "is not a valid Slack URL",
        f"nosuchservice://{TOKEN}": "uses nosuchservice://, which is not a service apprise knows",
        f"hooks.example.org/{TOKEN}": "is not a URL",
        f"https://example.org/{TOKEN}": "is not a web address apprise recognizes",
    }
    with caplog.at_level(logging.DEBUG):
        for url, problem in cases.items():
            error = invalid({"urls": ["json://ok.example.org/hook", url]})
            assert error.field == "actions[0].config.urls"
            assert error.message.startswith("actions[0].config.urls: destination 2 ")
            assert problem in error.message
            assert TOKEN not in error.message
    assert TOKEN not in caplog.text
    assert invalid({"urls": []}).field == "actions[0].config.urls"
    # A URL with placeholders is checked when a run has filled them.
    validate_as_saved(
        REGISTRY,
        "action",
        {"type": "notify", "config": {"urls": ["{hook_url}"]}},
        "actions[0]",
    )


def test_apprise_is_imported_only_when_a_notification_is_checked_or_sent():
    code = (
        "import sys; from jupyter_taskplanner.components.registry import Registry; "
        "Registry.from_entry_points().get('action', 'notify'); "
        "print(sorted(m for m in ('apprise',) if m in sys.modules))"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert shown.stdout.strip() == "[]"


# -- end to end -----------------------------------------------------------------------------


async def finished(call: Any, run_id: int, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        reply = await call("GET", f"/runs/{run_id}")
        assert reply.status == 200, reply
        if reply.body["status"] in FINISHED:
            return reply.body
        assert time.monotonic() < deadline, reply.body
        await asyncio.sleep(0.1)


async def start(call: Any, task_id: int, **parameters: Any) -> dict[str, Any]:
    reply = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert reply.status == 202, reply
    return await finished(call, reply.body["id"])


async def test_a_notification_through_the_server(api, receiver):
    alice = api("alice")
    action = {
        "type": "notify",
        "config": {
            "urls": [receiver.url()],
            "title": "{task.name}",
            "body": "{customer}: {run.status}",
        },
    }
    created = await alice("POST", "/tasks", {"name": "Daily", "actions": [action]})
    assert created.status == 201, created
    read = await alice("GET", f"/tasks/{created.body['id']}")
    saved = read.body["actions"][0]
    assert saved["secrets"] == ["urls"]
    assert "urls" not in saved["config"]
    assert TOKEN not in json.dumps(read.body)

    run = await start(alice, read.body["id"], customer="ACME")
    assert run["status"] == "succeeded", run
    [request] = await receiver.wait_async(1)
    assert (request.json()["title"], request.json()["message"]) == ("Daily", "ACME: succeeded")

    # Sent back as read, without the URLs: the stored ones stay.
    replaced = await alice(
        "PUT", f"/tasks/{read.body['id']}", read.body, headers={"If-Match": read.headers["ETag"]}
    )
    assert replaced.status == 200, replaced
    assert (await start(alice, read.body["id"], customer="Initech"))["status"] == "succeeded"
    assert (await receiver.wait_async(2))[1].json()["message"] == "Initech: succeeded"


async def test_a_failing_destination_fails_the_action_step(api):
    alice = api("alice")
    url = f"json://127.0.0.1:{closed_port()}/hooks/{TOKEN}"
    action = {"type": "notify", "name": "chat", "config": {"urls": [url]}}
    created = await alice("POST", "/tasks", {"name": "Nightly", "actions": [action]})
    assert created.status == 201, created
    run = await start(alice, created.body["id"])
    assert run["status"] == "failed", run
    [step] = [step for step in run["steps"] if step["kind"] == "action"]
    assert step["status"] == "failed"
    assert step["error"].startswith("NotifyError: could not notify destination 1 (JSON): ")
    assert TOKEN not in json.dumps(run)


async def test_a_bad_url_is_a_400_that_does_not_repeat_it(api):
    action = {"type": "notify", "config": {"urls": [f"slack://{TOKEN}"]}}
    reply = await api("alice")("POST", "/tasks", {"name": "Bad", "actions": [action]})
    assert reply.status == 400, reply
    assert reply.body["field"] == "actions[0].config.urls"
    assert "destination 1 is not a valid Slack URL" in reply.body["message"]
    assert TOKEN not in json.dumps(reply.body)


def test_a_notification_never_sends_the_servers_netrc_login(ctx, receiver, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login server password s3rver-pa55\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    NotifyAction({"urls": [receiver.url(), receiver.url("form", "/form")]}).run(ctx, RESULTS)
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        assert "Authorization" not in request.headers, request.headers
    # A login of the destination's own (in its URL) is still sent.
    receiver.requests.clear()
    NotifyAction({"urls": [f"json://me:pw@127.0.0.1:{receiver.port}/own"]}).run(ctx, RESULTS)
    [own] = receiver.requests
    assert own.headers["Authorization"] == "Basic " + base64.b64encode(b"me:pw").decode()
