"""Executors: where the steps of a run execute (local subprocesses, or a Dask cluster)."""

from .base import Executor, Progress, StepOutcome, StepRequest
from .local import LocalExecutor

__all__ = ["Executor", "LocalExecutor", "Progress", "StepOutcome", "StepRequest"]
