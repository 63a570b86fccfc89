"""Executors: where the jobs of a run execute (local subprocesses, or a Dask cluster)."""

from .base import Executor
from .local import LocalExecutor

__all__ = ["Executor", "LocalExecutor"]
