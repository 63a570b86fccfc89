"""The ``save`` action: copy result files into a folder under the owner's root."""

from __future__ import annotations

import glob
import re
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar

from ..components.base import Action, Flavor, Result, RunContext
from ..errors import InvalidConfig

DEFAULT_NAME = "{filename}"
_ANY_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def name_glob(pattern: str) -> str:
    """The glob matching every name ``pattern`` can produce: each placeholder becomes ``*``."""
    return "*".join(glob.escape(part) for part in _ANY_PLACEHOLDER.split(pattern))


class SaveAction(Action):
    """Copy file results (and optionally text results) into a folder with a name pattern."""

    type_name: ClassVar[str] = "save"
    title: ClassVar[str] = "Save results to a folder"
    description: ClassVar[str] = (
        "Copy result files into a folder under your root folder, named by a pattern such as "
        "{stem}_{date}{suffix}; optionally delete saved files older than some days."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text"})
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["folder"],
        "properties": {
            "folder": {
                "x-path": "folder",
                "type": "string",
                "minLength": 1,
                "title": "Folder",
                "description": "Relative to your root folder; created when missing. "
                "Placeholders are filled, e.g. reports/{customer}.",
            },
            "name": {
                "x-path": "glob",
                "type": "string",
                "minLength": 1,
                "title": "File name pattern",
                "description": "Placeholders: {filename}, {stem}, {suffix}, {date} (YYYY-MM-DD), "
                "{time} (HHMMSS, the run's start) and every run placeholder.",
                "default": DEFAULT_NAME,
            },
            "overwrite": {
                "type": "boolean",
                "title": "Overwrite existing files",
                "description": "Off: add -1, -2, ... to the name instead.",
                "default": True,
            },
            "delete_older_than_days": {
                "type": "number",
                "exclusiveMinimum": 0,
                "title": "Delete saved files older than (days)",
                "description": "Files in the folder matching the name pattern (each placeholder "
                "matching anything) and older than this are deleted. Empty: keep all.",
            },
            "save_text": {
                "type": "boolean",
                "title": "Save text results",
                "description": "Save each text result as <job>.txt.",
                "default": False,
            },
        },
    }

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        folder = ctx.resolve_path(self.config["folder"], field_name="folder")
        folder.mkdir(parents=True, exist_ok=True)
        saved: set[Path] = set()
        for result in results:
            if result.flavor == "file" and result.value:
                source = ctx.output_dir / result.value
                if not source.is_file():
                    raise FileNotFoundError(
                        f"result file {result.value!r} is missing from {ctx.output_dir}"
                    )
                target = self._target(ctx, folder, source.name, saved)
                shutil.copyfile(source, target)
            elif result.flavor == "text" and self.config.get("save_text", False):
                target = self._target(ctx, folder, f"{result.job or 'result'}.txt", saved)
                target.write_text(result.value or "", encoding="utf-8")
            else:
                continue
            saved.add(target)
            ctx.log.info("saved %s", target.relative_to(ctx.owner_root.resolve()))
        days = self.config.get("delete_older_than_days")
        if days is not None:
            self._delete_old(ctx, folder, days, saved)

    def _target(self, ctx: RunContext, folder: Path, filename: str, saved: set[Path]) -> Path:
        """Where ``filename`` is saved: the filled name pattern, made unique if asked."""
        source = Path(filename)
        values = {
            "filename": filename,
            "stem": source.stem,
            "suffix": source.suffix,
            "date": ctx.started.strftime("%Y-%m-%d"),
            "time": ctx.started.strftime("%H%M%S"),
        }
        name: str = ctx.fill(self.config.get("name", DEFAULT_NAME), values)
        target = (folder / name).resolve()
        if folder not in target.parents or not ctx.files.allows(target):
            raise InvalidConfig(
                f"name {name[:120]!r} (filled in) leads outside the folder {folder}", field="name"
            )
        if not self.config.get("overwrite", True):
            stem, suffix = target.stem, target.suffix
            number = 0
            while target.exists():
                number += 1
                target = target.with_name(f"{stem}-{number}{suffix}")
        elif target in saved:
            ctx.log.warning("%s is saved twice in this run: the last result wins", name)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _delete_old(self, ctx: RunContext, folder: Path, days: float, keep: set[Path]) -> None:
        cutoff = time.time() - days * 86400
        pattern = name_glob(self.config.get("name", DEFAULT_NAME))
        # Only files really in the folder: a symlinked subfolder must not lead the deletion
        # anywhere else.
        inside = [path for path in folder.glob(pattern) if folder in path.resolve().parents]
        for path in sorted(ctx.files.keep(inside)):
            if path.is_file() and path not in keep and path.stat().st_mtime < cutoff:
                path.unlink()
                ctx.log.info(
                    "deleted %s (older than %g days)",
                    path.relative_to(ctx.owner_root.resolve()),
                    days,
                )
