"""Load, small: 30 API clients reading and writing while tasks fire get no error (the
long version runs a minute in ``make stress``; see tests/stress/load.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stress.load import load


@pytest.mark.timeout(300)
def test_thirty_clients_reading_and_writing_get_no_error(tmp_path: Path) -> None:
    figures = load(tmp_path, clients=30, seconds=5)
    assert not figures.failures, figures.summary
    assert figures.cases > 100 and figures.notes["p99_ms"] > 0, figures.notes
