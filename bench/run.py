"""Every figure of the performance targets, beside its target and its reference: `make bench`.

    .venv/bin/python bench/run.py              # the figures (docs/performance.md refreshed)
    .venv/bin/python bench/run.py --quick      # a smoke run: smaller sizes, docs untouched

Prints the table, writes the results as JSON (``build/bench/results.json`` by default) and,
for a full run, replaces the table in docs/performance.md.  Cases run one after the other,
each on servers of its own; references are measured in the same run, interleaved where the
figure is a ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from api_bench import api_case
from common import SIZES, Documents, Row, Sizes, machine
from notebook_bench import notebook_case
from report import markdown, print_rows, update_docs, write_json
from scheduler_bench import burst_case, startup_case

CHECKOUT = Path(__file__).resolve().parent.parent
CASES: dict[str, Callable[[Path, Sizes], list[Row]]] = {
    "notebook": notebook_case,
    "burst": burst_case,
    "startup": lambda folder, sizes: startup_case(folder, sizes, Documents(folder)),
    "api": lambda folder, sizes: api_case(folder, sizes, Documents(folder)),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--quick", action="store_const", const="quick", dest="size")
    parser.add_argument("--only", nargs="+", choices=sorted(CASES), help="run only these cases")
    parser.add_argument("--json", type=Path, default=CHECKOUT / "build" / "bench" / "results.json")
    parser.add_argument(
        "--docs",
        type=Path,
        help="the page whose table is replaced (default docs/performance.md, full size only)",
    )
    args = parser.parse_args(argv)
    sizes = SIZES[args.size]
    docs = args.docs or (CHECKOUT / "docs" / "performance.md" if args.size == "full" else None)
    rows: list[Row] = []
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="taskplanner-bench-") as tmp:
        for name in args.only or list(CASES):
            began = time.monotonic()
            print(f"== {name} ...", flush=True)
            case_rows = CASES[name](Path(tmp) / name, sizes)
            print_rows(case_rows)
            print(f"   ({time.monotonic() - began:.0f} s)", flush=True)
            rows += case_rows
    where = machine((load_at_start, os.getloadavg()[0]))
    command = "make bench" if args.size == "full" else f"bench/run.py --size {args.size}"
    print("== all figures")
    print_rows(rows)
    write_json(args.json, rows, where, args.size)
    print(f"results: {args.json}")
    if docs is not None:
        update_docs(docs, markdown(rows, where, args.size, command))
        print(f"table: {docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
