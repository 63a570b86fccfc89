"""Who may do what: the one place where the planner's permissions are decided.

Two authorizer resources: ``taskplanner`` (use the planner at all) and ``taskplanner:admin``
(see and change every user's tasks).  Both are asked of Jupyter Server's authorizer, so a
deployment decides through its own authorizer (JupyterHub scopes, a custom class, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import PermissionDenied

USE = "taskplanner"
ADMIN = "taskplanner:admin"
ALL_OWNERS = "*"


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
        if owner in (None, "", self.user):
            return self.user
        if not self.admin:
            raise PermissionDenied(
                f"this task belongs to {owner!r}; only an admin may import tasks of other "
                "users (remove the owner field to import it as your own)",
            )
        return owner


def access_for(handler: Any, user_name: str) -> Access:
    """The ``Access`` of the request's user, asking the server's authorizer about admin."""
    action = "read" if handler.request.method in ("GET", "HEAD") else "write"
    admin = handler.authorizer.is_authorized(handler, handler.current_user, action, ADMIN)
    return Access(user=user_name, admin=bool(admin))
