"""The Task Planner inside JupyterLab: a real ``jupyter lab`` on 127.0.0.1 with the built
extension, driven in a real headless Chromium (Debian's, through Playwright).

Screenshots go to ``build/test-artifacts/lab/`` (``TASKPLANNER_ARTIFACTS`` to change it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from lab_support import LabServer, axe_violations, chromium, require_browser_setup, screenshot

pytestmark = pytest.mark.timeout(300)

CELLS = 6
"""Cells of the slow notebook after its parameters cell: each sleeps, so progress shows."""
VIEWER_TIMEZONE = "Asia/Tokyo"
"""The browser's timezone (the server's is UTC): next starts show in both."""


def write_slow_notebook(path: Path) -> None:
    """A notebook with a parameters cell and ``CELLS`` cells of 0.8 s each."""
    cells = [
        nbformat.v4.new_code_cell('region = "north"\nrepeat = 3', metadata={"tags": ["parameters"]})
    ]
    cells += [
        nbformat.v4.new_code_cell(f"import time\ntime.sleep(0.8)\nprint('cell {i}', region)")
        for i in range(CELLS)
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


def write_widget_notebook(path: Path) -> None:
    """A notebook showing an ipywidgets slider (the notebook panels are ipywidgets)."""
    cell = nbformat.v4.new_code_cell(
        "import ipywidgets\nipywidgets.IntSlider(value=3, description='planner')"
    )
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(notebook, path)


@pytest.fixture
def jp_asyncio_loop() -> None:
    """Not here: pytest-jupyter's (autouse) in-process event loop would take Playwright's
    running one; this module's server and browser are processes of their own."""


@pytest.fixture
def jp_server_cleanup() -> None:
    """Not here: there is no in-process server to clean up (see ``jp_asyncio_loop``)."""


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    """One ``jupyter lab`` for the module, serving a root with the slow notebook."""
    require_browser_setup()
    root = tmp_path_factory.mktemp("root")
    write_slow_notebook(root / "slow.ipynb")
    write_widget_notebook(root / "widgets.ipynb")
    server = LabServer(root, tmp_path_factory.mktemp("state"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser(lab: LabServer) -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser: Any, lab: LabServer) -> Iterator[Any]:
    """A fresh tab with JupyterLab loaded; page errors fail the test."""
    context = browser.new_context(
        viewport={"width": 1366, "height": 900}, locale="en-US", timezone_id=VIEWER_TIMEZONE
    )
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(lab.lab_url())
    page.wait_for_selector(".jp-LauncherCard", timeout=60_000)
    yield page
    context.close()
    assert not errors, errors


def open_planner(page: Any) -> Any:
    """Open the task list from the launcher; its view."""
    page.click(".jp-LauncherCard:has-text('Task Planner')")
    view = page.locator(".jp-TaskPlanner-list")
    view.wait_for()
    return view


def new_task(page: Any) -> Any:
    """Open an empty task editor from the task list; its view."""
    open_planner(page).get_by_role("button", name="New task").click()
    editor = page.locator(".jp-TaskPlanner-editor:visible")
    editor.locator("[data-form=task]").wait_for()
    return editor


def add_entry(editor: Any, kind: str, type_name: str) -> Any:
    """Add a component of ``type_name`` to the editor's ``kind`` section; its fieldset."""
    article = "an" if kind == "action" else "a"
    editor.get_by_label(f"Add {article} {kind}").select_option(type_name)
    section = editor.locator(f"[data-section={kind}s]")
    count = section.locator("fieldset").count()
    section.get_by_role("button", name="Add", exact=True).click()
    entry = section.locator("fieldset").nth(count)
    entry.wait_for()
    return entry


def test_planner_opens_from_launcher_palette_and_sidebar(page: Any) -> None:
    from playwright.sync_api import expect

    view = open_planner(page)
    assert view.get_by_role("heading", name="Tasks").is_visible()
    screenshot(page, "lab-task-list-empty")
    # The command palette, from the keyboard.
    page.keyboard.press("Control+Shift+C")
    page.keyboard.type("New Task")
    page.keyboard.press("Enter")
    page.locator(".jp-TaskPlanner-editor:visible [data-form=task]").wait_for()
    # The sidebar panel.
    page.click(".jp-SideBar [title='Task Planner']")
    sidebar = page.locator("#jupyter-taskplanner-sidebar")
    sidebar.get_by_role("heading", name="Running now").wait_for()
    screenshot(page, "lab-sidebar")
    # Its "New task" opens another editor, as the task list's does.
    editors = page.locator(".jp-TaskPlanner-editor [data-form=task]")
    opened = editors.count()
    sidebar.get_by_role("button", name="New task").click()
    expect(editors).to_have_count(opened + 1)
    # The UI preferences are in the Settings Editor.
    page.keyboard.press("Control+Shift+C")
    page.keyboard.type("Settings Editor")
    page.keyboard.press("Enter")
    page.locator(".jp-SettingsPanel, .jp-SettingsEditor").first.get_by_text(
        "Task Planner", exact=True
    ).first.wait_for()


def test_create_task_bad_cron_then_run_with_live_progress(page: Any, lab: LabServer) -> None:
    editor = new_task(page)
    editor.get_by_label("Name").first.fill("Slow report")
    cron = add_entry(editor, "trigger", "cron")
    expression = cron.get_by_label("Cron expression", exact=True)
    expression.fill("61 7 * * *")
    job = add_entry(editor, "job", "notebook")
    job.get_by_label("Notebook", exact=True).fill("slow.ipynb")
    editor.get_by_role("button", name="Save").click()

    # The server refuses the minute 61, and the editor shows it at the expression field.
    error = cron.locator(".validationErrors").filter(has_text="minute")
    error.wait_for()
    assert "61" in error.inner_text()
    assert editor.get_by_role("alert").first.is_visible()
    cron.scroll_into_view_if_needed()
    screenshot(page, "lab-editor-bad-cron")

    expression.fill("0 7 * * *")
    editor.get_by_role("button", name="Save").click()
    detail = page.locator(".jp-TaskPlanner-detail:visible")
    detail.get_by_role("heading", name="Slow report").wait_for()
    # Next starts in the server's time and in the viewer's, whose zone differs.
    next_starts = detail.locator(".jp-TaskPlanner-next")
    assert next_starts.get_by_role("columnheader", name="Server time (UTC)").is_visible()
    assert next_starts.get_by_role(
        "columnheader", name=f"Your time ({VIEWER_TIMEZONE})"
    ).is_visible()
    first = next_starts.locator("tbody tr").first.locator("td")
    assert first.nth(0).inner_text().endswith("7:00 AM"), first.all_inner_texts()
    assert first.nth(1).inner_text().endswith("4:00 PM"), first.all_inner_texts()
    screenshot(page, "lab-task-page")

    detail.get_by_role("button", name="Run now").click()
    # Live cell-by-cell progress of the running notebook, from the planner's event stream
    # (Jupyter's event bus gets no run events here: server_events is off).
    step = detail.locator(".jp-TaskPlanner-step[data-status=running]")
    progress = step.locator(".jp-TaskPlanner-progress").filter(has_text=re.compile(r"cell \d"))
    progress.wait_for(timeout=60_000)
    seen = progress.inner_text()
    screenshot(page, "lab-run-progress")
    run = detail.locator(".jp-TaskPlanner-run[data-status=succeeded]")
    run.wait_for(timeout=90_000)
    assert re.search(r"cell \d+ of \d+", seen), seen
    assert "cell 5 north" in detail.locator(".jp-TaskPlanner-log").inner_text()
    # The chart of recent runs has the run's bar, colored as succeeded.
    detail.locator(".jp-TaskPlanner-chart rect.jp-mod-succeeded").wait_for()
    screenshot(page, "lab-run-succeeded")

    # The executed notebook opens as a notebook in Lab, the HTML report in a tab.
    run.get_by_role("button", name="Open slow.ipynb in JupyterLab").click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    notebook.locator(".jp-OutputArea-output").filter(has_text="cell 5 north").wait_for()
    current_tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
    assert "slow.ipynb" in current_tab.first.inner_text()
    screenshot(page, "lab-executed-notebook")
    page.locator("#jp-main-dock-panel .lm-TabBar-tab:has-text('Slow report')").click()
    page.locator(".jp-TaskPlanner-run:visible").get_by_role(
        "button", name="Open slow.html in JupyterLab"
    ).click()
    page.locator(".jp-HTMLViewer:visible, iframe[title*='slow.html']").first.wait_for()


def test_schedule_this_notebook_from_the_file_browser(page: Any) -> None:
    page.locator(".jp-DirListing-item[data-file-type=notebook]:has-text('slow.ipynb')").click(
        button="right"
    )
    page.locator(".lm-Menu-item:has-text('Schedule this notebook')").click()
    editor = page.locator(".jp-TaskPlanner-editor:visible")
    job = editor.locator("[data-section=jobs] fieldset").first
    job.wait_for()
    assert job.get_attribute("data-type") == "notebook"
    assert job.get_by_label("Notebook", exact=True).input_value() == "slow.ipynb"
    # The parameters cell's names, with their defaults.
    keys = job.locator("[data-form] input.jp-mod-styled")
    names = {keys.nth(i).input_value() for i in range(keys.count())}
    assert {"region", "repeat"} <= names, names
    assert editor.get_by_label("Name").first.input_value() == "slow"
    screenshot(page, "lab-schedule-notebook")
    # The same command sits in the notebook's toolbar.
    page.locator(".jp-DirListing-item:has-text('slow.ipynb')").dblclick()
    button = page.locator(".jp-NotebookPanel:visible [data-jp-item-name=taskplanner-schedule]")
    button.click()
    editor = page.locator(".jp-TaskPlanner-editor:visible")
    job = editor.locator("[data-section=jobs] fieldset").first
    job.wait_for()
    assert job.get_by_label("Notebook", exact=True).input_value() == "slow.ipynb"


def test_cancel_a_running_run(page: Any, lab: LabServer) -> None:
    task = lab.call(
        "POST",
        "/tasks",
        {"name": "Cancelled", "jobs": [{"type": "notebook", "config": {"path": "slow.ipynb"}}]},
    )
    open_planner(page).get_by_role("button", name="Cancelled", exact=True).click()
    detail = page.locator(".jp-TaskPlanner-detail:visible")
    detail.get_by_role("button", name="Run now").click()
    detail.locator(".jp-TaskPlanner-step[data-status=running]").wait_for(timeout=60_000)
    detail.get_by_role("button", name="Cancel run").click()
    detail.locator(".jp-TaskPlanner-run[data-status=cancelled]").wait_for(timeout=60_000)
    assert not detail.get_by_role("button", name="Cancel run").count()
    [run] = lab.call("GET", f"/tasks/{task['id']}/runs")["runs"]
    assert run["status"] == "cancelled", run
    # Why it stopped reads as a reason, not in the error style of a failure.
    reason = detail.locator(".jp-TaskPlanner-run > .jp-TaskPlanner-reason")
    reason.wait_for()
    assert reason.inner_text() == "cancelled by alice", reason.inner_text()
    assert not detail.locator(".jp-TaskPlanner-run .jp-TaskPlanner-error").count()
    # The chart shows the outcome.
    detail.locator(".jp-TaskPlanner-chart rect.jp-mod-cancelled").wait_for()
    screenshot(page, "lab-run-cancelled")


@pytest.fixture
def listed(lab: LabServer) -> Iterator[None]:
    """21 tasks "Listed 00".."Listed 20" (the even ones enabled) and bob's "Listed for bob",
    deleted afterwards (the other tests' tasks stay on the list's first page)."""
    made = [
        lab.call("POST", "/tasks", {"name": f"Listed {i:02d}", "enabled": i % 2 == 0})
        for i in range(21)
    ]
    # An admin (the single user of a plain Lab is one) may create a task for someone else.
    body = {"tasks": [{"name": "Listed for bob", "owner": "bob"}]}
    made += lab.call("POST", "/tasks/import", body)["tasks"]
    yield
    for task in made:
        lab.call("DELETE", f"/tasks/{task['id']}")


@pytest.mark.usefixtures("listed")
def test_the_task_list_filters_sorts_pages_and_shows_owners(page: Any) -> None:
    from playwright.sync_api import expect

    view = open_planner(page)
    pager = view.locator(".jp-TaskPlanner-pager")
    rows = view.locator("tbody tr[data-task-id]")
    names = view.locator("tbody tr[data-task-id] td:first-child")

    view.get_by_role("searchbox", name="Search tasks by name").fill("Listed")
    pager.filter(has_text="Page 1 of 2 (21 tasks)").wait_for()
    expect(rows).to_have_count(20)
    view.get_by_role("button", name="Next", exact=True).click()
    pager.filter(has_text="Page 2 of 2").wait_for()
    expect(names).to_have_text(["Listed 20"])

    view.get_by_label("Show tasks").select_option("disabled")
    pager.filter(has_text="Page 1 of 1 (10 tasks)").wait_for()
    expect(names).to_have_text([f"Listed {i:02d}" for i in range(1, 21, 2)])
    name_header = view.get_by_role("columnheader", name="Name")
    for order in ("ascending", "descending"):
        name_header.get_by_role("button").click()
        page.wait_for_function(
            "order => document.querySelector('.jp-TaskPlanner-list th[aria-sort=' + order + ']')",
            arg=order,
        )
    expect(names).to_have_text([f"Listed {i:02d}" for i in range(19, 0, -2)])

    # The owner column, and every owner's tasks for an admin.
    view.get_by_label("Show tasks").select_option("all")
    view.get_by_label("Every owner's tasks").check()
    view.get_by_role("searchbox", name="Search tasks by name").fill("Listed for")
    row = rows.filter(has_text="Listed for bob")
    row.wait_for()
    owner_column = view.get_by_role("columnheader").all_inner_texts().index("Owner")
    assert row.locator("td").nth(owner_column).inner_text() == "bob"
    view.get_by_role("searchbox", name="Search tasks by name").fill("Listed")
    pager.filter(has_text="(22 tasks)").wait_for()
    screenshot(page, "lab-task-list")


def test_a_plugin_component_gets_its_form(page: Any) -> None:
    """The sample plugin's wordcount job: no frontend code, a form from its schema."""
    editor = new_task(page)
    job = add_entry(editor, "job", "wordcount")
    assert "Count words" in job.locator("legend").first.inner_text()
    assert (
        job.get_by_label("File pattern", exact=True).input_value() == "*.txt"
    )  # the schema's default
    assert job.get_by_label("Folder", exact=True).is_visible()
    job.scroll_into_view_if_needed()
    screenshot(page, "lab-plugin-form")


def test_ipywidgets_render_in_this_lab(page: Any) -> None:
    """The planner's notebook panels are ipywidgets: this Lab has their manager
    (jupyterlab_widgets, the [lab] extra) and renders them."""
    page.locator(".jp-DirListing-item:has-text('widgets.ipynb')").dblclick()
    notebook = page.locator(".jp-NotebookPanel:visible")
    # Run only once the kernel is connected and idle: before, Shift+Enter only moves on.
    page.locator("#jp-main-statusbar").filter(has_text=re.compile(r"\| Idle")).wait_for(
        timeout=90_000
    )
    notebook.locator(".jp-Cell .jp-InputArea-editor").first.click()
    page.keyboard.press("Shift+Enter")
    notebook.locator(".widget-slider").filter(has_text="planner").wait_for(timeout=90_000)


def wait_for_run(lab: LabServer, run_id: int, within: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        run: dict[str, Any] = lab.call("GET", f"/runs/{run_id}")
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} did not end")


def test_accessibility_of_the_main_views(page: Any, lab: LabServer) -> None:
    """axe-core finds no serious or critical violation in the list, editor and task page."""
    task = lab.call(
        "POST",
        "/tasks",
        {"name": "Checked", "jobs": [{"type": "notebook", "config": {"path": "slow.ipynb"}}]},
    )
    wait_for_run(lab, lab.call("POST", f"/tasks/{task['id']}/run")["id"])
    view = open_planner(page)
    view.get_by_role("button", name="Checked", exact=True).wait_for()
    found = {"list": axe_violations(page, ".jp-TaskPlanner-list")}
    # The row's enabled switch disables the task (and back).
    switch = view.get_by_role("switch", name="Enabled: Checked")
    switch.click()
    page.wait_for_function(
        "() => !document.querySelector('[role=switch][aria-label=\"Enabled: Checked\"]').checked"
    )
    assert lab.call("GET", f"/tasks/{task['id']}")["enabled"] is False
    switch.click()
    # Keyboard: focus the task's link and open it with Enter.
    view.get_by_role("button", name="Checked", exact=True).focus()
    page.keyboard.press("Enter")
    detail = page.locator(".jp-TaskPlanner-detail:visible")
    detail.locator(".jp-TaskPlanner-run[data-status=succeeded]").wait_for()
    found["task page"] = axe_violations(page, ".jp-TaskPlanner-detail")
    detail.get_by_role("button", name="Edit").click()
    editor = page.locator(".jp-TaskPlanner-editor:visible")
    editor.locator("[data-section=jobs] fieldset").first.wait_for()
    add_entry(editor, "trigger", "cron")
    add_entry(editor, "action", "email")
    found["editor"] = axe_violations(page, ".jp-TaskPlanner-editor")
    page.click(".jp-SideBar [title='Task Planner']")
    page.locator("#jupyter-taskplanner-sidebar").get_by_role("heading", name="Tasks").wait_for()
    found["sidebar"] = axe_violations(page, "#jupyter-taskplanner-sidebar")
    assert not any(found.values()), found


def luminance(color: str) -> float:
    """The relative lightness 0..1 of a CSS ``rgb(r, g, b)`` color."""
    r, g, b = (int(part) for part in color[color.index("(") + 1 : color.index(")")].split(",")[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_dark_theme(page: Any) -> None:
    view = open_planner(page)
    light = view.evaluate(
        "node => getComputedStyle(node.closest('.jp-TaskPlanner')).backgroundColor"
    )
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-item:has-text('Theme')").first.hover()
    page.get_by_role("menuitem", name="JupyterLab Dark", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'false'")
    view.get_by_role("heading", name="Tasks").wait_for()
    dark = view.evaluate(
        "node => getComputedStyle(node.closest('.jp-TaskPlanner')).backgroundColor"
    )
    assert luminance(light) > 0.8 > 0.3 > luminance(dark), (light, dark)
    screenshot(page, "lab-dark-theme")
    # Back to the light theme for whatever runs next on this server.
    page.get_by_role("menuitem", name="Settings").click()
    page.locator(".lm-Menu-item:has-text('Theme')").first.hover()
    page.get_by_role("menuitem", name="JupyterLab Light", exact=True).click()
    page.wait_for_function("document.body.dataset.jpThemeLight === 'true'")


def test_sorting_the_task_list_orders_all_tasks_not_the_page(page: Any, lab: LabServer) -> None:
    """25 tasks created in reverse name order: by id, the first by name is on page 2, so
    a page-local sort would show "Sorted 05" first; the server's order shows "Sorted 00"."""
    from playwright.sync_api import expect

    made = [lab.call("POST", "/tasks", {"name": f"Sorted {i:02d}"}) for i in range(24, -1, -1)]
    try:
        view = open_planner(page)
        pager = view.locator(".jp-TaskPlanner-pager")
        names = view.locator("tbody tr[data-task-id] td:first-child")
        view.get_by_role("searchbox", name="Search tasks by name").fill("Sorted")
        pager.filter(has_text="Page 1 of 2 (25 tasks)").wait_for()
        expect(names.first).to_have_text("Sorted 24")  # by id: the first created
        header = view.get_by_role("columnheader", name="Name")
        header.get_by_role("button").click()
        expect(header).to_have_attribute("aria-sort", "ascending")
        expect(names).to_have_text([f"Sorted {i:02d}" for i in range(20)])
        view.get_by_role("button", name="Next", exact=True).click()
        pager.filter(has_text="Page 2 of 2").wait_for()
        expect(names).to_have_text([f"Sorted {i:02d}" for i in range(20, 25)])
        header.get_by_role("button").click()  # descending, from the first page again
        expect(header).to_have_attribute("aria-sort", "descending")
        pager.filter(has_text="Page 1 of 2").wait_for()
        expect(names).to_have_text([f"Sorted {i:02d}" for i in range(24, 4, -1)])
    finally:
        for task in made:
            lab.call("DELETE", f"/tasks/{task['id']}")
