"""The ``webhook`` action: POST a JSON summary of the run (and optionally its files) to a URL."""

from __future__ import annotations

import hashlib
import hmac
import json
import mimetypes
import re
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests

from .. import outbound
from ..components.base import Action, Flavor, Result, RunContext
from ..errors import InvalidConfig
from ..vocabulary import MAX_SECONDS

SIGNATURE_HEADER = "X-Taskplanner-Signature"
# Headers the action computes itself; a configured value would corrupt the request.
RESERVED_HEADERS = frozenset({"content-type", "content-length", SIGNATURE_HEADER.lower()})
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BUILTIN_PREFIXES = ("run.", "job.", "task.")


class WebhookError(RuntimeError):
    """The webhook could not be reached or did not answer with success."""


def check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL, naming the ``url`` field."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidConfig(
            f"url {url!r} is not an http:// or https:// address with a host", field="url"
        )


def signature(secret: str, body: bytes) -> str:
    """The ``X-Taskplanner-Signature`` value a receiver recomputes to trust the body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookAction(Action):
    """POST the run's summary as JSON, signed with a shared secret if one is set."""

    type_name: ClassVar[str] = "webhook"
    title: ClassVar[str] = "Call a webhook"
    description: ClassVar[str] = (
        "POST a JSON summary (task, run, status, series values, results) to a URL; "
        "optionally upload the result files as multipart/form-data."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text", "none"})
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["url"],
        "properties": {
            "url": {
                "x-path": "url",
                "type": "string",
                "minLength": 1,
                "title": "URL",
                "description": "An http:// or https:// address; placeholders are filled.",
            },
            "headers": {
                "type": "object",
                "title": "Extra headers",
                "description": "Sent with the request; placeholders are filled in the values.",
                "additionalProperties": {"type": "string"},
                "default": {},
            },
            "secret": {
                "type": "string",
                "writeOnly": True,
                "title": "Signing secret",
                "description": f"When set, {SIGNATURE_HEADER} carries sha256=<hex HMAC-SHA256 "
                "of the request body> so the receiver can check the sender.",
            },
            "upload_files": {
                "type": "boolean",
                "title": "Upload result files",
                "description": "Send multipart/form-data: the JSON as field 'payload' and each "
                "result file as a field 'files'.",
                "default": False,
            },
            "timeout": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_SECONDS,
                "title": "Timeout (seconds)",
                "default": 30,
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        if "{" not in config["url"]:
            check_url(config["url"])
        for name in config.get("headers", {}):
            if not _TOKEN.match(name):
                raise InvalidConfig(
                    f"headers: {name!r} is not a valid header name", field="headers"
                )
            if name.lower() in RESERVED_HEADERS:
                raise InvalidConfig(
                    f"headers: {name} is set by the action itself; remove it", field="headers"
                )

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        url = ctx.fill(self.config["url"])
        check_url(url)
        headers = ctx.fill(self.config.get("headers", {}))
        for name, value in headers.items():
            if "\n" in value or "\r" in value:
                raise InvalidConfig(
                    f"headers: the value of {name} contains a line break after filling "
                    "placeholders",
                    field="headers",
                )
        payload = json.dumps(self.payload(ctx, results), default=str).encode()
        if self.config.get("upload_files", False):
            files: list[tuple[str, tuple[str | None, bytes, str]]] = [
                ("payload", (None, payload, "application/json"))
            ]
            for result in results:
                if result.flavor == "file" and result.value:
                    path = _result_file(ctx, result.value)
                    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                    files.append(("files", (path.name, path.read_bytes(), mime)))
            request = requests.Request("POST", url, headers=headers, files=files)
        else:
            headers["Content-Type"] = "application/json"
            request = requests.Request("POST", url, headers=headers, data=payload)
        self._send(ctx, request, url)

    def _send(self, ctx: RunContext, request: requests.Request, url: str) -> None:
        # Only scheme and host are named: webhook URLs often carry a token in their path.
        parts = urlsplit(url)
        where = f"webhook at {parts.scheme}://{parts.netloc}"
        timeout = self.config.get("timeout", 30)
        try:
            with outbound.session() as session:
                prepared = session.prepare_request(request)
                if self.config.get("secret"):
                    # Signed after preparing, so the HMAC covers the exact bytes sent.
                    body = prepared.body if isinstance(prepared.body, bytes) else b""
                    prepared.headers[SIGNATURE_HEADER] = signature(self.config["secret"], body)
                # Proxy and CA bundle settings from the environment, as requests.post would.
                assert prepared.url is not None  # prepare_request always sets it
                settings = session.merge_environment_settings(prepared.url, {}, None, None, None)
                response = session.send(
                    prepared, timeout=timeout, allow_redirects=False, **settings
                )
        except requests.Timeout:
            raise WebhookError(f"{where} did not answer within {timeout} s") from None
        except requests.RequestException as exc:
            raise WebhookError(f"cannot reach {where}: {_root_cause(exc)}") from None
        if not 200 <= response.status_code < 300:
            hint = (
                " (redirects are not followed: use the final URL)"
                if 300 <= response.status_code < 400
                else ""
            )
            raise WebhookError(
                f"{where} answered {response.status_code} {response.reason}{hint}: "
                f"{response.text[:200]!r}"
            )
        ctx.log.info("%s answered %s", where, response.status_code)

    @staticmethod
    def payload(ctx: RunContext, results: list[Result]) -> dict[str, Any]:
        """The JSON document posted: task, run, status, series values and results."""
        status = ctx.placeholders.get("run.status")
        return {
            "task": {"id": ctx.task_id, "name": ctx.task_name},
            "run": {"id": ctx.run_id, "started": ctx.started.isoformat(), "status": status},
            "owner": ctx.owner,
            "status": status,
            "values": {
                key: value
                for key, value in ctx.placeholders.items()
                if not key.startswith(_BUILTIN_PREFIXES)
            },
            "results": [_describe(ctx, result) for result in results],
        }


def _root_cause(exc: BaseException) -> str:
    """The innermost error of a chain (e.g. 'Connection refused'); the outer requests and
    urllib3 messages repeat the URL's path, which may hold a token."""
    while (inner := exc.__cause__ or exc.__context__) is not None:
        exc = inner
    return str(exc) or type(exc).__name__


def _result_file(ctx: RunContext, relative: str) -> Path:
    path = ctx.output_dir / relative
    if not path.is_file():
        raise FileNotFoundError(f"result file {relative!r} is missing from {ctx.output_dir}")
    return path


def _describe(ctx: RunContext, result: Result) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "flavor": result.flavor,
        "valid": result.valid,
        "job": result.job,
        "metadata": result.metadata,
    }
    if result.flavor == "text":
        entry["value"] = result.value
    elif result.flavor == "file" and result.value:
        path = ctx.output_dir / result.value
        entry["filename"] = path.name
        entry["path"] = result.value
        entry["size"] = path.stat().st_size if path.is_file() else None
    return entry
