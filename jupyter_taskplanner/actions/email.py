"""The ``email`` action: mail the results through an SMTP server configured by the admin."""

from __future__ import annotations

import mimetypes
import smtplib
import ssl
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import Any, ClassVar

from traitlets import Enum, Float, Int, TraitError, Unicode, validate
from traitlets.config import Configurable

from ..components.base import Action, Flavor, Result, RunContext
from ..errors import InvalidConfig

ADDRESS_FIELDS = ("to", "cc", "bcc", "reply_to")
DEFAULT_SUBJECT = "{task.name}: run {run.id} {run.status}"
DEFAULT_BODY = "Run {run.id} of {task.name}, started {run.started:%Y-%m-%d %H:%M}: {run.status}."


class EmailSettings(Configurable):
    """The SMTP server the ``email`` action sends through (``c.EmailSettings.<trait>``)."""

    host = Unicode("localhost", help="Host name of the SMTP server.").tag(config=True)
    port = Int(
        25, min=1, max=65535, help="Port of the SMTP server (25, 587 for starttls, 465 for ssl)."
    ).tag(config=True)
    security = Enum(
        ["none", "starttls", "ssl"],
        default_value="none",
        help="Connection security: 'none', 'starttls' (upgrade a plain connection) or 'ssl'.",
    ).tag(config=True)
    username = Unicode("", help="User name to log in with; empty: no login.").tag(config=True)
    password = Unicode(
        "", help="Password to log in with. Never returned by the API and never logged."
    ).tag(config=True)
    sender = Unicode("jupyter-taskplanner@localhost", help="The From address of every mail.").tag(
        config=True
    )
    timeout = Float(
        30.0, min=0.1, help="Seconds to wait for the SMTP server before giving up."
    ).tag(config=True)

    @validate("sender")
    def _check_sender(self, proposal: dict[str, Any]) -> str:
        try:
            parse_addresses(proposal["value"], "sender")
        except InvalidConfig as exc:
            raise TraitError(f"EmailSettings.{exc.message}") from None
        sender: str = proposal["value"]
        return sender


class EmailError(RuntimeError):
    """The mail could not be handed to the SMTP server."""


def _addresses_schema(title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "anyOf": [
            {"type": "string", "title": "Addresses separated by commas"},
            {"type": "array", "title": "List of addresses", "items": {"type": "string"}},
        ],
    }


def parse_addresses(value: str | list[str], field: str) -> list[Address]:
    """The addresses in ``value`` (a comma-separated text or a list of them).

    Raises ``InvalidConfig`` naming ``field`` and the first text that is not an address.
    """
    texts = [value] if isinstance(value, str) else value
    addresses = []
    for text in texts:
        if not text.strip():
            continue
        for name, spec in getaddresses([text]):
            try:
                addresses.append(Address(display_name=name, addr_spec=spec))
            except (ValueError, IndexError, HeaderParseError):
                bad = spec or text
                hint = " (is that placeholder defined?)" if "{" in bad else ""
                raise InvalidConfig(
                    f"{field}: {bad!r} is not an e-mail address{hint}; write name@example.org "
                    "or Name <name@example.org>",
                    field=field,
                ) from None
    return addresses


class EmailAction(Action):
    """Mail the results: file results as attachments, text results in the body."""

    type_name: ClassVar[str] = "email"
    title: ClassVar[str] = "Send an e-mail"
    description: ClassVar[str] = (
        "Mail the results through the server's SMTP settings. Addresses, subject and body "
        "may use placeholders such as {email} from a series."
    )
    accepts: ClassVar[frozenset[Flavor]] = frozenset({"file", "text", "none"})
    settings_class = EmailSettings
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["to"],
        "properties": {
            "to": _addresses_schema("To", "Recipients, e.g. {email} for a series' column."),
            "cc": _addresses_schema("Cc", "Copy recipients, shown to everyone."),
            "bcc": _addresses_schema("Bcc", "Hidden copy recipients."),
            "reply_to": _addresses_schema("Reply to", "Where answers to the mail go."),
            "subject": {
                "type": "string",
                "title": "Subject",
                "default": DEFAULT_SUBJECT,
            },
            "body": {
                "type": "string",
                "title": "Body",
                "description": "Plain text; placeholders are filled.",
                "default": DEFAULT_BODY,
            },
            "attach_files": {
                "type": "boolean",
                "title": "Attach result files",
                "default": True,
            },
            "text_in_body": {
                "type": "boolean",
                "title": "Append text results to the body",
                "default": True,
            },
        },
    }

    @classmethod
    def check_config(cls, config: dict[str, Any]) -> None:
        # Fields with placeholders can only be checked once a run has filled them.
        for field in ADDRESS_FIELDS:
            value = config.get(field)
            if value is None:
                continue
            texts = [value] if isinstance(value, str) else value
            parse_addresses([text for text in texts if "{" not in text], field)
            if field == "to" and not any(text.strip() for text in texts):
                raise InvalidConfig("to: give at least one recipient", field="to")

    def run(self, ctx: RunContext, results: list[Result]) -> None:
        settings = ctx.settings if isinstance(ctx.settings, EmailSettings) else EmailSettings()
        recipients = {
            field: parse_addresses(ctx.fill(self.config.get(field) or []), field)
            for field in ADDRESS_FIELDS
        }
        if not recipients["to"]:
            raise InvalidConfig("to: no recipient left after filling placeholders", field="to")
        message = self._message(ctx, results, settings, recipients)
        envelope = list(
            dict.fromkeys(a.addr_spec for f in ("to", "cc", "bcc") for a in recipients[f])
        )
        self._send(settings, message, envelope)
        ctx.log.info(
            "mailed %r to %d recipient(s) through %s:%s",
            message["Subject"],
            len(envelope),
            settings.host,
            settings.port,
        )

    def _message(
        self,
        ctx: RunContext,
        results: list[Result],
        settings: EmailSettings,
        recipients: dict[str, list[Address]],
    ) -> EmailMessage:
        message = EmailMessage()
        message["From"] = settings.sender
        message["To"] = recipients["to"]
        if recipients["cc"]:
            message["Cc"] = recipients["cc"]
        if recipients["reply_to"]:
            message["Reply-To"] = recipients["reply_to"]
        subject = ctx.fill(self.config.get("subject", DEFAULT_SUBJECT))
        # A placeholder value with a line break must not end the header early.
        message["Subject"] = " ".join(subject.split())
        message["Date"] = formatdate(localtime=True)
        message["Message-ID"] = make_msgid(domain=_bare(settings.sender).rpartition("@")[2])

        paragraphs = [ctx.fill(self.config.get("body", DEFAULT_BODY))]
        if self.config.get("text_in_body", True):
            for result in results:
                if result.flavor == "text" and result.value:
                    heading = f"{result.job}:\n" if result.job else ""
                    paragraphs.append(heading + result.value)
        message.set_content("\n\n".join(p for p in paragraphs if p) + "\n")

        if self.config.get("attach_files", True):
            for result in results:
                if result.flavor == "file" and result.value:
                    self._attach(message, ctx, result.value)
        return message

    @staticmethod
    def _attach(message: EmailMessage, ctx: RunContext, relative: str) -> None:
        path = ctx.output_dir / relative
        if not path.is_file():
            raise FileNotFoundError(f"result file {relative!r} is missing from {ctx.output_dir}")
        mime, encoding = mimetypes.guess_type(path.name)
        # A compressed file (x.tar.gz) is sent as opaque bytes, not as its inner type.
        if mime is None or encoding is not None:
            mime = "application/octet-stream"
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(
            path.read_bytes(), maintype=maintype, subtype=subtype, filename=path.name
        )

    @staticmethod
    def _send(settings: EmailSettings, message: EmailMessage, envelope: list[str]) -> None:
        where = f"SMTP server {settings.host}:{settings.port}"
        try:
            if settings.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    timeout=settings.timeout,
                    context=ssl.create_default_context(),
                )
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
            with smtp:
                if settings.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if settings.username:
                    smtp.login(settings.username, settings.password)
                refused = smtp.send_message(
                    message, from_addr=_bare(settings.sender), to_addrs=envelope
                )
        except smtplib.SMTPAuthenticationError as exc:
            raise EmailError(
                f"{where} refused the login of {settings.username!r}: {_reply(exc)}; "
                "check c.EmailSettings.username and password"
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise EmailError(
                f"{where}: {exc}; check c.EmailSettings.security and username"
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise EmailError(
                f"{where} refused every recipient: {_refusals(exc.recipients)}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise EmailError(f"{where} answered {_reply(exc)}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise EmailError(
                f"cannot send through {where}: {exc}; check c.EmailSettings.host, port and security"
            ) from exc
        if refused:
            raise EmailError(f"{where} refused some recipients: {_refusals(refused)}")


def _bare(address: str) -> str:
    """The addr-spec of a sender that may be written as 'Name <addr>'."""
    return getaddresses([address])[0][1]


def _reply(exc: smtplib.SMTPResponseException) -> str:
    text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
    return f"{exc.smtp_code} {text or str(exc.smtp_error)}"


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    return ", ".join(
        f"{address} ({code} {reply.decode(errors='replace')})"
        for address, (code, reply) in refused.items()
    )
