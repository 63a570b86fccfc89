"""Authorization of the planner API: who gets which answer on which route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from jupyter_taskplanner.testing import create_task, wait_for_run


class TestWithoutUnauthenticatedAccess:
    """``ServerApp.allow_unauthenticated_access = False`` (a hardened server): jupyter_server
    then refuses unknown users itself, before the planner's handlers run."""

    @pytest.fixture
    def jp_server_config(self, taskplanner_server_config: dict[str, Any]) -> dict[str, Any]:
        config = dict(taskplanner_server_config)
        config["ServerApp"] = {**config["ServerApp"], "allow_unauthenticated_access": False}
        return config

    async def test_http_triggers_still_need_no_login_and_the_rest_answers_401(self, api, jp_fetch):
        alice = api("alice")
        token = "hardened-0123456789abcdef"
        task = await create_task(alice, triggers=[{"type": "http", "config": {"token": token}}])
        response = await jp_fetch(
            f"taskplanner/api/tasks/{task['id']}/trigger",
            token,
            method="POST",
            body="",
            headers={"Authorization": ""},
        )
        assert response.code == 202, response
        await wait_for_run(alice, json.loads(response.body)["run_id"])
        for method, path in (("GET", "/tasks"), ("POST", "/tasks"), ("GET", "/openapi.json")):
            reply = await api(None)(method, path, {"name": "x"} if method == "POST" else None)
            assert reply.status == 401, (method, path, reply)
            assert reply.headers["WWW-Authenticate"].startswith("token"), reply
