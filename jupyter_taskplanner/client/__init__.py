"""A Python client of the planner for notebooks and scripts, and a task builder.

``TaskPlanner()`` finds its server by itself inside a Jupyter kernel; see docs/notebooks.md.
"""

from __future__ import annotations

from .api import NextFires, Page, TaskPlanner, TaskSummary
from .builder import Component, Settings, Task
from .component_types import (
    AfterTask,
    Calendar,
    Command,
    Cron,
    Csv,
    Directory,
    Email,
    File,
    Http,
    Interval,
    Json,
    NextTask,
    Notebook,
    Notify,
    Python,
    PythonSeries,
    Save,
    Script,
    ServerStart,
    Sql,
    Time,
    Values,
    Webhook,
)
from .discovery import Connection, DiscoveryError
from .errors import BadRequest, Conflict, Forbidden, NotFound, PlannerError, Unauthorized

__all__ = [
    "AfterTask",
    "BadRequest",
    "Calendar",
    "Command",
    "Component",
    "Conflict",
    "Connection",
    "Cron",
    "Csv",
    "Directory",
    "DiscoveryError",
    "Email",
    "File",
    "Forbidden",
    "Http",
    "Interval",
    "Json",
    "NextFires",
    "NextTask",
    "NotFound",
    "Notebook",
    "Notify",
    "Page",
    "PlannerError",
    "Python",
    "PythonSeries",
    "Save",
    "Script",
    "ServerStart",
    "Settings",
    "Sql",
    "Task",
    "TaskPlanner",
    "TaskSummary",
    "Time",
    "Unauthorized",
    "Values",
    "Webhook",
]
