"""Logging: JSON lines off a terminal (or with LOG_FORMAT=json), readable text on one; always redacted.

``run_id``, ``source`` and ``stream`` ride along as fields, from ``log_context`` or ``extra=``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from core.redaction import RedactingFilter, redact

_CONTEXT: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039
CONTEXT_FIELDS = ("run_id", "source", "stream")
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


@contextlib.contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Attach fields (run_id, source, stream) to every log line inside the block."""
    token = _CONTEXT.set({**_CONTEXT.get(), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _CONTEXT.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, context fields and extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_text:
            payload["exception"] = record.exc_text
        return redact(json.dumps(payload, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{k}={getattr(record, k)}" for k in CONTEXT_FIELDS if getattr(record, k, None))
        line = (
            f"{datetime.fromtimestamp(record.created).strftime('%H:%M:%S')} {record.levelname:<7} {record.getMessage()}"
        )
        if context:
            line += f"  [{context}]"
        if record.exc_text:
            line += "\n" + record.exc_text
        return redact(line)


def configure_logging(
    fmt: str | None = None, *, verbose: bool = False, level: str = "INFO", stream: Any = None
) -> None:
    """Install one handler on the root logger. ``fmt``: json, text, or auto/None (JSON unless on a terminal)."""
    stream = stream or sys.stderr
    use_json = (fmt or "auto").lower() == "json" or ((fmt or "auto").lower() == "auto" and not stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(_ContextFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_health_agent", False):
            root.removeHandler(old)
    handler._health_agent = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else getattr(logging, level, logging.INFO))
    for noisy in ("urllib3", "simple_salesforce", "apscheduler", "alembic", "hubspot"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)
