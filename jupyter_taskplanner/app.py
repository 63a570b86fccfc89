"""The Jupyter Server extension: settings, services and routes of the planner."""

from __future__ import annotations

import asyncio
import functools
import getpass
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from jupyter_core.paths import jupyter_data_dir
from jupyter_server.auth.identity import IdentityProvider, PasswordIdentityProvider
from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Int, Unicode, default, validate
from traitlets.config import TraitError

from . import __version__
from .components.registry import Registry
from .handlers import HANDLERS
from .store import Store
from .tasks import TaskService
from .timezones import is_timezone, local_timezone


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
        return proposal["value"]

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

    def initialize_settings(self) -> None:
        """Open the store and load the component registry."""
        self.store = Store(self.db_path)
        self.registry = Registry.from_entry_points()
        self.tasks = TaskService(self.store, self.registry, self.default_timezone)
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="taskplanner-db")
        self.log.info("jupyter-taskplanner: tasks stored in %s", self.db_path)

    def initialize_handlers(self) -> None:
        self.handlers.extend(HANDLERS)

    async def in_db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the single database thread, off the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db_thread, functools.partial(fn, *args, **kwargs))

    def owner_name(self, user: Any) -> str:
        """The owner name of an authenticated identity-provider user."""
        return self.single_user_name if self.single_user else user.username

    async def stop_extension(self) -> None:
        self._db_thread.shutdown(wait=True)
        self.store.close()
