"""The planner on JupyterHub: one planner for all users, as a hub service.

- ``service``: ``jupyter taskplanner service``, the Jupyter Server app that serves the planner
  under the service's prefix (``/services/taskplanner/``) with the scheduler always on;
- ``auth``: who calls (the hub's OAuth cookie or an API token) and what they may (the
  planner's permissions as hub custom scopes, ``permissions.HUB_SCOPES``), also for owners
  who are away (their roles and groups, looked up through the hub API);
- ``forward``: inside a user's server, the planner extension forwards its API to the service
  with the server's own hub token, and runs steps the service hands it (``user_server``);
- ``executors``: ``LocalUserExecutor`` (each job under its owner's system account) and
  ``UserServerExecutor`` (each job inside its owner's own server, started if stopped);
- ``config``: ``taskplanner_service(c, ...)``, the lines of ``jupyterhub_config.py``.

See docs/jupyterhub.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_SERVICE_NAME = "taskplanner"


def in_user_server(env: Mapping[str, str] | None = None) -> bool:
    """Whether this process is a user's server spawned by JupyterHub (not a hub service)."""
    env = os.environ if env is None else env
    return bool(
        env.get("JUPYTERHUB_API_TOKEN")
        and env.get("JUPYTERHUB_API_URL")
        and env.get("JUPYTERHUB_USER")
        and not env.get("JUPYTERHUB_SERVICE_NAME")
    )
