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
    Job,
    Result,
    RunContext,
    Series,
    StopSignal,
    Trigger,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "Component",
    "Job",
    "Registry",
    "Result",
    "RunContext",
    "Series",
    "StopSignal",
    "Trigger",
]


def __getattr__(name: str) -> Any:
    if name == "Registry":
        from .registry import Registry

        return Registry
    raise AttributeError(name)
