"""The Dask executor: every job runs on a worker of a ``dask.distributed`` cluster.

In the server, ``DaskExecutor`` turns a job step into one Dask task (``run_on_worker``)
that carries the job's inputs.  Its log and progress come back while it runs as events of
the cluster (``Client.subscribe_topic``); its outcome, the end of its log and its result
files come back as the task's result.  On the worker, the task lays the inputs out in a
scratch folder and runs the step there with a ``LocalExecutor`` (a
``jupyter_taskplanner.worker`` subprocess in its own process group), which it cancels as
soon as Dask releases the task: a cancel, a timeout, or the server gone.

``distributed`` is imported where it is used, so the package imports without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import watchfiles
from traitlets import Bool, Dict, Int, Unicode

from .. import __version__
from ..components.base import Job
from ..errors import InvalidConfig
from ..logs import CHUNK_SIZE
from ..worker import load_component, run_context
from .base import Progress, StepOutcome, StepRequest
from .local import LocalExecutor
from .slots import FairSlots

if TYPE_CHECKING:
    from distributed import Client, Future, Worker

LOG_EVENT_BYTES = CHUNK_SIZE // 4
"""The most log bytes in one event: the scheduler keeps a topic's last events in memory."""
RELEASE_CHECK_SECONDS = 0.2
"""How often a running job looks whether Dask released it (the worker offers no wait)."""
ENDED_SLACK_SECONDS = 5.0
"""How long past the kill grace a cancel waits for the worker to confirm the job stopped."""
CLAIM = "taskplanner"
"""The scheduler's task metadata field a job's first start claims (see ``_claim``)."""


class DaskExecutor(LocalExecutor):
    """Runs each job on a worker of a Dask cluster; series run here, as the local executor
    runs them (they read the owner's files to make the parameter sets).

    The cluster is the scheduler at ``scheduler_address``, or else the one
    ``cluster_factory`` makes (a ``LocalCluster`` by default).  Workers need not share the
    server's files: a job's inputs (``Job.inputs``) travel with it and its result files
    come back into the step's output folder, through ``storage_url`` when one is set.
    """

    scheduler_address = Unicode(
        "",
        config=True,
        help="""Address of the Dask scheduler jobs are sent to, e.g. 'tcp://10.0.0.5:8786'
        (TLS and credentials come from Dask's own configuration, `distributed.comm.tls`).
        Empty: the cluster that `cluster_factory` makes.""",
    )

    cluster_factory = Unicode(
        "distributed:LocalCluster",
        config=True,
        help="""'module:callable' that makes the cluster when no `scheduler_address` is set,
        called with `cluster_options` on first use and closed when the server stops:
        'distributed:LocalCluster' (workers on this machine), 'dask_jobqueue:SLURMCluster',
        'dask_kubernetes.operator:KubeCluster', 'dask_gateway:GatewayCluster', or a
        function of your own that returns a started cluster (one that scales, say).""",
    )

    cluster_options = Dict(
        config=True,
        help="""Keyword arguments of `cluster_factory`, e.g. {"n_workers": 2,
        "threads_per_worker": 2} for a LocalCluster (each worker thread runs one job).""",
    )

    shared_filesystem = Bool(
        False,
        config=True,
        help="""The workers see the server's files at the same paths (one machine, or a
        shared file system): jobs run in the owner's root folder itself and write their
        result files straight into the run's folder; nothing travels with them. Off: each
        job runs in a scratch folder of its worker holding the inputs it declares
        (`Job.inputs`: the notebook, script or module, a snapshot).""",
    )

    storage_url = Unicode(
        "",
        config=True,
        help="""fsspec URL of storage both the server and the workers reach (e.g.
        's3://bucket/taskplanner'): the result files of jobs go there from the workers and
        the server fetches them into the run's folder, then deletes them. Empty: result
        files come back with the job's result through the Dask scheduler.""",
    )

    storage_options = Dict(
        config=True,
        help="Keyword arguments of the fsspec file system of `storage_url` (credentials).",
    )

    max_jobs_in_flight = Int(
        0,
        min=0,
        config=True,
        help="""Most jobs of this server on the cluster at once (0: no limit of its own).
        Waiting jobs start in turns across owners, so one user's many jobs cannot keep the
        others' off the cluster.""",
    )

    concurrent_sets = Int(
        4,
        min=1,
        config=True,
        help="""Parameter sets of one run executing at once on the cluster (each with its
        jobs, then its actions), so a series spreads over the workers; sets still start
        in order.""",
    )

    max_input_bytes = Int(
        100 * 1024 * 1024,
        min=0,
        config=True,
        help="""Largest total size in bytes of the inputs that travel with one job; a job
        with more fails saying so (use `shared_filesystem` or `storage_url` for big data).""",
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._client: Client | None = None
        self._cluster: Any = None
        self._connecting = asyncio.Lock()
        self._topic = f"taskplanner-{uuid.uuid4().hex}"
        self._remotes: dict[str, _Remote] = {}
        self._slots = FairSlots(self.max_jobs_in_flight)

    async def run_step(self, request: StepRequest, progress: Progress) -> StepOutcome:
        if request.kind != "job":
            return await super().run_step(request, progress)
        request.output.mkdir(parents=True, exist_ok=True)
        async with self._slots.hold(request.context["owner"]):
            try:
                client = await self._connect()
            except Exception as exc:
                return StepOutcome(error=f"cannot reach the Dask cluster ({self._where()}): {exc}")
            try:
                bundle = await asyncio.to_thread(self._bundle, request)
            except (InvalidConfig, LookupError, OSError) as exc:
                return StepOutcome(error=getattr(exc, "message", None) or str(exc))
            problem = await _unplaceable(client, request.resources)
            if problem is not None:
                return StepOutcome(error=problem)
            return await self._submit(client, bundle, request, progress)

    async def close(self) -> None:
        if self._client is not None:
            # Unsubscribed first: the scheduler would tell a closed client it left.
            self._client.unsubscribe_topic("all")
            self._client.unsubscribe_topic(self._topic)
            await self._client.close()
            self._client = None
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.close)
            self._cluster = None
        await super().close()

    # -- the cluster -----------------------------------------------------------------------------

    def _where(self) -> str:
        return self.scheduler_address or f"the cluster of {self.cluster_factory}"

    async def _connect(self) -> Client:
        """The client of the cluster, connected (again, when the last one lost it)."""
        from distributed import Client

        async with self._connecting:
            if self._client is not None and self._client.status == "running":
                return self._client
            if self._client is not None:
                await self._client.close()
                self._client = None
            address, security = self.scheduler_address, None
            if not address:
                if self._cluster is None:
                    module, _, name = self.cluster_factory.partition(":")
                    factory = getattr(importlib.import_module(module), name)
                    self._cluster = await asyncio.to_thread(factory, **self.cluster_options)
                address = self._cluster.scheduler_address
                security = getattr(self._cluster, "security", None)
            client: Client = await Client(address, asynchronous=True, security=security)
            client.subscribe_topic(self._topic, self._on_event)
            client.subscribe_topic("all", self._on_cluster_event)
            self._client = client
            return client

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """A report of a running job: started, log, progress, ended."""
        message = event[1]
        remote = self._remotes.get(message.get("key", ""))
        if remote is None:  # a job this server no longer follows
            return
        if "started" in message:
            remote.worker = message["worker"]
        if "log" in message:
            remote.write_log(message["offset"], message["log"])
        if "progress" in message:
            remote.progress(*message["progress"])
        if "ended" in message:
            remote.ended.set()

    def _on_cluster_event(self, event: tuple[float, dict[str, Any]]) -> None:
        """A worker left the cluster: the jobs it was running died with it."""
        message = event[1]
        if message.get("action") != "remove-worker":
            return
        for key in message.get("processing-tasks", ()):
            remote = self._remotes.get(key)
            # A job only queued there has not started: Dask may place it elsewhere.
            if remote and remote.worker == message["worker"] and not remote.died.done():
                remote.died.set_result(message["worker"])

    # -- one job ---------------------------------------------------------------------------------

    def _bundle(self, request: StepRequest) -> dict[str, Any]:
        """What travels with the job: its request, inputs and settings (read off the loop)."""
        bundle: dict[str, Any] = {
            "version": __version__,
            "topic": self._topic,
            "entry": request.entry,
            "context": request.context,
            "max_log_bytes": self.max_log_bytes,
            "kill_grace": self.kill_grace,
            "storage": [self.storage_url, self.storage_options] if self.storage_url else None,
        }
        if self.shared_filesystem:
            return {**bundle, "shared": [str(request.cwd), str(request.output)]}
        document = request.document(request.folder, request.output)
        ctx = run_context(document)
        # A "job.<type>" entry point holds a Job (the component contract, as in the worker).
        job = cast(Job, load_component("job", request.entry["type"]).from_entry(request.entry))
        files: dict[str, bytes] = {}
        outside: list[tuple[str, str, bytes]] = []
        folders: list[str] = []
        root = ctx.owner_root.resolve()
        size = 0
        for path in job.inputs(ctx):
            inside = ctx.files.allows(path)
            if path.is_dir():
                if inside:
                    folders.append(path.relative_to(root).as_posix())
                continue
            data = path.read_bytes()
            size += len(data)
            if size > self.max_input_bytes:
                raise OSError(
                    f"the inputs of this job exceed {self.max_input_bytes} bytes "
                    "(DaskExecutor.max_input_bytes)"
                )
            if inside:
                files[path.relative_to(root).as_posix()] = data
            else:
                outside.append((str(path), path.name, data))
        return {**bundle, "shared": None, "files": files, "outside": outside, "folders": folders}

    async def _submit(
        self, client: Client, bundle: dict[str, Any], request: StepRequest, progress: Progress
    ) -> StepOutcome:
        """Run the bundle as a Dask task and follow it to its end."""
        key = f"taskplanner-job-{uuid.uuid4().hex}"
        # Unbuffered, as a CappedLog: what arrives is at once readable through the API.
        log = open(request.folder / "log.txt", "ab", buffering=0)  # noqa: SIM115 -- closed below
        remote = self._remotes[key] = _Remote(log, progress)
        try:
            future = client.submit(
                run_on_worker, bundle, key=key, resources=request.resources or None
            )
            settling = asyncio.ensure_future(_settle(future))
            ends: list[asyncio.Future[Any]] = [settling, remote.died]
            try:
                await asyncio.wait(ends, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                settling.cancel()
                with contextlib.suppress(Exception):  # a client that lost the scheduler
                    await client.cancel([future], reason="the run was cancelled or timed out")
                if remote.worker is not None and not remote.died.done():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            remote.ended.wait(), self.kill_grace + ENDED_SLACK_SECONDS
                        )
                raise
            if not settling.done():
                settling.cancel()
                with contextlib.suppress(Exception):
                    await client.cancel([future], reason="its worker died")
                return StepOutcome(error=_died(remote.died.result()))
            how, value = settling.result()
            if how != "finished":
                return StepOutcome(error=_failure(how, value))
            if "rerun" in value:
                return StepOutcome(error=_died(value["rerun"]))
            if "outcome" not in value:
                return StepOutcome(error=value.get("error") or "Dask dropped the job")
            remote.write_log(value["log_sent"], value["log_rest"])
            await asyncio.to_thread(self._receive, value, request.output, key)
            return StepOutcome.from_document(value["outcome"])
        finally:
            del self._remotes[key]
            remote.log.close()

    def _receive(self, reply: dict[str, Any], output: Path, key: str) -> None:
        """Put the job's result files into its output folder (off the loop)."""
        for relative, data in reply.get("files", {}).items():
            _inside(output, relative).write_bytes(data)
        if reply.get("stored") is None:
            return
        fs, base = _storage([self.storage_url, self.storage_options])
        try:
            for relative in reply["stored"]:
                fs.get_file(f"{base}/{key}/{relative}", str(_inside(output, relative)))
        finally:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(f"{base}/{key}", recursive=True)


@dataclass
class _Remote:
    """A job running on the cluster, as the server follows it: its log, progress and end."""

    log: BinaryIO
    progress: Progress
    received: int = 0
    """Log bytes written so far (the worker numbers what it sends)."""
    worker: str | None = None
    """The worker running it, once it started."""
    died: asyncio.Future[str] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def write_log(self, offset: int, data: bytes) -> None:
        """Append log bytes that start at ``offset`` of the worker's log (each byte once)."""
        if offset > self.received:
            lost = offset - self.received
            self.log.write(
                f"\n[... {lost} bytes of log lost on the way from the worker ...]\n".encode()
            )
            self.received = offset
        data = data[self.received - offset :]
        self.log.write(data)
        self.received += len(data)


def _inside(output: Path, relative: str) -> Path:
    """Where a result file named by the worker goes: inside ``output``, or refused."""
    target = (output / relative).resolve()
    if output.resolve() not in target.parents:
        raise OSError(f"the worker sent a result file outside the output folder: {relative!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


async def _settle(future: Future[Any]) -> tuple[str, Any]:
    """How a Dask future ended: ("finished", result), ("error", exception) or
    ("cancelled", reason); never an ``asyncio.CancelledError`` of its own."""
    from distributed.client import FutureCancelledError

    try:
        return "finished", await future
    except FutureCancelledError as exc:
        return "cancelled", exc.reason
    except Exception as exc:
        return "error", exc


def _failure(how: str, value: Any) -> str:
    """The step's error for a Dask task that did not finish."""
    from distributed.scheduler import KilledWorker

    if how == "cancelled":
        if value == "scheduler-connection-lost":
            return "the connection to the Dask scheduler was lost while the job ran"
        return f"Dask dropped the job ({value})"
    if isinstance(value, KilledWorker):
        return f"the Dask workers running the job died: {value}"
    if isinstance(value, ModuleNotFoundError):
        return (
            f"the job cannot start on the Dask worker: {value} (jupyter-taskplanner must be "
            "installed on the workers)"
        )
    return f"the job cannot run on the Dask worker: {type(value).__name__}: {value}"


def _died(worker: str) -> str:
    return (
        f"the Dask worker {worker} died (or left the cluster) while running the job; "
        "the files it made are lost"
    )


async def _unplaceable(client: Client, resources: dict[str, float]) -> str | None:
    """Why no worker can take a job needing ``resources`` (None: one can, or may come).

    A cluster without workers may be scaling up, so it is given the benefit of the doubt.
    """
    if not resources:
        return None
    assert client.scheduler is not None  # a connected client has its scheduler
    workers = (await client.scheduler.identity()).get("workers", {})
    offers = [worker.get("resources") or {} for worker in workers.values()]
    if not offers or any(
        all(offer.get(name, 0) >= amount for name, amount in resources.items()) for offer in offers
    ):
        return None
    offered = sorted({f"{name}={amount:g}" for offer in offers for name, amount in offer.items()})
    wanted = ", ".join(f"{name}={amount:g}" for name, amount in resources.items())
    return (
        f"no worker of the Dask cluster offers {wanted} (settings.resources); "
        f"the workers offer {', '.join(offered) or 'no resources'}"
    )


# -- on the worker -----------------------------------------------------------------------------


def run_on_worker(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Dask task of one job: run it in a scratch folder of this worker, report back.

    Returns ``{"outcome", "log_sent", "log_rest", "files" | "stored"}``; ``{"cancelled"}``
    when Dask released it first; ``{"rerun": worker}`` when Dask started it again after
    the worker running it died (the server fails that step instead); ``{"error"}``.
    """
    from distributed import get_worker

    worker = get_worker()
    key = str(worker.get_current_task())
    if bundle["version"] != __version__:
        return {
            "error": f"the Dask worker {worker.address} has jupyter-taskplanner "
            f"{__version__}, the server {bundle['version']}; install the same version"
        }
    first = _claim(key, worker.address)
    if first is not None:
        return {"rerun": first}
    scratch = Path(tempfile.mkdtemp(prefix="taskplanner-", dir=worker.local_directory))
    try:
        return asyncio.run(_run_here(bundle, scratch, worker, key))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _claim(key: str, address: str) -> str | None:
    """Record that this worker starts the job; the worker that did before, if one did.

    When a worker dies, Dask runs its tasks again elsewhere; the planner rather fails the
    step and lets the task's retries decide.  The scheduler forgets the record with the task.
    """
    from distributed import get_client

    client = get_client()
    first: str | None = client.get_metadata([key, CLAIM], None)
    if first is None:
        client.set_metadata([key, CLAIM], address)
    return first


class _WorkerExecutor(LocalExecutor):
    """The local executor as a job's Dask task uses it, with the server's log cap."""

    def __init__(self, max_log_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._max_log_bytes = max_log_bytes

    @property
    def max_log_bytes(self) -> int:
        return self._max_log_bytes


async def _run_here(
    bundle: dict[str, Any], scratch: Path, worker: Worker, key: str
) -> dict[str, Any]:
    """Run the job with a local executor in ``scratch``, streaming its log, until it ends or
    Dask releases it."""

    def send(message: dict[str, Any]) -> None:
        worker.log_event(bundle["topic"], {"key": key, **message})

    request = _lay_out(bundle, scratch)
    # One executor per job: a fork server would serve this job alone.
    executor = _WorkerExecutor(
        bundle["max_log_bytes"],
        kill_grace=bundle["kill_grace"],
        stop_when_orphaned=True,
        warm_workers=False,
    )
    log = request.folder / "log.txt"
    stop = asyncio.Event()
    send({"started": os.getpid()})
    streaming = asyncio.ensure_future(_stream_log(log, send, stop))
    job = asyncio.ensure_future(
        executor.run_step(
            request, lambda done, total, text: send({"progress": [done, total, text]})
        )
    )
    released = asyncio.ensure_future(_until_released(worker, key))
    try:
        await asyncio.wait({job, released}, return_when=asyncio.FIRST_COMPLETED)
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return {"cancelled": True}
        outcome = job.result()
        stop.set()
        sent = await streaming
        reply: dict[str, Any] = {
            "outcome": {
                "results": outcome.results,
                "sets": outcome.sets,
                "error": outcome.error,
                "state": outcome.state,
            },
            "log_sent": sent,
            "log_rest": log.read_bytes()[sent:] if log.exists() else b"",
        }
        if bundle["shared"] is None:
            reply.update(_pack(request.output, bundle["storage"], key))
        return reply
    finally:
        released.cancel()
        stop.set()
        streaming.cancel()
        send({"ended": True})


def _lay_out(bundle: dict[str, Any], scratch: Path) -> StepRequest:
    """The job's request on this worker: its inputs placed under a scratch root (or the
    server's own folders, on a shared file system)."""
    step = scratch / "step"
    step.mkdir()
    entry = bundle["entry"]
    if bundle["shared"] is not None:
        root, output = (Path(path) for path in bundle["shared"])
    else:
        root, output = scratch / "root", step / "output"
        root.mkdir()
        for relative in bundle["folders"]:
            (root / relative).mkdir(parents=True, exist_ok=True)
        for relative, data in bundle["files"].items():
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            (root / relative).write_bytes(data)
        moved = {}
        for index, (server_path, name, data) in enumerate(bundle["outside"]):
            target = scratch / "inputs" / str(index) / name
            target.parent.mkdir(parents=True)
            target.write_bytes(data)
            moved[server_path] = str(target)
        entry = _relocated(entry, moved)
    return StepRequest(
        kind="job",
        entry=entry,
        context={**bundle["context"], "owner_root": str(root)},
        folder=step,
        output=output,
        cwd=root,
    )


def _relocated(value: Any, moved: dict[str, str]) -> Any:
    """``value`` with every text that names a moved input replaced by its new path."""
    if isinstance(value, str):
        return moved.get(value, value)
    if isinstance(value, list):
        return [_relocated(item, moved) for item in value]
    if isinstance(value, dict):
        return {name: _relocated(item, moved) for name, item in value.items()}
    return value


async def _stream_log(
    path: Path, send: Callable[[dict[str, Any]], None], stop: asyncio.Event
) -> int:
    """Send what the step's log gains, as it gains it, until ``stop``; the bytes sent.

    The log is already capped (``CappedLog``): its head grows while the step runs, its
    tail is written when it ends and comes back with the result.
    """
    sent = 0
    async for _ in watchfiles.awatch(
        path.parent,
        stop_event=stop,
        recursive=False,
        debounce=100,
        watch_filter=lambda _, changed: Path(changed).name == path.name,
    ):
        with open(path, "rb") as file:
            file.seek(sent)
            while chunk := file.read(LOG_EVENT_BYTES):
                send({"offset": sent, "log": chunk})
                sent += len(chunk)
    return sent


async def _until_released(worker: Worker, key: str) -> None:
    """Return once Dask no longer wants the job (cancelled, or its client gone)."""
    while True:
        task = worker.state.tasks.get(key)
        if task is None or task.state == "cancelled":
            return
        await asyncio.sleep(RELEASE_CHECK_SECONDS)


def _pack(output: Path, storage: list[Any] | None, key: str) -> dict[str, Any]:
    """The job's result files: as bytes, or put into the shared storage (their names)."""
    found = {
        path.relative_to(output).as_posix(): path
        for path in sorted(output.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    if storage is None:
        return {"files": {relative: path.read_bytes() for relative, path in found.items()}}
    fs, base = _storage(storage)
    for relative, path in found.items():
        fs.makedirs(f"{base}/{key}/{relative}".rsplit("/", 1)[0], exist_ok=True)
        fs.put_file(str(path), f"{base}/{key}/{relative}")
    return {"stored": list(found)}


def _storage(storage: list[Any]) -> tuple[Any, str]:
    """The fsspec file system and base path of ``[storage_url, storage_options]``."""
    from fsspec.core import url_to_fs  # type: ignore[import-untyped]

    fs, base = url_to_fs(storage[0], **storage[1])
    return fs, str(base).rstrip("/")
