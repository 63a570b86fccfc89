"""The README's "A first task", taken from the README itself and run as written."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import wait_for_run

ROOT = Path(__file__).resolve().parent.parent


def readme_task() -> dict[str, Any]:
    """The task body of the README's `curl ... -X POST .../tasks -d '...'`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## A first task") :]
    match = re.search(r"/taskplanner/api/tasks \\\n\s+-d '(.*?)'\n", section, re.DOTALL)
    assert match, "the README's first task is no longer a curl -d '...' of /taskplanner/api/tasks"
    return json.loads(match[1])


@pytest.fixture
def jp_server_config(jp_server_config, smtp):
    return {**jp_server_config, "EmailSettings": {"host": smtp.host, "port": smtp.port}}


@pytest.fixture
def workspace(jp_root_dir: Path) -> Path:
    """The root seeded as `make run` seeds its workspace: with the notebooks/ folder."""
    shutil.copytree(ROOT / "notebooks", jp_root_dir, dirs_exist_ok=True)
    return jp_root_dir


async def test_the_readme_first_task_works_as_written(api, workspace, smtp):
    alice = api("alice")
    created = await alice("POST", "/tasks", readme_task())
    assert created.status == 201, created
    task_id = created.body["id"]
    # The README runs it by hand as task 1 and reads /tasks/1/runs.
    assert task_id == 1
    started = await alice("POST", f"/tasks/{task_id}/run")
    assert started.status == 202, started
    run = await wait_for_run(alice, started.body["id"], within=120)
    assert run["status"] == "succeeded", run

    mails = await smtp.wait_async(2)
    by_address = {mail["To"]: mail for mail in mails}
    assert set(by_address) == {"north@example.com", "south@example.com"}
    for region in ("north", "south"):
        mail = by_address[f"{region}@example.com"]
        assert mail["Subject"].startswith(f"Report {region} ")
        attached = sorted(part.get_filename() for part in mail.iter_attachments())
        assert attached == ["report.html", "report.ipynb"]
    day = datetime.fromisoformat(run["started"]).astimezone().strftime("%Y-%m-%d")
    saved = sorted(path.name for path in (workspace / "reports" / "out").iterdir())
    assert saved == [
        f"{region}-{day}.{fmt}" for region in ("north", "south") for fmt in ("html", "ipynb")
    ]
    runs = await alice("GET", f"/tasks/{task_id}/runs")
    assert [item["id"] for item in runs.body["runs"]] == [run["id"]]


async def test_an_invalid_report_is_not_mailed(api, workspace, smtp):
    """The README's promise: the e-mail action sends only valid reports."""
    body = readme_task()
    # The example data give north 13 orders and south 18: only south's report is valid here.
    body["jobs"][0]["config"]["condition"] = {"expression": "orders > 15"}
    alice = api("alice")
    task = (await alice("POST", "/tasks", body)).body
    run = await wait_for_run(
        alice, (await alice("POST", f"/tasks/{task['id']}/run")).body["id"], within=180
    )
    assert run["status"] == "succeeded", run
    mails = await smtp.wait_async(1)
    assert [mail["To"] for mail in mails] == ["south@example.com"]
