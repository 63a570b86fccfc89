"""Finding the Jupyter server a client talks to, and a token for it, without configuration.

The places are tried in order; the first that gives a URL wins:

1. ``url=`` and ``token=`` given to ``TaskPlanner``;
2. ``TASKPLANNER_URL`` and ``TASKPLANNER_TOKEN`` in the environment (scripts, CI, cron);
3. JupyterHub: a kernel of a user's server has ``JUPYTERHUB_API_TOKEN`` and
   ``JUPYTERHUB_SERVICE_URL`` (the user's server, whose planner extension is the user's way
   to the planner, as in the Lab) from the hub's spawner;
4. the Jupyter server that started this kernel: jupyter_client puts the server's process id in
   ``JPY_PARENT_PID``, and the server describes itself (URL, token) in
   ``jpserver-<pid>.json`` in Jupyter's runtime folder;
5. the one Jupyter server running for this user, when exactly one is (a script in a terminal
   beside ``jupyter lab``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from jupyter_core.paths import jupyter_runtime_dir

__all__ = ["Connection", "DiscoveryError", "discover"]


class DiscoveryError(RuntimeError):
    """No Jupyter server with the planner could be found."""


@dataclass(frozen=True)
class Connection:
    """Where the planner is: the Jupyter server's base URL (ending in ``/``) and a token."""

    url: str
    token: str | None
    source: str
    """How it was found: ``arguments``, ``environment``, ``jupyterhub``, ``kernel``,
    ``running server``."""
    root_dir: str | None = None
    """The server's root folder, when its server file tells it."""


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _from_variables(env: Mapping[str, str]) -> Connection | None:
    url = env.get("TASKPLANNER_URL")
    if not url:
        return None
    return Connection(_with_slash(url), env.get("TASKPLANNER_TOKEN"), "environment")


def _from_jupyterhub(env: Mapping[str, str]) -> Connection | None:
    token = env.get("JUPYTERHUB_API_TOKEN")
    url = env.get("JUPYTERHUB_SERVICE_URL")
    if not (token and url and env.get("JUPYTERHUB_SERVICE_PREFIX")):
        return None
    return Connection(_with_slash(url), token, "jupyterhub")


def _server_files(runtime_dir: Path) -> list[dict[str, object]]:
    """The server files of running Jupyter servers (a file a dead server left is ignored)."""
    servers = []
    for path in sorted(runtime_dir.glob("jpserver-*.json")):
        try:
            info = json.loads(path.read_text())
            pid = int(info["pid"])
            os.kill(pid, 0)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        servers.append(info)
    return servers


def _connection(info: Mapping[str, object], source: str) -> Connection:
    root = info.get("root_dir")
    return Connection(
        _with_slash(str(info["url"])),
        str(info.get("token") or "") or None,
        source,
        str(root) if root else None,
    )


def _from_parent_server(env: Mapping[str, str], runtime_dir: Path) -> Connection | None:
    parents = {env.get("JPY_PARENT_PID"), str(os.getppid())} - {None, "", "0"}
    for info in _server_files(runtime_dir):
        if str(info.get("pid")) in parents:
            return _connection(info, "kernel")
    return None


def _from_only_server(env: Mapping[str, str], runtime_dir: Path) -> Connection | None:
    servers = _server_files(runtime_dir)
    return _connection(servers[0], "running server") if len(servers) == 1 else None


def discover(
    url: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
    runtime_dir: Path | None = None,
) -> Connection:
    """The planner's server: from the arguments, else from the places in the module's order."""
    env = os.environ if env is None else env
    if url:
        return Connection(_with_slash(url), token or env.get("TASKPLANNER_TOKEN"), "arguments")
    runtime = runtime_dir or Path(jupyter_runtime_dir())
    finders: list[Callable[[], Connection | None]] = [
        lambda: _from_variables(env),
        lambda: _from_jupyterhub(env),
        lambda: _from_parent_server(env, runtime),
        lambda: _from_only_server(env, runtime),
    ]
    for finder in finders:
        found = finder()
        if found:
            return found if token is None else replace(found, token=token)
    raise DiscoveryError(
        "no Jupyter server found: run this in a kernel started by Jupyter, with one Jupyter "
        "server running, or give TaskPlanner(url=..., token=...) or set TASKPLANNER_URL and "
        f"TASKPLANNER_TOKEN (looked for server files in {runtime})"
    )
