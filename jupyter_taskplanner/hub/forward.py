"""Inside a user's server under JupyterHub: the planner is the hub service, reached from here.

``ForwardHandler`` relays ``/taskplanner/api/...`` to the service with the server's own hub
token (the hub gives it the owner's planner scopes, ``c.Spawner.server_token_scopes``), the
bodies streamed both ways, so the Lab UI, the widgets and the Python client work on the
service's tasks unchanged.  ``StepHandler`` is the other direction: the service's
``UserServerExecutor`` hands a job to the owner's server, which runs it with its own local
executor and streams back the log, the progress, the result files and the outcome.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import httpx
import watchfiles
from jupyter_core.utils import ensure_async
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web
from tornado.iostream import StreamClosedError

from ..executors import LocalExecutor, StepRequest
from ..handlers import API
from ..logs import CHUNK_SIZE
from ..permissions import USE

if TYPE_CHECKING:
    from ..app import TaskPlannerApp

STEPS = "/taskplanner/internal/steps"
"""Where a user's server takes the steps the service hands it (``UserServerExecutor``)."""
HEARTBEAT_SECONDS = 20.0
"""How often a step's stream says it is alive when the job prints nothing (proxies close
idle connections)."""
# Request headers a client's call keeps on its way to the service, and answer headers back.
REQUEST_HEADERS = ("Accept", "Content-Type", "Content-Length", "If-Match", "Idempotency-Key")
REPLY_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Content-Disposition",
    "Content-Encoding",
    "ETag",
    "Allow",
    "Retry-After",
    "Cache-Control",
    "X-Accel-Buffering",  # an event stream's: a proxy such as nginx must not hold it back
)


class ServiceLocation:
    """Where this user's server finds the planner service (asked of the hub once)."""

    def __init__(self, app: TaskPlannerApp) -> None:
        self.app = app
        self._base: str | None = None
        self.prefix = ""

    @property
    def token(self) -> str:
        """The server's own hub token: it identifies the server's owner to the service."""
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    async def base(self, client: httpx.AsyncClient) -> str:
        """The service's API root, e.g. ``http://127.0.0.1:10101/services/taskplanner/``."""
        if self._base is None:
            name = self.app.hub_service_name
            url, prefix = self.app.hub_service_url, ""
            if not url:
                api = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
                reply = await client.get(
                    f"{api}/services/{quote(name, safe='')}",
                    headers={"Authorization": f"token {self.token}"},
                )
                if reply.status_code != 200:
                    raise web.HTTPError(
                        502,
                        f"the task planner service {name!r} is not known to this hub (it "
                        f"answered {reply.status_code}); set TaskPlannerApp.hub_service_url "
                        "or ask the hub's admin to add the service",
                    )
                model = reply.json()
                url, prefix = model.get("url") or "", model.get("prefix") or ""
            base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
            self.prefix = prefix or f"{base_url.rstrip('/')}/services/{name}/"
            self._base = url.rstrip("/") + self.prefix
        return self._base


@web.stream_request_body
class ForwardHandler(ExtensionHandlerMixin, APIHandler):
    """``/taskplanner/api/...`` of this server, answered by the planner service.

    The request goes on with the server's token, so whoever may use this server acts as
    its owner in the planner (they could run code as the owner here anyway).
    """

    auth_resource = USE

    @property
    def planner_app(self) -> TaskPlannerApp:
        return cast("TaskPlannerApp", self.extensionapp)

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(*args, **kwargs)
        if self.current_user is None:
            raise web.HTTPError(401, "not authenticated: log in to this server first")
        action = "read" if self.request.method in ("GET", "HEAD") else "write"
        allowed = await ensure_async(
            self.authorizer.is_authorized(self, self.current_user, action, USE)
        )
        if not allowed:
            raise web.HTTPError(403, f"not allowed to {action} the task planner here")
        self._body: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, read=None), follow_redirects=False
        )
        self._reply: asyncio.Future[httpx.Response] = asyncio.ensure_future(self._open())

    def data_received(self, chunk: bytes) -> None:
        self._body.put_nowait(chunk)

    async def _chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._body.get()) is not None:
            yield chunk

    async def _open(self) -> httpx.Response:
        """Send the request on, its body as it arrives; the answer once its headers came."""
        location = self.planner_app.hub_location
        base = await location.base(self._client)
        path = self.request.path.removeprefix(self.base_url.rstrip("/"))
        url = base.rstrip("/") + path + (f"?{self.request.query}" if self.request.query else "")
        headers = {
            name: self.request.headers[name]
            for name in REQUEST_HEADERS
            if name in self.request.headers
        }
        headers["Authorization"] = f"token {location.token}"
        has_body = self.request.method not in ("GET", "HEAD", "OPTIONS")
        request = self._client.build_request(
            self.request.method or "GET",
            url,
            headers=headers,
            content=self._chunks() if has_body else None,
        )
        return await self._client.send(request, stream=True)

    async def _relay(self, *args: str) -> None:
        self._body.put_nowait(None)
        service = self.planner_app.hub_service_name
        try:
            reply = await self._reply
        except httpx.HTTPError as exc:
            await self._client.aclose()
            raise web.HTTPError(
                502, f"the task planner service {service!r} cannot be reached: {exc}"
            ) from None
        try:
            self.set_status(reply.status_code)
            for name in REPLY_HEADERS:
                if name in reply.headers:
                    self.set_header(name, reply.headers[name])
            if "Location" in reply.headers:
                # The service's prefix becomes this server's: the client stays here.
                prefix = self.planner_app.hub_location.prefix
                location = reply.headers["Location"]
                if location.startswith(prefix):
                    location = self.base_url.rstrip("/") + "/" + location[len(prefix) :]
                self.set_header("Location", location)
            async for chunk in reply.aiter_raw():
                self.write(chunk)
                await self.flush()
            self.finish()
        except StreamClosedError:
            pass  # the client went away
        finally:
            await reply.aclose()
            await self._client.aclose()

    get = post = put = patch = delete = head = _relay

    def on_finish(self) -> None:
        reply = getattr(self, "_reply", None)
        if reply is not None and not reply.done():
            reply.cancel()  # the request ended before it was relayed


class StepHandler(ExtensionHandlerMixin, APIHandler):
    """``POST /taskplanner/internal/steps``: run one job or series step handed over by the
    planner service, here as the server's owner; the answer is a stream of JSON lines.

    Lines: ``{"log": base64}`` as the job prints, ``{"progress": [done, total, message]}``,
    ``{"alive": true}`` while it is quiet, then ``{"file": path, "data": base64}`` for the
    result files and last ``{"outcome": {...}}``.  A dropped connection cancels the step.
    Only the hub service named ``TaskPlannerApp.hub_service_name`` may call.
    """

    @property
    def planner_app(self) -> TaskPlannerApp:
        return cast("TaskPlannerApp", self.extensionapp)

    @web.authenticated
    async def post(self) -> None:
        caller = getattr(self.current_user, "hub_user", None) or {}
        service = self.planner_app.hub_service_name
        if caller.get("kind") != "service" or caller.get("name") != service:
            raise web.HTTPError(403, f"only the hub service {service!r} hands steps to servers")
        try:
            body = json.loads(self.request.body)
            kind, entry, context = body["kind"], body["entry"], body["context"]
        except (ValueError, KeyError, TypeError) as exc:
            raise web.HTTPError(400, f"not a step request: {exc}") from None
        scratch = Path(tempfile.mkdtemp(prefix="taskplanner-step-"))
        self._step: asyncio.Future[Any] | None = None
        try:
            await self._run(scratch, kind, entry, context, body)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    async def _run(
        self, scratch: Path, kind: Any, entry: Any, context: Any, body: dict[str, Any]
    ) -> None:
        root = Path(self.serverapp.root_dir).expanduser().resolve()
        folder = scratch / "step"
        folder.mkdir()
        request = StepRequest(
            kind=kind,
            entry=entry,
            context={**context, "owner_root": str(root), "private_folders": [str(scratch)]},
            folder=folder,
            output=folder / "output",
            cwd=root,
            limit=body.get("limit"),
        )
        # One executor per step: a fork server would serve this step alone.
        executor = _StepExecutor(
            int(body.get("max_log_bytes") or 0) or self.planner_app.max_log_bytes,
            parent=self.planner_app,
            warm_workers=False,
        )
        self.set_header("Content-Type", "application/x-ndjson")
        lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stop = asyncio.Event()
        self._step = step = asyncio.ensure_future(
            executor.run_step(
                request,
                lambda done, total, text: lines.put_nowait({"progress": [done, total, text]}),
            )
        )
        step.add_done_callback(lambda _: stop.set())
        tail = asyncio.ensure_future(_tail(folder / "log.txt", lines.put_nowait, stop))
        ended = asyncio.ensure_future(asyncio.wait({step, tail}))
        try:
            while True:
                line = asyncio.ensure_future(lines.get())
                done, _ = await asyncio.wait(
                    {line, ended}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                if line in done:
                    await self._send(line.result())
                    continue
                line.cancel()
                if ended in done:
                    break
                await self._send({"alive": True})
            while not lines.empty():
                await self._send(lines.get_nowait())
            outcome = step.result()
            for path in sorted(request.output.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    await self._send_file(path, path.relative_to(request.output).as_posix())
            await self._send({"outcome": asdict(outcome)})
        except StreamClosedError:
            self.log.info("the planner service went away; the step is cancelled")
        finally:
            for task in (step, tail, ended):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task

    async def _send(self, line: dict[str, Any]) -> None:
        self.write(json.dumps(line) + "\n")
        await self.flush()

    async def _send_file(self, path: Path, name: str) -> None:
        with path.open("rb") as stream:
            while True:
                data = stream.read(CHUNK_SIZE * 4)
                await self._send({"file": name, "data": base64.b64encode(data).decode()})
                if len(data) < CHUNK_SIZE * 4:
                    return

    def on_connection_close(self) -> None:
        if getattr(self, "_step", None) is not None and self._step is not None:
            self._step.cancel()


class _StepExecutor(LocalExecutor):
    """The local executor with the planner service's cap on the log."""

    def __init__(self, max_log_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_log_bytes = max_log_bytes

    @property
    def max_log_bytes(self) -> int:
        return self._max_log_bytes


async def _tail(path: Path, send: Callable[[dict[str, Any]], None], stop: asyncio.Event) -> None:
    """Send what is added to the step's log as it is written, and the rest once it ends."""
    sent = 0

    def more() -> None:
        nonlocal sent
        with contextlib.suppress(OSError), path.open("rb") as log:
            log.seek(sent)
            while data := log.read(CHUNK_SIZE):
                sent += len(data)
                send({"log": base64.b64encode(data).decode()})

    async for _ in watchfiles.awatch(
        path.parent,
        stop_event=stop,
        recursive=False,
        debounce=200,
        watch_filter=lambda _, changed: Path(changed).name == path.name,
    ):
        more()
    more()


HANDLERS: list[tuple[str, type[APIHandler]]] = [
    (STEPS, StepHandler),
    (rf"{API}(/.*)?", ForwardHandler),
]
"""The routes of a user's server in hub client mode (``TaskPlannerApp.hub_client``)."""
