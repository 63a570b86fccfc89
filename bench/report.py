"""The bench's output: the table on the terminal, the JSON of results, the table in the docs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import Row, verdict

BEGIN = "<!-- bench:begin (written by `make bench`; edits between these lines are replaced) -->"
END = "<!-- bench:end -->"
COLUMNS = ("figure", "measured", "target", "reference", "result")


def cells(row: Row) -> tuple[str, ...]:
    return (row.figure, row.measured, row.target, row.reference, verdict(row.passed))


def print_rows(rows: Sequence[Row]) -> None:
    """The rows as a plain table, one figure per block (the texts are long)."""
    width = max(len(name) for name in COLUMNS)
    print()
    for row in rows:
        for name, text in zip(COLUMNS, cells(row), strict=True):
            print(f"{name:>{width}}  {text}")
        print()
    passed = sum(row.passed is True for row in rows)
    print(f"{passed} of {len(rows)} figures meet their target")


def markdown(rows: Sequence[Row], machine: dict[str, Any], size: str, command: str) -> str:
    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        BEGIN,
        "",
        f"Measured {machine['date']} on {machine['cores']} cores ({machine['cpu']}), "
        f"Python {machine['python']}, {machine['system']}; size `{size}`, by `{command}`; "
        f"load average {machine['load']}.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    lines += ["| " + " | ".join(escape(cell) for cell in cells(row)) + " |" for row in rows]
    passed = sum(row.passed is True for row in rows)
    lines += ["", f"{passed} of {len(rows)} figures meet their target.", "", END]
    return "\n".join(lines)


def update_docs(path: Path, table: str) -> None:
    """Replace the table between the markers of ``path`` (added at the end if missing)."""
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(BEGIN.split(" (")[0]) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: table, text, count=1)
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + table + "\n"
    path.write_text(text)


def write_json(path: Path, rows: Sequence[Row], machine: dict[str, Any], size: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": machine, "size": size, "rows": [row.as_dict() for row in rows]}
    path.write_text(json.dumps(document, indent=1, default=str) + "\n")
