"""jupyter-taskplanner: a task planner that lives inside Jupyter."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .app import TaskPlannerApp

    return [{"module": "jupyter_taskplanner", "app": TaskPlannerApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The built Lab extension inside the package (``labextension/``'s npm build)."""
    return [{"src": "labextension", "dest": "jupyter-taskplanner"}]


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext jupyter_taskplanner``: the ``%taskplanner`` and ``%%schedule`` magics."""
    from .magics import TaskPlannerMagics

    ipython.register_magics(TaskPlannerMagics)
