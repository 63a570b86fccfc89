"""The email, save and webhook actions against real files and real local SMTP/HTTP servers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from traitlets import TraitError
from traitlets.config import Config

from jupyter_taskplanner.actions.email import EmailAction, EmailError, EmailSettings
from jupyter_taskplanner.actions.save import SaveAction, name_glob
from jupyter_taskplanner.actions.webhook import SIGNATURE_HEADER, WebhookAction, WebhookError
from jupyter_taskplanner.components import Registry, Result, RunContext
from jupyter_taskplanner.errors import InvalidConfig
from jupyter_taskplanner.testing import http_server, smtp_server, validate_as_saved

STARTED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.from_entry_points()


@pytest.fixture
def ctx(tmp_path: Path) -> RunContext:
    """A run of task 3 "Monthly" (run 7) for alice, with one series set filled in."""
    root = tmp_path / "root"
    output = tmp_path / "output"
    root.mkdir()
    output.mkdir()
    return RunContext(
        owner="alice",
        owner_root=root,
        task_id=3,
        task_name="Monthly",
        run_id=7,
        started=STARTED,
        output_dir=output,
        placeholders={"customer": "ACME", "email": "carol@example.org", "run.status": "succeeded"},
        log=logging.getLogger("test.actions"),
    )


@pytest.fixture
def results(ctx: RunContext) -> list[Result]:
    """A run's results: three files (one in a subfolder), a text and a none."""
    (ctx.output_dir / "report").mkdir()
    (ctx.output_dir / "report" / "report.html").write_text("<h1>ACME</h1>")
    (ctx.output_dir / "data.csv").write_text("a,b\n1,2\n")
    (ctx.output_dir / "archive.tar.gz").write_bytes(b"\x1f\x8b binary")
    return [
        Result("file", "report/report.html", job="nb", metadata={"pages": 2}),
        Result("file", "data.csv", job="nb"),
        Result("file", "archive.tar.gz", job="pack"),
        Result("text", "42 customers", job="count", valid=False),
        Result("none", job="ping"),
    ]


def invalid(registry: Registry, type_name: str, config: dict) -> InvalidConfig:
    """The error the registry raises for an action config."""
    with pytest.raises(InvalidConfig) as caught:
        validate_as_saved(registry, "action", {"type": type_name, "config": config}, "actions[0]")
    return caught.value


# --- email -------------------------------------------------------------------------------


def settings_for(smtp, **traits) -> EmailSettings:
    return EmailSettings(host=smtp.host, port=smtp.port, timeout=5, **traits)


def test_email_recipients_subject_body_and_attachments(ctx, results):
    action = EmailAction(
        {
            "to": "{email}, Dave <dave@example.org>",
            "cc": ["erin@example.org", "carol@example.org"],
            "bcc": "boss@example.org",
            "reply_to": "help@example.org",
            "body": "Hello {customer},\nyour report is attached.",
        }
    )
    with smtp_server() as smtp:
        ctx.settings = settings_for(smtp, sender="Planner <planner@example.org>")
        action.run(ctx, results)
        [mail] = smtp.wait_for(1)

    assert sorted(mail.envelope_to) == [
        "boss@example.org",
        "carol@example.org",
        "dave@example.org",
        "erin@example.org",
    ]
    assert mail.envelope_from == "planner@example.org"
    assert mail["To"] == "carol@example.org, Dave <dave@example.org>"
    assert mail["Cc"] == "erin@example.org, carol@example.org"
    assert mail["Reply-To"] == "help@example.org"
    assert mail["From"] == "Planner <planner@example.org>"
    assert "Bcc" not in mail
    assert "boss@example.org" not in mail.as_string()
    assert mail["Subject"] == "Monthly: run 7 succeeded"

    body = mail.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert body.startswith("Hello ACME,\nyour report is attached.\n\n")
    assert "count:\n42 customers" in body

    attachments = {part.get_filename(): part for part in mail.iter_attachments()}
    assert sorted(attachments) == ["archive.tar.gz", "data.csv", "report.html"]
    assert attachments["report.html"].get_content_type() == "text/html"
    assert attachments["report.html"].get_content() == "<h1>ACME</h1>"
    assert attachments["data.csv"].get_content_type() == "text/csv"
    assert attachments["archive.tar.gz"].get_content_type() == "application/octet-stream"
    assert attachments["archive.tar.gz"].get_content() == b"\x1f\x8b binary"


def test_email_without_attachments_or_text_and_with_custom_subject(ctx, results):
    ctx.placeholders["customer"] = "Line\nBreak Inc"
    action = EmailAction(
        {
            "to": ["carol@example.org"],
            "subject": "Report for {customer} ({run.started:%Y-%m})",
            "attach_files": False,
            "text_in_body": False,
        }
    )
    with smtp_server() as smtp:
        ctx.settings = settings_for(smtp)
        action.run(ctx, results)
        [mail] = smtp.wait_for(1)
    # The line break a placeholder brought in must not split the header.
    assert mail["Subject"] == "Report for Line Break Inc (2024-05)"
    assert mail["From"] == "jupyter-taskplanner@localhost"
    assert list(mail.iter_attachments()) == []
    assert "42 customers" not in mail.as_string()


def test_email_logs_in_without_logging_the_password(ctx, caplog):
    caplog.set_level(logging.DEBUG)
    action = EmailAction({"to": "carol@example.org"})
    with smtp_server(users={"mailer": "s3cret-pw"}) as smtp:
        ctx.settings = settings_for(smtp, username="mailer", password="s3cret-pw")
        action.run(ctx, [])
        assert len(smtp.wait_for(1)) == 1
        assert smtp.logins == ["mailer"]

        ctx.settings = settings_for(smtp, username="mailer", password="wrong-pw")
        with pytest.raises(EmailError, match="refused the login of 'mailer'") as caught:
            action.run(ctx, [])
        assert len(smtp.messages) == 1
    assert "wrong-pw" not in str(caught.value)
    assert "s3cret-pw" not in caplog.text
    assert "mailed 'Monthly: run 7 succeeded' to 1 recipient(s)" in caplog.text


def test_email_bad_addresses_name_the_field(registry, ctx):
    error = invalid(registry, "email", {"to": "carol@example.org, not-an-address"})
    assert error.field == "actions[0].config.to"
    assert "'not-an-address' is not an e-mail address" in error.message
    assert invalid(registry, "email", {"to": "a@b.org", "bcc": ["x@"]}).field == (
        "actions[0].config.bcc"
    )
    assert invalid(registry, "email", {"to": " "}).field == "actions[0].config.to"
    assert invalid(registry, "email", {}).field == "actions[0].config"
    # Placeholders are only checked once a run fills them.
    registry.validate("action", {"type": "email", "config": {"to": "{email}"}}, "actions[0]")

    with smtp_server() as smtp:
        ctx.settings = settings_for(smtp)
        ctx.placeholders["email"] = "nobody"
        with pytest.raises(InvalidConfig, match="'nobody' is not an e-mail address") as caught:
            EmailAction({"to": "{email}"}).run(ctx, [])
        assert caught.value.field == "to"
        with pytest.raises(InvalidConfig, match="is that placeholder defined") as caught:
            EmailAction({"to": "carol@example.org", "cc": "{manager}"}).run(ctx, [])
        assert caught.value.field == "cc"
        assert smtp.messages == []


def test_email_server_errors_are_clear(ctx, results):
    action = EmailAction({"to": "carol@example.org"})
    with smtp_server() as smtp:
        ctx.settings = settings_for(smtp, security="starttls")
        with pytest.raises(EmailError, match=r"STARTTLS.*check c\.EmailSettings\.security"):
            action.run(ctx, [])
        ctx.settings = settings_for(smtp)
        (ctx.output_dir / "data.csv").unlink()
        with pytest.raises(FileNotFoundError, match=r"'data\.csv' is missing"):
            action.run(ctx, results)
        assert smtp.messages == []
    # The server is gone now: nothing listens on its port.
    with pytest.raises(EmailError, match=f"cannot send through SMTP server 127.0.0.1:{smtp.port}"):
        action.run(ctx, [])


def test_email_settings_are_configurable_traits():
    config = Config({"EmailSettings": {"host": "mail.example.org", "port": 587}})
    settings = EmailSettings(config=config)
    assert (settings.host, settings.port, settings.security) == ("mail.example.org", 587, "none")
    for name in ("host", "port", "security", "username", "password", "sender", "timeout"):
        trait = settings.traits()[name]
        assert trait.metadata.get("config") and trait.help, name
    with pytest.raises(TraitError, match="sender"):
        EmailSettings(sender="planner at example")
    with pytest.raises(TraitError):
        EmailSettings(security="tls")
    assert EmailAction.settings_class is EmailSettings


# --- save ----------------------------------------------------------------------------------


def test_save_with_name_patterns(ctx, results):
    SaveAction({"folder": "reports/{customer}", "name": "{stem}_{date}_{time}{suffix}"}).run(
        ctx, results
    )
    folder = ctx.owner_root / "reports" / "ACME"
    assert sorted(path.name for path in folder.iterdir()) == [
        "archive.tar_2024-05-06_070809.gz",
        "data_2024-05-06_070809.csv",
        "report_2024-05-06_070809.html",
    ]
    assert (folder / "report_2024-05-06_070809.html").read_text() == "<h1>ACME</h1>"

    SaveAction({"folder": "texts", "name": "{run.id}-{filename}", "save_text": True}).run(
        ctx, results
    )
    saved = ctx.owner_root / "texts"
    assert (saved / "7-count.txt").read_text() == "42 customers"
    assert len(list(saved.iterdir())) == 4

    # Without save_text, text results are not written.
    SaveAction({"folder": "plain"}).run(ctx, [results[3]])
    assert list((ctx.owner_root / "plain").iterdir()) == []


def test_save_overwrites_or_numbers(ctx, results):
    source = ctx.output_dir / "data.csv"
    for content in ("one", "two", "three"):
        source.write_text(content)
        SaveAction({"folder": "keep", "overwrite": False}).run(ctx, [results[1]])
        SaveAction({"folder": "latest"}).run(ctx, [results[1]])
    keep = ctx.owner_root / "keep"
    assert {path.name: path.read_text() for path in keep.iterdir()} == {
        "data.csv": "one",
        "data-1.csv": "two",
        "data-2.csv": "three",
    }
    assert [path.read_text() for path in (ctx.owner_root / "latest").iterdir()] == ["three"]


def test_save_deletes_only_old_files_matching_the_pattern(ctx, results):
    folder = ctx.owner_root / "archive"
    folder.mkdir()
    ten_days_ago = time.time() - 10 * 86400
    for name in ("report_2024-01-01.html", "notes_2024-01-01.txt", "report-old.html"):
        (folder / name).write_text("old")
        os.utime(folder / name, (ten_days_ago, ten_days_ago))
    (folder / "report_2024-05-01.html").write_text("recent")

    SaveAction(
        {"folder": "archive", "name": "{stem}_{date}.html", "delete_older_than_days": 7}
    ).run(ctx, [results[0]])
    assert sorted(path.name for path in folder.iterdir()) == [
        "notes_2024-01-01.txt",
        "report-old.html",
        "report_2024-05-01.html",
        "report_2024-05-06.html",
    ]
    assert name_glob("[x] {stem}_{run.started:%Y}*.html") == "[[]x] *_*[*].html"


def test_save_refuses_paths_outside_the_root(registry, ctx, results):
    assert invalid(registry, "save", {"folder": "../elsewhere"}).field == "actions[0].config.folder"
    assert invalid(registry, "save", {"folder": "a/../../b"}).field == "actions[0].config.folder"
    assert invalid(registry, "save", {"folder": "x", "name": "../{filename}"}).field == (
        "actions[0].config.name"
    )
    assert invalid(registry, "save", {"name": "{filename}"}).field == "actions[0].config"

    outside = ctx.owner_root.parent / "outside"
    ctx.placeholders["dir"] = "../outside"
    for folder in ("{dir}", str(outside)):
        with pytest.raises(InvalidConfig, match="outside your root folder") as caught:
            SaveAction({"folder": folder}).run(ctx, results)
        assert caught.value.field == "folder"
    ctx.placeholders["sub"] = "../../outside"
    with pytest.raises(InvalidConfig, match="leads outside the folder") as caught:
        SaveAction({"folder": "reports", "name": "{sub}/{filename}"}).run(ctx, results)
    assert caught.value.field == "name"
    assert not outside.exists()

    (ctx.output_dir / "data.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"'data\.csv' is missing"):
        SaveAction({"folder": "reports"}).run(ctx, results)


# --- webhook -------------------------------------------------------------------------------


def test_webhook_posts_signed_json(ctx, results):
    ctx.placeholders.update({"token": "t0k", "job.nb.pages": 2})
    with http_server() as http:
        WebhookAction(
            {
                "url": http.url + "/hooks/{customer}?x=1",
                "headers": {"Authorization": "Bearer {token}", "X-Customer": "{customer}"},
                "secret": "topsecret",
            }
        ).run(ctx, results)
        [request] = http.wait_for(1)

    assert (request.method, request.path) == ("POST", "/hooks/ACME?x=1")
    assert request.headers["Authorization"] == "Bearer t0k"
    assert request.headers["X-Customer"] == "ACME"
    assert request.headers["Content-Type"] == "application/json"
    expected = "sha256=" + hmac.new(b"topsecret", request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected

    payload = request.json()
    assert payload["task"] == {"id": 3, "name": "Monthly"}
    assert payload["run"] == {"id": 7, "started": STARTED.isoformat(), "status": "succeeded"}
    assert payload["status"] == "succeeded"
    assert payload["values"] == {"customer": "ACME", "email": "carol@example.org", "token": "t0k"}
    assert payload["results"][0] == {
        "flavor": "file",
        "valid": True,
        "job": "nb",
        "metadata": {"pages": 2},
        "filename": "report.html",
        "path": "report/report.html",
        "size": len("<h1>ACME</h1>"),
    }
    assert payload["results"][3] == {
        "flavor": "text",
        "valid": False,
        "job": "count",
        "metadata": {},
        "value": "42 customers",
    }
    assert payload["results"][4] == {"flavor": "none", "valid": True, "job": "ping", "metadata": {}}


def test_webhook_uploads_files_as_multipart(ctx, results):
    with http_server() as http:
        WebhookAction({"url": http.url, "upload_files": True, "secret": "s"}).run(ctx, results)
        [request] = http.wait_for(1)
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    expected = "sha256=" + hmac.new(b"s", request.body, hashlib.sha256).hexdigest()
    assert request.headers[SIGNATURE_HEADER] == expected

    [payload, *files] = request.form()
    assert (payload.name, payload.content_type) == ("payload", "application/json")
    assert json.loads(payload.data)["run"]["id"] == 7
    assert [(part.name, part.filename, part.data) for part in files] == [
        ("files", "report.html", b"<h1>ACME</h1>"),
        ("files", "data.csv", b"a,b\n1,2\n"),
        ("files", "archive.tar.gz", b"\x1f\x8b binary"),
    ]


def test_webhook_fails_on_non_2xx_answers(ctx):
    with http_server() as http:
        action = WebhookAction({"url": http.url + "/secret-token/hook"})
        http.reply(500, "boom" * 100)
        with pytest.raises(WebhookError) as caught:
            action.run(ctx, [])
        message = str(caught.value)
        assert f"webhook at {http.url} answered 500 Internal Server Error" in message
        assert ("boom" * 50)[:200] in message and "boom" * 51 not in message
        assert "secret-token" not in message
        assert SIGNATURE_HEADER not in http.requests[0].headers

        http.reply(302)
        with pytest.raises(WebhookError, match=r"302 Found .*redirects are not followed"):
            action.run(ctx, [])
        assert len(http.requests) == 2
    with pytest.raises(WebhookError, match=r"cannot reach webhook at .*refused") as caught:
        action.run(ctx, [])
    assert "secret-token" not in str(caught.value)


def test_webhook_times_out(ctx):
    with socket.socket() as silent:
        # Accepts connections (the backlog does) but never answers.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        action = WebhookAction({"url": f"http://127.0.0.1:{port}/", "timeout": 0.3})
        with pytest.raises(WebhookError, match=r"did not answer within 0\.3 s"):
            action.run(ctx, [])


def test_webhook_config_errors_name_the_field(registry, ctx):
    assert invalid(registry, "webhook", {"url": "ftp://x.org"}).field == "actions[0].config.url"
    assert invalid(registry, "webhook", {"url": "example.org/hook"}).field == (
        "actions[0].config.url"
    )
    error = invalid(registry, "webhook", {"url": "http://x.org", "headers": {"Content-Type": "a"}})
    assert error.field == "actions[0].config.headers" and "Content-Type" in error.message
    assert invalid(registry, "webhook", {"url": "http://x", "headers": {"a b": "c"}}).field == (
        "actions[0].config.headers"
    )
    assert invalid(registry, "webhook", {"url": "http://x", "timeout": 0}).field == (
        "actions[0].config.timeout"
    )
    assert registry.secret_fields("action", "webhook") == ["secret"]

    ctx.placeholders["hook"] = "not a url"
    with pytest.raises(InvalidConfig, match="'not a url' is not an http") as caught:
        WebhookAction({"url": "{hook}"}).run(ctx, [])
    assert caught.value.field == "url"
    ctx.placeholders["hook"] = "http://x.org"
    ctx.placeholders["value"] = "a\r\nInjected: yes"
    with pytest.raises(InvalidConfig, match="line break") as caught:
        WebhookAction({"url": "{hook}", "headers": {"X-Value": "{value}"}}).run(ctx, [])
    assert caught.value.field == "headers"
