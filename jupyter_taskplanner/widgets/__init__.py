"""ipywidgets panels of the planner: ``Planner()`` in a notebook cell shows them all.

``TaskList``, ``Composer`` and ``RunHistory`` are the panels on their own; each takes a
``TaskPlanner`` client (default: ``TaskPlanner()``, the kernel's own server).
"""

from __future__ import annotations

from .composer import ComponentEditor, Composer
from .forms import Field, SchemaForm
from .planner import Planner
from .runs import RunHistory
from .tasks import TaskList, TaskRow

__all__ = [
    "ComponentEditor",
    "Composer",
    "Field",
    "Planner",
    "RunHistory",
    "SchemaForm",
    "TaskList",
    "TaskRow",
]
