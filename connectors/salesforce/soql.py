"""SOQL built safely: every literal escaped, every identifier from configuration checked.

Values never reach a query unescaped (``O'Brien\\`` and ``' OR Name != '`` stay string contents), and
field or object names from YAML must be plain API names or relationship paths (``Owner.Email``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime

from core.errors import ConfigError

_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}(\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$")
# Salesforce's escape sequences for string literals (backslash first, so added backslashes are not doubled).
_ESCAPES = (("\\", "\\\\"), ("'", "\\'"), ('"', '\\"'), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"),
            ("\b", "\\b"), ("\f", "\\f"))  # fmt: skip

Literal = str | int | float | bool | date | datetime | None


def escape_string(value: str) -> str:
    """The SOQL string literal for ``value``, quotes included: ``O'Brien`` -> ``'O\\'Brien'``."""
    for raw, escaped in _ESCAPES:
        value = value.replace(raw, escaped)
    return f"'{value}'"


def soql_datetime(value: datetime) -> str:
    """A SOQL datetime literal in UTC, e.g. ``2024-05-01T12:00:00.000Z`` (unquoted, as SOQL wants)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def literal(value: Literal) -> str:
    """Any Python value as a SOQL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return soql_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return escape_string(str(value))


def literal_list(values: Iterable[Literal]) -> str:
    """``('a','b')`` for IN clauses."""
    return "(" + ",".join(literal(v) for v in values) + ")"


def identifier(name: str, *, what: str = "field") -> str:
    """``name`` when it is a valid API name or relationship path; a ConfigError otherwise."""
    if not _IDENTIFIER.match(name):
        raise ConfigError(f"{name!r} is not a valid Salesforce {what} name (letters, digits, _ and dots only)")
    return name
