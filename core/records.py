"""Canonical records: the one shape every connector produces and the store accepts.

Connectors turn API answers into these; ``store.upsert`` writes them. Every record carries
its ``source`` (``salesforce``, ``hubspot``, ``nps``, ``intent``, ``usage``, ``billing``...),
its ``external_id`` in that source, the source's own timestamps and a soft-delete mark.
All datetimes are timezone-aware UTC; dates are calendar dates. Money is in the account's
currency units (no cents conversion). References to other records are external ids in the
same source (``account_external_id``), so records can arrive in any order.
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _as_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted to UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
ExternalId = Annotated[str, Field(min_length=1, max_length=64)]
ShortText = Annotated[str, Field(max_length=255)]
LongText = Annotated[str, Field(max_length=32_000)]


class Seniority(enum.StrEnum):
    """A contact's level, from the title (``core.titles.seniority_of``)."""

    C_LEVEL = "c_level"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    INDIVIDUAL = "individual"
    UNKNOWN = "unknown"


class ActivityType(enum.StrEnum):
    EMAIL = "email"
    CALL = "call"
    MEETING = "meeting"
    NOTE = "note"
    TASK = "task"


class Direction(enum.StrEnum):
    INBOUND = "inbound"  # the customer wrote or called us
    OUTBOUND = "outbound"  # we wrote or called them
    TWO_WAY = "two_way"  # meetings, connected calls: both sides took part


class DealKind(enum.StrEnum):
    NEW_BUSINESS = "new_business"
    RENEWAL = "renewal"
    EXPANSION = "expansion"
    OTHER = "other"


class SurveyKind(enum.StrEnum):
    NPS = "nps"  # 0-10
    CSAT = "csat"  # 1-5


class InvoiceStatus(enum.StrEnum):
    PAID = "paid"
    OPEN = "open"
    FAILED = "failed"  # a payment attempt failed
    VOID = "void"


class CanonicalRecord(BaseModel):
    """Fields every synced record has."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    entity: ClassVar[str]  # the store table this record lands in

    source: Annotated[str, Field(min_length=1, max_length=32)]
    external_id: ExternalId
    source_created_at: UtcDatetime | None = None
    source_updated_at: UtcDatetime | None = None  # the stream's cursor field
    is_deleted: bool = False
    extra: dict[str, Any] = Field(default_factory=dict)  # mapped custom fields kept as signals


class AccountRecord(CanonicalRecord):
    entity: ClassVar[str] = "accounts"

    name: ShortText | None = None
    domain: ShortText | None = None  # normalized: lowercase, no scheme, no www.
    extra_domains: tuple[str, ...] = ()
    industry: ShortText | None = None
    employees: int | None = Field(default=None, ge=0)
    arr: float | None = Field(default=None, ge=0)
    tier: ShortText | None = None  # segment, e.g. enterprise / mid_market / smb
    owner_external_id: ExternalId | None = None
    renewal_date: date | None = None
    churned: bool | None = None  # from a mapped churn field, when the CRM keeps one
    churned_at: date | None = None
    override_band: ShortText | None = None  # a CSM's manual band, from a mapped field
    override_until: date | None = None


class ContactRecord(CanonicalRecord):
    entity: ClassVar[str] = "contacts"

    account_external_id: ExternalId | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: ShortText | None = None  # lowercase
    title: ShortText | None = None
    seniority: Seniority = Seniority.UNKNOWN
    department: ShortText | None = None
    has_left: bool = False  # the CRM marks the person as gone from the company


class UserRecord(CanonicalRecord):
    """A CRM user: account owners and the people who log activities."""

    entity: ClassVar[str] = "users"

    name: ShortText | None = None
    email: ShortText | None = None
    is_active: bool = True


class ActivityRecord(CanonicalRecord):
    entity: ClassVar[str] = "activities"

    activity_type: ActivityType
    direction: Direction | None = None
    occurred_at: UtcDatetime
    account_external_id: ExternalId | None = None
    owner_external_id: ExternalId | None = None
    contact_external_ids: tuple[str, ...] = ()  # every contact who took part
    subject: ShortText | None = None
    duration_minutes: float | None = Field(default=None, ge=0)


class DealRecord(CanonicalRecord):
    entity: ClassVar[str] = "deals"

    account_external_id: ExternalId | None = None
    name: ShortText | None = None
    kind: DealKind = DealKind.OTHER
    stage: ShortText | None = None
    is_closed: bool = False
    is_won: bool = False
    close_date: date | None = None
    amount: float | None = None
    contact_external_ids: tuple[str, ...] = ()  # contact roles on the deal


class TicketRecord(CanonicalRecord):
    entity: ClassVar[str] = "tickets"

    account_external_id: ExternalId | None = None
    subject: ShortText | None = None
    priority: ShortText | None = None  # normalized: p1 (urgent/high) .. p4 (low)
    status: ShortText | None = None
    is_closed: bool = False
    is_escalated: bool = False
    opened_at: UtcDatetime | None = None
    closed_at: UtcDatetime | None = None


class SurveyResponseRecord(CanonicalRecord):
    entity: ClassVar[str] = "survey_responses"

    kind: SurveyKind
    score: float
    comment: LongText | None = None
    responded_at: UtcDatetime
    email: ShortText | None = None  # lowercase; matched to contacts, else to accounts by domain


class IntentSignalRecord(CanonicalRecord):
    entity: ClassVar[str] = "intent_signals"

    domain: ShortText  # normalized company domain
    topic: ShortText
    score: float = Field(ge=0, le=100)  # surge score
    observed_at: UtcDatetime


class UsageRecord(CanonicalRecord):
    """Product usage for one account and period (usually a month)."""

    entity: ClassVar[str] = "usage_metrics"

    account_external_id: ExternalId | None = None  # keyed by account id...
    account_domain: ShortText | None = None  # ...or by domain
    period_start: date
    active_users: int | None = Field(default=None, ge=0)
    licensed_seats: int | None = Field(default=None, ge=0)
    feature_adoption: float | None = Field(default=None, ge=0, le=1)  # share of key features used


class InvoiceRecord(CanonicalRecord):
    entity: ClassVar[str] = "invoices"

    account_external_id: ExternalId | None = None
    account_domain: ShortText | None = None
    amount: float
    issued_at: date
    due_date: date | None = None
    paid_at: date | None = None
    status: InvoiceStatus = InvoiceStatus.OPEN
    failed_payments: int = Field(default=0, ge=0)


Record = (
    AccountRecord
    | ContactRecord
    | UserRecord
    | ActivityRecord
    | DealRecord
    | TicketRecord
    | SurveyResponseRecord
    | IntentSignalRecord
    | UsageRecord
    | InvoiceRecord
)

RECORD_TYPES: dict[str, type[CanonicalRecord]] = {
    cls.entity: cls
    for cls in (
        AccountRecord,
        ContactRecord,
        UserRecord,
        ActivityRecord,
        DealRecord,
        TicketRecord,
        SurveyResponseRecord,
        IntentSignalRecord,
        UsageRecord,
        InvoiceRecord,
    )
}


class RejectedRecord(BaseModel):
    """A record a connector could not map: skipped, and reported with its reason."""

    model_config = ConfigDict(frozen=True)

    source: str
    stream: str
    external_id: str | None
    reason: str  # names the field, e.g. "Amount: not a number ('12,5x')"


def now_utc() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)
