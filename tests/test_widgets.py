"""The widget panels driven as a user would (values set, buttons clicked) against a real
server: what the server stored and what the panels show."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import ipywidgets as w

from jupyter_taskplanner.client import Cron, Python, Task, TaskPlanner
from jupyter_taskplanner.testing import in_thread, wait_until
from jupyter_taskplanner.widgets import Composer, Planner, RunHistory, TaskList
from jupyter_taskplanner.widgets.runs import VEGA_LITE

Client = Callable[[str], Awaitable[TaskPlanner]]


async def test_composer_saves_updates_copies_and_shows_errors_inline(
    planner_client: Client,
) -> None:
    alice = await planner_client("alice")
    composer: Composer = await in_thread(Composer, alice)
    composer.name.value = "nightly"
    cron = composer.add("trigger", "cron")
    notebook = composer.add("job", "notebook")
    # Generated from the schemas: titles, enums, defaults, required marks.
    assert cron.form.field("expression").input.description == "Cron expression *"
    assert list(cron.form.field("dialect").input.options)[1:] == [
        ("unix", "unix"),
        ("quartz", "quartz"),
    ]
    assert notebook.form.field("formats").input.options == ("ipynb", "html", "pdf")
    assert "snapshot" not in [field.name for field in notebook.form.fields]  # read-only

    cron.form.field("expression").input.value = "61 * * * *"
    notebook.form.field("path").input.value = "report.txt"
    await in_thread(composer.save.click)
    # Nothing stored; each problem at the field it names.
    assert (await in_thread(alice.tasks_page)).total == 0
    assert "minute field '61'" in cron.form.field("expression").error.value
    assert "not a .ipynb file" in notebook.form.field("path").error.value
    assert "Not saved" in composer.status.value

    cron.form.field("expression").input.value = "0 3 * * *"
    composer.editors = {**composer.editors, "job": []}
    python = composer.add("job", "python")
    python.form.field("function").input.value = "tp_funcs:hello"
    python.form.field("kwargs").input.value = '{"name": "widgets"}'
    python.named.value = "hello"
    await in_thread(composer.save.click)
    [stored] = list(await in_thread(lambda: list(alice.list_tasks())))
    assert stored["name"] == "nightly"
    assert stored["triggers"][0]["config"] == {"expression": "0 3 * * *"}
    assert stored["jobs"][0] == {
        "type": "python",
        "name": "hello",
        "version": 1,
        "config": {"function": "tp_funcs:hello", "kwargs": {"name": "widgets"}},
    }
    assert composer.task_id == stored["id"] and composer.save.description == "Update"
    assert "Task 1 nightly saved" in composer.status.value
    assert composer.next_fires.value.count("03:00:00") == 5
    assert cron.form.field("expression").error.value == ""

    composer.description.value = "changed"
    await in_thread(composer.save.click)
    assert (await in_thread(alice.get_task, stored["id"]))["description"] == "changed"
    assert "updated" in composer.status.value

    await in_thread(composer.copy.click)
    assert composer.task_id != stored["id"] and composer.name.value == "Copy of nightly"
    assert (await in_thread(alice.tasks_page)).total == 2

    composer.name.value = ""
    await in_thread(composer.save.click)
    assert "should be non-empty" in composer.name_error.value


async def test_a_plugin_component_gets_a_generated_form(planner_client: Client) -> None:
    alice = await planner_client("alice")
    composer: Composer = await in_thread(Composer, alice)
    assert "inbox" in composer.adders["trigger"].options
    composer.adders["trigger"].value = "inbox"
    await in_thread(composer.add_buttons["trigger"].click)
    [inbox] = composer.editors["trigger"]
    assert [field.name for field in inbox.form.fields] == [
        "folder",
        "pattern",
        "done_folder",
        "settle",
    ]
    inbox.form.field("folder").input.value = "incoming"
    composer.name.value = "watch"
    await in_thread(composer.save.click)
    stored = await in_thread(alice.get_task, "watch")
    assert stored["triggers"][0]["type"] == "inbox"
    assert stored["triggers"][0]["config"]["folder"] == "incoming"
    # Loading it back fills the form.
    composer.load(None)
    await in_thread(composer.load, stored["id"])
    assert composer.editors["trigger"][0].form.field("folder").input.value == "incoming"


async def test_task_list_pages_filters_switches_runs_and_deletes(
    planner_client: Client, funcs: Path
) -> None:
    alice = await planner_client("alice")
    for index in range(5):
        job = Python("tp_funcs:hello", kwargs={"name": str(index)})
        await in_thread(
            alice.create_task, Task(f"task {index}", triggers=[Cron("0 7 * * *")], jobs=[job])
        )
    tasks: TaskList = await in_thread(TaskList, alice, page_size=2)
    assert not tasks.is_admin and tasks.owner.layout.display == "none"
    assert [row.select.description for row in tasks.rows] == ["task 0", "task 1"]
    assert tasks.position.value == "page 1 of 3 (5 tasks)"
    assert "07:00:00" in tasks.rows[0].next_fire.value
    assert "never run" in tasks.rows[0].last_run.value
    # A page is one request, whatever its rows show (next start, last run).
    sent: list[str] = []
    alice._http.event_hooks["request"].append(lambda request: sent.append(request.url.path))
    await in_thread(tasks.next.click)
    assert [row.select.description for row in tasks.rows] == ["task 2", "task 3"]
    assert len(sent) == 1 and sent[0].endswith("/taskplanner/api/tasks"), sent
    alice._http.event_hooks["request"].clear()
    # Typing a filter reads the first page again.
    await in_thread(setattr, tasks.query, "value", "task 4")
    assert [row.select.description for row in tasks.rows] == ["task 4"] and tasks.page == 0

    row = tasks.rows[0]
    await in_thread(setattr, row.enabled, "value", False)
    assert (await in_thread(alice.get_task, row.task_id))["enabled"] is False
    await in_thread(row.run.click)
    assert "run 1 of task 5" in tasks.status.value
    run = await in_thread(alice.wait, 1, progress=False)
    await in_thread(tasks.refresh)
    assert "succeeded" in tasks.rows[0].last_run.value and run["status"] == "succeeded"

    await in_thread(tasks.rows[0].select.click)
    assert tasks.selected == row.task_id
    await in_thread(tasks.rows[0].delete.click)
    assert tasks.rows == [] and "deleted" in tasks.status.value

    root = await planner_client("root")
    admin: TaskList = await in_thread(TaskList, root)
    assert admin.is_admin and admin.total == 4
    assert (
        isinstance(admin.rows[0].children[1], w.HTML) and admin.rows[0].children[1].value == "alice"
    )
    await in_thread(setattr, admin.owner, "value", "bob")
    assert admin.total == 0


async def test_run_history_follows_events_and_cancels(
    planner_client: Client, funcs: Path, job: Callable[..., dict[str, Any]]
) -> None:
    alice = await planner_client("alice")
    stored = await in_thread(alice.create_task, {"name": "h", "jobs": [job("hello", name="log")]})
    first = await in_thread(alice.run, stored, progress=False)
    history: RunHistory = await in_thread(RunHistory, alice, stored["id"], live=True)
    try:
        assert history.run_id == first["id"]
        assert "succeeded" in history.steps.value and "hello log" in history.log.value
        assert history.cancel.disabled
        [output] = history.chart_output.outputs
        chart = output["data"][VEGA_LITE]
        assert [(row["run"], row["status"]) for row in chart["data"]["values"]] == [
            (first["id"], "succeeded")
        ]

        # A new run shows up from the server's events, with no refresh asked.
        await in_thread(alice.update_task, stored, {"jobs": [job("sleep", seconds=30)]})
        second = await in_thread(alice.start_run, stored)

        async def shown() -> bool:
            # The detail's own id: run_id is set before the new run's detail is read.
            detail = history.detail
            return bool(detail and detail["id"] == second["id"] and detail["steps"])

        await wait_until(shown)
        assert not history.cancel.disabled
        await in_thread(history.cancel.click)

        async def cancelled() -> bool:
            return "cancelled" in history.runs.options[0][0]

        await wait_until(cancelled)
        chart = history.chart_output.outputs[0]["data"][VEGA_LITE]
        assert [row["status"] for row in chart["data"]["values"]] == ["succeeded", "cancelled"]

        # Why it stopped is shown as a reason, not in a failure's red.
        async def reason_shown() -> bool:
            return "cancelled by alice" in history.steps.value

        await wait_until(reason_shown)
        assert "<p style='color:inherit'>cancelled by alice</p>" in history.steps.value
    finally:
        await in_thread(history.close)


async def test_planner_tabs_wire_the_panels(planner_client: Client, funcs: Path) -> None:
    alice = await planner_client("alice")
    await in_thread(alice.create_task, Task("one", jobs=[Python("tp_funcs:hello")]))
    planner: Planner = await in_thread(Planner, alice, live=False)
    assert [planner.tabs.get_title(i) for i in range(3)] == ["Tasks", "Compose", "Runs"]
    await in_thread(planner.tasks.rows[0].select.click)
    assert planner.composer.name.value == "one" and planner.tabs.selected_index == 1
    assert planner.history.task_id == planner.tasks.rows[0].task_id
    planner.composer.name.value = "renamed"
    await in_thread(planner.composer.save.click)
    # Saving refreshed the list.
    assert planner.tasks.rows[0].select.description == "renamed"
    planner.close()
