"""What a kernel knows about itself: its id, and through its server its notebook and kernel
name (for ``schedule_notebook`` and ``%%schedule``)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

KERNEL_FILE = re.compile(r"kernel-(?P<id>[0-9a-f-]+)\.json$")


def kernel_id() -> str | None:
    """The id of the kernel this code runs in, from its connection file's name."""
    try:
        from ipykernel.connect import get_connection_file

        name = Path(get_connection_file()).name
    except (ImportError, RuntimeError, AttributeError):
        # Not in an ipykernel kernel (a script, a terminal IPython).
        return None
    found = KERNEL_FILE.search(name)
    return found["id"] if found else None


def own_session(sessions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """This kernel's session among the server's sessions (``GET /api/sessions``)."""
    wanted = kernel_id()
    for session in sessions:
        if wanted and (session.get("kernel") or {}).get("id") == wanted:
            return session
    return None


def session_path(root_dir: str | None) -> str | None:
    """The notebook of this kernel from ``JPY_SESSION_NAME``, relative to the server's root
    (the server may name it by its API path or by its path on disk)."""
    name = os.environ.get("JPY_SESSION_NAME")
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute():
        return name
    if root_dir:
        try:
            return path.relative_to(Path(root_dir)).as_posix()
        except ValueError:
            return None
    return None
