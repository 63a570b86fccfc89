"""End to end through the REST API: notebooks, series, mail, save, webhook, conditions, chains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, runs_of, wait_for_run

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


@pytest.fixture
def jp_server_config(jp_server_config, smtp):
    return {**jp_server_config, "EmailSettings": {"host": smtp.host, "port": smtp.port}}


@pytest.fixture
def root(jp_root_dir: Path, funcs: Path) -> Path:
    """The server's root: the report notebooks and ``tp_funcs.py``."""
    (jp_root_dir / "reports").mkdir()
    shutil.copy(NOTEBOOKS / "report.ipynb", jp_root_dir / "reports" / "report.ipynb")
    shutil.copy(NOTEBOOKS / "failing.ipynb", jp_root_dir / "reports" / "failing.ipynb")
    return jp_root_dir


def notebook_job(**config: Any) -> dict[str, Any]:
    return {
        "type": "notebook",
        "name": "report",
        "config": {"path": "reports/report.ipynb", **config},
    }


async def start(call, task_id: int, **parameters: Any) -> dict[str, Any]:
    reply = await call("POST", f"/tasks/{task_id}/run", {"parameters": parameters})
    assert reply.status == 202, reply
    return await wait_for_run(call, reply.body["id"], within=120)


def file_results(run: dict[str, Any]) -> list[str]:
    return [
        result["value"]
        for step in run["steps"]
        if step["kind"] == "job"
        for result in step["results"]
        if result["flavor"] == "file"
    ]


async def test_notebook_report_mailed_and_saved(api, root, smtp):
    alice = api("alice")
    task = await create_task(
        alice,
        name="Daily report",
        jobs=[notebook_job(parameters={"rows": 5})],
        actions=[
            {
                "type": "email",
                "config": {"to": "boss@example.com", "subject": "{task.name}: {customer}"},
            },
            {"type": "save", "config": {"folder": "out", "name": "{stem}-{customer}{suffix}"}},
        ],
    )
    run = await start(alice, task["id"], customer="ACME")
    assert run["status"] == "succeeded", run
    files = file_results(run)
    assert sorted(Path(name).suffix for name in files) == [".html", ".ipynb"]
    executed = await alice(
        "GET", f"/runs/{run['id']}/files/{next(f for f in files if f.endswith('.ipynb'))}"
    )
    assert executed.status == 200
    outputs = json.dumps(
        json.loads(executed.body) if isinstance(executed.body, str) else executed.body
    )
    assert "Report: 5 rows for ACME" in outputs
    (mail,) = await smtp.wait_async(1)
    assert mail["Subject"] == "Daily report: ACME"
    assert mail.envelope_to == ["boss@example.com"]
    attachments = sorted(part.get_filename() for part in mail.iter_attachments())
    assert attachments == ["report.html", "report.ipynb"]
    saved = sorted(path.name for path in (root / "out").iterdir())
    assert saved == ["report-ACME.html", "report-ACME.ipynb"]


async def test_series_of_three_sets_gives_three_notebooks_and_mails(api, root, smtp):
    alice = api("alice")
    customers = [
        {"customer": name, "email": f"{name.lower()}@example.com", "rows": rows}
        for name, rows in (("Ada", 1), ("Bob", 2), ("Cyd", 3))
    ]
    task = await create_task(
        alice,
        jobs=[notebook_job(formats=["ipynb"])],
        actions=[
            {"type": "email", "config": {"to": "{email}", "subject": "Report for {customer}"}}
        ],
        series={"type": "values", "config": {"values": customers}},
    )
    preview = await alice("GET", f"/tasks/{task['id']}/series/preview", params={"count": 2})
    assert preview.status == 200, preview
    assert [item["customer"] for item in preview.body["sets"]] == ["Ada", "Bob"]
    run = await start(alice, task["id"])
    assert run["status"] == "succeeded", run
    jobs = [step for step in run["steps"] if step["kind"] == "job"]
    assert [step["set_index"] for step in jobs] == [0, 1, 2]
    assert [step["set_values"]["customer"] for step in jobs] == ["Ada", "Bob", "Cyd"]
    mails = await smtp.wait_async(3)
    assert sorted((m.envelope_to[0], m["Subject"]) for m in mails) == [
        ("ada@example.com", "Report for Ada"),
        ("bob@example.com", "Report for Bob"),
        ("cyd@example.com", "Report for Cyd"),
    ]
    for mail in mails:
        (attachment,) = mail.iter_attachments()
        customer = mail["Subject"].rsplit(" ", 1)[1]
        assert f"rows for {customer}" in attachment.get_content().decode()


async def test_none_valid_action_fires_only_when_condition_is_false(api, root, smtp):
    alice = api("alice")
    task = await create_task(
        alice,
        jobs=[notebook_job(formats=["ipynb"], condition={"glued": "rows"})],
        actions=[
            {
                "type": "email",
                "when": "none_valid",
                "config": {"to": "me@example.com", "subject": "empty"},
            },
            {
                "type": "email",
                "when": "all_valid",
                "config": {"to": "me@example.com", "subject": "full"},
            },
        ],
    )
    empty = await start(alice, task["id"], rows=0)
    assert empty["status"] == "succeeded"
    actions = [step for step in empty["steps"] if step["kind"] == "action"]
    assert [step["status"] for step in actions] == ["succeeded", "skipped"]
    assert [m["Subject"] for m in await smtp.wait_async(1)] == ["empty"]
    full = await start(alice, task["id"], rows=4)
    actions = [step for step in full["steps"] if step["kind"] == "action"]
    assert [step["status"] for step in actions] == ["skipped", "succeeded"]
    assert [m["Subject"] for m in await smtp.wait_async(2)] == ["empty", "full"]


async def test_webhook_receives_run_summary(api, root, http):
    alice = api("alice")
    task = await create_task(
        alice,
        jobs=[{"type": "python", "name": "greet", "config": {"function": "tp_funcs:hello"}}],
        actions=[{"type": "webhook", "config": {"url": http.url + "/hook", "secret": "k3y"}}],
    )
    run = await start(alice, task["id"])
    assert run["status"] == "succeeded", run
    (request,) = await http.wait_async(1)
    payload = request.json()
    assert request.path == "/hook"
    assert payload["run"]["id"] == run["id"]
    assert payload["status"] == "succeeded"
    assert payload["results"][0]["value"] == "hello world"
    assert request.headers["X-Taskplanner-Signature"].startswith("sha256=")
    stored = await alice("GET", f"/tasks/{task['id']}")
    assert "secret" not in stored.body["actions"][0]["config"]


async def test_next_task_chain_with_a_loop_stops(api, root):
    alice = api("alice")
    hello = [{"type": "python", "config": {"function": "tp_funcs:hello"}}]
    first = await create_task(alice, name="first", jobs=hello)
    second = await create_task(alice, name="second", jobs=hello, enabled=False)
    for task, target in ((first, second), (second, first)):
        reply = await alice(
            "PATCH",
            f"/tasks/{task['id']}",
            {"actions": [{"type": "next_task", "config": {"task_ids": [target["id"]]}}]},
        )
        assert reply.status == 200, reply
    run = await start(alice, first["id"])
    assert run["status"] == "succeeded"
    (chained,) = await runs_of(alice, second["id"])
    chained = await wait_for_run(alice, chained["id"])
    assert chained["status"] == "succeeded"
    assert chained["chain"] == [first["id"], second["id"]]
    # The suppressed start is recorded on the task it did not start, saying why.
    skipped, done = await runs_of(alice, first["id"])
    assert done["id"] == run["id"] and skipped["status"] == "skipped"
    assert skipped["trigger"] == f"chain:{second['id']}"
    assert "already ran in the chain" in skipped["error"]
    log = (await alice("GET", f"/runs/{chained['id']}/log")).body
    assert f"task {first['id']}: start suppressed (run {skipped['id']})" in log


async def test_failing_notebook_keeps_log_and_partial_output(api, root):
    alice = api("alice")
    task = await create_task(alice, jobs=[notebook_job(path="reports/failing.ipynb")])
    run = await start(alice, task["id"])
    assert run["status"] == "failed"
    (step,) = run["steps"]
    assert step["status"] == "failed" and step["error"]
    log = (await alice("GET", f"/runs/{run['id']}/log")).body
    assert "Traceback" in log
    (partial,) = [r["value"] for r in step["results"] if r["value"].endswith(".ipynb")]
    assert step["results"][0]["valid"] is False
    download = await alice("GET", f"/runs/{run['id']}/files/{partial}")
    assert download.status == 200 and "the data file is empty" in json.dumps(download.body)


async def test_bad_component_config_is_a_400_naming_the_field(api, root):
    alice = api("alice")
    reply = await alice(
        "POST", "/tasks", {"name": "x", "jobs": [{"type": "notebook", "config": {}}]}
    )
    assert reply.status == 400 and reply.body["field"].startswith("jobs[0].config"), reply
    reply = await alice(
        "POST",
        "/tasks",
        {"name": "x", "actions": [{"type": "email", "config": {"to": 5}}]},
    )
    assert reply.status == 400 and reply.body["field"].startswith("actions[0].config"), reply
    reply = await alice(
        "POST", "/tasks", {"name": "x", "actions": [{"type": "save", "config": {"folder": "../x"}}]}
    )
    assert reply.status == 400 and reply.body["field"] == "actions[0].config.folder", reply
    assert (await alice("GET", "/tasks")).body["total"] == 0
