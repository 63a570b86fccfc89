"""HTTP requests a task makes (webhooks, calendar feeds, notifications): never with the
server's credentials.

``requests`` adds the login it finds for the host in the server account's ``~/.netrc`` (or
the file ``NETRC`` names) to every request without one of its own, and to every redirect.
A task's URL is chosen by its owner, so that would let any user make authenticated requests
as the server's account.  Inside ``task_requests()`` no request adds it, whoever makes the
request (the planner's own sessions, or a library such as apprise that makes its own).
Proxy and CA bundle settings still come from the environment.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import requests
import requests.sessions

_TASK_REQUEST = contextvars.ContextVar("taskplanner_task_request", default=False)
"""True while a task's requests are made (in this thread or task, and what it hands its
context to)."""


def _without_server_logins(lookup: Any) -> Any:
    """``requests``' netrc lookup, answering None for a task's requests."""

    def get_netrc_auth(url: str, raise_errors: bool = False) -> tuple[str, str] | None:
        if _TASK_REQUEST.get():
            return None
        return lookup(url, raise_errors)  # type: ignore[no-any-return]

    get_netrc_auth.taskplanner_gate = True  # type: ignore[attr-defined]
    return get_netrc_auth


@contextlib.contextmanager
def task_requests() -> Iterator[None]:
    """Inside: requests made in this context never carry the server account's netrc login."""
    # Every session looks the login up through this one name of requests.sessions (for the
    # request and for each redirect); the gate leaves requests made elsewhere as they were.
    lookup = requests.sessions.get_netrc_auth  # type: ignore[attr-defined]
    if not getattr(lookup, "taskplanner_gate", False):
        requests.sessions.get_netrc_auth = _without_server_logins(lookup)  # type: ignore[attr-defined]
    token = _TASK_REQUEST.set(True)
    try:
        yield
    finally:
        _TASK_REQUEST.reset(token)


@contextlib.contextmanager
def session() -> Iterator[requests.Session]:
    """A ``requests.Session`` for a task's own URLs, inside ``task_requests()``."""
    with task_requests(), requests.Session() as made:
        yield made
