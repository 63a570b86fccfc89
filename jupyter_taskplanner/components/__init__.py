"""Component base classes and the registry of component types.

``Registry`` is imported lazily: worker processes import only the base classes, so a job
does not pay for loading jsonschema before it starts.
"""

from __future__ import annotations

from typing import Any

from .base import (
    ENTRY_POINT_GROUP,
    Action,
    Component,
    EventTrigger,
    Fire,
    Job,
    PlannerEventTrigger,
    Result,
    RunContext,
    Series,
    StopSignal,
    TimedTrigger,
    Trigger,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "Component",
    "EventTrigger",
    "Fire",
    "Job",
    "PlannerEventTrigger",
    "Registry",
    "Result",
    "RunContext",
    "Series",
    "StopSignal",
    "TimedTrigger",
    "Trigger",
]


def __getattr__(name: str) -> Any:
    if name == "Registry":
        from .registry import Registry

        return Registry
    raise AttributeError(name)
