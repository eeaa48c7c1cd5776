"""Secrets never reach a log line, an exception's text, or --json output."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.context import CommandContext
from agent.logging import configure_logging, log_context
from agent.settings import Settings
from core.redaction import REDACTED, clear_secrets, redact, register_secrets

TOKEN = "pat-na1-aaaa-bbbb-cccc-dddd"
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def _secrets() -> Iterator[None]:
    register_secrets([TOKEN, PASSWORD])
    yield
    clear_secrets()


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_messages_arguments_exceptions_and_extras_are_redacted(fmt: str) -> None:
    out = io.StringIO()
    configure_logging(fmt, stream=out)
    log = logging.getLogger("tests.redaction")
    with log_context(run_id="r-1", source="hubspot", stream="companies"):
        log.info("calling with token %s", TOKEN)
        log.warning("header was Authorization: Bearer %s", "eyJhbGciOi.JIUzI1Ni.IsInR5cCI6")
        try:
            raise RuntimeError(f"login failed for password={PASSWORD} token {TOKEN}")
        except RuntimeError:
            log.exception("login failed", extra={"detail": f"body had {TOKEN}"})
    text = out.getvalue()
    assert TOKEN not in text and PASSWORD not in text and "eyJhbGciOi" not in text
    assert text.count(REDACTED) >= 4
    assert "RuntimeError" in text  # the exception is still there, minus the secret
    if fmt == "json":
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        assert {(x["run_id"], x["source"], x["stream"]) for x in lines} == {("r-1", "hubspot", "companies")}


def test_json_output_of_commands_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = CommandContext(settings=Settings(), config_path=Path("x.yaml"), database_url="sqlite://", as_json=True)
    ctx.emit_json({"error": f"401 for {TOKEN}", "nested": [{"password": PASSWORD}]})
    printed = capsys.readouterr().out
    assert TOKEN not in printed and PASSWORD not in printed
    assert json.loads(printed)["error"] == f"401 for {REDACTED}"


def test_unregistered_credentials_are_caught_by_shape() -> None:
    text = redact("GET /x?access_token=abc123xyz&limit=2 Authorization: Basic dXNlcjpwYXNz client_secret: 'shh-secret'")
    assert "abc123xyz" not in text and "dXNlcjpwYXNz" not in text and "shh-secret" not in text
    assert "limit=2" in text


def test_settings_register_every_secret_including_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("HEALTH_DATABASE_URL", f"postgresql://agent:{PASSWORD}@db/health")
    settings = Settings()
    assert set(settings.secret_values()) == {TOKEN, PASSWORD}
    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
