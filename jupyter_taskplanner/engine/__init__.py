"""The run engine, in parts: the queue (limits, fairness), one run's execution, its steps.

``RunEngine`` is what the rest of the planner uses; it never knows how a step executes
(that is the executor's business).
"""

from .engine import HOLDER, RunEngine, busy_skip, holder_is_gone
from .settings import EngineSettings

__all__ = ["HOLDER", "EngineSettings", "RunEngine", "busy_skip", "holder_is_gone"]
