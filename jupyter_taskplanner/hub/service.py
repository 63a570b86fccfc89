"""``jupyter taskplanner service``: the planner as a JupyterHub service, for all users.

A Jupyter Server that serves only the planner extension (every REST handler as in a user's
server, under the service's prefix), authenticated by the hub and authorized by hub scopes
(``hub.auth``), with one store for all users and the scheduler always running.  It takes
its place and address from the variables the hub gives a service
(``JUPYTERHUB_SERVICE_PREFIX``, ``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_API_TOKEN``, ...);
``hub.config.taskplanner_service`` writes its entry in ``jupyterhub_config.py``.
"""

from __future__ import annotations

import os
import signal
import sys
from urllib.parse import urlparse

from jupyter_server.serverapp import ServerApp
from jupyter_server.serverapp import aliases as server_aliases
from jupyter_server.serverapp import flags as server_flags
from traitlets import Enum, Unicode, default

from .. import __version__
from ..app import TaskPlannerApp
from . import DEFAULT_SERVICE_NAME

EXECUTORS = {
    "local": "jupyter_taskplanner.executors.LocalExecutor",
    "local_user": "jupyter_taskplanner.hub.executors.LocalUserExecutor",
    "user_server": "jupyter_taskplanner.hub.executors.UserServerExecutor",
}
"""The executors a service chooses by name (``TaskPlannerService.executor``)."""

DEFAULT_PORT = 10101


class TaskPlannerService(ServerApp):
    """The task planner of every user of a JupyterHub, run by the hub as a service."""

    name = "jupyter-taskplanner-service"
    description = __doc__
    version = __version__
    # The planner's own routes only: no contents, kernels, terminals or nbconvert for users.
    default_services = ("auth", "api")  # type: ignore[assignment]

    examples = (
        "jupyter taskplanner service --executor=local_user "
        "--db-path=/srv/taskplanner/taskplanner.db\n"
        "(normally started by the hub: see jupyter_taskplanner.hub.config.taskplanner_service)"
    )
    # None of Jupyter Server's own (list, stop, password, extension) apply to the service.
    subcommands: dict[str, tuple[str, str]] = {}
    # The planner's settings too: its flags name them, and --help-all lists them.
    classes = [*ServerApp.classes, TaskPlannerApp]
    flags = dict(server_flags)
    aliases = {
        **server_aliases,
        "executor": "TaskPlannerService.executor",
        "db-path": "TaskPlannerApp.db_path",
    }

    executor = Enum(
        list(EXECUTORS),
        default_value="local",
        config=True,
        help="""Where jobs run: 'local' (processes of the service's own account; code-running
        components then need the taskplanner:shell scope), 'local_user' (each job under its
        owner's system account; the service runs as root) or 'user_server' (each job inside
        its owner's own single-user server, started through the hub when it is stopped).
        TaskPlannerApp.executor_class, when set, wins.""",
    )

    owner_root_template = Unicode(
        config=True,
        help="""The root folder of each owner's files, where their jobs run and their paths
        are resolved (TaskPlannerApp.owner_root_template, when set, wins). Default: for
        local_user '~{owner}', the home folder of the owner's system account; else empty,
        the service's root_dir. For user_server set it to the folder users' servers serve,
        as the path looks inside them (for example '/home/jovyan'): the service checks the
        paths of tasks against it.""",
    )

    @default("owner_root_template")
    def _default_owner_root_template(self) -> str:
        return "~{owner}" if self.executor == "local_user" else ""

    @default("base_url")
    def _default_base_url(self) -> str:
        name = os.environ.get("JUPYTERHUB_SERVICE_NAME", DEFAULT_SERVICE_NAME)
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX") or f"/services/{name}/"

    @default("ip")
    def _default_ip(self) -> str:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).hostname or "127.0.0.1"

    @default("port")
    def _default_port(self) -> int:
        return urlparse(os.environ.get("JUPYTERHUB_SERVICE_URL", "")).port or DEFAULT_PORT

    @default("identity_provider_class")
    def _default_identity_provider_class(self) -> type:
        from .auth import HubIdentityProvider

        return HubIdentityProvider

    @default("authorizer_class")
    def _default_authorizer_class(self) -> type:
        from .auth import HubAuthorizer

        return HubAuthorizer

    @default("open_browser")
    def _default_open_browser(self) -> bool:
        return False

    @default("allow_root")
    def _default_allow_root(self) -> bool:
        # Jupyter refuses root for notebook servers; this one runs no user code itself, and
        # local_user needs root to start each job as its owner.
        return True

    def init_signal(self) -> None:
        """SIGINT stops the service at once, as SIGTERM does: the hub stops its services
        with SIGINT, and no one is at the service's terminal to confirm."""
        super().init_signal()
        signal.signal(signal.SIGINT, self._signal_stop)

    def find_server_extensions(self) -> None:
        """Only the planner: the extensions installed for users' servers stay out."""
        self.jpserver_extensions = {"jupyter_taskplanner": True}

    def init_server_extensions(self) -> None:
        """With every config file read: point the planner at the chosen executor and roots."""
        planner = self.config.TaskPlannerApp
        if "executor_class" not in planner:
            planner.executor_class = EXECUTORS[self.executor]
        if "owner_root_template" not in planner:
            planner.owner_root_template = self.owner_root_template
        # Always scheduling, and never a thin client of itself.
        planner.scheduler_enabled = True
        planner.hub_client = False
        super().init_server_extensions()


def main(argv: list[str] | None = None) -> None:
    """Run the service (``jupyter taskplanner service``, ``python -m ...hub.service``)."""
    TaskPlannerService.launch_instance(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
