"""Salesforce rows -> canonical records: the default field map of each standard object and its finishing rules."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.fields import Finish, finish_account, finish_contact, get_path
from core.config.sources import DealKindConfig
from core.records import (
    AccountRecord,
    ActivityRecord,
    CanonicalRecord,
    ContactRecord,
    DealKind,
    DealRecord,
    Direction,
    TicketRecord,
    UserRecord,
)

_SYSTEM = {"external_id": "Id", "source_created_at": "CreatedDate", "source_updated_at": "SystemModstamp"}
_DELETABLE = {**_SYSTEM, "is_deleted": "IsDeleted"}


@dataclass(frozen=True)
class ObjectSpec:
    """A standard object's stream: its sObject, canonical type, default fields and finishing rule."""

    stream: str
    sobject: str
    record_type: type[CanonicalRecord]
    fields: Mapping[str, str]
    finish: Callable[[DealKindConfig], Finish | None]
    also_select: tuple[str, ...] = ()  # read for the finishing rule, not mapped directly
    deletable: bool = True  # has IsDeleted / is visible to queryAll


def _account(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        return finish_account(values, values.get("domain"))

    return finish


def _contact(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        return finish_contact(values)

    return finish


_DIRECTIONS = {"inbound": Direction.INBOUND, "outbound": Direction.OUTBOUND, "internal": None}
_ACTIVITY_TYPES = {"email": "email", "list email": "email", "call": "call", "meeting": "meeting", "other": "note"}


def direction_of(value: Any) -> Direction | None:
    """``Inbound``/``INCOMING_EMAIL``/``OUTBOUND``... -> a Direction; None when unknown."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in _DIRECTIONS:
        return _DIRECTIONS[text]
    if text.startswith(("incoming", "inbound")):
        return Direction.INBOUND
    if text in ("email", "forwarded_email") or text.startswith("outbound"):
        return Direction.OUTBOUND
    return None


def _task(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        kind = values.get("activity_type")
        subtype = _ACTIVITY_TYPES.get(str(kind or "").lower())
        type_field = _ACTIVITY_TYPES.get(str(get_path(raw, "Type") or "").lower())
        values["activity_type"] = subtype or type_field or "task"
        values["direction"] = direction_of(values.get("direction") or get_path(raw, "CallType"))
        values["occurred_at"] = (
            values.get("occurred_at") or get_path(raw, "ActivityDate") or get_path(raw, "CreatedDate")
        )
        if not values.get("account_external_id"):
            what = get_path(raw, "WhatId")
            values["account_external_id"] = what if isinstance(what, str) and what.startswith("001") else None
        who = values.pop("contact_external_ids", None)
        values["contact_external_ids"] = (who,) if isinstance(who, str) and who.startswith("003") else ()
        seconds = values.pop("duration_minutes", None)
        if seconds not in (None, ""):
            values["duration_minutes"] = float(seconds) / 60
        return values

    return finish


def _event(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["activity_type"] = "meeting"
        values["direction"] = direction_of(values.get("direction")) or Direction.TWO_WAY
        values["occurred_at"] = values.get("occurred_at") or get_path(raw, "ActivityDateTime") or get_path(
            raw, "CreatedDate"
        )
        if not values.get("account_external_id"):
            what = get_path(raw, "WhatId")
            values["account_external_id"] = what if isinstance(what, str) and what.startswith("001") else None
        who = values.pop("contact_external_ids", None)
        values["contact_external_ids"] = (who,) if isinstance(who, str) and who.startswith("003") else ()
        return values

    return finish


def deal_kind_of(value: Any, config: DealKindConfig) -> DealKind:
    """The deal kind from the configured field's value (renewal / expansion / new business lists)."""
    text = None if value is None else str(value)
    if text in config.renewal:
        return DealKind.RENEWAL
    if text in config.expansion:
        return DealKind.EXPANSION
    if text in config.new_business:
        return DealKind.NEW_BUSINESS
    return DealKind.OTHER


def _deal(config: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["kind"] = deal_kind_of(values.get("kind"), config)
        return values

    return finish


_PRIORITIES = {"critical": "p1", "urgent": "p1", "high": "p2", "medium": "p3", "normal": "p3", "low": "p4"}


def priority_of(value: Any) -> str | None:
    """Critical/Urgent -> p1, High -> p2, Medium/Normal -> p3, Low -> p4; other values are kept lowercased."""
    if value is None:
        return None
    text = str(value).strip().lower()
    return _PRIORITIES.get(text, text[:16] or None)


def _ticket(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["priority"] = priority_of(values.get("priority"))
        return values

    return finish


def _none(_: DealKindConfig) -> None:
    return None


def deal_kind_path(config: DealKindConfig) -> str:
    """The Opportunity field that says renewal / expansion / new business."""
    if config.by == "record_type":
        return "RecordType.Name"
    return config.field if config.by == "field" else "Type"


OBJECTS: dict[str, ObjectSpec] = {
    spec.stream: spec
    for spec in (
        ObjectSpec("accounts", "Account", AccountRecord, {
            **_DELETABLE, "name": "Name", "domain": "Website", "industry": "Industry",
            "employees": "NumberOfEmployees", "arr": "AnnualRevenue", "owner_external_id": "OwnerId",
        }, _account),
        ObjectSpec("contacts", "Contact", ContactRecord, {
            **_DELETABLE, "account_external_id": "AccountId", "first_name": "FirstName", "last_name": "LastName",
            "email": "Email", "title": "Title", "department": "Department",
        }, _contact),
        ObjectSpec("users", "User", UserRecord, {
            **_SYSTEM, "name": "Name", "email": "Email", "is_active": "IsActive",
        }, _none, deletable=False),
        ObjectSpec("opportunities", "Opportunity", DealRecord, {
            **_DELETABLE, "account_external_id": "AccountId", "name": "Name", "stage": "StageName",
            "is_closed": "IsClosed", "is_won": "IsWon", "close_date": "CloseDate", "amount": "Amount",
        }, _deal),
        ObjectSpec("cases", "Case", TicketRecord, {
            **_DELETABLE, "account_external_id": "AccountId", "subject": "Subject", "priority": "Priority",
            "status": "Status", "is_closed": "IsClosed", "is_escalated": "IsEscalated",
            "opened_at": "CreatedDate", "closed_at": "ClosedDate",
        }, _ticket),
        ObjectSpec("tasks", "Task", ActivityRecord, {
            **_DELETABLE, "activity_type": "TaskSubtype", "occurred_at": "CompletedDateTime",
            "account_external_id": "AccountId", "owner_external_id": "OwnerId", "contact_external_ids": "WhoId",
            "subject": "Subject", "duration_minutes": "CallDurationInSeconds",
        }, _task, also_select=("Type", "CallType", "ActivityDate", "WhatId")),
        ObjectSpec("events", "Event", ActivityRecord, {
            **_DELETABLE, "occurred_at": "StartDateTime", "account_external_id": "AccountId",
            "owner_external_id": "OwnerId", "contact_external_ids": "WhoId", "subject": "Subject",
            "duration_minutes": "DurationInMinutes",
        }, _event, also_select=("ActivityDateTime", "WhatId")),
    )
}  # fmt: skip
