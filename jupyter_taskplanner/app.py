"""The Jupyter Server extension: settings, services and routes of the planner."""

from __future__ import annotations

import gc
import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider, User
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, TraitError, Type, Unicode, default, validate

from . import __version__
from .components.base import DEFAULT_MAX_FILLED, DEFAULT_MAX_SETS
from .errors import StoreError
from .event_stream import EVENT_HANDLERS
from .executors import Executor, LocalExecutor
from .handlers import API, HANDLERS, UnavailableHandler, UnknownRouteHandler
from .hub import DEFAULT_SERVICE_NAME, in_user_server
from .hub.forward import HANDLERS as FORWARD_HANDLERS
from .hub.forward import ServiceLocation
from .logs import DEFAULT_MAX_LOG_BYTES
from .planner import Planner, build_planner
from .run_handlers import RUN_HANDLERS
from .scheduler import Scheduler
from .store import Store
from .timezones import is_timezone, local_timezone
from .triggers.calendar import DEFAULT_MAX_CALENDAR_BYTES

if TYPE_CHECKING:
    from jupyter_server.serverapp import ServerApp


def default_db_path() -> str:
    """The database in the user's Jupyter data folder (backed up with the user's data)."""
    return str(Path(jupyter_data_dir()) / "taskplanner" / "taskplanner.db")


class TaskPlannerApp(ExtensionApp):
    """Schedules and runs tasks beside Jupyter Server and serves their REST API."""

    name = "jupyter_taskplanner"
    description = "A task planner for Jupyter"
    version = __version__
    load_other_extensions = True

    db_path = Unicode(
        config=True,
        help="""Path of the SQLite database holding the tasks. Defaults to
        taskplanner/taskplanner.db in the Jupyter data folder.""",
    )

    @default("db_path")
    def _default_db_path(self) -> str:
        return default_db_path()

    default_timezone = Unicode(
        config=True,
        help="""IANA timezone new tasks get when they do not name one (for example
        'Europe/Berlin'). Defaults to the server's local timezone.""",
    )

    @default("default_timezone")
    def _default_timezone(self) -> str:
        return local_timezone()

    @validate("default_timezone")
    def _check_timezone(self, proposal: dict[str, Any]) -> str:
        if not is_timezone(proposal["value"]):
            raise TraitError(f"unknown timezone {proposal['value']!r}; use an IANA name")
        timezone: str = proposal["value"]
        return timezone

    single_user = Bool(
        config=True,
        help="""Treat every authenticated request as the one user `single_user_name`.
        Defaults to True when the server uses Jupyter Server's own token/password identity
        provider (which names each browser session anew) and False otherwise, for example
        under JupyterHub, where the hub's user name is the owner.""",
    )

    @default("single_user")
    def _default_single_user(self) -> bool:
        provider = type(self.serverapp.identity_provider) if self.serverapp else IdentityProvider
        return provider in (IdentityProvider, PasswordIdentityProvider)

    single_user_name = Unicode(
        config=True,
        help="The owner of all tasks when `single_user` is on. Defaults to the OS user name.",
    )

    @default("single_user_name")
    def _default_single_user_name(self) -> str:
        return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()

    max_page_size = Int(
        500, config=True, help="The largest `limit` a client may ask for when listing."
    )

    runs_dir = Unicode(
        config=True,
        help="""Folder holding run logs and result files, one subfolder per owner and run.
        Defaults to a `runs` folder beside the database.""",
    )

    @default("runs_dir")
    def _default_runs_dir(self) -> str:
        return str(Path(self.db_path).parent / "runs")

    owner_root_template = Unicode(
        "",
        config=True,
        help="""The root folder of each owner's files, where jobs run and paths in task
        configs are resolved; `{owner}` is replaced by the owner name (for example
        '/home/{owner}'). Empty: the server's root_dir (for the command line, the configured
        ServerApp.root_dir, else the current folder).""",
    )

    executor_class = Type(
        LocalExecutor,
        klass=Executor,
        config=True,
        help="Where jobs execute: LocalExecutor (subprocesses) or a Dask executor.",
    )

    scheduler_enabled = Bool(
        True,
        config=True,
        help="""Fire triggers in this server. Turn off in servers that should only serve the
        API while another process (for example a JupyterHub service) schedules.""",
    )

    misfire_tolerance = Float(
        30.0,
        config=True,
        help="""Seconds a fire may be late (a busy or suspended machine) and still count as on
        time; later fires are handled by the task's misfire setting.""",
    )

    max_concurrent_runs = Int(
        8, config=True, help="Runs executing at once in this server; more wait as queued."
    )

    max_runs_per_owner = Int(
        4,
        config=True,
        help="""Runs of one owner executing at once; waiting runs start in turns across
        owners so one user's many runs cannot starve the others.""",
    )

    max_queued_runs = Int(
        1000,
        min=0,
        config=True,
        help="""Runs of one owner that may wait queued at once. A run started by a caller (run
        now, POST /execute, an HTTP trigger URL) past it is refused with 429; one the
        scheduler starts (a timed fire, a task started by another run's end or a next-task
        action) is recorded as skipped, saying why. 0: no limit.""",
    )

    keep_runs = Int(
        100,
        config=True,
        help="Finished runs kept per task; older ones and their files are deleted.",
    )

    keep_run_days = Float(
        0,
        config=True,
        help="Also delete finished runs older than this many days (0: keep by count only).",
    )

    max_log_bytes = Int(
        DEFAULT_MAX_LOG_BYTES,
        min=0,
        config=True,
        help="""Largest size in bytes of one step's log (the log.txt of a job, series or
        action). A longer log keeps its beginning and its end, half this size each, joined by
        a line saying how many bytes were left out. While the step runs only the beginning is
        on disk; the end is held in memory and written when the step ends.""",
    )

    max_body_bytes = Int(
        2 * 1024 * 1024,
        min=1024,
        config=True,
        help="""Largest request body the planner API accepts, in bytes; a larger one is
        answered with 413 before it is parsed. Imports of many tasks are the largest bodies.""",
    )

    http_trigger_rate = Int(
        60,
        min=0,
        config=True,
        help="""Calls a minute that one task's HTTP trigger URL takes (calls with the right
        token; a wrong one is 404 as always). As many may come at once; then they come back one
        by one as the minute passes. A call over the limit starts nothing and is answered with
        429 and a Retry-After header (seconds). 0: no limit.""",
    )

    max_series_sets = Int(
        DEFAULT_MAX_SETS,
        min=1,
        config=True,
        help="""The most parameter sets one series may give a run (rows of a file or a query,
        items a function yields, ...). A series giving more fails its run's series step with a
        message naming this setting, before any set runs: each set of a run is kept in
        memory and recorded with its steps, so a series of millions of rows (or a generator
        that never ends) would fill the server's memory and database.""",
    )

    max_filled_length = Int(
        DEFAULT_MAX_FILLED,
        min=1000,
        config=True,
        help="""The most characters a text of a task (a file name, a mail subject, a job
        argument, ...) may have once its placeholders are filled, and the most characters
        filling adds to all the texts of one component's config together (a list of many
        "{x}" with a long x). A format width or precision above it, such as
        {owner:>200000000}, is refused before formatting; the step fails with a message
        naming the placeholder.""",
    )

    max_calendar_bytes = Int(
        DEFAULT_MAX_CALENDAR_BYTES,
        min=1024,
        config=True,
        help="""Largest calendar, in bytes, a calendar trigger reads from a file or fetches
        from a URL (decompressed). A larger one fails the trigger's schedule (the task's next
        fire names the file and this limit) and is refused when the task is saved.""",
    )

    server_events = Bool(
        False,
        config=True,
        help="""Also emit every run's events (started, steps, progress, finished: run and task ids,
        owner, status) on Jupyter Server's event bus (/api/events/subscribe, schema
        jupyter_taskplanner/run/v1). That bus goes to every holder of Jupyter's `events`
        permission: under a multi-user server or the JupyterHub service they see all
        owners' events. Off by default; the planner's UI, client and widgets read their
        own events from /taskplanner/api/events, which gives each user only their own
        runs.""",
    )

    max_event_streams_per_user = Int(
        8,
        min=1,
        config=True,
        help="""Event streams (GET /taskplanner/api/events) one user may hold open at once,
        over all their tabs, kernels and clients; one more is answered with 429.""",
    )

    event_heartbeat_seconds = Float(
        15.0,
        min=0.01,
        max=3600.0,
        config=True,
        help="""Seconds between the comment lines a quiet event stream sends, so proxies
        keep the connection open and a client that went away is noticed.""",
    )

    store_class = Type(
        Store,
        klass=Store,
        config=True,
        help="The store holding tasks and runs (a subclass of Store, for example with a "
        "different database).",
    )

    scheduler_class = Type(
        Scheduler,
        klass=Scheduler,
        config=True,
        help="The scheduler that fires triggers (a subclass of Scheduler).",
    )

    hub_client = Bool(
        config=True,
        help="""Run this server's planner as a thin client of the JupyterHub service
        `hub_service_name`: its /taskplanner/api is forwarded to the service with the
        server's own hub token (no store and no scheduler here), and the service may hand
        jobs to this server to run (the user_server executor). Defaults to True in a user's
        server spawned by JupyterHub (JUPYTERHUB_API_TOKEN, JUPYTERHUB_API_URL and
        JUPYTERHUB_USER set) and False elsewhere, the service itself included. Set it to
        False to keep a planner of its own in each user's server.""",
    )

    @default("hub_client")
    def _default_hub_client(self) -> bool:
        return in_user_server()

    hub_service_name = Unicode(
        config=True,
        help="""The name of the planner's JupyterHub service, which users' servers forward
        to and which alone may hand them jobs. Default: TASKPLANNER_HUB_SERVICE, else
        'taskplanner'.""",
    )

    @default("hub_service_name")
    def _default_hub_service_name(self) -> str:
        return os.environ.get("TASKPLANNER_HUB_SERVICE") or DEFAULT_SERVICE_NAME

    hub_service_url = Unicode(
        config=True,
        help="""Where a user's server reaches the planner service directly (its own
        address, such as http://127.0.0.1:10101 or http://taskplanner:10101, not the
        proxy's). Default: TASKPLANNER_SERVICE_URL, else the URL the hub's API gives for the
        service (the server's token then needs read:services!service=<name>).""",
    )

    @default("hub_service_url")
    def _default_hub_service_url(self) -> str:
        return os.environ.get("TASKPLANNER_SERVICE_URL", "")

    planner: Planner | None = None
    """The planner's services, built when the server loads the extension (None when its
    database cannot be used: the server runs on, and the API says why)."""
    unavailable: str = ""

    hub_location: ServiceLocation
    """Where the planner service is, in hub client mode."""

    def initialize_settings(self) -> None:
        """Build the planner; its services are in the tornado settings as ``taskplanner``.

        In hub client mode there is no planner here: only the way to the service.
        """
        if self.hub_client:
            self.hub_location = ServiceLocation(self)
            self.log.info(
                "jupyter-taskplanner: the planner is the JupyterHub service %r",
                self.hub_service_name,
            )
            return
        try:
            self.planner = build_planner(self, self.serverapp)
        except StoreError as exc:
            # The rest of the server works on; the database is left exactly as it is.
            self.unavailable = exc.message
            self.log.error("jupyter-taskplanner is not available: %s", exc.message)
            return
        self.settings["taskplanner"] = self.planner
        self.log.info("jupyter-taskplanner: tasks stored in %s", self.db_path)

    def initialize_handlers(self) -> None:
        if self.hub_client:
            self.handlers.extend(FORWARD_HANDLERS)
            return
        if self.planner is None:
            self.handlers.append((rf"{API}(/.*)?", UnavailableHandler))
            return
        self.handlers.extend(
            [*RUN_HANDLERS, *EVENT_HANDLERS, *HANDLERS, (rf"{API}/.*", UnknownRouteHandler)]
        )

    async def _start_jupyter_server_extension(self, serverapp: ServerApp) -> None:
        """Recover runs a dead server left behind, then start the scheduler loop."""
        if self.planner is not None:
            await self.planner.start(server=True)
            # What the server built while starting lives as long as it does: kept out of the
            # garbage collector's full passes, which otherwise walk all of it every few seconds
            # under load (a few hundred milliseconds that every request and fire waits for).
            gc.freeze()

    def owner_name(self, user: User) -> str:
        """The owner name of an authenticated identity-provider user."""
        return self.single_user_name if self.single_user else user.username

    async def stop_extension(self) -> None:
        if self.planner is not None:
            await self.planner.stop()
            gc.unfreeze()  # a process going on (tests) collects this server's objects again
