"""HubSpot records -> canonical records: default property maps per object type and their finishing rules.

Paths name a property (``domain``) or a top-level key of the record (``id``, ``updatedAt``, ``archived``,
``associations.companies``); ``property_path`` tells them apart.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.fields import Finish, finish_account, finish_contact, get_path
from connectors.salesforce.mapping import deal_kind_of, direction_of, priority_of
from core.config.sources import DealKindConfig
from core.records import (
    AccountRecord,
    ActivityRecord,
    CanonicalRecord,
    ContactRecord,
    DealRecord,
    Direction,
    TicketRecord,
    UserRecord,
)

TOP_LEVEL = ("id", "createdAt", "updatedAt", "archived", "archivedAt", "associations", "email", "firstName",
             "lastName", "userId")  # fmt: skip
MODIFIED = {"contacts": "lastmodifieddate"}  # every other type: hs_lastmodifieddate


def modified_property(object_type: str) -> str:
    return MODIFIED.get(object_type, "hs_lastmodifieddate")


def property_path(path: str) -> str:
    """``domain`` -> ``properties.domain``; top-level keys and explicit ``properties.x`` stay as they are."""
    head = path.split(".", 1)[0]
    return path if head in TOP_LEVEL or head == "properties" else f"properties.{path}"


def first_associated(raw: Mapping[str, Any], to_type: str) -> str | None:
    ids = associated(raw, to_type)
    return ids[0] if ids else None


def associated(raw: Mapping[str, Any], to_type: str) -> tuple[str, ...]:
    """Associated ids of a type from a record's ``associations`` (v3 list shape or our batch-read shape)."""
    block = (raw.get("associations") or {}).get(to_type)
    if block is None:
        return ()
    if isinstance(block, Mapping):
        block = block.get("results") or []
    return tuple(dict.fromkeys(str(r.get("id") if isinstance(r, Mapping) else r) for r in block))


@dataclass(frozen=True)
class TypeSpec:
    stream: str
    object_type: str
    record_type: type[CanonicalRecord]
    fields: Mapping[str, str]
    finish: Callable[[DealKindConfig], Finish | None]
    associations: tuple[str, ...] = ()
    archived: bool = True  # read archived records too


_SYSTEM = {"external_id": "id", "source_created_at": "createdAt", "source_updated_at": "updatedAt",
           "is_deleted": "archived"}  # fmt: skip


def _company(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        return finish_account(values, values.get("domain") or get_path(raw, "properties.website"))

    return finish


def _contact(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["account_external_id"] = values.get("account_external_id") or first_associated(raw, "companies")
        return finish_contact(values)

    return finish


def _deal(config: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["kind"] = deal_kind_of(values.get("kind"), config)
        values["account_external_id"] = first_associated(raw, "companies")
        values["contact_external_ids"] = associated(raw, "contacts")
        if values.get("close_date") is not None:
            values["close_date"] = str(values["close_date"])[:10]
        return values

    return finish


def _ticket(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        values["priority"] = priority_of(values.get("priority"))
        values["account_external_id"] = first_associated(raw, "companies")
        values["is_closed"] = bool(values.get("closed_at")) or str(values.get("status")) == "4"
        return values

    return finish


def _owner(_: DealKindConfig) -> Finish:
    def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
        name = " ".join(p for p in (raw.get("firstName"), raw.get("lastName")) if p)
        values["name"] = name or None
        values["is_active"] = not raw.get("archived")
        values.pop("is_deleted", None)
        return values

    return finish


def _engagement(activity_type: str) -> Callable[[DealKindConfig], Finish]:
    def build(_: DealKindConfig) -> Finish:
        def finish(values: dict[str, Any], raw: Mapping[str, Any]) -> dict[str, Any]:
            values["activity_type"] = activity_type
            if activity_type == "meeting":
                values["direction"] = Direction.TWO_WAY
            elif activity_type == "note":
                values["direction"] = None
            else:
                values["direction"] = direction_of(values.get("direction"))
            if activity_type == "call" and values.get("duration_minutes") is not None:
                values["duration_minutes"] = float(values["duration_minutes"]) / 60_000  # HubSpot: milliseconds
            values["occurred_at"] = values.get("occurred_at") or raw.get("createdAt")
            values["account_external_id"] = first_associated(raw, "companies")
            values["contact_external_ids"] = associated(raw, "contacts")
            if values.get("subject") is not None:
                values["subject"] = str(values["subject"])
            return values

        return finish

    return build


def _engagement_fields(subject: str | None, direction: str | None, duration: str | None) -> dict[str, str]:
    fields = {**_SYSTEM, "occurred_at": "hs_timestamp", "owner_external_id": "hubspot_owner_id"}
    if subject:
        fields["subject"] = subject
    if direction:
        fields["direction"] = direction
    if duration:
        fields["duration_minutes"] = duration
    return fields


_PARTIES = ("companies", "contacts")

TYPES: dict[str, TypeSpec] = {
    spec.stream: spec
    for spec in (
        TypeSpec("companies", "companies", AccountRecord, {
            **_SYSTEM, "name": "name", "domain": "domain", "industry": "industry", "employees": "numberofemployees",
            "owner_external_id": "hubspot_owner_id",
        }, _company),
        TypeSpec("contacts", "contacts", ContactRecord, {
            **_SYSTEM, "account_external_id": "associatedcompanyid", "first_name": "firstname",
            "last_name": "lastname", "email": "email", "title": "jobtitle",
        }, _contact, associations=("companies",)),
        TypeSpec("deals", "deals", DealRecord, {
            **_SYSTEM, "name": "dealname", "stage": "dealstage", "close_date": "closedate", "amount": "amount",
            "is_closed": "hs_is_closed", "is_won": "hs_is_closed_won",
        }, _deal, associations=_PARTIES),
        TypeSpec("tickets", "tickets", TicketRecord, {
            **_SYSTEM, "subject": "subject", "priority": "hs_ticket_priority", "status": "hs_pipeline_stage",
            "opened_at": "createdate", "closed_at": "closed_date",
        }, _ticket, associations=("companies",)),
        TypeSpec("owners", "owners", UserRecord, {
            "external_id": "id", "source_created_at": "createdAt", "source_updated_at": "updatedAt",
            "email": "email",
        }, _owner, archived=False),
        TypeSpec("calls", "calls", ActivityRecord,
                 _engagement_fields("hs_call_title", "hs_call_direction", "hs_call_duration"),
                 _engagement("call"), associations=_PARTIES, archived=False),
        TypeSpec("emails", "emails", ActivityRecord,
                 _engagement_fields("hs_email_subject", "hs_email_direction", None),
                 _engagement("email"), associations=_PARTIES, archived=False),
        TypeSpec("meetings", "meetings", ActivityRecord,
                 _engagement_fields("hs_meeting_title", None, None),
                 _engagement("meeting"), associations=_PARTIES, archived=False),
        TypeSpec("notes", "notes", ActivityRecord, _engagement_fields(None, None, None),
                 _engagement("note"), associations=_PARTIES, archived=False),
    )
}  # fmt: skip
