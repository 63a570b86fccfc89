"""The ``append_line`` action: append one line per run to a log file under the owner's root."""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

from traitlets import Int, Unicode
from traitlets.config import Configurable

from jupyter_taskplanner.components import Action, Result, RunContext
from jupyter_taskplanner.components.base import Flavor

from . import with_defaults

DEFAULT_TEMPLATE = "{run.started:%Y-%m-%d %H:%M} {task.name}: {results}"
_LINE_BREAKS = re.compile(r"\r\n|\r|\n")


class AppendLineSettings(Configurable):
    """Server-wide limits of the ``append_line`` action (``c.AppendLineSettings.<trait>``)."""

    max_line_length = Int(
        2000,
        min=1,
        help="Characters a line may have; longer lines are cut and end with the marker.",
    ).tag(config=True)
    cut_marker = Unicode(" [...]", help="Appended to a line that was cut to max_line_length.").tag(
        config=True
    )


class AppendLineAction(Action):
    """Appends one line, built from a placeholder template, to a text file."""

    type_name: ClassVar[str] = "append_line"
    title: ClassVar[str] = "Append a line to a file"
    description: ClassVar[str] = (
        "Append one line per run to a log file under your root folder, built from a template "
        "such as {run.started:%Y-%m-%d} {task.name}: {results}, where {results} are the text "
        "results of the jobs."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"text"})
    settings_class = AppendLineSettings
    example_config: ClassVar[dict[str, Any] | None] = {
        "path": "logs/{task.name}.log",
        "template": "{run.started:%Y-%m-%d} {task.name}: {job.count.words} words",
    }
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": {
                "x-path": "file",
                "type": "string",
                "minLength": 1,
                "title": "File",
                "description": "Relative to your root folder; created with its folders when "
                "missing. Placeholders are filled, e.g. logs/{task.name}.log.",
                "examples": ["logs/runs.log"],
            },
            "template": {
                "type": "string",
                "minLength": 1,
                "title": "Line",
                "description": "Placeholders: {results} (the text results), {task.name}, "
                "{run.id}, {run.started:%Y-%m-%d}, {run.status}, {job.<name>.<key>} and the "
                "series values.",
                "default": DEFAULT_TEMPLATE,
            },
            "separator": {
                "type": "string",
                "title": "Separator",
                "description": "Joins the text results in {results}, and replaces line breaks "
                "so that each run appends exactly one line.",
                "default": " | ",
            },
        },
    }

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        config = with_defaults(self.config_schema, self.config)
        # The server always hands over its configured instance; a bare test context has none.
        settings = (
            ctx.settings if isinstance(ctx.settings, AppendLineSettings) else AppendLineSettings()
        )
        path = ctx.resolve_path(config["path"], field_name="path")
        if path.is_dir():
            raise IsADirectoryError(f"path {config['path']!r} is a folder, not a file")
        separator = config["separator"]
        texts = separator.join(result.value or "" for result in results)
        line = _LINE_BREAKS.sub(separator, ctx.fill(config["template"], {"results": texts}))
        if len(line) > settings.max_line_length:
            keep = max(settings.max_line_length - len(settings.cut_marker), 0)
            line = (line[:keep] + settings.cut_marker)[: settings.max_line_length]
        # Append mode: every write lands at the end, even with runs of other tasks appending.
        # Opened folder by folder without following a link (``OwnerFiles.open``): one put in
        # the way since the check would lead the server's write elsewhere.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
        with open(ctx.files.open(path, flags, parents=True), "a", encoding="utf-8") as log:
            log.write(line + "\n")
        ctx.log.info("appended a line to %s", path.relative_to(ctx.owner_root.resolve()))
