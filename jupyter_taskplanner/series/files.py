"""Series read from files under the owner's root: ``csv``, ``json`` and ``directory``."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, TextIO

from ..components.base import RunContext, Series
from ..errors import InvalidConfig

JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")


def existing_file(ctx: RunContext, path: str, field: str) -> Path:
    """The absolute path of a file under the owner's root; errors name ``field``."""
    resolved = ctx.resolve_path(path, field_name=field)
    if not resolved.is_file():
        what = "is a folder, not a file" if resolved.is_dir() else "does not exist"
        raise InvalidConfig(
            f"{field}: {path!r} {what} in your root folder {ctx.owner_root.resolve()}",
            field=field,
        )
    return resolved


def json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _path_schema(title: str, description: str, kind: str = "file") -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "x-path": kind,
        "title": title,
        "description": description,
    }


class CsvSeries(Series):
    """One set per row of a CSV file; the header row gives the keys."""

    type_name: ClassVar[str] = "csv"
    title: ClassVar[str] = "CSV file"
    description: ClassVar[str] = "One set per row of a CSV file; the header row names the keys."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": _path_schema("File", "A .csv file, relative to your root folder."),
            "delimiter": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1,
                "title": "Delimiter",
                "default": ",",
            },
            "encoding": {
                "type": "string",
                "title": "Encoding",
                "description": "e.g. utf-8, cp1252, latin-1.",
                "default": "utf-8",
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        encoding = config.get("encoding", "utf-8")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InvalidConfig(
                f"encoding: {encoding!r} is not a known text encoding", field="encoding"
            ) from None

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        name = self.config["path"]
        path = existing_file(ctx, name, "path")
        encoding = self.config.get("encoding", "utf-8")
        # Spreadsheets often save UTF-8 with a byte order mark; it must not stick to a key.
        if codecs.lookup(encoding).name == "utf-8":
            encoding = "utf-8-sig"
        try:
            # Opened without following a link put in the way since the check.
            with open(ctx.files.open(path), newline="", encoding=encoding) as handle:
                reader = csv.reader(handle, delimiter=self.config.get("delimiter", ","))
                keys = [key.strip() for key in next(reader, [])]
                duplicates = sorted({key for key in keys if keys.count(key) > 1})
                if duplicates:
                    raise InvalidConfig(
                        f"path: the header of {name!r} repeats the column(s) {duplicates}",
                        field="path",
                    )
                for row in reader:
                    if not row:
                        continue
                    if len(row) > len(keys):
                        raise InvalidConfig(
                            f"path: line {reader.line_num} of {name!r} has {len(row)} fields "
                            f"but the header has {len(keys)}",
                            field="path",
                        )
                    yield {key: row[i] if i < len(row) else "" for i, key in enumerate(keys)}
        except UnicodeDecodeError as exc:
            raise InvalidConfig(
                f"encoding: {name!r} is not {self.config.get('encoding', 'utf-8')} text "
                f"({exc.reason}); set the file's encoding, e.g. cp1252",
                field="encoding",
            ) from None
        except csv.Error as exc:
            raise InvalidConfig(f"path: {name!r} is not valid CSV: {exc}", field="path") from None


class JsonSeries(Series):
    """One set per object of a JSON list, or per line of a JSON Lines file."""

    type_name: ClassVar[str] = "json"
    title: ClassVar[str] = "JSON file"
    description: ClassVar[str] = (
        "A .json file holding a list of objects, or a .jsonl file with one object per line."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": _path_schema(
                "File", "A .json or .jsonl (JSON Lines) file, relative to your root folder."
            ),
        },
    }

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        name = self.config["path"]
        path = existing_file(ctx, name, "path")
        # Opened without following a link put in the way since the check.
        with open(ctx.files.open(path), encoding="utf-8") as handle:
            if path.suffix.lower() in JSON_LINES_SUFFIXES:
                yield from self._lines(handle, name)
                return
            try:
                data = json.loads(handle.read())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InvalidConfig(
                    f"path: {name!r} is not valid JSON: {exc}", field="path"
                ) from None
        if not isinstance(data, list):
            raise InvalidConfig(
                f"path: {name!r} must hold a list of objects, not {json_type(data)}", field="path"
            )
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvalidConfig(
                    f"path: item {index} of {name!r} is {json_type(item)}, not an object",
                    field="path",
                )
            yield item

    @staticmethod
    def _lines(handle: TextIO, name: str) -> Iterator[dict[str, Any]]:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidConfig(
                    f"path: line {number} of {name!r} is not valid JSON: {exc.msg}",
                    field="path",
                ) from None
            if not isinstance(item, dict):
                raise InvalidConfig(
                    f"path: line {number} of {name!r} is {json_type(item)}, not an object",
                    field="path",
                )
            yield item


class DirectorySeries(Series):
    """One set per file of a folder matching a glob, sorted by path."""

    type_name: ClassVar[str] = "directory"
    title: ClassVar[str] = "Files in a folder"
    description: ClassVar[str] = (
        "One set per matching file, with the keys path (relative to your root folder), "
        "filename, stem and suffix."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["path"],
        "properties": {
            "path": _path_schema(
                "Folder", "Relative to your root folder; '.' is the root.", "folder"
            ),
            "pattern": {
                "x-path": "glob",
                "type": "string",
                "minLength": 1,
                "title": "File pattern",
                "description": "A glob such as *.csv or 2024-*/*.xlsx.",
                "default": "*",
            },
            "recursive": {
                "type": "boolean",
                "title": "Include subfolders",
                "default": False,
            },
            "include_hidden": {
                "type": "boolean",
                "title": "Include hidden files",
                "description": "Files and folders whose name starts with a dot, such as "
                ".ipynb_checkpoints.",
                "default": False,
            },
            "new_only": {
                "type": "boolean",
                "title": "Only new or changed files",
                "description": "Only the files that are new, or changed, since the last run "
                "that succeeded (the first run takes them all).",
                "default": False,
            },
        },
    }

    def sets(self, ctx: RunContext) -> Iterator[dict[str, Any]]:
        name = self.config["path"]
        folder = ctx.resolve_path(name, field_name="path")
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "does not exist"
            raise InvalidConfig(
                f"path: folder {name!r} {what} in your root folder {ctx.owner_root.resolve()}",
                field="path",
            )
        pattern = self.config.get("pattern", "*")
        found = (
            folder.rglob(pattern) if self.config.get("recursive", False) else folder.glob(pattern)
        )
        hidden_ok = self.config.get("include_hidden", False)
        root = ctx.owner_root.resolve()
        files = sorted(
            path
            for path in ctx.files.keep(found)
            if path.is_file()
            and (
                hidden_ok
                or not any(part.startswith(".") for part in path.relative_to(folder).parts)
            )
        )
        new_only = self.config.get("new_only", False)
        # The files present at the last successful run, with their modification times: the
        # component's state (kept only when the run succeeds, so a failed run's files come
        # again).
        seen: dict[str, int] = ctx.state.get("files", {}) if new_only else {}
        present: dict[str, int] = {}
        for path in files:
            relative = path.relative_to(root).as_posix()
            present[relative] = path.stat().st_mtime_ns
            if new_only and seen.get(relative) == present[relative]:
                continue
            yield {
                "path": relative,
                "filename": path.name,
                "stem": path.stem,
                "suffix": path.suffix,
            }
        if new_only:
            ctx.state["files"] = present
