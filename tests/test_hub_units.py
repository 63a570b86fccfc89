"""The hub pieces that need no hub: scope decisions about absent owners, the hub config
lines, client-mode detection, and how the service reads what a worker of another user wrote."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
import requests
from traitlets.config import Config

from jupyter_taskplanner.executors.local import _worker_file
from jupyter_taskplanner.hub import in_user_server
from jupyter_taskplanner.hub.auth import HubAuthorizer
from jupyter_taskplanner.hub.config import taskplanner_service
from jupyter_taskplanner.permissions import ADMIN, HUB_SCOPES, SHELL, USE

USERS = {
    "alice": {"name": "alice", "admin": False, "roles": ["user", "planners"], "groups": []},
    "bob": {"name": "bob", "admin": False, "roles": ["user"], "groups": ["analysts"]},
    "carol": {"name": "carol", "admin": True, "roles": ["admin"], "groups": []},
    "dave": {"name": "dave", "admin": False, "roles": ["user"], "groups": []},
}
GROUPS = {"analysts": {"name": "analysts", "roles": ["shellers", "planners"]}}


class FakeHub(HubAuthorizer):
    """The authorizer with the hub API answered from the dicts above, counting questions."""

    down = False
    asked: list[str]

    def _get(self, path: str) -> dict[str, Any] | None:
        self.asked.append(path)
        if self.down:
            raise requests.ConnectionError("the hub is down")
        kind, _, name = path.partition("/")
        return (USERS if kind == "users" else GROUPS).get(name)


@pytest.fixture
def authorizer() -> FakeHub:
    found = FakeHub(
        role_scopes={
            "planners": [HUB_SCOPES[USE], "access:services!service=taskplanner"],
            "shellers": [HUB_SCOPES[SHELL]],
        }
    )
    found.asked = []
    return found


def test_absent_owners_hold_what_their_roles_and_groups_grant(authorizer: FakeHub) -> None:
    assert authorizer.owner_has("alice", USE)
    assert not authorizer.owner_has("alice", SHELL)
    assert authorizer.owner_has("bob", USE) and authorizer.owner_has("bob", SHELL)
    assert not authorizer.owner_has("bob", ADMIN)
    assert all(authorizer.owner_has("carol", resource) for resource in HUB_SCOPES)
    assert not authorizer.owner_has("dave", USE)
    assert not authorizer.owner_has("nobody-here", USE)
    # Known answers are kept: alice was asked about once.
    assert authorizer.asked.count("users/alice") == 1


def test_hub_admins_need_the_scopes_when_told_so(authorizer: FakeHub) -> None:
    authorizer.hub_admins_are_admins = False
    assert not authorizer.owner_has("carol", USE)


def test_an_unreachable_hub_refuses_and_is_asked_again(authorizer: FakeHub) -> None:
    authorizer.down = True
    assert not authorizer.owner_has("alice", USE)
    authorizer.down = False
    assert authorizer.owner_has("alice", USE)
    assert authorizer.asked.count("users/alice") == 2


def test_on_the_event_loop_only_a_prepared_answer_counts(authorizer: FakeHub) -> None:
    async def ask() -> tuple[bool, bool]:
        unprepared = authorizer.owner_has("alice", USE)
        await authorizer.prepare_owner("alice")
        return unprepared, authorizer.owner_has("alice", USE)

    assert asyncio.run(ask()) == (False, True)


def test_requests_are_decided_by_the_tokens_scopes(authorizer: FakeHub) -> None:
    class User:
        username = "erin"
        hub_user = {"name": "erin", "admin": False, "scopes": [HUB_SCOPES[USE]]}

    handler: Any = object()  # not a planner handler: a refusal is a plain False
    assert authorizer.is_authorized(handler, User(), "read", USE)  # type: ignore[arg-type]
    assert not authorizer.is_authorized(handler, User(), "read", ADMIN)  # type: ignore[arg-type]
    assert not authorizer.is_authorized(handler, User(), "read", "contents")  # type: ignore[arg-type]


def test_the_hub_config_lines() -> None:
    c = Config()
    c.JupyterHub.load_roles = [{"name": "analysts", "scopes": [HUB_SCOPES[SHELL]]}]
    service = taskplanner_service(
        c, executor="user_server", users=["alice"], admins=["carol"], everyone=True
    )
    roles = {role["name"]: role for role in c.JupyterHub.load_roles}
    assert roles["taskplanner-user"]["users"] == ["alice"]
    assert HUB_SCOPES[ADMIN] in roles["taskplanner-admin"]["scopes"]
    assert "servers" in roles["taskplanner-service"]["scopes"]
    assert HUB_SCOPES[USE] in roles["user"]["scopes"]  # everyone
    assert set(HUB_SCOPES.values()) <= set(c.JupyterHub.custom_scopes)
    assert "access:services!service=taskplanner" in c.Spawner.server_token_scopes
    assert "access:servers!server" in c.Spawner.server_token_scopes
    assert c.Spawner.environment["TASKPLANNER_HUB_SERVICE"] == "taskplanner"
    grants = json.loads(service["environment"]["TASKPLANNER_HUB_ROLES"])
    assert grants["analysts"] == [HUB_SCOPES[SHELL]]  # a role of the deployment's own
    assert grants["user"] == [HUB_SCOPES[USE]]
    assert "--executor=user_server" in service["command"]
    assert service["oauth_no_confirm"] is True
    with pytest.raises(ValueError, match="executor"):
        taskplanner_service(Config(), executor="ssh")


def test_a_users_server_is_told_by_its_environment() -> None:
    server = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_API_URL": "u", "JUPYTERHUB_USER": "a"}
    assert in_user_server(server)
    assert not in_user_server({**server, "JUPYTERHUB_SERVICE_NAME": "taskplanner"})
    assert not in_user_server({})


def test_the_service_reads_only_regular_files_a_worker_left(tmp_path: Path) -> None:
    regular = tmp_path / "outcome.json"
    regular.write_text('{"results": []}')
    assert _worker_file(regular) == b'{"results": []}'
    link = tmp_path / "link.json"
    link.symlink_to(regular)
    assert _worker_file(link) is None
    pipe = tmp_path / "pipe.json"
    os.mkfifo(pipe)
    assert _worker_file(pipe) is None  # at once: no writer is waited for
    assert _worker_file(tmp_path / "missing.json") is None


def test_the_service_command_lists_its_options() -> None:
    from jupyter_taskplanner.hub.service import TaskPlannerService

    brief = "\n".join(TaskPlannerService().emit_help())
    assert "--db-path" in brief and "TaskPlannerApp.db_path" in brief
    assert "--executor" in brief and "jupyter taskplanner service" in brief
    every = "\n".join(TaskPlannerService().emit_help(classes=True))
    assert "--TaskPlannerService.executor=" in every
    assert "--TaskPlannerApp.executor_class=" in every
