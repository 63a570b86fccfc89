"""The settings the run engine works with (from ``TaskPlannerApp``'s traits)."""

from __future__ import annotations

from dataclasses import dataclass

from ..components.base import DEFAULT_MAX_FILLED, DEFAULT_MAX_SETS
from ..logs import DEFAULT_MAX_LOG_BYTES


@dataclass
class EngineSettings:
    """Limits and retention of the run engine; see the traits of the same names."""

    max_concurrent_runs: int = 8
    max_runs_per_owner: int = 4
    keep_runs: int = 100
    keep_run_days: float = 0
    max_filled_length: int = DEFAULT_MAX_FILLED
    max_series_sets: int = DEFAULT_MAX_SETS
    max_log_bytes: int = DEFAULT_MAX_LOG_BYTES
