"""The example notebooks of notebooks/, executed top to bottom in a kernel of a real server
(seeded as ``make run`` seeds its workspace), with their outputs checked."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from jupyter_taskplanner.testing import (
    CellOutput,
    KernelSession,
    ServerProcess,
    SmtpServer,
    smtp_server,
)

ROOT = Path(__file__).parent.parent
pytestmark = pytest.mark.timeout(400)


class Seeded:
    """A server on a root seeded with notebooks/, and a mail server its e-mails go to."""

    def __init__(self, root: Path, data: Path, server: ServerProcess, smtp: SmtpServer) -> None:
        self.root, self.data, self.server, self.smtp = root, data, server, smtp

    def execute(self, name: str) -> list[CellOutput]:
        """Every code cell of a notebook, in order, in a kernel the server starts for it;
        stops at the first error."""
        notebook = nbformat.read(self.root / name, as_version=4)
        kernel = KernelSession(self.server, name, self.data / "data" / "runtime")
        outputs = []
        try:
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    output = kernel.run(cell.source, timeout=300)
                    assert output.error is None, (cell.source, output)
                    outputs.append(output)
        finally:
            kernel.stop()
        return outputs


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    base = tmp_path_factory.mktemp("notebooks")
    root = base / "root"
    shutil.copytree(ROOT / "notebooks", root)
    with smtp_server() as smtp:
        server = ServerProcess(
            root,
            base / "db" / "tasks.db",
            base / "server.log",
            f"--EmailSettings.host={smtp.host}",
            f"--EmailSettings.port={smtp.port}",
            "--EmailSettings.sender=planner@localhost",
        )
        try:
            yield Seeded(root, base / "db", server, smtp)
        finally:
            server.stop()


def test_getting_started(seeded: Seeded) -> None:
    found, saved, fires, ran, listed, panel = seeded.execute("getting-started.ipynb")
    assert found.text == "kernel\n"
    assert saved.text == "1 Customer report\n"
    assert len(fires.text.splitlines()) == 3 and "T07:00:00" in fires.text
    assert ran.text.endswith("succeeded\n")
    # The progress bar is an ipywidgets bar in a notebook.
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in ran.outputs)
    files, history = listed.text.split("1 succeeded api\n")[0], listed.text
    assert re.search(r"report\.ipynb\n", files) and re.search(r"report\.html\n", files)
    assert history.endswith("1 succeeded api\n")
    [view] = [o for o in panel.outputs if o["output_type"] == "execute_result"]
    assert "application/vnd.jupyter.widget-view+json" in view["data"]
    assert view["data"]["text/plain"].startswith("Planner(")


def test_series_by_region(seeded: Seeded) -> None:
    _, preview, ran = seeded.execute("series-by-region.ipynb")
    assert "'region': 'north', 'email': 'north@example.com'" in preview.text
    steps = ran.text.split("succeeded\n", 1)[1].splitlines()
    assert steps[0] == "series csv  succeeded"
    assert sorted(steps[1:]) == [
        "action email north succeeded",
        "action email south succeeded",
        "job notebook north succeeded",
        "job notebook south succeeded",
    ]
    mails = seeded.smtp.wait_for(2, timeout=30)
    assert sorted(mail["To"] for mail in mails) == ["north@example.com", "south@example.com"]
    assert sorted(mail["Subject"] for mail in mails) == ["Report north", "Report south"]


def test_schedule_a_cell(seeded: Seeded) -> None:
    _, scheduled, waited, disabled, listed = seeded.execute("schedule-a-cell.ipynb")
    assert re.match(r"task \d+ 'refresh cache' created; next runs:\n", scheduled.text)
    assert waited.text.endswith("succeeded interval:0\n") or "succeeded interval" in waited.text
    # The cell ran beside its notebook; the notebook %%schedule saved is hidden.
    assert (seeded.root / "cache.txt").read_text() == "refreshed"
    assert (seeded.root / ".taskplanner" / "scheduled" / "refresh-cache.ipynb").is_file()
    assert disabled.text.endswith("'refresh cache' disabled\n")
    assert re.search(r"off  refresh cache\n", listed.text)


def test_admin_overview(seeded: Seeded) -> None:
    tasks, runs, failed, panel = seeded.execute("admin-overview.ipynb")
    assert tasks.text.endswith("tasks of 1 owner(s)\n")
    assert "'succeeded'" in runs.text
    assert failed.text == ""
    [view] = [o for o in panel.outputs if o["output_type"] == "execute_result"]
    assert view["data"]["text/plain"].startswith("TaskList(")
