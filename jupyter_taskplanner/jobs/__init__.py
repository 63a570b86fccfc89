"""Built-in job types (``notebook``, ``python``, ``command``, ``script``) and what they share.

Each job runs in a worker process whose working directory is the owner's root; what it
prints, and what its child processes write to the inherited stdout/stderr, is the job's log.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

from ..components.base import Component, Result, RunContext


class JobFailed(RuntimeError):
    """A job failed for a reason its message states completely (no traceback needed)."""


def setting(component: Component, key: str) -> Any:
    """A config value, or the default its schema declares when the config leaves it out."""
    if key in component.config:
        return component.config[key]
    return copy.deepcopy(component.config_schema["properties"][key].get("default"))


def file_result(
    ctx: RunContext, source: Path, relative: str, job: str, metadata: dict[str, Any] | None = None
) -> Result:
    """Copy ``source`` to ``relative`` inside the run's output folder; describe it as a result."""
    target = ctx.output_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return Result("file", value=Path(relative).as_posix(), job=job, metadata=metadata or {})
