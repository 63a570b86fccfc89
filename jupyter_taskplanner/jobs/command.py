"""The ``command`` and ``script`` jobs: run a program (or a Python file) as a child process.

The child inherits the worker's stdout/stderr (the job's log) and process group, so a
cancel or timeout that kills the group ends it too.  No shell is involved: ``program`` is
looked up on PATH and the arguments are passed as they are.
"""

from __future__ import annotations

import codecs
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

from ..components.base import Job, Result, RunContext
from ..errors import InvalidConfig
from . import JobFailed, file_result, setting

_SHARED_PROPERTIES: dict[str, Any] = {
    "args": {
        "type": "array",
        "items": {"type": "string"},
        "title": "Arguments",
        "description": "Passed as they are (no shell); {placeholders} are filled.",
        "default": [],
    },
    "env": {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "title": "Environment",
        "description": "Variables set on top of the worker's environment; {placeholders} filled.",
        "default": {},
    },
    "output_glob": {
        "x-path": "glob",
        "type": "string",
        "title": "Result files",
        "description": "Files matching this pattern (relative to the working folder, e.g. "
        "out/*.csv or **/*.png) after the run become file results.",
        "default": "",
    },
    "stdout_result": {
        "type": "boolean",
        "title": "Standard output as result",
        "description": "Keep what the program prints as a text result (it is logged too).",
        "default": False,
    },
}


class _ProgramJob(Job):
    """What ``command`` and ``script`` share: run a child, check its exit code, keep results."""

    flavors = frozenset({"file", "text", "none"})
    runs_code = True

    def command_line(self, ctx: RunContext, env: dict[str, str]) -> tuple[list[str], Path]:
        """The argv to run and its working directory."""
        raise NotImplementedError

    def run(self, ctx: RunContext) -> list[Result]:
        env = {**os.environ, **ctx.fill(setting(self, "env"))}
        argv, cwd = self.command_line(ctx, env)
        if not cwd.is_dir():
            raise JobFailed(f"working folder {cwd} (cwd) does not exist")
        capture = setting(self, "stdout_result")
        with subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if capture else None,
        ) as process:
            output = _tee(process.stdout) if process.stdout is not None else ""
            code = process.wait()
        if code != 0:
            raise JobFailed(f"{Path(argv[0]).name} {_describe_exit(code)}")
        results = self._collect(ctx, cwd)
        if capture:
            results.append(Result("text", value=output, job=self.name))
        return results or [Result("none", job=self.name)]

    def _collect(self, ctx: RunContext, cwd: Path) -> list[Result]:
        """Copy the files matching ``output_glob`` into the output folder, keeping sub-folders."""
        pattern = ctx.fill(setting(self, "output_glob"))
        if not pattern:
            return []
        results = []
        for match in sorted(cwd.glob(pattern)):
            relative = match.relative_to(cwd).as_posix()
            if not match.is_file():
                continue
            # A symlink in the owner's folder must not smuggle other files into the results.
            if not ctx.files.allows(match.resolve()):
                print(f"{relative} not kept: it leads outside your root folder", file=sys.stderr)
                continue
            results.append(file_result(ctx, match, relative, self.name, {"source": relative}))
        return results


def _tee(stream: Any) -> str:
    """Pass a child's stdout through to ours (the log) while keeping it as text."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    parts = []
    for chunk in iter(lambda: stream.read1(65536), b""):
        text = decoder.decode(chunk)
        sys.stdout.write(text)
        sys.stdout.flush()
        parts.append(text)
    parts.append(decoder.decode(b"", final=True))
    return "".join(parts)


def _describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by signal {signal.Signals(-code).name}"
    return f"failed with exit code {code}"


class CommandJob(_ProgramJob):
    """Runs a program found on PATH with arguments, environment and working folder."""

    type_name = "command"
    title = "Command"
    description = (
        "Run a program (looked up on PATH, no shell) with arguments. A non-zero exit code "
        "fails the job; matching files and, optionally, standard output become results."
    )
    # Running any program is shell access, a privilege of its own.
    permission = "taskplanner:shell"
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["program"],
        "additionalProperties": False,
        "properties": {
            "program": {
                "type": "string",
                "minLength": 1,
                "title": "Program",
                "description": "A name looked up on PATH, or a path (relative to the working "
                "folder).",
                "examples": ["convert", "./bin/export.sh"],
            },
            **_SHARED_PROPERTIES,
            "cwd": {
                "x-path": "folder",
                "type": "string",
                "title": "Working folder",
                "description": "Under your root (default: the root); {placeholders} filled.",
                "default": ".",
            },
        },
    }

    def command_line(self, ctx: RunContext, env: dict[str, str]) -> tuple[list[str], Path]:
        cwd = ctx.resolve_path(setting(self, "cwd"), field_name="cwd")
        program = self.config["program"]
        # A program given as a path counts from the working folder, like in a shell.
        wanted = program if "/" not in program else str(cwd / program)
        found = shutil.which(wanted, path=env.get("PATH", os.defpath))
        if found is None:
            raise JobFailed(
                f"program {program!r} is not an executable file"
                + (f" on PATH ({env.get('PATH', os.defpath)})" if "/" not in program else "")
            )
        return [found, *ctx.fill(setting(self, "args"))], cwd


class ScriptJob(_ProgramJob):
    """Runs a Python file of the owner with the worker's Python interpreter."""

    type_name = "script"
    title = "Python script"
    description = (
        "Run a .py file from your root folder with arguments. A non-zero exit code fails "
        "the job; matching files and, optionally, standard output become results."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "required": ["path"],
        "additionalProperties": False,
        "properties": {
            "path": {
                "x-path": "file",
                "type": "string",
                "title": "Script",
                "description": "A .py file under your root; {placeholders} filled.",
                "examples": ["scripts/export.py"],
            },
            **_SHARED_PROPERTIES,
            "cwd": {
                "x-path": "folder",
                "type": "string",
                "title": "Working folder",
                "description": "Under your root (default: the script's folder).",
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if not config["path"].endswith(".py"):
            raise InvalidConfig(f"{config['path']!r} is not a .py file", field="path")

    def command_line(self, ctx: RunContext, env: dict[str, str]) -> tuple[list[str], Path]:
        script = ctx.resolve_path(self.config["path"], field_name="path")
        if not script.is_file():
            raise JobFailed(f"script {script} (path) does not exist")
        cwd = (
            ctx.resolve_path(self.config["cwd"], field_name="cwd")
            if "cwd" in self.config
            else script.parent
        )
        return [sys.executable, str(script), *ctx.fill(setting(self, "args"))], cwd
