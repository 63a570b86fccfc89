"""REST handlers under ``/taskplanner/api``; thin: parse, authorize, call the service."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar
from urllib.parse import urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import web

from . import jsondoc
from .errors import (
    MAX_MESSAGE,
    InvalidConfig,
    StoreError,
    TaskPlannerError,
    TooLarge,
    TooManyRequests,
    excerpt,
)
from .permissions import USE, Access, access_for
from .summaries import parse_include, summaries
from .tasks import parse_task_id
from .timezones import known_timezones

if TYPE_CHECKING:
    from .planner import Planner
    from .vocabulary import TaskRecord

P = ParamSpec("P")
T = TypeVar("T")
API = "/taskplanner/api"
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
IF_MATCH = re.compile(r'\*|(?:W/)?"(?P<quoted>[0-9]{1,18})"|(?P<bare>[0-9]{1,18})')
"""The If-Match values an update takes: ``*``, the ETag as sent (``"3"``, weak ``W/"3"``) or
the bare revision (the pattern of the IfMatch parameter in openapi_template.json)."""
UNAUTHENTICATED = (
    "not authenticated: send an API token as the header 'Authorization: token <token>' "
    "(a browser uses the server's login cookie)"
)


class LoginRequiredHandler(APIHandler):
    """Answers a request without a known user 401, with ``WWW-Authenticate``, on every method.

    jupyter_server refuses an unknown user with 403, the status of a missing permission, so
    a client could not tell "log in" from "ask for access".  Here 403 stays for an
    authenticated user without the permission.  ``login_required`` False: a route whose URL
    is its own credential (an HTTP trigger's token).
    """

    login_required: ClassVar[bool] = True
    credential_in_url: ClassVar[bool] = False
    """The URL's last segment is a credential (an HTTP trigger's token): the server log, its
    request lines and ours, shows ``****`` in its place."""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        if self.credential_in_url:
            # Before anything can log the request: routing has read the URL already.
            self.request.path = self.request.path.rpartition("/")[0] + "/****"
            query = f"?{self.request.query}" if self.request.query else ""
            self.request.uri = self.request.path + query
        try:
            await super().prepare(*args, **kwargs)
        except web.HTTPError as exc:
            # With ServerApp.allow_unauthenticated_access off, jupyter_server refuses an
            # unknown user itself (403); a refused Host header stays 403.
            if exc.status_code == 403 and self.current_user is None and self.check_host():
                raise self._unauthenticated() from None
            raise
        # OPTIONS: a browser's CORS preflight, which never carries credentials.
        if self.current_user is None and self.login_required and self.request.method != "OPTIONS":
            raise self._unauthenticated()

    def _unauthenticated(self) -> web.HTTPError:
        return web.HTTPError(401, UNAUTHENTICATED, reason="Unauthorized")

    def check_xsrf_cookie(self) -> None:
        # A request without a user is refused with 401 in prepare whatever its XSRF token
        # (else it would be a 403 for the token); a logged-in one is checked as usual.
        if self.login_required and getattr(self, "_jupyter_current_user", True) is None:
            return
        super().check_xsrf_cookie()

    def get_login_url(self) -> str:
        # @web.authenticated asks for the login page to redirect a GET to; an API answers.
        if not self.current_user:
            raise self._unauthenticated()
        return super().get_login_url()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'token realm="jupyter_server"')
        super().write_error(status_code, **kwargs)


@web.stream_request_body
class PlannerHandler(ExtensionHandlerMixin, LoginRequiredHandler):
    """Base: JSON errors for domain exceptions, the caller's access, the database thread.

    Request bodies are received in chunks and kept only up to
    ``TaskPlannerApp.max_body_bytes``: a larger body is answered with 413 before anything of
    it is parsed, and never held in memory whole.
    """

    auth_resource = USE

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        self._chunks: list[bytes] = []
        self._received = 0
        declared = self.request.headers.get("Content-Length", "")
        too_large = declared.isdigit() and int(declared) > self.planner.settings.max_body_bytes
        try:
            await super().prepare(*args, **kwargs)
        except web.HTTPError as exc:
            if too_large:
                raise
            # A refusal here (401, a missing XSRF token) is answered once the body has
            # arrived: a connection closed with its body unread is reset, and the client
            # would see no answer at all.
            setattr(self, self.request.method.lower(), self._refuse(exc))
            return
        if self.current_user is not None:
            # The planner's settings are the extension app (``TaskPlannerApp``) itself.
            owner = self.planner.settings.owner_name(self.current_user)
            self._access = await access_for(self, owner)
        if too_large:
            raise self._too_large(int(declared))

    @staticmethod
    def _refuse(exc: web.HTTPError) -> Callable[..., None]:
        def refuse(*args: Any, **kwargs: Any) -> None:
            raise exc

        return refuse

    def data_received(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received <= self.planner.settings.max_body_bytes:
            self._chunks.append(chunk)
        else:
            self._chunks.clear()  # drop what came: the body is refused when it ends

    def _too_large(self, size: int) -> TooLarge:
        return TooLarge(
            f"the request body has {size} bytes, more than the "
            f"{self.planner.settings.max_body_bytes} this server accepts "
            "(TaskPlannerApp.max_body_bytes); split an import into parts"
        )

    @property
    def body(self) -> bytes:
        """The request body (413 if it was larger than the limit)."""
        if self._received > self.planner.settings.max_body_bytes:
            raise self._too_large(self._received)
        return b"".join(self._chunks)

    @property
    def planner(self) -> Planner:
        """The planner's services (``planner.build_planner``), from the tornado settings."""
        planner: Planner = self.settings["taskplanner"]
        return planner

    @property
    def access(self) -> Access:
        """Who calls, and whether as an admin (decided in ``prepare``)."""
        return self._access

    async def db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store-touching call on the planner's database thread."""
        return await self.planner.db.call(fn, *args, **kwargs)

    def json_body(self, *, required: bool = True) -> Any:
        raw = self.body
        if not raw:
            if required:
                raise InvalidConfig("the request needs a JSON body")
            return None
        value = jsondoc.load(raw)
        if value is None:
            # No request body of this API is null (an optional one is left out instead).
            raise InvalidConfig("the request body is JSON null; send a JSON object")
        return value

    def query_int(self, name: str, default: int, minimum: int, maximum: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise InvalidConfig(f"{name}: expected an integer, got {raw!r}", field=name) from None
        if not minimum <= value <= maximum:
            raise InvalidConfig(
                f"{name}: must be between {minimum} and {maximum}, got {value}", field=name
            )
        return value

    def query_bool(self, name: str) -> bool | None:
        raw = self.get_query_argument(name, None)
        if raw is None:
            return None
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise InvalidConfig(f"{name}: expected true or false, got {raw!r}", field=name)

    def page(self) -> tuple[int, int]:
        """The ``limit`` and ``offset`` query arguments of a listing, checked."""
        limit = self.query_int("limit", 50, 1, self.planner.settings.max_page_size)
        return limit, self.query_int("offset", 0, 0, 2**31)

    def send_page(
        self,
        key: str,
        items: Sequence[Mapping[str, Any]],
        total: int,
        limit: int,
        offset: int,
        **extra: Any,
    ) -> None:
        """A page of a listing (``extra``: more fields of the page), with the URL of the next
        page when there is one."""
        reply: dict[str, Any] = {
            key: items,
            "total": total,
            "limit": limit,
            "offset": offset,
            **extra,
        }
        if offset + limit < total:
            args = {k: v[-1].decode() for k, v in self.request.query_arguments.items()}
            reply["next"] = f"{self.request.path}?{urlencode({**args, 'offset': offset + limit})}"
        self.send(reply)

    def send(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data))

    def send_task(self, task: TaskRecord, status: int = 200) -> None:
        self.set_header("ETag", f'"{task["revision"]}"')
        self.send(self.planner.tasks.public(task), status)

    def task_url(self, task_id: int) -> str:
        return f"{self.base_url.rstrip('/')}{API}/tasks/{task_id}"

    def expected_revision(self) -> int | None:
        header = self.request.headers.get("If-Match")
        if header is None:  # an empty one is no ETag: refused below
            return None
        match = IF_MATCH.fullmatch(header.strip())
        if match is None:
            raise InvalidConfig(
                f'If-Match: expected the task\'s ETag (its revision, such as "3"), got '
                f"{excerpt(header)}",
                field="If-Match",
            )
        revision = match["quoted"] or match["bare"]
        return int(revision) if revision else None  # "*": any current revision (RFC 9110)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # An expected answer (a bad request, a server shutting down), not a bug to trace.
        if isinstance(value, TaskPlannerError) and not isinstance(value, StoreError):
            self.log.info("%s %s: %s", self.request.method, self.request.path, value.message)
            return
        super().log_exception(typ, value, tb)

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The HTTP methods this handler implements (for a 405's ``Allow`` header)."""
        return [
            method.upper()
            for method in HTTP_METHODS
            if any(
                method in vars(klass) for klass in cls.__mro__ if issubclass(klass, PlannerHandler)
            )
        ]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, TaskPlannerError):
            self.set_status(exc.status)
            if isinstance(exc, TooManyRequests):
                self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
            reply: dict[str, Any] = {"message": exc.message[:MAX_MESSAGE], "reason": exc.reason}
            if exc.field:
                reply["field"] = exc.field
            if exc.others:
                reply["errors"] = exc.errors
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(reply))
            return
        super().write_error(status_code, **kwargs)


class TasksHandler(PlannerHandler):
    """List (paginated, filtered) and create tasks."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        limit, offset = self.page()
        include = parse_include(self.get_query_argument("include", None))
        tasks, total = await self.db(
            self.planner.tasks.list,
            self.access,
            owner=self.get_query_argument("owner", None),
            enabled=self.query_bool("enabled"),
            search=self.get_query_argument("q", None),
            limit=limit,
            offset=offset,
            sort=self.get_query_argument("sort", "id"),
        )
        extra: dict[str, Any] = {}
        if include:
            # The tasks of this page are the caller's to see: so are their runs.
            ids = [task["id"] for task in tasks] if "last_run" in include else []
            last_runs = await self.db(self.planner.store.last_runs, ids)
            extra["summaries"] = summaries(self.planner.registry, tasks, include, last_runs)
        self.send_page("tasks", tasks, total, limit, offset, **extra)

    @web.authenticated
    @authorized
    async def post(self) -> None:
        task = await self.planner.db.write(self.planner.tasks.create, self.access, self.json_body())
        self.set_header("Location", self.task_url(task["id"]))
        self.send_task(task, 201)


class TaskHandler(PlannerHandler):
    """Read, replace, patch and delete one task."""

    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        self.send_task(await self.db(self.planner.tasks.get, self.access, parse_task_id(raw_id)))

    async def _update(self, raw_id: str, *, partial: bool) -> None:
        task = await self.db(
            self.planner.tasks.update,
            self.access,
            parse_task_id(raw_id),
            self.json_body(),
            partial=partial,
            expected_revision=self.expected_revision(),
        )
        self.send_task(task)

    @web.authenticated
    @authorized
    async def put(self, raw_id: str) -> None:
        await self._update(raw_id, partial=False)

    @web.authenticated
    @authorized
    async def patch(self, raw_id: str) -> None:
        await self._update(raw_id, partial=True)

    @web.authenticated
    @authorized
    async def delete(self, raw_id: str) -> None:
        await self.db(self.planner.tasks.delete, self.access, parse_task_id(raw_id))
        self.set_status(204)
        self.finish()


class TaskEnableHandler(PlannerHandler):
    """``POST /tasks/{id}/enable`` and ``/disable``."""

    @web.authenticated
    @authorized
    async def post(self, raw_id: str, verb: str) -> None:
        task = await self.db(
            self.planner.tasks.set_enabled, self.access, parse_task_id(raw_id), verb == "enable"
        )
        self.send_task(task)


class TaskCopyHandler(PlannerHandler):
    """``POST /tasks/{id}/copy``: a copy owned by the caller."""

    @web.authenticated
    @authorized
    async def post(self, raw_id: str) -> None:
        body = self.json_body(required=False)
        task = await self.db(self.planner.tasks.copy, self.access, parse_task_id(raw_id), body)
        self.set_header("Location", self.task_url(task["id"]))
        self.send_task(task, 201)


class TaskExportHandler(PlannerHandler):
    """``GET /tasks/{id}/export``: the task as an importable JSON document."""

    @web.authenticated
    @authorized
    async def get(self, raw_id: str) -> None:
        task_id = parse_task_id(raw_id)
        document = await self.db(self.planner.tasks.export, self.access, [task_id])
        self.set_header("Content-Disposition", f'attachment; filename="task-{task_id}.json"')
        self.send(document)


class TaskImportHandler(PlannerHandler):
    """``POST /tasks/import``: one task, a list, or an export document; tasks with an id
    update those tasks.  ``POST /tasks/{id}/import``: one task into that task."""

    @web.authenticated
    @authorized
    async def post(self, raw_id: str | None = None) -> None:
        task_id = parse_task_id(raw_id) if raw_id is not None else None
        tasks, created = await self.db(
            self.planner.tasks.import_, self.access, self.json_body(), task_id=task_id
        )
        self.send(
            {"tasks": [self.planner.tasks.public(task) for task in tasks]},
            201 if created else 200,
        )


class ComponentsHandler(PlannerHandler):
    """``GET /components``: every component type with its schema."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        registry, rules = self.planner.registry, self.planner.rules
        components = [
            {**item, "permissions": rules.needed(registry.get(item["kind"], item["type"]))}
            for item in registry.describe()
        ]
        self.send({"components": components})


COMPONENT_SCHEMAS = {"trigger": "Trigger", "job": "Job", "action": "Action", "series": "Series"}
"""Component kind -> the schema of a component in a request body."""


class OpenAPIHandler(PlannerHandler):
    """``GET /openapi.json``: the OpenAPI 3 document of this API.

    The timezone names and component types this server knows are listed where the document
    takes one, so a client (or a fuzzer) can tell a name this server refuses from one it
    accepts.
    """

    @web.authenticated
    @authorized
    async def get(self) -> None:
        document = json.loads(files(__package__).joinpath("openapi.json").read_text())
        schemas = document["components"]["schemas"]
        zones = known_timezones()
        schemas["Settings"]["properties"]["timezone"]["enum"] = zones
        for parameter in document["paths"][f"{API}/tasks/{{task_id}}/next"]["get"]["parameters"]:
            if parameter["name"] == "timezone":
                parameter["schema"]["enum"] = zones
        # The component types of this server, in the schemas of what a request sends (a
        # returned task may hold a type whose plugin is gone: its schemas stay open).
        for kind, name in COMPONENT_SCHEMAS.items():
            types = sorted(cls.type_name for cls in self.planner.registry.of_kind(kind))
            schemas[name]["properties"]["type"]["enum"] = types
        self.send(document)


class UnknownRouteHandler(APIHandler):
    """Any other path under the API: a JSON 404 naming the document that lists the routes."""

    # APIHandler.prepare's own signature, which jupyter_server marks type: ignore[override]
    # against JupyterHandler.prepare (that one takes _redirect_to_login).
    async def prepare(self) -> None:  # type: ignore[override]
        raise web.HTTPError(
            404,
            f"{self.request.path} is not a route of the planner API;"
            f" the routes are listed in {API}/openapi.json",
        )


class UnavailableHandler(ExtensionHandlerMixin, LoginRequiredHandler):
    """Every API path while the planner cannot run (its database is damaged, say): a JSON
    503 saying why, to authenticated users."""

    @web.authenticated
    async def get(self, *args: str) -> None:
        why = getattr(self.extensionapp, "unavailable", "")
        raise web.HTTPError(503, f"the task planner is not available: {why}")

    post = put = patch = delete = get


TASK_ID = r"(?P<raw_id>[^/]+)"
HANDLERS: list[tuple[str, type[PlannerHandler]]] = [
    (rf"{API}/tasks", TasksHandler),
    (rf"{API}/tasks/import", TaskImportHandler),
    (rf"{API}/tasks/{TASK_ID}", TaskHandler),
    (rf"{API}/tasks/{TASK_ID}/(?P<verb>enable|disable)", TaskEnableHandler),
    (rf"{API}/tasks/{TASK_ID}/copy", TaskCopyHandler),
    (rf"{API}/tasks/{TASK_ID}/export", TaskExportHandler),
    (rf"{API}/tasks/{TASK_ID}/import", TaskImportHandler),
    (rf"{API}/components", ComponentsHandler),
    (rf"{API}/openapi\.json", OpenAPIHandler),
]
