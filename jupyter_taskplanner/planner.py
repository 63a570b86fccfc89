"""The planner's services, built in one place for every front end.

``build_planner(settings, serverapp)`` wires the store, the component registry, the task and
run services, the engine, the scheduler, the executor and the owner folders from the
``TaskPlannerApp`` settings.  The server extension, every command-line command and the tests
use it; nothing else builds these services.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_server.auth.identity import User

from .bus import EventBus, ServerStarted
from .components.registry import Registry
from .database import Database
from .engine import EngineSettings, RunEngine
from .event_stream import RunEventStreams, follow_runs
from .executors import Executor
from .owners import OwnerFolders
from .permissions import ComponentRules, decided, owner_lookup
from .runs import RunService
from .scheduler import Scheduler
from .store import Store
from .tasks import TaskService
from .triggers import calendar

if TYPE_CHECKING:
    from jupyter_events import EventLogger
    from jupyter_server.serverapp import ServerApp

    from .app import TaskPlannerApp

EVENT_SCHEMA = "https://events.jupyter.org/jupyter_taskplanner/run/v1"
"""The Jupyter event schema of run events (``events/run.yaml``), emitted on Jupyter Server's
event bus when ``TaskPlannerApp.server_events`` is on."""
EVENT_SCHEMA_FILE = Path(__file__).parent / "events" / "run.yaml"


@dataclass
class Planner:
    """Every service of the planner, typed; ``start`` and ``stop`` run it."""

    settings: TaskPlannerApp
    db: Database
    registry: Registry
    owners: OwnerFolders
    rules: ComponentRules
    bus: EventBus
    executor: Executor
    engine: RunEngine
    scheduler: Scheduler
    tasks: TaskService
    runs: RunService
    streams: RunEventStreams
    log: logging.Logger

    @property
    def store(self) -> Store:
        return self.db.store

    async def start(self, *, server: bool) -> None:
        """Recover what a dead process left, then schedule (a server) or only follow the
        planner's events (the command line)."""
        scheduling = server and self.settings.scheduler_enabled
        if scheduling or not server:
            # First: a run the recovery ends records the runs its end starts.
            await self.scheduler.listen()
        await self.engine.recover(adopt=server)
        if scheduling:
            await self.scheduler.start()
            await self.bus.publish(ServerStarted())

    async def stop(self, *, hand_over: bool = True) -> None:
        """End the event streams, stop scheduling, end this process's runs, release the
        executor and the database (``hand_over``: see ``RunEngine.stop``)."""
        self.streams.close()
        await self.scheduler.stop()
        await self.engine.stop(hand_over=hand_over)
        await self.executor.close()
        self.db.close()


def build_planner(settings: TaskPlannerApp, serverapp: ServerApp | None = None) -> Planner:
    """The planner of ``settings``: in a server (``serverapp``) or without one (the CLI).

    Without a server the owner's root is the configured ``ServerApp.root_dir`` (else the
    current folder) and the local user holds every permission.
    """
    log = settings.log
    store = settings.store_class(settings.db_path)
    store.max_queued_runs = settings.max_queued_runs
    calendar.CALENDARS.limit(settings.max_calendar_bytes)
    db = Database(store)
    registry = Registry.from_entry_points()
    owners = OwnerFolders(
        database=Path(settings.db_path),
        runs_dir=Path(settings.runs_dir),
        default_root=_server_root(settings, serverapp),
        root_template=settings.owner_root_template,
    )
    executor = settings.executor_class(parent=settings)
    rules = ComponentRules(
        _owner_has(serverapp),
        code_needs_shell=not settings.single_user and not executor.runs_as_owner,
        prepare=owner_lookup(serverapp.authorizer) if serverapp is not None else None,
    )
    bus = EventBus()
    component_settings = {
        cls: cls.settings_class(parent=settings)
        for kind in ("job", "action", "series", "trigger")
        for cls in registry.of_kind(kind)
        if cls.settings_class is not None
    }
    engine = RunEngine(
        db=db,
        registry=registry,
        executor=executor,
        owners=owners,
        rules=rules,
        bus=bus,
        settings=EngineSettings(
            max_concurrent_runs=settings.max_concurrent_runs,
            max_runs_per_owner=settings.max_runs_per_owner,
            keep_runs=settings.keep_runs,
            keep_run_days=settings.keep_run_days,
            max_filled_length=settings.max_filled_length,
            max_series_sets=settings.max_series_sets,
            max_log_bytes=settings.max_log_bytes,
        ),
        component_settings=component_settings,
        log=log,
    )
    scheduler = settings.scheduler_class(
        db=db,
        registry=registry,
        engine=engine,
        bus=bus,
        owners=owners,
        misfire_tolerance=settings.misfire_tolerance,
        log=log,
    )
    store.on_change = scheduler.notify
    tasks = TaskService(
        store,
        registry,
        settings.default_timezone,
        folders=lambda owner: (owners.files(owner), owners.snapshots(owner)),
        rules=rules,
    )
    streams = RunEventStreams(bus, settings.max_event_streams_per_user)
    if serverapp is not None and settings.server_events:
        # ServerApp.initialize makes its event logger before it loads the extensions.
        assert serverapp.event_logger is not None
        forward_run_events(bus, serverapp.event_logger)
    return Planner(
        settings=settings,
        db=db,
        registry=registry,
        owners=owners,
        rules=rules,
        bus=bus,
        executor=executor,
        engine=engine,
        scheduler=scheduler,
        tasks=tasks,
        runs=RunService(store),
        streams=streams,
        log=log,
    )


def _server_root(settings: TaskPlannerApp, serverapp: ServerApp | None) -> Path:
    if serverapp is not None:
        return Path(serverapp.root_dir)
    configured = settings.config.get("ServerApp", {}).get("root_dir")
    return Path(configured) if configured else Path.cwd()


def _owner_has(serverapp: ServerApp | None) -> Callable[[str, str], bool]:
    """Whether an owner holds an authorizer resource, asked without a request."""

    def owner_has(owner: str, resource: str) -> bool:
        if serverapp is None:
            return True
        user = User(username=owner)
        # Asked without a request: jupyter_server types the handler as required, but the
        # planner asks about an owner outside of any request (the authorizer decides by user
        # and resource).
        allowed = serverapp.authorizer.is_authorized(
            None,  # type: ignore[arg-type]
            user,
            "execute",
            resource,
        )
        return decided(allowed, resource)

    return owner_has


def forward_run_events(bus: EventBus, event_logger: EventLogger) -> None:
    """Emit the life of every run on Jupyter Server's event bus (``server_events``).

    That bus reaches every holder of Jupyter's ``events`` permission, whoever owns the run;
    the planner's own stream (``event_stream``) keeps each owner's events to that owner.
    """
    if EVENT_SCHEMA not in event_logger.schemas.schema_ids:
        event_logger.register_event_schema(EVENT_SCHEMA_FILE)

    follow_runs(bus, lambda data: event_logger.emit(schema_id=EVENT_SCHEMA, data=data))
