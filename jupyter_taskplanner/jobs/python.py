"""The ``python`` job: call ``package.module:callable(**kwargs)`` in the worker process."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, ClassVar

from ..components.base import Job, Result, RunContext
from ..errors import InvalidConfig
from ..series.python import load_callable
from . import JobFailed, file_result, setting

_FUNCTION = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class PythonJob(Job):
    """Calls a Python function; its return value becomes the job's result."""

    type_name = "python"
    title = "Python function"
    description = (
        "Call a function of a module in your root folder (or any installed package). "
        "It may return None, text, JSON data, or a path or list of paths of files to keep."
    )
    flavors = frozenset({"file", "text", "none"})
    runs_code = True
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["function"],
        "additionalProperties": False,
        "properties": {
            "function": {
                "type": "string",
                "title": "Function",
                "description": "The callable as package.module:function (or module:Class.method).",
                "examples": ["reports.daily:build"],
            },
            "kwargs": {
                "type": "object",
                "title": "Keyword arguments",
                "description": "Passed to the function; {placeholders} in texts are filled.",
                "default": {},
            },
            "path": {
                "x-path": "folder",
                "type": "string",
                "title": "Import folder",
                "description": "Folder under your root put first on sys.path (default: the root).",
                "default": ".",
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if not _FUNCTION.match(config["function"]):
            raise InvalidConfig(
                f"{config['function']!r} is not of the form package.module:function",
                field="function",
            )

    def run(self, ctx: RunContext) -> list[Result]:
        folder = ctx.resolve_path(setting(self, "path"), field_name="path")
        if not folder.is_dir():
            raise JobFailed(f"import folder {folder} (path) does not exist")
        # Leave sys.path as it was: the caller may be a long-lived process (a test, a Dask
        # worker) that runs other jobs afterwards.
        sys.path.insert(0, str(folder))
        try:
            _invalidate_finders(str(folder))
            function = load_callable(self.config["function"])
            value = function(**ctx.fill(setting(self, "kwargs")))
            if inspect.iscoroutine(value):
                value = asyncio.run(value)
        finally:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(folder))
        return self._results(ctx, value)

    def inputs(self, ctx: RunContext) -> list[Path]:
        """The import folder, its modules (``*.py``, which the function's module may
        import) and the whole package the function is in; a module found nowhere there is
        an installed package, which does not travel."""
        folder = ctx.resolve_path(setting(self, "path"), field_name="path")
        package = folder / self.config["function"].partition(":")[0].split(".")[0]
        files = [*sorted(folder.glob("*.py")), *sorted(package.rglob("*"))]
        return [folder] + [
            path
            for path in files
            if path.is_file() and "__pycache__" not in path.parts and ctx.files.contains(path)
        ]

    def _results(self, ctx: RunContext, value: Any) -> list[Result]:
        """Turn the function's return value into results (see the class description)."""
        if value is None:
            return [Result("none", job=self.name)]
        if isinstance(value, Path) or (
            isinstance(value, list) and value and all(isinstance(p, Path) for p in value)
        ):
            return self._file_results(ctx, value if isinstance(value, list) else [value])
        if isinstance(value, str):
            return [Result("text", value=value, job=self.name)]
        try:
            text = json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise JobFailed(
                f"{self.config['function']} returned a {type(value).__name__}, which is neither "
                f"None, text, JSON data nor a path or list of paths ({exc})"
            ) from None
        return [Result("text", value=text, job=self.name)]

    def _file_results(self, ctx: RunContext, paths: list[Path]) -> list[Result]:
        results: list[Result] = []
        used: set[str] = set()
        for path in paths:
            # Relative paths count from the owner's root, the worker's working directory.
            source = path if path.is_absolute() else ctx.owner_root / path
            if not ctx.files.contains(source):
                raise JobFailed(
                    f"{self.config['function']} returned {path}, which is not among your files "
                    "(outside your root folder or in the planner's own folders)"
                )
            if not source.is_file():
                raise JobFailed(f"{self.config['function']} returned {path}, which is not a file")
            name, number = source.name, 1
            while name in used:
                number += 1
                name = f"{source.stem}-{number}{source.suffix}"
            used.add(name)
            results.append(file_result(ctx, source, name, self.name, {"source": str(path)}))
        return results


def _invalidate_finders(folder: str) -> None:
    """Forget what the import system cached of ``folder`` and the folders in it: a module
    there may have been written a moment ago, which stale caches would miss.

    Only those finders: ``importlib.invalidate_caches()`` also resets every other path's
    finder and the caches of installed distributions (a few per cent of a trivial job).
    """
    inside = folder.rstrip(os.sep) + os.sep
    for path, finder in list(sys.path_importer_cache.items()):
        invalidate = getattr(finder, "invalidate_caches", None)
        if callable(invalidate) and (path == folder or path.startswith(inside)):
            invalidate()
