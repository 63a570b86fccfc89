"""The ``wordcount`` job: count lines, words and characters of text files under the owner's root."""

from __future__ import annotations

import codecs
import csv
import posixpath
from pathlib import Path
from typing import Any, ClassVar

from jupyter_taskplanner.components import Job, Result, RunContext
from jupyter_taskplanner.errors import InvalidConfig

from . import with_defaults

CSV_NAME = "wordcount.csv"
CSV_HEADER = ("file", "lines", "words", "characters")


class WordCountFailed(RuntimeError):
    """The count could not be made, for a reason the message states completely."""


class WordCountJob(Job):
    """Counts lines, words and characters of the files a glob pattern matches, like ``wc``."""

    type_name: ClassVar[str] = "wordcount"
    title: ClassVar[str] = "Count words"
    description: ClassVar[str] = (
        "Count lines, words and characters of the text files matching a pattern in a folder "
        "under your root folder. Gives a wc-style table as text and the counts per file as "
        "CSV; the result is invalid when no file matches."
    )
    flavors = frozenset({"text", "file"})
    example_config: ClassVar[dict[str, Any] | None] = {"folder": "notes", "pattern": "**/*.md"}
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "folder": {
                "x-path": "folder",
                "type": "string",
                "minLength": 1,
                "title": "Folder",
                "description": "Where to look, relative to your root folder. "
                "Placeholders are filled, e.g. notes/{project}.",
                "default": ".",
            },
            "pattern": {
                "x-path": "glob",
                "type": "string",
                "minLength": 1,
                "title": "File pattern",
                "description": "A glob relative to the folder; ** matches any number of "
                "subfolders, e.g. **/*.md.",
                "default": "*.txt",
                "examples": ["*.txt", "**/*.md"],
            },
            "include_hidden": {
                "type": "boolean",
                "title": "Include hidden files",
                "description": "Also count files in or under names starting with a dot "
                "(.git, .ipynb_checkpoints).",
                "default": False,
            },
            "encoding": {
                "type": "string",
                "minLength": 1,
                "title": "Encoding",
                "description": "The text encoding of the files, a Python codec name.",
                "default": "utf-8",
                "examples": ["utf-8", "latin-1", "cp1252"],
            },
            "errors": {
                "type": "string",
                "enum": ["replace", "ignore", "strict"],
                "title": "Undecodable bytes",
                "description": "replace: count them as one character each; ignore: skip them; "
                "strict: fail the job.",
                "default": "replace",
            },
            "max_files": {
                "type": "integer",
                "minimum": 1,
                "maximum": 1_000_000,
                "title": "Most files",
                "description": "Fail instead of counting when more files match, so a too wide "
                "pattern does not read your whole root folder.",
                "default": 1000,
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if "encoding" in config:
            try:
                codecs.lookup(config["encoding"])
            except LookupError:
                raise InvalidConfig(
                    f"{config['encoding']!r} is not a known text encoding (try utf-8)",
                    field="encoding",
                ) from None

    def inputs(self, ctx: RunContext) -> list[Path]:
        """The files the pattern matches, so they travel with the job to a worker that does
        not share the server's files (by default only the folder would, empty)."""
        config = with_defaults(self.config_schema, self.config)
        folder = ctx.resolve_path(config["folder"], field_name="folder")
        return [path for _, path in self._files(ctx, folder, config)] if folder.is_dir() else []

    def run(self, ctx: RunContext) -> list[Result]:
        config = with_defaults(self.config_schema, self.config)
        # Placeholders are filled by now, so a series value may have made the pattern escape;
        # the server checks before each step too, this keeps the job safe wherever it runs.
        self.check_paths(config, ctx.files, template=False)
        folder = ctx.resolve_path(config["folder"], field_name="folder")
        if not folder.is_dir():
            raise WordCountFailed(f"folder {config['folder']!r} is not a folder under your root")
        files = self._files(ctx, folder, config)
        rows: list[tuple[str, int, int, int]] = []
        for done, (name, path) in enumerate(files):
            # Checked between files: a cancelled job stops before reading the next one.
            if ctx.cancelled.is_set():
                raise WordCountFailed(f"cancelled after {done} of {len(files)} files")
            ctx.report_progress(done, len(files), f"counting {name}")
            rows.append((name, *self._count(name, ctx.files.open(path), config)))
        ctx.report_progress(len(files), len(files), f"counted {len(files)} files")
        totals = {
            "files": len(rows),
            "lines": sum(row[1] for row in rows),
            "words": sum(row[2] for row in rows),
            "characters": sum(row[3] for row in rows),
        }
        with open(ctx.output_dir / CSV_NAME, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(CSV_HEADER)
            writer.writerows(rows)
        # Valid only when something was counted, so a "none_valid" action can report that.
        valid = bool(rows)
        return [
            Result("text", _table(rows), valid=valid, job=self.name, metadata=totals),
            Result("file", CSV_NAME, valid=valid, job=self.name),
        ]

    def _files(
        self, ctx: RunContext, folder: Path, config: dict[str, Any]
    ) -> list[tuple[str, Path]]:
        """(name relative to the root, real path) of the matching files, sorted by name.

        Every file is checked to lie under the owner's root.
        """
        root = ctx.owner_root.resolve()
        files: list[tuple[str, Path]] = []
        for match in folder.glob(config["pattern"]):
            # A pattern such as a/../b/*.txt yields paths with .. in them; name them plainly.
            name = posixpath.normpath(match.relative_to(root).as_posix())
            relative = posixpath.normpath(match.relative_to(folder).as_posix())
            hidden = any(part.startswith(".") for part in relative.split("/"))
            if (hidden and not config["include_hidden"]) or not match.is_file():
                continue
            # A link inside the root may point anywhere; follow it before trusting it.
            target = match.resolve()
            if not ctx.files.allows(target):
                raise WordCountFailed(
                    f"{name} leads outside your root folder {root}; remove the link or narrow "
                    "the pattern"
                )
            files.append((name, target))
            if len(files) > config["max_files"]:
                raise WordCountFailed(
                    f"pattern {config['pattern']!r} matches more than max_files "
                    f"({config['max_files']}) files; narrow it or raise max_files"
                )
        return sorted(files)

    @staticmethod
    def _count(name: str, file: int, config: dict[str, Any]) -> tuple[int, int, int]:
        """Lines, words and characters of one file (a descriptor opened without following a
        link put in the way since the check, ``OwnerFiles.open``), read line by line."""
        lines = words = characters = 0
        # newline="" keeps \r\n as two characters, as they are in the file.
        with open(file, encoding=config["encoding"], errors=config["errors"], newline="") as text:
            try:
                for line in text:
                    lines += 1
                    words += len(line.split())
                    characters += len(line)
            except UnicodeDecodeError as exc:
                raise WordCountFailed(
                    f"{name} is not {config['encoding']} text ({exc.reason}); set the "
                    "encoding, or set errors to replace"
                ) from None
        return lines, words, characters


def _table(rows: list[tuple[str, int, int, int]]) -> str:
    """A wc-style table: lines, words, characters and the file name, then the total."""
    if not rows:
        return "no file matches"
    totals = (
        "total",
        sum(row[1] for row in rows),
        sum(row[2] for row in rows),
        sum(row[3] for row in rows),
    )
    width = max(len(str(value)) for row in [*rows, totals] for value in row[1:])
    return "\n".join(
        f"{lines:>{width}} {words:>{width}} {characters:>{width}} {name}"
        for name, lines, words, characters in [*rows, totals]
    )
