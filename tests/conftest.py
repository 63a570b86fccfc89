"""What only this suite needs; the shared fixtures come from the ``taskplanner`` pytest plugin.

``jupyter_taskplanner.pytest_plugin`` (loaded through its entry point) gives ``api``,
``planner``, ``planner_clock``, ``run_events``, ``smtp``, ``http`` and the server config;
``jupyter_taskplanner.testing`` has the helpers the test modules import.
"""

from __future__ import annotations

import itertools
import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.serverapp import ServerApp
from tornado.routing import PathMatches

from jupyter_taskplanner.handlers import PlannerHandler

pytest_plugins = ["pytest_jupyter.jupyter_server"]

FUNCS = textwrap.dedent(
    """
    import os, pathlib, time

    def hello(name="world"):
        print(f"hello {name}")
        return f"hello {name}"

    def sleep(seconds=30, pidfile=None):
        # The pid file is written inside the try: a test that saw it and cancels the job
        # always gets the cleanup (`finally`) it then checks.
        try:
            if pidfile:
                pathlib.Path(pidfile).write_text(str(os.getpid()))
            time.sleep(float(seconds))
        finally:
            if pidfile:
                pathlib.Path(pidfile + ".cleaned").touch()
        return "slept"

    def fail(message="boom"):
        raise RuntimeError(message)

    def flaky(counter):
        path = pathlib.Path(counter)
        count = int(path.read_text()) if path.exists() else 0
        path.write_text(str(count + 1))
        if count == 0:
            raise RuntimeError("the first attempt fails")
        return "second attempt"
    """
)
"""The module ``tp_funcs`` whose functions the python jobs of ``job`` call."""
_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>(?P<body>[^()]*)\)")
_LITERALS = re.compile(r"[\w-]+(\|[\w-]+)*")


@pytest.fixture
def jp_server_config(taskplanner_server_config: dict[str, Any]) -> dict[str, Any]:
    """The planner's test server (a plugin's fixture cannot override pytest-jupyter's)."""
    return taskplanner_server_config


@pytest.fixture
def funcs(jp_root_dir: Path) -> Path:
    """The test server's root, holding ``tp_funcs.py``."""
    (jp_root_dir / "tp_funcs.py").write_text(FUNCS)
    return jp_root_dir


@pytest.fixture
def server_root(tmp_path: Path) -> Path:
    """A root folder holding ``tp_funcs.py``, for real server processes."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "tp_funcs.py").write_text(FUNCS)
    return root


def _job(function: str, **kwargs: Any) -> dict[str, Any]:
    return {
        "type": "python",
        "name": function,
        "config": {"function": f"tp_funcs:{function}", "kwargs": kwargs},
    }


@pytest.fixture
def job() -> Callable[..., dict[str, Any]]:
    """``job("sleep", seconds=1)``: a python job entry calling that function of ``tp_funcs``."""
    return _job


def _expand(pattern: str) -> list[str]:
    """The OpenAPI path templates a route regex serves.

    ``(?P<x>a|b)`` gives two paths, any other named group ``{x}``; other regex syntax fails
    here, so that this walk is taught about it rather than silently skipping a route.
    """
    pieces: list[list[str]] = []
    position = 0
    for group in _GROUP.finditer(pattern):
        pieces.append([pattern[position : group.start()]])
        body = group["body"]
        pieces.append(body.split("|") if _LITERALS.fullmatch(body) else [f"{{{group['name']}}}"])
        position = group.end()
    pieces.append([pattern[position:]])
    templates = []
    for parts in itertools.product(*pieces):
        template = re.sub(r"\\(.)", r"\1", "".join(parts))
        assert not re.search(r"[()\[\]*+?|^$\\]", template), f"cannot read route {pattern!r}"
        templates.append(template)
    return templates


def _handler_methods(cls: type) -> set[str]:
    """The HTTP methods a planner handler implements itself (not inherited from tornado)."""
    return {
        method
        for method in (name.lower() for name in PlannerHandler.SUPPORTED_METHODS)
        for klass in cls.__mro__
        if issubclass(klass, PlannerHandler) and method in vars(klass)
    }


@pytest.fixture
def planner_routes(jp_serverapp: ServerApp) -> list[tuple[str, str, type[PlannerHandler]]]:
    """(path template, method, handler class) of every planner route the server serves.

    Templates are relative to the base URL, with the regex group names as parameters,
    e.g. ``/taskplanner/api/tasks/{raw_id}``.
    """
    prefix = jp_serverapp.base_url.rstrip("/")
    found = []

    def walk(router: Any) -> None:
        for rule in router.rules:
            if hasattr(rule.target, "rules"):
                walk(rule.target)
            elif isinstance(rule.target, type) and issubclass(rule.target, PlannerHandler):
                assert isinstance(rule.matcher, PathMatches), rule
                pattern = rule.matcher.regex.pattern.removesuffix("$")
                assert pattern.startswith(prefix), pattern
                for template in _expand(pattern.removeprefix(prefix)):
                    for method in sorted(_handler_methods(rule.target)):
                        found.append((template, method, rule.target))

    walk(jp_serverapp.web_app.default_router)
    walk(jp_serverapp.web_app.wildcard_router)
    return found
