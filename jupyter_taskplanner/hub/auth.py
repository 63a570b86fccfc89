"""Who calls the planner service, and what they may: JupyterHub identities and scopes.

The hub authenticates (``HubIdentityProvider``: an API token in the ``Authorization``
header, or the service's OAuth cookie in a browser); ``HubAuthorizer`` grants the planner's
resources by the hub custom scopes of ``permissions.HUB_SCOPES``:

- in a request, by the scopes the hub reports for the caller's token (so a token made with
  fewer scopes can do less);
- without a request (a schedule fires while its owner is away), by the owner's roles and
  the roles of their groups, looked up through the hub API with the service's own token
  and kept ``cache_seconds``; a role's scopes are those of ``role_scopes``.  An owner the
  hub cannot tell about (unknown, the hub unreachable) holds nothing: the run fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests
from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from jupyterhub.singleuser.extension import JupyterHubIdentityProvider, JupyterHubUser
from tornado import web
from traitlets import Bool, Dict, Float, List, Unicode, default

from ..errors import PermissionDenied
from ..permissions import HUB_SCOPES, USE

if TYPE_CHECKING:
    from jupyter_server.auth.identity import User

ROLES_VARIABLE = "TASKPLANNER_HUB_ROLES"
"""The environment variable ``taskplanner_service`` fills with the planner scopes of each
hub role (JSON ``{role: [scope, ...]}``), the default of ``HubAuthorizer.role_scopes``."""


class HubIdentityProvider(JupyterHubIdentityProvider):  # type: ignore[misc]
    """The hub's user behind a request: an API token, or the OAuth cookie of this service.

    Unlike a user's own server, the service lets every hub user in as themselves and leaves
    the permissions to ``HubAuthorizer``, so a user without the planner's scope is told which
    scope is missing (403) instead of being taken for a stranger.  Hub services calling with
    their own tokens are not users of the planner.
    """

    def get_handlers(self) -> list[tuple[str, object]]:
        """The hub's OAuth callback and logout, and ``/login`` for browsers."""
        handlers: list[tuple[str, object]] = super().get_handlers()
        return [*handlers, ("/login", HubLoginHandler)]

    async def get_user(self, handler: JupyterHandler) -> JupyterHubUser | None:
        # Asked several times per request: the hub's answer is kept on the handler (the
        # attribute jupyterhub's own provider uses).
        if hasattr(handler, "_jupyterhub_user"):
            found: JupyterHubUser | None = getattr(handler, "_jupyterhub_user")  # noqa: B009
            return found
        self._patch_get_login_url(handler)
        self._patch_xsrf(handler)
        model = await self.hub_auth.get_user(handler, sync=False)
        self._patch_xsrf(handler)  # again: the hub's authentication patched it anew
        user = JupyterHubUser(model) if model and model.get("kind", "user") == "user" else None
        setattr(handler, "_jupyterhub_user", user)  # noqa: B010
        return user

    def _patch_xsrf(self, handler: JupyterHandler) -> None:
        """The hub's XSRF check, asked only once the request is authenticated.

        The hub replaces Jupyter Server's check (at each authentication) with one that
        knows its tokens but not that tornado asks before authentication too, when no token
        is known yet: it would refuse a POST with a token for its missing ``_xsrf``.
        Jupyter Server's own check waits for authentication; so does this one.
        """
        super()._patch_xsrf(handler)
        for cls in type(handler).__mro__:
            check = cls.__dict__.get("check_xsrf_cookie")
            if check is None or getattr(check, "after_authentication", False):
                continue
            if (cls.__module__ or "").partition(".")[0] in ("jupyter_server", "tornado"):
                setattr(cls, "check_xsrf_cookie", _after_authentication(check))  # noqa: B010


class HubLoginHandler(JupyterHandler):
    """``GET /services/taskplanner/login?next=...``: a browser signs in to the service
    through the hub's OAuth (the hub's login page first, if needed), then goes on to
    ``next``, a page of the service (default: the API's task list).  The planner's API
    routes answer 401 instead of redirecting, as APIs do; this is where a browser starts."""

    @web.authenticated
    def get(self) -> None:
        default = url_path_join(self.base_url, "taskplanner/api/tasks")
        target = self.get_argument("next", default)
        # Only somewhere in this service: never an open redirect.
        if not target.startswith(self.base_url):
            target = default
        self.redirect(target)


class HubAuthorizer(Authorizer):
    """The planner's resources (``taskplanner``, ``taskplanner:admin``,
    ``taskplanner:shell``) by hub custom scopes; everything else of Jupyter Server (contents,
    kernels, events of other users' runs) is refused: the service serves the planner only.
    """

    hub_admins_are_admins = Bool(
        True,
        config=True,
        help="""Hub admins hold every planner permission (use, admin, shell) whatever their
        roles. Off: they need the custom scopes like everyone else.""",
    )

    role_scopes = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="""The scopes of each hub role, as in jupyterhub_config.py's
        c.JupyterHub.load_roles ({role name: [scope, ...]}; only the planner's custom scopes
        matter). Used to decide about an owner who is not making a request (a schedule that
        fires while they are away), from the roles the hub API lists for them and their
        groups. Default: the TASKPLANNER_HUB_ROLES environment variable (JSON), which
        jupyter_taskplanner.hub.config.taskplanner_service fills in the hub's config.""",
    )

    @default("role_scopes")
    def _default_role_scopes(self) -> dict[str, list[str]]:
        raw = os.environ.get(ROLES_VARIABLE)
        if not raw:
            return {}
        roles: dict[str, list[str]] = json.loads(raw)
        return roles

    cache_seconds = Float(
        60.0,
        config=True,
        help="""Seconds an owner's permissions looked up through the hub API are kept (a
        role taken away counts after at most this long).""",
    )

    lookup_timeout = Float(
        10.0, config=True, help="Seconds one hub API request about an owner may take."
    )

    hub_api_url = Unicode(
        config=True,
        help="The hub's REST API. Default: JUPYTERHUB_API_URL, set by the hub for a service.",
    )

    @default("hub_api_url")
    def _default_hub_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._owners: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def is_authorized(
        self, handler: JupyterHandler | None, user: User, action: str, resource: str
    ) -> bool:
        """Whether ``user`` may ``action`` on ``resource``; ``handler`` None: ask about an
        owner outside a request (``owner_has``).

        A refused use of the planner in one of its own handlers raises ``PermissionDenied``
        naming the missing scope, so the 403 tells the user what to ask for.
        """
        if resource not in HUB_SCOPES:
            return False
        if handler is None:
            return self.owner_has(user.username, resource)
        model: dict[str, Any] = getattr(user, "hub_user", None) or {}
        scope = HUB_SCOPES[resource]
        allowed = scope in model.get("scopes", ()) or bool(
            self.hub_admins_are_admins and model.get("admin")
        )
        if not allowed and resource == USE and _is_planner_handler(handler):
            raise PermissionDenied(
                f"{user.username} may not use the task planner: that needs the JupyterHub "
                f"scope {scope!r}, which this request's token does not hold; ask a hub admin "
                "for a role that grants it (a token made with fewer scopes needs a new one)"
            )
        return allowed

    # -- owners without a request -------------------------------------------------------

    def owner_has(self, owner: str, resource: str) -> bool:
        """Whether ``owner`` holds ``resource`` by their roles and groups on the hub.

        On the event loop only a known answer counts (``prepare_owner`` looks it up
        beforehand); elsewhere (the database thread) a missing one is looked up at once.
        """
        held = self._known(owner)
        if held is None:
            if _on_event_loop():
                self.log.warning(
                    "the permissions of %s were not looked up before they were asked; refused",
                    owner,
                )
                return False
            held = self._look_up(owner)
        return resource in held

    async def prepare_owner(self, owner: str) -> None:
        """Look ``owner`` up through the hub API (off the event loop) unless known."""
        if self._known(owner) is None:
            await asyncio.to_thread(self._look_up, owner)

    def forget(self, owner: str | None = None) -> None:
        """Drop what is known about ``owner`` (None: about everyone)."""
        with self._lock:
            if owner is None:
                self._owners.clear()
            else:
                self._owners.pop(owner, None)

    def _known(self, owner: str) -> frozenset[str] | None:
        with self._lock:
            entry = self._owners.get(owner)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def _look_up(self, owner: str) -> frozenset[str]:
        """The planner resources ``owner`` holds, asked of the hub (nothing if it cannot
        tell; a failed lookup is not kept, so the next question asks again)."""
        try:
            held = self._resources_of(owner)
        except (requests.RequestException, ValueError) as exc:
            self.log.warning(
                "cannot look up the hub roles of %s (%s); their runs are refused", owner, exc
            )
            return frozenset()
        with self._lock:
            self._owners[owner] = (time.monotonic() + self.cache_seconds, held)
        return held

    def _resources_of(self, owner: str) -> frozenset[str]:
        user = self._get(f"users/{quote(owner, safe='')}")
        if user is None:
            return frozenset()
        if self.hub_admins_are_admins and user.get("admin"):
            return frozenset(HUB_SCOPES)
        roles = set(user.get("roles") or ())
        for group in user.get("groups") or ():
            roles.update((self._get(f"groups/{quote(group, safe='')}") or {}).get("roles") or ())
        scopes = set(_scopes_of(roles, self.role_scopes))
        return frozenset(resource for resource, scope in HUB_SCOPES.items() if scope in scopes)

    def _get(self, path: str) -> dict[str, Any] | None:
        """A model from the hub API with the service's token; None for a 404."""
        reply = requests.get(
            f"{self.hub_api_url.rstrip('/')}/{path}",
            headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}"},
            timeout=self.lookup_timeout,
        )
        if reply.status_code == 404:
            return None
        reply.raise_for_status()
        model: dict[str, Any] = reply.json()
        return model


def _after_authentication(check: Callable[[Any], None]) -> Callable[[Any], None]:
    def check_xsrf_cookie(handler: Any) -> None:
        if hasattr(handler, "_jupyter_current_user"):
            check(handler)
        # else: asked before authentication; Jupyter Server asks again after it

    check_xsrf_cookie.after_authentication = True  # type: ignore[attr-defined]
    return check_xsrf_cookie


def _scopes_of(roles: Iterable[str], role_scopes: dict[str, list[str]]) -> Iterable[str]:
    for role in roles:
        yield from role_scopes.get(role, ())


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _is_planner_handler(handler: JupyterHandler) -> bool:
    from ..handlers import PlannerHandler

    return isinstance(handler, PlannerHandler)
