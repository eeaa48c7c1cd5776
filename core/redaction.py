"""Secret redaction for everything a person or a log can see: messages, exception texts, JSON output.

Secrets are registered once at start (``register_secrets``, from the settings' SecretStr values);
bearer tokens, basic credentials and token-like query parameters are removed even when unregistered.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable

REDACTED = "[REDACTED]"
_lock = threading.Lock()
_secrets: list[str] = []
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=!-]{6,}"),
    re.compile(r"(?i)(basic\s+)[A-Za-z0-9+/=]{6,}"),
    re.compile(
        r"(?i)((?:access_token|refresh_token|client_secret|password|api_key|apikey|hapikey|assertion|session_id|security_token)[\"']?\s*[=:]\s*[\"']?)[^\"'&\s,}]{3,}"
    ),
    re.compile(r"(?i)(authorization[\"']?\s*[=:]\s*[\"']?)(?!bearer|basic)[^\"'&\s,}]{6,}"),
)


def register_secrets(values: Iterable[str]) -> None:
    """Add secret values to redact (values shorter than 4 characters are ignored: too common to mask)."""
    with _lock:
        for value in values:
            if value and len(value) >= 4 and value not in _secrets:
                _secrets.append(value)
        _secrets.sort(key=len, reverse=True)  # longest first, so a secret containing another is masked whole


def clear_secrets() -> None:
    with _lock:
        _secrets.clear()


def redact(text: str) -> str:
    """The text with every registered secret and every credential-looking token replaced by [REDACTED]."""
    if not text:
        return text
    for secret in list(_secrets):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the formatted message and any exception text of every log record passing through."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            formatted = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact(formatted)
            record.exc_info = None
            record.__dict__.setdefault("exception_type", type(exc).__name__)
        for key in ("error", "detail"):
            value = record.__dict__.get(key)
            if isinstance(value, str):
                record.__dict__[key] = redact(value)
        return True
