"""The ``save`` action: copy results into a folder under the owner's root or to remote storage.

A remote destination is an fsspec URL (``ftp://``, ``sftp://``, ``s3://``, ...).  As with
fsspec everywhere (pandas, dask), the URL says where and ``storage_options`` how to log in:
the URL is shown to the owner and may not hold a password, the options are a secret the API
never returns, and no message repeats them.  Protocols that reach this server's own files
(``file://``, a cache or archive over another file system, the process's memory) are refused:
they would bypass the containment of ``folder``.  fsspec is imported only when a remote save
is checked or runs.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import inspect
import os
import posixpath
import re
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from ..components.base import _PLACEHOLDER, Action, Flavor, Result, RunContext
from ..errors import InvalidConfig

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem  # type: ignore[import-untyped]

DEFAULT_NAME = "{filename}"
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/]*)(.*)", re.DOTALL)
# Constructor arguments that put another file system (maybe this server's) under this one.
_WRAPPING = frozenset({"fs", "fo", "target_protocol", "target_options"})
_REFUSED_OPTIONS = frozenset({"protocol", *_WRAPPING})
# paramiko would log in with this server's own SSH keys, agent or Kerberos ticket unless told
# otherwise, so sftp takes a password and these harmless options only.
_SSH_PROTOCOLS = frozenset({"sftp", "ssh"})
_SSH_OPTIONS = frozenset(
    {"username", "password", "port", "timeout", "banner_timeout", "auth_timeout", "temppath"}
)
_SSH_FORCED = {"look_for_keys": False, "allow_agent": False}


class SaveError(RuntimeError):
    """Remote storage refused a connection, a transfer or a deletion (secrets scrubbed)."""


def name_glob(pattern: str) -> str:
    """The glob matching exactly the names ``pattern`` can produce.

    Each placeholder (in the syntax ``fill_placeholders`` fills) becomes ``*``; the literal
    text is escaped, so a ``[`` or ``*`` in it matches only itself.
    """
    pieces, position = [], 0
    for match in _PLACEHOLDER.finditer(pattern):
        pieces.append(glob.escape(pattern[position : match.start()]))
        position = match.end()
    pieces.append(glob.escape(pattern[position:]))
    # Escaping turns a literal * into [*], so a run of stars comes only from adjacent
    # placeholders: one * matches what they make together ('**' would mean any folders).
    return re.sub(r"\*{2,}", "*", "*".join(pieces))


class SaveAction(Action):
    """Copy file results (and optionally text results) into a folder or remote storage."""

    type_name: ClassVar[str] = "save"
    title: ClassVar[str] = "Save results to a folder"
    description: ClassVar[str] = (
        "Copy result files into a folder under your root folder, or to remote storage (FTP, "
        "SFTP, S3, ... by an fsspec URL), named by a pattern such as {stem}_{date}{suffix}; "
        "optionally delete saved files older than some days."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text"})
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "folder": {
                "x-path": "folder",
                "type": "string",
                "minLength": 1,
                "title": "Folder",
                "description": "Relative to your root folder; created when missing. "
                "Placeholders are filled, e.g. reports/{customer}. Give this or url.",
            },
            "url": {
                "x-path": "url",
                "type": "string",
                "minLength": 1,
                "title": "Remote folder",
                "description": "Instead of folder: an fsspec URL such as "
                "ftp://reports@ftp.example.org/archive/{customer}, sftp://host/path or "
                "s3://bucket/path; created when missing. Placeholders are filled in the path. "
                "Shown to you, so no password here: put it in storage_options.",
            },
            "storage_options": {
                "type": "object",
                "writeOnly": True,
                "title": "Connection options (secret)",
                "description": 'With url: the file system\'s options, e.g. {"password": '
                '"..."} for ftp and sftp, {"key": "...", "secret": "..."} for s3. '
                "The API never returns them.",
            },
            "name": {
                "x-path": "glob",
                "type": "string",
                "minLength": 1,
                "title": "File name pattern",
                "description": "Placeholders: {filename}, {stem}, {suffix}, {date} (YYYY-MM-DD), "
                "{time} (HHMMSS, the run's start) and every run placeholder, e.g. "
                "{stem}_{date}{suffix}.",
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
                "maximum": 36_500,
                "title": "Delete saved files older than (days)",
                "description": "Files in the folder matching the name pattern (each placeholder "
                "matching any text within a folder level) and older than this are deleted, "
                "except those this run saved. Empty: keep all.",
            },
            "save_text": {
                "type": "boolean",
                "title": "Save text results",
                "description": "Save each text result as <job>.txt.",
                "default": False,
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if ("folder" in config) == ("url" in config):
            if "folder" in config:
                raise InvalidConfig("url: give either folder or url, not both", field="url")
            raise InvalidConfig(
                "give folder (a folder under your root folder) or url (remote storage)"
            )
        if "url" in config:
            check_url(config["url"], config.get("storage_options", {}), template=True)
        elif "storage_options" in config:
            raise InvalidConfig(
                "storage_options: only a remote url takes connection options",
                field="storage_options",
            )

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        if "url" in self.config:
            with _Remote.connect(ctx, self.config) as remote:
                self._save(ctx, remote, results)
        else:
            self._save(ctx, _Local(ctx, self.config["folder"]), results)

    def _save(self, ctx: RunContext, destination: _Local | _Remote, results: list[Result]) -> None:
        saved: set[str] = set()
        for result in results:
            if ctx.cancelled.is_set():
                raise SaveError("cancelled before every result was saved")
            if result.flavor == "file" and result.value:
                source = ctx.output_dir / result.value
                if not source.is_file():
                    raise FileNotFoundError(
                        f"result file {result.value!r} is missing from {ctx.output_dir}"
                    )
                target = self._target(ctx, destination, source.name, saved)
                destination.write(target, source)
            elif result.flavor == "text" and self.config.get("save_text", False):
                target = self._target(ctx, destination, f"{result.job or 'result'}.txt", saved)
                destination.write(target, (result.value or "").encode("utf-8"))
            else:
                continue
            saved.add(target)
            ctx.log.info("saved %s", destination.shown(target))
        days = self.config.get("delete_older_than_days")
        if days is not None:
            self._delete_old(ctx, destination, days, saved)

    def _target(
        self, ctx: RunContext, destination: _Local | _Remote, filename: str, saved: set[str]
    ) -> str:
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
        target = destination.place(name)
        if not self.config.get("overwrite", True):
            path = PurePosixPath(target)
            number = 0
            while destination.exists(target):
                number += 1
                target = str(path.with_name(f"{path.stem}-{number}{path.suffix}"))
        elif target in saved:
            ctx.log.warning("%s is saved twice in this run: the last result wins", name)
        return target

    def _delete_old(
        self, ctx: RunContext, destination: _Local | _Remote, days: float, keep: set[str]
    ) -> None:
        cutoff = time.time() - days * 86400
        for target, modified in destination.matching(
            name_glob(self.config.get("name", DEFAULT_NAME))
        ):
            if target not in keep and modified < cutoff:
                destination.delete(target)
                ctx.log.info("deleted %s (older than %g days)", destination.shown(target), days)


class _Local:
    """A folder under the owner's root: targets are resolved absolute paths."""

    def __init__(self, ctx: RunContext, folder: str) -> None:
        self.ctx = ctx
        self.folder = ctx.resolve_path(folder, field_name="folder")
        # Made, written and deleted folder by folder without following a link: one put in
        # the way since the check would lead the server's writes elsewhere.
        ctx.files.make_folders(self.folder)

    def place(self, name: str) -> str:
        target = (self.folder / name).resolve()
        if self.folder not in target.parents or not self.ctx.files.allows(target):
            raise InvalidConfig(
                f"name {name[:120]!r} (filled in) leads outside the folder {self.folder}",
                field="name",
            )
        return str(target)

    def exists(self, target: str) -> bool:
        return Path(target).exists()

    def write(self, target: str, content: Path | bytes) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        with os.fdopen(self.ctx.files.open(Path(target), flags, parents=True), "wb") as out:
            if isinstance(content, Path):
                with content.open("rb") as source:
                    shutil.copyfileobj(source, out)
            else:
                out.write(content)

    def shown(self, target: str) -> str:
        return str(Path(target).relative_to(self.ctx.owner_root.resolve()))

    def matching(self, pattern: str) -> list[tuple[str, float]]:
        """The files in the folder matching the glob, each with its modification time."""
        # Only files really in the folder: a symlinked subfolder must not lead the deletion
        # anywhere else.
        inside = [
            path for path in self.folder.glob(pattern) if self.folder in path.resolve().parents
        ]
        return [
            (str(path), path.stat().st_mtime)
            for path in sorted(self.ctx.files.keep(inside))
            if path.is_file()
        ]

    def delete(self, target: str) -> None:
        self.ctx.files.unlink(Path(target))


class _Remote:
    """A folder on remote storage reached through fsspec: targets are its paths."""

    def __init__(self, fs: AbstractFileSystem, root: str, url: str) -> None:
        self.fs = fs
        self.root = root
        self.url = url

    @classmethod
    @contextlib.contextmanager
    def connect(cls, ctx: RunContext, config: dict[str, Any]) -> Iterator[_Remote]:
        """The remote folder of a config's filled url, created when missing.

        Every failure inside the block becomes a ``SaveError`` without the secrets.
        """
        from fsspec.core import url_to_fs  # type: ignore[import-untyped]

        options = config.get("storage_options", {})
        url = ctx.fill(config["url"]).rstrip("/")
        protocol = check_url(url, options, template=False)
        # Schemes are case-insensitive; fsspec knows its protocols in lower case.
        url = protocol + url[len(protocol) :]
        remote = None
        secrets = _secret_texts(options)
        try:
            fs, root = url_to_fs(url, **_connect_options(protocol, options))
            refusal = _refusal(type(fs))
            if refusal:
                raise InvalidConfig(f"url: {protocol}:// {refusal}", field="url")
            remote = cls(fs, root, url)
            fs.makedirs(root, exist_ok=True)
            yield remote
        except (InvalidConfig, SaveError):
            raise
        except Exception as exc:
            # from None: the original exception (in the step log's traceback) may quote them.
            what = "connect to" if remote is None else "save to"
            reason = scrubbed(str(exc) or type(exc).__name__, secrets)
            raise SaveError(f"could not {what} {url}: {reason}") from None

    def place(self, name: str) -> str:
        parts = PurePosixPath(name).parts
        if name.startswith("/") or ".." in parts:
            raise InvalidConfig(
                f"name {name[:120]!r} (filled in) leads outside the folder {self.url}",
                field="name",
            )
        return posixpath.join(self.root, *parts)

    def exists(self, target: str) -> bool:
        return bool(self.fs.exists(target))

    def write(self, target: str, content: Path | bytes) -> None:
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        if isinstance(content, Path):
            self.fs.put_file(str(content), target)
        else:
            self.fs.pipe_file(target, content)

    def shown(self, target: str) -> str:
        return self.url + target[len(self.root.rstrip("/")) :]

    def matching(self, pattern: str) -> list[tuple[str, float]]:
        """The files in the folder matching the glob, level by level, with their times.

        A ``SaveError`` before anything is deleted when the storage does not tell a time.
        """
        self.fs.invalidate_cache()
        parts = [part for part in pattern.split("/") if part not in ("", ".")]
        folders, files = [self.root], []
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            below = []
            for folder in folders:
                try:
                    entries = self.fs.ls(folder, detail=True)
                except FileNotFoundError:
                    continue
                for info in entries:
                    name = posixpath.basename(str(info["name"]).rstrip("/"))
                    if not fnmatch.fnmatchcase(name, part):
                        continue
                    if last and info["type"] == "file":
                        files.append((str(info["name"]), self._modified(info)))
                    elif not last and info["type"] == "directory":
                        below.append(str(info["name"]))
            folders = below
        return sorted(files)

    def delete(self, target: str) -> None:
        self.fs.rm_file(target)

    def _modified(self, info: dict[str, Any]) -> float:
        """When a listed file last changed (seconds since the epoch)."""
        value = info.get("mtime") or info.get("LastModified") or info.get("last_modified")
        if value is None and isinstance(info.get("modify"), str):
            # FTP's MLSD fact (RFC 3659) is YYYYMMDDHHMMSS[.sss] in UTC; the LIST fallback's
            # date ("May 06 07:08", no year) tells no age.
            with contextlib.suppress(ValueError):
                stamp = datetime.strptime(info["modify"][:14], "%Y%m%d%H%M%S")
                return stamp.replace(tzinfo=UTC).timestamp()
        elif value is None:
            with contextlib.suppress(NotImplementedError, RuntimeError, OSError, KeyError):
                value = self.fs.modified(info["name"])
        if isinstance(value, datetime):
            # A naive time is local, as datetime.fromtimestamp gives it.
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        raise SaveError(
            f"nothing deleted: {self.url.split('://', 1)[0]}:// does not tell when "
            f"{self.shown(str(info['name']))} was changed, so its age is unknown"
        )


def check_url(url: str, options: dict[str, Any], *, template: bool) -> str:
    """The protocol of a remote destination, refusing what could reach this server's files.

    ``template``: placeholders are not filled yet (the task is being saved).  Raises
    ``InvalidConfig`` at ``url`` or ``storage_options``, never quoting a password.
    """
    if "::" in url:
        raise InvalidConfig(
            "url: chained URLs (such as simplecache::...) are not supported", field="url"
        )
    match = _URL.fullmatch(url)
    if not match:
        raise InvalidConfig(
            "url: must be a URL such as ftp://host/folder; a folder under your root folder "
            "is given in folder",
            field="url",
        )
    protocol, host, path = match[1].lower(), match[2], match[3]
    if "{" in host:
        raise InvalidConfig(
            "url: placeholders are filled in the path only, not in the host",
            field="url",
        )
    if ":" in host.rpartition("@")[0]:
        raise InvalidConfig(
            "url: holds a password, which would be shown with the task; put it in "
            "storage_options (a secret) instead",
            field="url",
        )
    if ".." in PurePosixPath(_PLACEHOLDER.sub("x", path) if template else path).parts:
        raise InvalidConfig("url: the path may not climb with ..", field="url")
    refused = sorted(_REFUSED_OPTIONS & set(options))
    if protocol in _SSH_PROTOCOLS:
        refused += sorted(set(options) - _SSH_OPTIONS - set(refused))
    if refused:
        raise InvalidConfig(
            f"storage_options: {', '.join(refused)} may not be given for {protocol}://: "
            "they could reach this server's own files, keys or credentials",
            field="storage_options",
        )
    refusal = _refusal(_filesystem_class(protocol))
    if refusal:
        raise InvalidConfig(f"url: {protocol}:// {refusal}", field="url")
    return protocol


def _filesystem_class(protocol: str) -> type[AbstractFileSystem]:
    import fsspec

    try:
        cls: type[AbstractFileSystem] = fsspec.get_filesystem_class(protocol)
    except ValueError:
        raise InvalidConfig(
            f"url: {protocol}:// is not a protocol fsspec knows", field="url"
        ) from None
    except ImportError as exc:
        raise InvalidConfig(
            f"url: {protocol}:// needs a package this server lacks ({exc})", field="url"
        ) from None
    return cls


def _refusal(cls: type[AbstractFileSystem]) -> str | None:
    """Why a file system class may not be a destination, or None if it may."""
    from fsspec.generic import GenericFileSystem  # type: ignore[import-untyped]
    from fsspec.implementations.cached import (  # type: ignore[import-untyped]
        CachingFileSystem,
    )
    from fsspec.implementations.jupyter import (  # type: ignore[import-untyped]
        JupyterFileSystem,
    )
    from fsspec.implementations.local import LocalFileSystem  # type: ignore[import-untyped]
    from fsspec.implementations.memory import MemoryFileSystem  # type: ignore[import-untyped]

    if issubclass(cls, LocalFileSystem):
        return "is this server's own file system: use folder"
    if issubclass(cls, MemoryFileSystem):
        return "keeps files in this server's memory, shared by all its users and lost on restart"
    if issubclass(cls, JupyterFileSystem):
        return "reaches a Jupyter server's files, maybe this one's: use folder"
    wraps = _WRAPPING & set(inspect.signature(cls.__init__).parameters)
    if wraps or issubclass(cls, CachingFileSystem | GenericFileSystem):
        return "works over another file system (a cache, an archive), which may be this server's"
    return None


def _connect_options(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    # A fresh instance per run: fsspec's instance cache would share one connection between
    # the threads of concurrent actions and keep the password alive after the run.
    forced = _SSH_FORCED if protocol in _SSH_PROTOCOLS else {}
    return {**options, **forced, "skip_instance_cache": True}


def _secret_texts(value: Any) -> list[str]:
    """Every text inside the storage options, as a message could quote it."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _secret_texts(item)]
    if isinstance(value, list):
        return [text for item in value for text in _secret_texts(item)]
    if isinstance(value, str) and value:
        return [value, quote(value, safe="")]
    return []


def scrubbed(text: str, secrets: list[str]) -> str:
    """``text`` with each secret replaced by ``****``, the longest first."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        text = text.replace(secret, "****")
    return text
