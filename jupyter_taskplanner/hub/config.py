"""The planner's lines of ``jupyterhub_config.py``: ``taskplanner_service(c, ...)``.

It adds the managed service, the planner's custom scopes and the roles that grant them,
gives users' servers a token that carries their owner's planner scopes to the service, and
tells the service which scopes each role grants (``HubAuthorizer.role_scopes``).  Call it
after your own ``c.JupyterHub.load_roles``, so the roles you grant the planner's scopes in
are known to the service too.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from ..permissions import ADMIN, HUB_SCOPES, SHELL, USE
from . import DEFAULT_SERVICE_NAME
from .auth import ROLES_VARIABLE
from .service import DEFAULT_PORT, EXECUTORS

DESCRIPTIONS = {
    USE: "Use the task planner: your own tasks, runs and result files.",
    ADMIN: "See, change and run the tasks of every user of the task planner.",
    SHELL: "Use task planner components that run code (command jobs; all code where jobs do "
    "not run as their owner).",
}
SERVER_SCOPES = ["users:activity!user", "access:servers!server"]
"""What a user's server token holds by default (JupyterHub's ``server`` role)."""


def taskplanner_service(
    c: Any,
    *,
    name: str = DEFAULT_SERVICE_NAME,
    executor: str = "local",
    url: str = f"http://127.0.0.1:{DEFAULT_PORT}",
    users: Iterable[str] = (),
    groups: Iterable[str] = (),
    everyone: bool = False,
    admins: Iterable[str] = (),
    shell: Iterable[str] = (),
    proxy_url: str | None = None,
    command: Sequence[str] | None = None,
    args: Sequence[str] = (),
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Add the planner service to the hub config ``c``; the service's entry is returned.

    ``users`` and ``groups`` may use the planner (``everyone``: every hub user), ``admins``
    administer it, ``shell`` may use components that run code where that needs the shell
    scope.  ``executor`` is ``local``, ``local_user`` or ``user_server``; ``url`` is where
    the service listens; ``proxy_url`` where it reaches users' servers (``user_server``);
    ``args`` go on its command line (``--db-path=/srv/taskplanner/taskplanner.db``).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor: one of {', '.join(EXECUTORS)}, not {executor!r}")
    use, admin, code = HUB_SCOPES[USE], HUB_SCOPES[ADMIN], HUB_SCOPES[SHELL]
    access = f"access:services!service={name}"
    c.JupyterHub.custom_scopes = {
        **_get(c.JupyterHub, "custom_scopes", {}),
        **{HUB_SCOPES[resource]: {"description": text} for resource, text in DESCRIPTIONS.items()},
    }
    roles: list[dict[str, Any]] = list(_get(c.JupyterHub, "load_roles", []))
    roles += [
        {
            "name": f"{name}-user",
            "description": "Uses the task planner",
            "scopes": [use, access],
            "users": list(users),
            "groups": list(groups),
        },
        {
            "name": f"{name}-admin",
            "description": "Administers the task planner",
            "scopes": [use, admin, code, access],
            "users": list(admins),
        },
        {
            "name": f"{name}-shell",
            "description": "Runs code in the task planner",
            "scopes": [code],
            "users": list(shell),
        },
    ]
    service_scopes = ["read:users", "read:roles:users", "read:roles:groups", "read:groups"]
    if executor == "user_server":
        service_scopes += ["servers", "access:servers", "users:activity"]
    roles.append(
        {
            "name": f"{name}-service",
            "description": "What the task planner service asks of the hub",
            "scopes": service_scopes,
            "services": [name],
        }
    )
    if everyone:
        _grant_everyone(roles, [use, access])
    c.JupyterHub.load_roles = roles

    # A user's server forwards to the service with its own token: that token carries the
    # owner's planner scopes (only those the owner holds).
    token_scopes = list(_get(c.Spawner, "server_token_scopes", None) or SERVER_SCOPES)
    c.Spawner.server_token_scopes = [
        *token_scopes,
        *(scope for scope in (access, use, admin, code) if scope not in token_scopes),
    ]
    c.Spawner.environment = {
        **_get(c.Spawner, "environment", {}),
        "TASKPLANNER_HUB_SERVICE": name,
        "TASKPLANNER_SERVICE_URL": url,
    }

    planner_scopes = set(HUB_SCOPES.values())
    role_scopes = {
        role["name"]: sorted(set(role.get("scopes", ())) & planner_scopes) for role in roles
    }
    env = {
        ROLES_VARIABLE: json.dumps({role: found for role, found in role_scopes.items() if found}),
        **({"TASKPLANNER_PROXY_URL": proxy_url} if proxy_url else {}),
        **(environment or {}),
    }
    service = {
        "name": name,
        "url": url,
        "command": [
            *(command or [sys.executable, "-m", "jupyter_taskplanner.cli", "service"]),
            f"--executor={executor}",
            *args,
        ],
        "environment": env,
        "oauth_no_confirm": True,
        "oauth_client_allowed_scopes": [use, admin, code],
    }
    c.JupyterHub.services = [*_get(c.JupyterHub, "services", []), service]
    return service


def _get(section: Any, key: str, fallback: Any) -> Any:
    """A config value set before, or ``fallback`` (traitlets config sections are lazy)."""
    return section.get(key, fallback)


def _grant_everyone(roles: list[dict[str, Any]], scopes: list[str]) -> None:
    """Add ``scopes`` to JupyterHub's ``user`` role, which every user holds."""
    for role in roles:
        if role["name"] == "user":
            role["scopes"] = [*role.get("scopes", ["self"]), *scopes]
            return
    roles.append({"name": "user", "scopes": ["self", *scopes]})
