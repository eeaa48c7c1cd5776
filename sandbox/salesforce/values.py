"""Field values between their three forms: stored (SQLite), API JSON / CSV, and what a client may write."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from sandbox.ids import case_safe_suffix
from sandbox.salesforce.schema import NUMBER_TYPES, Field
from sandbox.salesforce.soql import parse_datetime


class FieldValueError(Exception):
    """A value a field refuses; ``code`` is the Salesforce statusCode."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def format_datetime(moment: datetime) -> str:
    """Salesforce's datetime form, always UTC with milliseconds: ``2026-01-05T12:00:00.000+0000``."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}+0000"


def full_id(record_id: str) -> str:
    """An 18-character Id from a 15- or 18-character one (Salesforce accepts both everywhere)."""
    if len(record_id) == 15 and record_id.isalnum():
        return record_id + case_safe_suffix(record_id)
    return record_id


_CONVERTED = NUMBER_TYPES | {"boolean"}


def to_json(f: Field, stored: Any) -> Any:
    """A stored value as the REST API returns it."""
    if stored is None or f.type not in _CONVERTED:
        return stored
    if f.type == "boolean":
        return bool(stored)
    if f.type == "int":
        return int(stored)
    return float(stored)


def to_csv(f: Field, stored: Any) -> str:
    """A stored value as a Bulk 2.0 CSV cell (empty for null)."""
    if stored is None:
        return ""
    if f.type == "boolean":
        return "true" if stored else "false"
    return str(to_json(f, stored))


_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def coerce(f: Field, value: Any) -> Any:
    """A client-written value (JSON or a CSV cell) as it is stored; raises ``FieldValueError`` if refused."""
    if value is None:
        if not f.nillable and f.type != "boolean":
            raise FieldValueError("REQUIRED_FIELD_MISSING", f"Required fields are missing: [{f.name}]", f.name)
        return 0 if f.type == "boolean" else None
    try:
        if f.type == "boolean":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                return int(value.lower() in ("true", "1"))
            raise ValueError(value)
        if f.type == "int":
            if isinstance(value, bool):
                raise ValueError(value)
            return int(float(value))
        if f.type in NUMBER_TYPES:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if f.type == "date":
            text = str(value)[:10]
            date.fromisoformat(text)
            if not _DATE_RE.match(text):
                raise ValueError(value)
            return text
        if f.type == "datetime":
            text = str(value)
            moment = parse_datetime(text) if "T" in text else datetime.fromisoformat(text).replace(tzinfo=UTC)
            return format_datetime(moment)
    except (TypeError, ValueError):
        raise FieldValueError(
            "INVALID_TYPE_ON_FIELD_IN_RECORD", f"{f.label or f.name}: value not of required type: {value}", f.name
        ) from None
    text = str(value)
    if f.type in ("id", "reference"):
        return full_id(text) if text else None
    if f.length and len(text) > f.length:
        raise FieldValueError(
            "STRING_TOO_LONG", f"{f.label or f.name}: data value too large: {text[:40]} (max length={f.length})", f.name
        )
    return text


def make_id(prefix: str, n: int) -> str:
    """An 18-character Id with any key prefix (jobs ``750``, query locators ``01g``), n >= 1."""
    from sandbox.ids import salesforce_id

    id15 = prefix + salesforce_id("Account", n)[3:15]
    return id15 + case_safe_suffix(id15)


_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id_tail_sql(n_expr: str) -> str:
    """SQL for the part of an Id that depends on n alone: 9 base-62 digits, ``#``, checksum characters 2-3.

    ``id_from_tail_sql`` puts the key prefix and the first checksum character (which depends on the
    prefix only) around it. Null ``n`` gives null.
    """
    n = f"CAST({n_expr} AS INTEGER)"
    values = [f"(({n} / {62 ** (8 - k)}) % 62)" for k in range(9)]
    digits = " || ".join(f"substr('{_B62}', {v} + 1, 1)" for v in values)
    second = " + ".join(f"({v} BETWEEN 10 AND 35) * {1 << (j + 1)}" for j, v in enumerate(values[:4]))
    third = " + ".join(f"({v} BETWEEN 10 AND 35) * {1 << j}" for j, v in enumerate(values[4:]))
    return (
        f"({digits} || '#' || substr('{_CHECKSUM}', {second} + 1, 1) || substr('{_CHECKSUM}', {third} + 1, 1))"
    )


def id_from_tail_sql(prefix: str, tail_expr: str) -> str:
    """SQL for ``make_id(prefix, n)`` from the SQL of ``id_tail_sql(n)`` (or a lookup of it)."""
    first = case_safe_suffix(prefix + "Dg0" + "0" * 9)[0]  # the first 5 characters never depend on n
    return f"('{prefix}Dg0' || replace({tail_expr}, '#', '{first}'))"


def id_sql(prefix: str, n_expr: str) -> str:
    """A SQL expression computing ``make_id(prefix, n)`` (and so ``salesforce_id``) from an integer column."""
    return id_from_tail_sql(prefix, id_tail_sql(n_expr))
