"""The planner as an external hub service, the shape of the Kubernetes Helm chart's values in
docs/jupyterhub.md: the hub knows only its URL and token, and the service is started on its
own with the variables the docs list."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hub_support import SERVICE, Hub, missing, skip_or_fail, start_hub, task_json, unique

BOB, DAVE = unique("bob"), unique("dave")


@pytest.fixture(scope="module")
def hub() -> Iterator[Hub]:
    if missing():
        skip_or_fail(str(missing()))
    hub = start_hub(executor="local", users=[BOB], outsiders=[DAVE], external=True)
    try:
        yield hub
    finally:
        hub.stop()


def test_an_external_service_serves_the_hubs_users(hub: Hub) -> None:
    # The hub did not start it: the test did.
    info = hub.hub_api("GET", f"services/{SERVICE}").json()
    assert not info.get("command") and not info.get("pid"), info
    assert hub.service is not None and hub.service.poll() is None

    task = task_json(hub.planner(BOB, "POST", "/tasks", {"name": "made on the external service"}))
    assert task["owner"] == BOB
    listed = task_json(hub.planner(BOB, "GET", "/tasks"))["tasks"]
    assert [task["name"] for task in listed] == ["made on the external service"]
    refused = hub.planner(DAVE, "GET", "/tasks")
    assert refused.status_code == 403
    assert "custom:taskplanner:use" in refused.json()["message"]


def test_a_browser_signs_in_to_the_external_service(hub: Hub) -> None:
    """The OAuth client the documented variables name is the one the hub registered."""
    from lab_support import chromium, require_browser_setup

    require_browser_setup()
    task_json(hub.planner(BOB, "POST", "/tasks", {"name": "seen in a browser"}))
    with chromium() as browser:
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"{hub.url}services/{SERVICE}/login")  # the hub's login page first
        page.fill("#username_input", BOB)
        page.fill("#password_input", "any")
        page.click("#login_submit")
        page.wait_for_url(f"{hub.url}services/{SERVICE}/taskplanner/api/tasks*")
        listed = json.loads(page.inner_text("body"))["tasks"]
        assert "seen in a browser" in {task["name"] for task in listed}
        assert {task["owner"] for task in listed} == {BOB}
