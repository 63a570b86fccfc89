"""Executors: where the steps of a run execute (local subprocesses, or a Dask cluster)."""

from .base import Executor, Progress, StepOutcome, StepRequest
from .dask import DaskExecutor
from .local import LocalExecutor

__all__ = ["DaskExecutor", "Executor", "LocalExecutor", "Progress", "StepOutcome", "StepRequest"]
