"""The bench keeps working: every case of ``make bench`` runs at its smallest size.

Only that it runs and what it writes are checked here, never a figure: performance targets
live in bench/ and docs/performance.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


# Every case starts servers of its own: on a loaded machine (a parallel make test) that takes
# longer than the suite's 120 s, but not the 300 s the bench itself is given below.
@pytest.mark.timeout(330)
def test_every_bench_case_runs_and_writes_its_table(tmp_path: Path) -> None:
    docs = tmp_path / "performance.md"
    docs.write_text("# Performance\n\nWritten by hand, kept.\n")
    results = tmp_path / "results.json"
    finished = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--size=tiny",
            f"--json={results}",
            f"--docs={docs}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    written = json.loads(results.read_text())
    assert written["machine"]["cores"] and written["size"] == "tiny"
    figures = [row["figure"] for row in written["rows"]]
    for words in (
        "cold kernel",
        "warm kernel pool",
        "trivial python jobs",
        "runs with no jobs",
        "fire delay",
        "first start after a bulk import",
        "page of 100 tasks",
        "task creation",
        "concurrent clients",
        "server RSS",
    ):
        assert sum(words in figure for figure in figures) == 1, (words, figures)
    for row in written["rows"]:
        assert row["measured"] and row["target"] and row["reference"], row
    text = docs.read_text()
    assert text.startswith("# Performance\n\nWritten by hand, kept.\n")
    assert text.count("| figure | measured | target | reference | result |") == 1
    assert re.search(r"load average \d+\.\d at the start, \d+\.\d at the end", text), text
    # Written again, the table is replaced, not added.
    subprocess.run(
        [sys.executable, "-c", _REWRITE.format(bench=str(BENCH), docs=str(docs))], check=True
    )
    assert docs.read_text().count("<!-- bench:end -->") == 1


_REWRITE = """
import sys
sys.path.insert(0, {bench!r})
from pathlib import Path
from report import markdown, update_docs
from common import Row, machine
table = markdown([Row("f", "m", "t", "r", True)], machine((0.5, 1.5)), "tiny", "x")
update_docs(Path({docs!r}), table)
"""
