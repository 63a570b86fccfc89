"""Notebook job figures: run-now to done of a trivial notebook, side by side with its peers.

Run with the project's venv:  .venv/bin/python bench/notebook_bench.py [--size quick]
(or all figures at once: ``make bench``).

Interleaved rounds on the same 2-cell notebook (a parameters cell and a print), each timed
from the request to the finished record, polling every 20 ms:

* jupyter-taskplanner, a cold kernel (the default) and with ``WARM_OPTIONS`` (the warm
  kernel pool);
* jupyter-scheduler, installed into a venv of its own under ``build/bench-peer`` (made once,
  kept between runs), through its REST API;
* the bare ``papermill`` command line of this environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    SIZES,
    WARM_OPTIONS,
    Client,
    Row,
    Server,
    Sizes,
    median,
    running,
)

from jupyter_taskplanner.testing import HOST, free_port

CHECKOUT = Path(__file__).resolve().parent.parent
PEER = CHECKOUT / "build" / "bench-peer"
PEER_PACKAGES = ("jupyter-scheduler", "papermill", "ipykernel")
POLL = 0.02
TIMEOUT = 180.0
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "p",
            "metadata": {"tags": ["parameters"]},
            "outputs": [],
            "source": "x = 1",
        },
        {
            "cell_type": "code",
            "execution_count": None,
            "id": "q",
            "metadata": {},
            "outputs": [],
            "source": "print(x + 1)",
        },
    ],
    "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def peer_python() -> Path:
    """The python of the peer's venv, made with its packages on first use."""
    python = PEER / "bin" / "python"
    marker = PEER / ".installed"
    wanted = " ".join(PEER_PACKAGES)
    if marker.exists() and marker.read_text() == wanted and python.exists():
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", "--clear", str(PEER)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PEER_PACKAGES],
        check=True,
    )
    marker.write_text(wanted)
    return python


def poll(check: Callable[[], dict[str, Any] | None], what: str) -> dict[str, Any]:
    began = time.monotonic()
    while (found := check()) is None:
        if time.monotonic() - began > TIMEOUT:
            raise RuntimeError(f"{what} did not finish within {TIMEOUT:.0f} s")
        time.sleep(POLL)
    return found


class Planner:
    """A planner server with one notebook task, run now and timed to its finished run."""

    def __init__(self, server: Server) -> None:
        (server.root / "t.ipynb").write_text(json.dumps(NOTEBOOK))
        self.server = server

    def prepare(self) -> None:
        self.client = self.server.client()
        config = {"path": "t.ipynb", "parameters": {"x": 2}}
        job = {"type": "notebook", "name": "nb", "config": config}
        self.task_id = self.client.api("POST", "/tasks", {"name": "nb", "jobs": [job]})["id"]

    def run(self) -> float:
        began = time.perf_counter()
        run = self.client.api("POST", f"/tasks/{self.task_id}/run", {})

        def finished() -> dict[str, Any] | None:
            found = self.client.api("GET", f"/runs/{run['id']}")
            return None if found["status"] in ("queued", "running") else found

        found = poll(finished, "a planner run")
        took = time.perf_counter() - began
        if found["status"] != "succeeded":
            raise RuntimeError(f"the notebook run {found['status']}: {found.get('error')}")
        return took


class Peer:
    """jupyter-scheduler in its own server and venv, its job created and timed to done."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root

    def start(self) -> None:
        python = peer_python()
        self.port = free_port()
        data = self.folder / "peer-data"
        data.mkdir(parents=True, exist_ok=True)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PYTHON"))},
            "JUPYTER_DATA_DIR": str(data),
            "JUPYTER_RUNTIME_DIR": str(self.folder / "peer-runtime"),
            "JUPYTER_CONFIG_DIR": str(self.folder / "peer-config"),
        }
        self.log = open(self.folder / "peer.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                str(python),
                "-m",
                "jupyter_server",
                "--allow-root",
                "--no-browser",
                f"--ServerApp.port={self.port}",
                f"--ServerApp.ip={HOST}",
                "--IdentityProvider.token=peer",
                f"--ServerApp.root_dir={self.root}",
                "--ServerApp.jpserver_extensions={'jupyter_scheduler': True}",
            ],
            env=env,
            cwd=self.root,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = Client(self.port, "peer")

        def up() -> dict[str, Any] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter-scheduler's server exited; see {self.log.name}")
            try:
                status, _ = self.client.request("GET", "/api/status")
            except OSError:
                return None
            return {} if status == 200 else None

        poll(up, "jupyter-scheduler's server start")

    def run(self) -> float:
        began = time.perf_counter()
        status, job = self.client.request(
            "POST",
            "/scheduler/jobs",
            {
                "input_uri": "t.ipynb",
                "runtime_environment_name": "python3",
                "output_formats": ["ipynb"],
                "name": "t",
                "parameters": {"x": 2},
            },
        )
        if status >= 400:
            raise RuntimeError(f"jupyter-scheduler refused the job: {status} {job}")

        def done() -> dict[str, Any] | None:
            _, found = self.client.request("GET", f"/scheduler/jobs/{job['job_id']}")
            # A new job reads STOPPED (the column's default) until its process starts.
            return found if found["status"] in ("COMPLETED", "FAILED") else None

        found = poll(done, "a jupyter-scheduler job")
        took = time.perf_counter() - began
        if found["status"] != "COMPLETED":
            raise RuntimeError(f"the jupyter-scheduler job ended {found['status']}")
        return took

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


def papermill(root: Path, folder: Path) -> float:
    """The bare ``papermill`` command line on the same notebook."""
    began = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(root / "t.ipynb"),
            str(folder / "papermill-out.ipynb"),
            "-p",
            "x",
            "2",
            "--no-progress-bar",
        ],
        check=True,
        capture_output=True,
        timeout=TIMEOUT,
        cwd=root,
        env={**os.environ, "JUPYTER_DATA_DIR": str(folder / "papermill-data")},
    )
    return time.perf_counter() - began


def attempt(planner: Planner, failures: list[str]) -> float | None:
    """One timed run of the planner; None (its error kept in ``failures``) when it failed,
    so the row says so instead of the whole bench stopping."""
    try:
        return planner.run()
    except RuntimeError as exc:
        failures.append(str(exc))
        return None


def _failed(failures: list[str], rounds: int) -> str:
    if not failures:
        return ""
    # File names without their folders: the table goes into the docs.
    first = re.sub(r"/[^\s'\"]*/", "", failures[0])[:300]
    return f"; {len(failures)} of {rounds} runs failed, first: {first}"


def notebook_case(folder: Path, sizes: Sizes) -> list[Row]:
    cold_server = Server(folder, "notebook-cold")
    # Without warm settings (yet) the cold server is configured as the warm one would be.
    warm_server = Server(folder, "notebook-warm", *WARM_OPTIONS) if WARM_OPTIONS else cold_server
    cold, warm = Planner(cold_server), Planner(warm_server)
    peer = Peer(folder, cold_server.root) if sizes.peer else None
    times: dict[str, list[float]] = {"cold": [], "warm": [], "papermill": [], "peer": []}
    failures: dict[str, list[str]] = {"cold": [], "warm": []}
    # One round first, not counted (kernel specs looked up, files in the page cache), but for
    # the smoke test's size.
    rounds = [True] * sizes.notebook_rounds
    if sizes.name != "tiny":
        rounds.insert(0, False)
    with running(cold_server), contextlib.ExitStack() as stack:
        if warm_server is not cold_server:
            stack.enter_context(running(warm_server))
        cold.prepare()
        warm.prepare()
        if peer is not None:
            peer.start()
        try:
            for counted in rounds:
                round_times = {
                    "cold": attempt(cold, failures["cold"]),
                    "papermill": papermill(cold_server.root, folder),
                    "peer": peer.run() if peer is not None else None,
                    "warm": attempt(warm, failures["warm"]),
                }
                if counted:
                    for key, took in round_times.items():
                        if took is not None:
                            times[key].append(took)
        finally:
            if peer is not None:
                peer.stop()
    med = {key: median(values) for key, values in times.items()}
    peer_text = (
        f"jupyter-scheduler {med['peer']:.2f} s ({med['peer'] / med['papermill']:.2f}x papermill)"
        if times["peer"]
        else "jupyter-scheduler not measured"
    )
    reference = f"papermill CLI {med['papermill']:.2f} s; {peer_text}"
    rounds_text = f"median of {sizes.notebook_rounds}"
    warm_state = "on" if WARM_OPTIONS else "not available yet"
    cold_ratio = med["cold"] / med["papermill"]
    warm_ratio = med["warm"] / med["papermill"]
    warm_peer = med["warm"] / med["peer"] if times["peer"] else None
    values = {"median_s": med, "rounds": sizes.notebook_rounds, "times_s": times}
    warm_text = f"{med['warm']:.2f} s = {warm_ratio:.2f}x papermill" + (
        f", {warm_peer:.2f}x jupyter-scheduler" if warm_peer is not None else ""
    )
    return [
        Row(
            "notebook job run-now to done, cold kernel (ipynb+html)",
            f"{med['cold']:.2f} s = {cold_ratio:.2f}x papermill ({rounds_text}"
            f"{_failed(failures['cold'], len(rounds))})",
            "<= 0.5x bare papermill",
            reference,
            cold_ratio <= 0.5 and not failures["cold"],
            {**values, "ratio_papermill": cold_ratio, "failures": failures["cold"]},
        ),
        Row(
            "the same with the warm kernel pool",
            f"{warm_text} ({rounds_text}; warm pool {warm_state}"
            f"{_failed(failures['warm'], len(rounds))})",
            "<= 0.15x bare papermill; <= 0.1x jupyter-scheduler",
            reference,
            warm_ratio <= 0.15 and (warm_peer is None or warm_peer <= 0.1) and not failures["warm"],
            {
                **values,
                "failures": failures["warm"],
                "ratio_papermill": warm_ratio,
                "ratio_peer": warm_peer,
                "warm_options": list(WARM_OPTIONS),
            },
        ),
    ]


def main() -> None:
    from report import print_rows

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = notebook_case(Path(tmp), SIZES[args.size])
    print_rows(rows)


if __name__ == "__main__":
    main()
