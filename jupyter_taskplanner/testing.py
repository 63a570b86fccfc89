"""Identity and authorization for acting as several users against one server in tests.

Configure the server with::

    c.ServerApp.identity_provider_class = "jupyter_taskplanner.testing.TokenUsersIdentityProvider"
    c.TokenUsersIdentityProvider.user_tokens = {"alice-token": "alice", "root-token": "root"}
    c.ServerApp.authorizer_class = "jupyter_taskplanner.testing.GrantsAuthorizer"
    c.GrantsAuthorizer.grants = {
        "alice": ["taskplanner"],
        "root": ["taskplanner", "taskplanner:admin"],
    }

and send ``Authorization: token alice-token`` to act as alice.  Plugins can use the same
classes in their own tests.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.auth.identity import IdentityProvider, User
from traitlets import Dict, List, Unicode


class TokenUsersIdentityProvider(IdentityProvider):
    """Maps each of several API tokens to its own user name."""

    user_tokens = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="API token -> user name.",
    )

    async def get_user_token(self, handler: Any) -> User | None:
        token = self.get_token(handler)
        name = self.user_tokens.get(token) if token else None
        return User(username=name) if name else None

    def get_user_cookie(self, handler: Any) -> User | None:
        # Each request names its user by token; no cookie may carry one user into another.
        return None

    def set_login_cookie(self, handler: Any, user: User) -> None:
        """No cookies: every request is authenticated by its token."""


class GrantsAuthorizer(Authorizer):
    """Grants planner resources per user name; everything else is allowed."""

    grants = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="user name -> planner resources granted (taskplanner, taskplanner:admin, ...).",
    )

    def is_authorized(self, handler: Any, user: User, action: str, resource: str) -> bool:
        if not resource.startswith("taskplanner"):
            return True
        return resource in self.grants.get(user.username, [])
