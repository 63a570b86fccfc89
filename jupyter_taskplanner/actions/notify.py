"""The ``notify`` action: a message to chat, push and mail services through apprise.

Each destination is an apprise URL (``slack://...``, ``msteams://...``, ``matrixs://...``,
``irc://...``, ``tgram://...``, ``mailtos://...``, ``json://host/path``, ...).  The URLs hold
the services' tokens and passwords, so the field is a secret and no message names more of a
URL than its service and host: apprise's own log records of a notification are kept out of
the server log and, scrubbed, explain a failure.  apprise is imported only when a notify
action is saved or runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from .. import outbound
from ..components.base import Action, Flavor, Result, RunContext
from ..errors import InvalidConfig

if TYPE_CHECKING:
    from apprise import AppriseAsset
    from apprise.plugins.base import NotifyBase

DEFAULT_TITLE = "{task.name}"
DEFAULT_BODY = "Run {run.id} of {task.name} {run.status}."
_URL_PIECES = re.compile(r"[/?&=:@#,;+\s]+")
# A context variable, not a thread-local: apprise hands its context to any worker it uses.
_captured: contextvars.ContextVar[list[logging.LogRecord] | None] = contextvars.ContextVar(
    "taskplanner_notify_records", default=None
)


class NotifyError(RuntimeError):
    """A destination did not take the message."""


class _Diverted(logging.Filter):
    """Takes apprise's log records out of the log while this action loads or notifies.

    A logger's filter also stops propagation, so the records (which may quote a URL) reach
    no handler; apprise's records made for anyone else pass as usual.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        records = _captured.get()
        if records is None:
            return True
        records.append(record)
        return False


_DIVERTED = _Diverted()


@contextmanager
def diverted_logs() -> Iterator[list[logging.LogRecord]]:
    """The apprise log records made inside the block, kept from the log."""
    logging.getLogger("apprise").addFilter(_DIVERTED)  # once: addFilter skips a known one
    records: list[logging.LogRecord] = []
    token = _captured.set(records)
    try:
        yield records
    finally:
        _captured.reset(token)


def scrubbed(text: str, url: str) -> str:
    """``text`` without any piece of ``url`` but a dotted host name (a token, a password)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    rest = url.split("://", 1)[-1]
    pieces = {piece for piece in _URL_PIECES.split(rest) if len(piece) >= 4}
    pieces |= {unquote(piece) for piece in pieces}
    for piece in sorted(pieces, key=len, reverse=True):
        if piece.lower() == host and "." in host:
            continue
        text = re.sub(re.escape(piece), "****", text, flags=re.IGNORECASE)
    return text


@functools.cache
def _import_imghdr_quietly() -> None:
    """Import the standard ``imghdr`` module with its deprecation warning silenced.

    apprise's e-mail plugin imports it (for PGPy) when apprise loads its plugins; it is
    deprecated since Python 3.11 and gone in 3.13, where apprise puts a stand-in of its own.
    Under ``-W error`` (the test suite) the warning would make every notification fail.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with contextlib.suppress(ImportError):
            import imghdr  # noqa: F401


def _schemes() -> dict[str, str]:
    """The URL schemes apprise knows, each with its service's name."""
    import apprise

    known = {}
    for service in apprise.Apprise().details()["schemas"]:
        for scheme in (*(service["protocols"] or ()), *(service["secure_protocols"] or ())):
            known[scheme.lower()] = service["service_name"]
    return known


def load(url: str, number: int, asset: AppriseAsset | None = None) -> NotifyBase:
    """The apprise service of one destination URL; ``InvalidConfig`` at ``urls`` naming the
    destination by its position, never by its text."""
    _import_imghdr_quietly()
    import apprise

    with diverted_logs():
        service = apprise.Apprise.instantiate(url, asset=asset)
    if service is not None:
        return service
    what = f"urls: destination {number}"
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme:
        problem = "is not a URL; write service://..., e.g. slack://TokenA/TokenB/TokenC"
    elif scheme in ("http", "https"):
        problem = (
            "is not a web address apprise recognizes as a service's own (such as a Slack or "
            "Teams webhook address); use the service's scheme, or json:// for a plain "
            "HTTP receiver"
        )
    elif scheme not in (known := _schemes()):
        problem = f"uses {scheme}://, which is not a service apprise knows"
    else:
        problem = (
            f"is not a valid {known[scheme]} URL: apprise could not read its host, tokens or "
            "options"
        )
    raise InvalidConfig(f"{what} {problem} (see the apprise wiki for the format)", field="urls")


class NotifyAction(Action):
    """Send a message, with placeholders, to every destination; optionally with result files."""

    type_name: ClassVar[str] = "notify"
    title: ClassVar[str] = "Send a notification"
    description: ClassVar[str] = (
        "Send a message to Slack, Microsoft Teams, Matrix, IRC, Telegram, Discord, e-mail "
        "and the many other services apprise supports. Title and message may use "
        "placeholders; the destination URLs are kept secret."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text", "none"})
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["urls"],
        "properties": {
            "urls": {
                "x-path": "url",
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "minLength": 1},
                "writeOnly": True,
                "title": "Destinations",
                "description": "apprise URLs, one per destination, e.g. "
                "slack://TokenA/TokenB/TokenC/#channel or msteams://... They hold the "
                "services' tokens, so the API never returns them; placeholders are filled.",
            },
            "title": {
                "type": "string",
                "title": "Title",
                "description": "Placeholders are filled; services without titles get it as "
                "the message's first line.",
                "default": DEFAULT_TITLE,
            },
            "body": {
                "type": "string",
                "minLength": 1,
                "title": "Message",
                "description": "Plain text; placeholders are filled.",
                "default": DEFAULT_BODY,
            },
            "attach_results": {
                "type": "boolean",
                "title": "Attach result files",
                "description": "Send the file results along to the services that take "
                "attachments (e-mail, Slack, Telegram, Discord, ...); the others get the "
                "message alone.",
                "default": False,
            },
        },
    }
    example_config: ClassVar[dict[str, Any] | None] = {
        "urls": ["jsons://hooks.example.org/reports/{region}"],
        "title": "{task.name}: {region}",
        "body": "Run {run.id} {run.status}",
        "attach_results": True,
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        # A URL with placeholders can only be checked once a run has filled them.
        for number, url in enumerate(config["urls"], 1):
            if "{" not in url:
                load(url, number)

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        _import_imghdr_quietly()
        import apprise

        title = ctx.fill(self.config.get("title", DEFAULT_TITLE))
        body = ctx.fill(self.config.get("body", DEFAULT_BODY))
        files = (
            [_result_file(ctx, result.value) for result in results if result.flavor == "file"]
            if self.config.get("attach_results", False)
            else []
        )
        # In this thread, one destination after the other, so each failure is its own: no
        # apprise worker pool (service_timeout=0); each service's socket timeouts still hold.
        asset = apprise.AppriseAsset(async_mode=False, service_timeout=0)
        failures, notified = [], 0
        for number, url in enumerate(ctx.fill(self.config["urls"]), 1):
            if ctx.cancelled.is_set():
                raise NotifyError(f"cancelled before destination {number}")
            service = load(url, number, asset)
            where = f"destination {number} ({service.service_name})"
            notifier = apprise.Apprise(asset=asset)
            notifier.add(service)
            attach = None
            if files and service.attachment_support:
                attach = apprise.AppriseAttachment([str(path) for path in files])
            elif files:
                ctx.log.info("%s takes no attachments: sending the message alone", where)
            with diverted_logs() as records, outbound.task_requests():
                sent = notifier.notify(
                    body=body, title=title, body_format=apprise.NotifyFormat.TEXT, attach=attach
                )
            if sent:
                ctx.log.info("notified %s", where)
                notified += 1
                continue
            reasons = [
                scrubbed(record.getMessage(), url)
                for record in records
                if record.levelno >= logging.WARNING
            ]
            failures.append(f"{where}: {' '.join(reasons) or 'apprise reported a failure'}")
        if failures:
            others = f" ({notified} other destination(s) notified)" if notified else ""
            raise NotifyError("could not notify " + "; ".join(failures) + others)


def _result_file(ctx: RunContext, relative: str | None) -> Path:
    path = ctx.output_dir / (relative or "")
    if not relative or not path.is_file():
        raise FileNotFoundError(f"result file {relative!r} is missing from {ctx.output_dir}")
    return path
