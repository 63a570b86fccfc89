"""A sample jupyter-taskplanner plugin: one trigger, one job and one action to learn from.

The ``inbox`` trigger, the ``wordcount`` job and the ``append_line`` action register through
the ``jupyter_taskplanner.components`` entry points declared in this package's pyproject.toml.
The helpers below are what the components share.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def with_defaults(schema: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """``config`` completed with the defaults its schema declares.

    The server stores a config as the user wrote it, so a field left out has to fall back to
    its schema default here, where it is used.
    """
    defaults = {
        key: spec["default"] for key, spec in schema["properties"].items() if "default" in spec
    }
    return {**defaults, **config}
