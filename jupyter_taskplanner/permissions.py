"""Who may do what: the one place where the planner's permissions are decided.

Authorizer resources: ``taskplanner`` (use the planner at all), ``taskplanner:admin`` (see
and change every user's tasks) and ``taskplanner:shell`` (components that run code, where
the server runs jobs of several users under its own OS account; ``command`` jobs always).
They are asked of Jupyter Server's authorizer, so a deployment decides through its own
authorizer (JupyterHub scopes, a custom class, ...).  As a JupyterHub service the planner's
authorizer is ``hub.auth.HubAuthorizer``, which maps each resource to the hub custom scope
in ``HUB_SCOPES``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from .errors import PermissionDenied, excerpt

if TYPE_CHECKING:
    from jupyter_server.base.handlers import JupyterHandler

    from .components.base import Component

log = logging.getLogger(__name__)
USE = "taskplanner"
ADMIN = "taskplanner:admin"
SHELL = "taskplanner:shell"
ALL_OWNERS = "*"
HUB_SCOPES = {
    USE: "custom:taskplanner:use",
    ADMIN: "custom:taskplanner:admin",
    SHELL: "custom:taskplanner:shell",
}
"""The JupyterHub custom scope that grants each resource (roles and groups hand them out)."""


@runtime_checkable
class PreparesOwners(Protocol):
    """An authorizer that must look an owner up before it can answer without a request."""

    async def prepare_owner(self, owner: str) -> None:
        """Have the owner's permissions ready for ``is_authorized(None, ...)``."""


def owner_lookup(authorizer: object) -> Callable[[str], Awaitable[None]] | None:
    """``ComponentRules.prepare`` for an authorizer: its ``prepare_owner``, if it has one."""
    return authorizer.prepare_owner if isinstance(authorizer, PreparesOwners) else None


@dataclass(frozen=True)
class ComponentRules:
    """What the owner of a task must hold for its components, on this server.

    ``owner_has(owner, resource)`` asks the authorizer about an owner without a request.
    ``code_needs_shell`` is true where one server runs jobs of several users under its own
    OS account: there, code one user runs could read every other user's files, so every
    component that ``runs_code`` needs ``taskplanner:shell``.  A single-user server, and a
    deployment that runs each job as its owner, grant code to whoever may use the planner.
    ``prepare(owner)``, when given, is awaited (``ready``) on the event loop before
    ``owner_has`` is asked there, so an authorizer that looks owners up elsewhere (the
    JupyterHub API) has the answer at hand.
    """

    owner_has: Callable[[str, str], bool]
    code_needs_shell: bool
    prepare: Callable[[str], Awaitable[None]] | None = None

    async def ready(self, owner: str) -> None:
        """Let ``owner_has`` answer about ``owner`` without waiting (see ``prepare``)."""
        if self.prepare is not None:
            await self.prepare(owner)

    def check_owner(self, owner: str) -> None:
        """Refuse a run of an owner who may no longer use the planner at all."""
        if not self.owner_has(owner, USE):
            raise PermissionDenied(
                f"the task's owner {owner!r} no longer holds the {USE!r} permission, so "
                "their tasks do not run"
            )

    def needed(self, cls: type[Component]) -> list[str]:
        """The resources an owner needs to use component type ``cls``."""
        needed = [cls.permission] if cls.permission else []
        if cls.runs_code and self.code_needs_shell and SHELL not in needed:
            needed.append(SHELL)
        return needed

    def check(self, owner: str, components: Iterable[tuple[str, type[Component]]]) -> None:
        """Refuse (``PermissionDenied`` at the component's field) what ``owner`` may not use.

        ``components`` are ``(where, class)`` pairs, e.g. ``("jobs[0]", NotebookJob)``.
        """
        for where, cls in components:
            for resource in self.needed(cls):
                if not self.owner_has(owner, resource):
                    why = " (it runs code)" if resource == SHELL and cls.runs_code else ""
                    raise PermissionDenied(
                        f"{where}: {cls.kind} type {cls.type_name!r}{why} needs the "
                        f"{resource!r} permission, which the task's owner {owner!r} does not "
                        "hold",
                        field=where,
                    )


@dataclass(frozen=True)
class Access:
    """The acting user and whether they hold the admin permission."""

    user: str
    admin: bool = False

    def scope(self, owner: str | None = None) -> str | None:
        """The owner filter for a listing: own tasks, or (admins only) one owner or all."""
        if owner in (None, "", self.user):
            return self.user
        if not self.admin:
            raise PermissionDenied(
                f"listing tasks of other users needs the {ADMIN!r} permission; "
                "leave out the owner parameter to list your own"
            )
        return None if owner == ALL_OWNERS else owner

    def task_scope(self) -> str | None:
        """The owner filter for reaching one task by id (None: any owner, for admins)."""
        return None if self.admin else self.user

    def check_import_owner(self, owner: str | None) -> str:
        """The owner an imported task gets: the importer, or the stored one for admins."""
        if owner is None or owner in ("", self.user):
            return self.user
        if not self.admin:
            raise PermissionDenied(
                f"owner: this task belongs to {excerpt(owner)}; only an admin may import "
                "tasks of other users (remove the owner field to import it as your own)",
                field="owner",
            )
        return owner


async def access_for(handler: JupyterHandler, user_name: str) -> Access:
    """The ``Access`` of the request's user, asking the server's authorizer about admin.

    An authorizer may answer with an awaitable (jupyter_server allows it): it is awaited,
    never taken for a yes.
    """
    action = "read" if handler.request.method in ("GET", "HEAD") else "write"
    answer = handler.authorizer.is_authorized(handler, handler.current_user, action, ADMIN)
    admin = await answer if inspect.isawaitable(answer) else answer
    return Access(user=user_name, admin=admin is True)


def decided(answer: object, resource: str) -> bool:
    """An authorizer's answer asked outside a request (on the database thread, say).

    Only ``True`` grants.  An awaitable answer (an async authorizer) cannot be awaited there:
    it is refused, so a deployment with such an authorizer fails closed and the log says why.
    """
    if inspect.isawaitable(answer):
        if inspect.iscoroutine(answer):
            answer.close()
        log.warning(
            "the authorizer answered %s asynchronously where the planner needs an answer at "
            "once (checking a task's owner); refused",
            resource,
        )
        return False
    return answer is True
