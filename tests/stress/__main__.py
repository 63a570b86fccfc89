"""``make stress``: every reliability check, long, with the table of docs/reliability.md.

Run from the checkout as ``PYTHONPATH=tests .venv/bin/python -m stress`` (``--size quick``
for a smoke run that leaves the docs alone).  Each row: what was tried, how many cases,
how many failed.  The rows of the suites that run in ``make test`` only (data safety,
the authorization matrix, the containment suite) count their pytest cases here.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from jupyter_taskplanner.fuzzing import fuzz

from .common import Figures, Workspace
from .crash import crash_cycles, kill_worker_and_kernel
from .hostile import hostile
from .load import load
from .two_servers import two_servers

CHECKOUT = Path(__file__).resolve().parents[2]
DOCS = CHECKOUT / "docs" / "reliability.md"
BEGIN, END = "<!-- stress table: written by make stress -->", "<!-- end of stress table -->"


@dataclass(frozen=True)
class Sizes:
    """How long each check runs: ``full`` meets the minimums of the figures, ``quick`` is
    a smoke run of the whole script."""

    crash_cycles: int
    fires_tasks: int
    fires_per_task: int
    fires_spread: int
    load_clients: int
    load_seconds: float
    fuzz_examples: int
    fuzz_coverage: bool


SIZES = {
    "full": Sizes(8, 1000, 10, 10, 40, 60, 400, True),
    "quick": Sizes(2, 40, 5, 4, 30, 5, 5, False),
}
SUITES = {
    "data safety: backup while served, restore, a damaged or newer database refused": (
        "tests/test_backup.py"
    ),
}
"""Suites of make test whose cases (pytest's, parameters counted) make a row here too."""


def fuzzing(folder: Path, sizes: Sizes) -> Figures:
    """Schemathesis over the served document, every operation and check."""
    figures = Figures("API fuzzing: schemathesis, every operation, every check")
    ws = Workspace(folder)
    server = ws.server()
    phases = ("examples", "coverage", "fuzzing", "stateful")
    try:
        result = fuzz(
            server.url,
            server.token,
            examples=sizes.fuzz_examples,
            seed=15,
            phases=phases if sizes.fuzz_coverage else tuple(p for p in phases if p != "coverage"),
            workdir=folder / "fuzz",
        )
    finally:
        server.stop()
    figures.cases = result.cases
    figures.seconds = result.seconds
    figures.notes["operations"] = result.operations
    for failure in result.failures:
        figures.fail(f"{failure.get('title', failure)} ({failure.get('count', 1)} cases)")
    figures.failures.extend(str(error)[:300] for error in result.errors)
    if figures.failures:
        figures.notes["report"] = result.failure_report[:5000]
    figures.failures.extend(f"a traceback in {name}" for name in ws.tracebacks())
    return figures


def suite(check: str, path: str, folder: Path) -> Figures:
    """A pytest suite's cases and failures."""
    figures = Figures(check)
    started = time.monotonic()
    report = folder / "junit.xml"
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            path,
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
    )
    if not report.exists():
        figures.fail(f"pytest {path} wrote no report: {finished.stdout[-2000:]}")
        return figures
    for case in ET.parse(report).iter("testcase"):
        if case.find("skipped") is not None:
            continue
        figures.cases += 1
        if case.find("failure") is not None or case.find("error") is not None:
            figures.fail(f"{case.get('classname')}::{case.get('name')}")
    figures.seconds = time.monotonic() - started
    return figures


def machine() -> str:
    """This machine, briefly: cores, CPU, memory, Python."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GB, Python {platform.python_version()}"


def table(rows: list[Figures], date: str, where: str) -> str:
    """The Markdown table of the figures."""
    lines = [
        "| Check | Cases tried | Failures | Figures | Date | Machine |",
        "|---|---:|---:|---|---|---|",
    ]
    for row in rows:
        notes = ", ".join(
            f"{key.replace('_', ' ')} {value}"
            for key, value in row.notes.items()
            if key != "report"
        )
        lines.append(
            f"| {row.check} | {row.cases:,} {row.unit} | {len(row.failures)} | {notes} | {date} "
            f"| {where} |"
        )
    return "\n".join(lines)


def write_docs(path: Path, text: str) -> None:
    """Replace the table between the markers of ``path``."""
    document = path.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(document):
        raise SystemExit(f"{path} has no stress table markers")
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n\n{text}\n\n{END}", document))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--docs", type=Path, default=DOCS, help="the page whose table to refresh")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    sizes = SIZES[args.size]
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    where = machine()
    busy = os.getloadavg()[0]
    started = time.monotonic()
    checks: list[tuple[str, Callable[[Path], Figures]]] = [
        ("crash", lambda folder: crash_cycles(folder, sizes.crash_cycles)),
        ("kill-job", kill_worker_and_kernel),
        (
            "two-servers",
            lambda folder: two_servers(
                folder, sizes.fires_tasks, sizes.fires_per_task, sizes.fires_spread
            ),
        ),
        ("load", lambda folder: load(folder, sizes.load_clients, sizes.load_seconds)),
        ("fuzz", lambda folder: fuzzing(folder, sizes)),
        ("hostile", hostile),
    ]
    checks += [
        (f"suite-{i}", lambda folder, c=check, p=path: suite(c, p, folder))
        for i, (check, path) in enumerate(SUITES.items())
    ]
    rows = []
    with tempfile.TemporaryDirectory(prefix="stress-") as scratch:
        for name, check in checks:
            print(f"== {name}", flush=True)
            folder = Path(scratch) / name
            folder.mkdir()
            try:
                figures = check(folder)
            except Exception as exc:  # a check that breaks is a failure of its row
                figures = Figures(name)
                figures.fail(f"the check itself failed: {type(exc).__name__}: {exc}")
            rows.append(figures)
            print(figures.summary, flush=True)
            print(f"   {figures.notes}, {figures.seconds:.0f} s", flush=True)
    text = table(rows, date, where) + (
        f"\n\nLoad average at the start: {busy:.1f} (the machine is shared); "
        f"the whole run took {time.monotonic() - started:.0f} s."
    )
    print(f"\n{text}\n\nstress: {time.monotonic() - started:.0f} s", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    if args.size == "full":
        write_docs(args.docs, text)
    return 1 if any(row.failures for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
