"""Two servers on one database, small: every fire taken exactly once (the long version,
over 10,000 fires, runs in ``make stress``; see tests/stress/two_servers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stress.two_servers import two_servers


@pytest.mark.timeout(300)
def test_two_servers_take_every_fire_exactly_once(tmp_path: Path) -> None:
    figures = two_servers(tmp_path, tasks=40, fires=5, spread=4)
    assert figures.cases == 200
    assert not figures.failures, figures.summary
    assert (figures.notes["duplicates"], figures.notes["lost"]) == (0, 0)
