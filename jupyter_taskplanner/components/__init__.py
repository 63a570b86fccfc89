"""Component base classes and the registry of component types."""

from .base import Action, Component, Job, Result, RunContext, Series, Trigger
from .registry import ENTRY_POINT_GROUP, Registry

__all__ = [
    "ENTRY_POINT_GROUP",
    "Action",
    "Component",
    "Job",
    "Registry",
    "Result",
    "RunContext",
    "Series",
    "Trigger",
]
