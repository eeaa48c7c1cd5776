"""Finishing rules by canonical entity for the non-CRM sources (survey, intent, usage, billing).

Shared by the generic HTTP connector (NPS, intent, vendors declared in YAML) and the file/warehouse one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from connectors.fields import Finish
from core.domains import normalize_domain

_INVOICE_STATUSES = {"paid": "paid", "open": "open", "unpaid": "open", "past_due": "open", "overdue": "open",
                     "failed": "failed", "void": "void", "voided": "void", "uncollectible": "failed"}  # fmt: skip


def _unix_to_datetime(value: Any) -> Any:
    """Unix seconds (or milliseconds) as an aware datetime; other values unchanged."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 10_000_000_000 else value
        return datetime.fromtimestamp(seconds, UTC)
    return value


def _times(values: dict[str, Any], *names: str) -> None:
    for name in names:
        if name in values:
            values[name] = _unix_to_datetime(values[name])


def _survey(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    _times(values, "responded_at", "source_created_at", "source_updated_at")
    if values.get("email"):
        values["email"] = str(values["email"]).strip().lower()
    if values.get("kind"):
        values["kind"] = str(values["kind"]).strip().lower()
    return values


def _intent(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    _times(values, "observed_at", "source_created_at", "source_updated_at")
    domain = normalize_domain(values.get("domain"))
    if domain is None:
        raise ValueError(f"domain: not a usable company domain ({values.get('domain')!r})")
    values["domain"] = domain
    return values


def _keyed_by_account(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    _times(values, "source_created_at", "source_updated_at")
    if values.get("account_domain"):
        values["account_domain"] = normalize_domain(str(values["account_domain"]))
    if values.get("account_external_id") is not None:
        values["account_external_id"] = str(values["account_external_id"])
    if not values.get("account_domain") and not values.get("account_external_id"):
        raise ValueError("neither an account id nor a domain to match the row to an account")
    for name in ("period_start", "issued_at", "due_date", "paid_at"):
        if isinstance(values.get(name), str):
            values[name] = values[name][:10]
    return values


def _invoice(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
    values = _keyed_by_account(values, raw)
    if values.get("status") is not None:
        status = str(values["status"]).strip().lower()
        values["status"] = _INVOICE_STATUSES.get(status, status)
    return values


FINISHERS: dict[str, Finish] = {
    "survey_responses": _survey,
    "intent_signals": _intent,
    "usage_metrics": _keyed_by_account,
    "invoices": _invoice,
}


def finish_for(entity: str) -> Finish | None:
    """The finishing rule of an entity, or None when records need none."""
    return FINISHERS.get(entity)
