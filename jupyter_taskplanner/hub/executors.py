"""Executors that run every job as its owner, for the planner as a JupyterHub service.

- ``LocalUserExecutor`` (``local_user``): on the machine of the service (JupyterHub's
  LocalProcessSpawner model), each worker process runs under the owner's system account;
  the service runs as root.
- ``UserServerExecutor`` (``user_server``): each step runs inside the owner's own
  single-user server (container spawners, no system accounts here), started through the hub
  API when it is stopped; the planner extension there runs it (``forward.StepHandler``).

Both keep the executor contract of ``executors.base``, so the engine cannot tell them from
the local executor.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pwd
import stat
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from traitlets import Dict, Float, Int, Unicode, default

from ..executors import Executor, LocalExecutor, Progress, StepOutcome, StepRequest
from ..executors.local import _leftovers
from ..logs import CappedLog
from .forward import STEPS


class OwnerUnknown(RuntimeError):
    """The owner of a step has no account where it would run."""


class LocalUserExecutor(LocalExecutor):
    """Runs each job in a worker process under its owner's system account.

    The service runs as root.  A job gets the owner's uid, primary group (no other groups),
    home as ``HOME``, a clean environment and umask ``umask``; its step folder is made the
    owner's to write (sticky, so the log and request the service wrote there stay the
    service's) and the folders above it only traversable by the owner.  The database is
    root's alone and other owners' run folders are closed to them, so a job reads neither
    (nor other users' homes, which their own modes protect).
    """

    runs_as_owner: ClassVar[bool] = True

    python = Unicode(
        config=True,
        help="""The Python interpreter that runs jobs, with jupyter-taskplanner installed;
        every owner must be able to read and execute it and its packages (a virtual
        environment under /root is not: make one from the system's Python in /opt or
        /srv). Default: the service's own interpreter.""",
    )

    @default("python")
    def _default_python(self) -> str:
        return sys.executable

    path = Unicode(
        "/usr/local/bin:/usr/bin:/bin",
        config=True,
        help="PATH of a job, after the folder of `python`.",
    )

    environment = Dict(
        value_trait=Unicode(),
        config=True,
        help="""More environment variables of every job; '{owner}' and '{home}' in a value
        are replaced by the owner's name and home folder.""",
    )

    umask = Int(0o077, config=True, help="The umask of jobs (new files private to the owner).")

    min_uid = Int(
        1000,
        config=True,
        help="""The lowest uid a job may run as: an owner whose account has a lower one
        (root, system accounts) has their jobs refused.""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._secured = False

    def account(self, owner: str) -> pwd.struct_passwd:
        """The owner's system account; ``OwnerUnknown`` if there is none it may run as."""
        try:
            account = pwd.getpwnam(owner)
        except KeyError:
            raise OwnerUnknown(
                f"{owner!r} has no system account on this machine, where jobs run as their "
                "owner (local_user)"
            ) from None
        if account.pw_uid < self.min_uid:
            raise OwnerUnknown(
                f"jobs do not run as {owner!r} (uid {account.pw_uid}, below "
                f"LocalUserExecutor.min_uid {self.min_uid})"
            )
        return account

    async def run_step(self, request: StepRequest, progress: Progress) -> StepOutcome:
        try:
            account = self.account(str(request.context["owner"]))
        except OwnerUnknown as exc:
            return StepOutcome(error=str(exc))
        self._secure_planner_folders()
        self._open_path(request.folder.parent, account.pw_gid)
        outcome = await super().run_step(request, progress)
        if request.output.is_symlink() or not request.output.is_dir():
            # Its results would be read through a link the job made.
            return StepOutcome(error="the job replaced its output folder; its results are dropped")
        return outcome

    def worker_process(self, request_path: Path, cwd: Path) -> tuple[list[str], dict[str, Any]]:
        """The worker as the owner; the step folder becomes theirs to write now that the
        service wrote the request and opened the log there."""
        folder = request_path.parent
        owner = json.loads(request_path.read_text())["context"]["owner"]
        account = self.account(owner)
        uid, gid, home = account.pw_uid, account.pw_gid, account.pw_dir
        os.chown(folder, 0, gid)
        # Sticky: the owner may add files but not remove or replace the service's.
        os.chmod(folder, 0o1770)
        output = folder / "output"
        output.mkdir(exist_ok=True)
        os.chown(output, uid, gid)
        os.chmod(output, 0o700)
        self._open_snapshots(owner, gid)
        python_bin = str(Path(self.python).parent)
        values = {"owner": owner, "home": home}
        env = {
            "HOME": home,
            "USER": owner,
            "LOGNAME": owner,
            "SHELL": account.pw_shell or "/bin/sh",
            "PATH": f"{python_bin}{os.pathsep}{self.path}",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "PYTHONUNBUFFERED": "1",
            **{key: value.format(**values) for key, value in self.environment.items()},
        }
        command = [self.python, "-m", "jupyter_taskplanner.worker", str(request_path)]
        return command, {
            "cwd": str(cwd),
            "env": env,
            "user": uid,
            "group": gid,
            "extra_groups": [],
            "umask": self.umask,
        }

    def _settings(self) -> tuple[Path, Path]:
        """The planner's database and run folder (``TaskPlannerApp``, this one's parent)."""
        parent = self.parent
        return Path(parent.db_path).expanduser(), Path(parent.runs_dir).expanduser()  # type: ignore[union-attr]

    def _secure_planner_folders(self) -> None:
        """The database root's alone; the run and snapshot folders only traversable; every
        folder above them traversable (else no job reaches its step folder)."""
        if self._secured:
            return
        database, runs = self._settings()
        for folder in (runs.parent / "snapshots", runs, database.parent):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o711)
        for end in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(database.with_name(database.name + end), 0o600)
        for folder in runs.resolve().parents:
            if not folder.stat().st_mode & stat.S_IXOTH:
                raise OwnerUnknown(
                    f"jobs run as their owners cannot reach the run folder {runs}: {folder} is "
                    "not traversable by others (chmod o+x it, or set TaskPlannerApp.runs_dir "
                    "and db_path under a folder such as /srv/taskplanner)"
                )
        self._secured = True

    def _open_path(self, folder: Path, gid: int) -> None:
        """The run folders from the owner's down to ``folder``: traversable by the owner's
        group only, still root's."""
        _, runs = self._settings()
        runs = runs.resolve()
        chain = [folder.resolve(), *folder.resolve().parents]
        for path in reversed(chain):
            if path == runs or runs not in path.parents:
                continue
            os.chown(path, 0, gid)
            os.chmod(path, 0o710)

    def _open_snapshots(self, owner: str, gid: int) -> None:
        """The owner's input snapshots (frozen notebooks), readable by their jobs."""
        _, runs = self._settings()
        snapshots = runs.parent / "snapshots" / owner
        if not snapshots.is_dir():
            return
        os.chown(snapshots, 0, gid)
        os.chmod(snapshots, 0o750)
        for path in snapshots.iterdir():
            if path.is_file() and not path.is_symlink():
                os.chown(path, 0, gid)
                os.chmod(path, 0o640)


class UserServerExecutor(Executor):
    """Runs each step inside its owner's single-user server, through the hub.

    The owner's server is started through the hub API when it is not running (the service
    waits for it to be ready), the step is handed to the planner extension there
    (``POST <server>/taskplanner/internal/steps``, answered by ``forward.StepHandler``),
    which runs it with its own local executor and streams back log, progress, result files
    and outcome.  While it runs the service reports the server's activity to the hub, so an
    idle culler does not stop it mid-job; afterwards the server is left to the culler.  A
    cancel closes the connection, which cancels the job in the server.

    The service's token needs ``servers`` (or ``start:servers`` and ``read:servers``),
    ``access:servers`` and ``users:activity`` for the owners it runs jobs of.
    """

    runs_as_owner: ClassVar[bool] = True

    proxy_url = Unicode(
        config=True,
        help="""Where the service reaches users' servers: the hub's proxy, as the service
        sees it (inside Kubernetes 'http://proxy-public'). Default: TASKPLANNER_PROXY_URL,
        else JUPYTERHUB_PUBLIC_URL, else http://127.0.0.1:8000.""",
    )

    @default("proxy_url")
    def _default_proxy_url(self) -> str:
        return (
            os.environ.get("TASKPLANNER_PROXY_URL")
            or os.environ.get("JUPYTERHUB_PUBLIC_URL")
            or "http://127.0.0.1:8000"
        )

    hub_api_url = Unicode(
        config=True,
        help="The hub's REST API. Default: JUPYTERHUB_API_URL, set by the hub for a service.",
    )

    @default("hub_api_url")
    def _default_hub_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    start_timeout = Float(
        600.0,
        config=True,
        help="Seconds a stopped server may take to start before its step fails.",
    )

    activity_interval = Float(
        60.0,
        config=True,
        help="""Seconds between the activity reports for a server running a job (an idle
        culler counts them as use of the server).""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._starting: dict[str, asyncio.Lock] = {}
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(30.0, read=None),
                headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}"},
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def run_step(self, request: StepRequest, progress: Progress) -> StepOutcome:
        owner = str(request.context["owner"])
        request.output.mkdir(parents=True, exist_ok=True)
        try:
            server = await self._ready_server(owner)
        except (httpx.HTTPError, ServerFailed, TimeoutError) as exc:
            return StepOutcome(error=f"the server of {owner} could not be started: {exc}")
        reporting = asyncio.ensure_future(self._report_activity(owner))
        log = CappedLog(request.folder / "log.txt", self.max_log_bytes)
        try:
            outcome = await self._hand_over(server, request, progress, log)
        except (httpx.HTTPError, ValueError) as exc:
            outcome = StepOutcome(
                error=f"the server of {owner} ended the step without an outcome ({exc}): it "
                "was stopped or became unreachable while the job ran"
            )
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
            log.close()
        if outcome.error is not None:
            outcome.results = _leftovers(request)
        return outcome

    # -- the owner's server --------------------------------------------------------------

    def _api(self, path: str) -> str:
        return f"{self.hub_api_url.rstrip('/')}/{path}"

    async def _user(self, owner: str) -> dict[str, Any]:
        reply = await self.client.get(self._api(f"users/{quote(owner, safe='')}"))
        if reply.status_code == 404:
            raise ServerFailed(f"the hub has no user {owner!r}")
        reply.raise_for_status()
        model: dict[str, Any] = reply.json()
        return model

    async def _ready_server(self, owner: str) -> str:
        """The URL path of the owner's running server (``/user/alice/``), started if need be."""
        lock = self._starting.setdefault(owner, asyncio.Lock())
        async with lock, asyncio.timeout(self.start_timeout):
            server = (await self._user(owner)).get("servers", {}).get("")
            if server and server.get("ready"):
                return str(server["url"])
            if not server or not server.get("pending"):
                self.log.info("starting the server of %s for a job", owner)
                reply = await self.client.post(self._api(f"users/{quote(owner, safe='')}/server"))
                if reply.status_code not in (201, 202, 400):  # 400: already starting
                    raise ServerFailed(f"the hub answered {reply.status_code}: {_message(reply)}")
            await self._wait_ready(owner)
            server = (await self._user(owner)).get("servers", {}).get("")
            if not server or not server.get("ready"):
                raise ServerFailed("the hub reports it is not ready")
            return str(server["url"])

    async def _wait_ready(self, owner: str) -> None:
        """Follow the hub's progress events of the spawn until the server is ready."""
        url = self._api(f"users/{quote(owner, safe='')}/server/progress")
        async with self.client.stream("GET", url) as reply:
            reply.raise_for_status()
            async for line in reply.aiter_lines():
                if not line.startswith("data:"):
                    continue
                event = json.loads(line[5:])
                if event.get("failed"):
                    raise ServerFailed(event.get("message") or "its spawn failed")
                if event.get("ready"):
                    return

    async def _report_activity(self, owner: str) -> None:
        """Tell the hub the server is in use, every ``activity_interval``, until cancelled."""
        url = self._api(f"users/{quote(owner, safe='')}/activity")
        while True:
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            try:
                reply = await self.client.post(
                    url, json={"last_activity": now, "servers": {"": {"last_activity": now}}}
                )
                if reply.status_code >= 400:
                    self.log.warning(
                        "the hub refused the activity of %s: %s", owner, _message(reply)
                    )
            except httpx.HTTPError as exc:
                self.log.warning("cannot report the activity of %s: %s", owner, exc)
            await asyncio.sleep(self.activity_interval)

    # -- the step ------------------------------------------------------------------------

    async def _hand_over(
        self, server: str, request: StepRequest, progress: Progress, log: CappedLog
    ) -> StepOutcome:
        url = f"{self.proxy_url.rstrip('/')}{server.rstrip('/')}{STEPS}"
        body = {
            "kind": request.kind,
            "entry": request.entry,
            "context": request.context,
            "limit": request.limit,
            "max_log_bytes": self.max_log_bytes,
        }
        files = _Files(request.output)
        try:
            async with self.client.stream("POST", url, json=body) as reply:
                if reply.status_code != 200:
                    await reply.aread()
                    return StepOutcome(
                        error=f"the server at {server} did not take the step "
                        f"({reply.status_code}: {_message(reply)}); is jupyter-taskplanner "
                        "installed and enabled there?"
                    )
                async for line in reply.aiter_lines():
                    if not line.strip():
                        continue
                    message = json.loads(line)
                    if "log" in message:
                        log.write(base64.b64decode(message["log"]))
                    elif "progress" in message:
                        progress(*message["progress"])
                    elif "file" in message:
                        files.write(message["file"], base64.b64decode(message["data"]))
                    elif "outcome" in message:
                        return StepOutcome(**_outcome_fields(message["outcome"]))
        finally:
            files.close()
        raise ValueError("the stream ended")


class ServerFailed(RuntimeError):
    """The owner's server could not be had for a job."""


class _Files:
    """Result files arriving in chunks, written under the step's output folder."""

    def __init__(self, output: Path) -> None:
        self.output = output.resolve()
        self._open: dict[str, Any] = {}

    def write(self, name: str, data: bytes) -> None:
        stream = self._open.get(name)
        if stream is None:
            path = (self.output / name).resolve()
            if self.output not in path.parents:
                raise ValueError(f"a result file outside the output folder: {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            stream = self._open[name] = path.open("wb")
        stream.write(data)

    def close(self) -> None:
        for stream in self._open.values():
            stream.close()
        self._open.clear()


def _outcome_fields(document: dict[str, Any]) -> dict[str, Any]:
    fields = asdict(StepOutcome())
    return {key: document[key] for key in fields if key in document}


def _message(reply: httpx.Response) -> str:
    try:
        return str(reply.json().get("message") or reply.text)[:300]
    except ValueError:
        return reply.text[:300]
