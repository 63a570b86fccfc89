"""HTTP requests a task makes (webhooks, calendar feeds): never with the server's credentials.

``requests`` adds the login it finds for the host in the server account's ``~/.netrc`` (or
the file ``NETRC`` names) to every request without one of its own.  A task's URL is chosen
by its owner, so that would let any user make authenticated requests as the server's
account; these sessions never add it.  Proxy and CA bundle settings still come from the
environment.
"""

from __future__ import annotations

import requests
from requests.auth import AuthBase


class _NoLogin(AuthBase):
    """Leaves a request as it is; as the session's auth it keeps ``.netrc`` logins out."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


def session() -> requests.Session:
    """A ``requests.Session`` for a task's own URLs (use it as a context manager)."""
    made = requests.Session()
    made.auth = _NoLogin()
    return made
