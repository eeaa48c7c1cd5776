"""The store's tables as SQLAlchemy 2.0 typed models. Alembic migrations are generated from these.

Synced tables (one per canonical entity) share ``SyncedMixin``: a surrogate ``id``, the record's
``source`` and ``external_id`` (unique together), source timestamps and a soft-delete mark.
References between synced rows are external ids in the same source (``account_external_id``) so
rows can land in any order; records from other sources (surveys, intent, usage, billing) reach
accounts through ``account_links``, filled set-based by ``store.linking``.
All datetimes are stored as naive UTC and read back as aware UTC (``UtcDateTime``).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Stores naive UTC; accepts aware datetimes (converted) and returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


_EPOCH = datetime(1970, 1, 1)


def epoch_us(moment: datetime) -> int:
    """A moment (aware, or naive UTC as the store keeps it) as whole microseconds since 1970-01-01 UTC: exact, where
    a float of seconds is not."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _occurred_us(context: Any) -> int | None:
    """``occurred_us`` for an INSERT that did not give it: from the row's ``occurred_at`` (see ``Activity``)."""
    occurred_at = context.get_current_parameters().get("occurred_at")
    return None if occurred_at is None else epoch_us(occurred_at)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class SyncedMixin:
    """Columns every synced row has."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(64))
    source_created_at: Mapped[datetime | None]
    source_updated_at: Mapped[datetime | None]
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    deleted_at: Mapped[datetime | None]  # when the agent first saw the delete
    synced_at: Mapped[datetime]
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805 (a class-level directive)
        return (UniqueConstraint("source", "external_id"),)


class Account(SyncedMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str | None] = mapped_column(String(255))
    domain: Mapped[str | None] = mapped_column(String(255), index=True)
    extra_domains: Mapped[list[Any]] = mapped_column(JSON, default=list)
    industry: Mapped[str | None] = mapped_column(String(255))
    employees: Mapped[int | None] = mapped_column(Integer)
    arr: Mapped[float | None] = mapped_column(Float)
    tier: Mapped[str | None] = mapped_column(String(64))
    owner_external_id: Mapped[str | None] = mapped_column(String(64))
    renewal_date: Mapped[date | None] = mapped_column(Date)
    churned: Mapped[bool | None] = mapped_column(Boolean)
    churned_at: Mapped[date | None] = mapped_column(Date)
    override_band: Mapped[str | None] = mapped_column(String(32))
    override_until: Mapped[date | None] = mapped_column(Date)


class AccountSnapshot(Base):
    """An account's commercial facts (ARR, tier, renewal date) from a moment on, written at sync when they change.

    The account row holds only the latest values; a backtest scoring the past reads these instead, so that a CRM
    that zeroes ARR or moves the renewal date after a churn does not leak the outcome. ``valid_from`` is the
    record's last edit in the CRM when known (the change happened then or before), else when it was synced.
    """

    __tablename__ = "account_snapshots"
    __table_args__ = (Index("ix_account_snapshots_account_valid_from", "account_id", "valid_from", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    valid_from: Mapped[datetime]
    arr: Mapped[float | None] = mapped_column(Float)
    tier: Mapped[str | None] = mapped_column(String(64))
    renewal_date: Mapped[date | None] = mapped_column(Date)


class AccountDomain(Base):
    """Every domain an account answers to (its main domain and extra ones), for matching."""

    __tablename__ = "account_domains"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)


class Contact(SyncedMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_contacts_account", "source", "account_external_id"),
    )

    account_external_id: Mapped[str | None] = mapped_column(String(64))
    first_name: Mapped[str | None] = mapped_column(String(255))
    last_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255), index=True)
    title: Mapped[str | None] = mapped_column(String(255))
    seniority: Mapped[str] = mapped_column(String(16), default="unknown")
    department: Mapped[str | None] = mapped_column(String(64))
    has_left: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class User(SyncedMixin, Base):
    __tablename__ = "users"

    name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")


class Activity(SyncedMixin, Base):
    __tablename__ = "activities"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        # Covering for scoring's per-account aggregates: whole-portfolio GROUP BYs run as index-only scans.
        Index("ix_activities_account_time", "source", "account_external_id", "occurred_us", "activity_type",
              "direction", "is_deleted", "external_id"),
    )

    activity_type: Mapped[str] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(16))
    occurred_at: Mapped[datetime]
    # occurred_at as microseconds since 1970 UTC (``epoch_us``), written with it (``store.upsert``; an INSERT without
    # it gets it from occurred_at). Scoring compares and subtracts these integers: on SQLite a datetime is text, and
    # comparing text was a seventh of the relationship query's instructions (``scoring.signals``).
    occurred_us: Mapped[int | None] = mapped_column(BigInteger, default=_occurred_us)
    account_external_id: Mapped[str | None] = mapped_column(String(64))
    owner_external_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(255))
    duration_minutes: Mapped[float | None] = mapped_column(Float)


class ActivityParticipant(Base):
    """Which contacts took part in an activity (replaced whenever the activity is upserted).

    Each row also carries a copy of its activity's account, time, type, direction and deleted flag, written in
    the same statement as the activity (so they never disagree). Scoring's per-contact relationship aggregates
    then read this one table in index order instead of looking up 1.6M activities per 100k accounts.
    """

    __tablename__ = "activity_participants"
    __table_args__ = (
        Index("ix_activity_participants_contact", "source", "contact_external_id"),
        Index("ix_activity_participants_account", "source", "account_external_id", "contact_external_id",
              "occurred_us", "activity_type", "direction", "is_deleted"),
    )

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    activity_external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_external_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_external_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime | None]
    occurred_us: Mapped[int | None] = mapped_column(BigInteger, default=_occurred_us)  # as the activity's
    activity_type: Mapped[str | None] = mapped_column(String(16))
    direction: Mapped[str | None] = mapped_column(String(16))
    is_deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")


class Deal(SyncedMixin, Base):
    __tablename__ = "deals"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_deals_account", "source", "account_external_id"),
    )

    account_external_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="other")
    stage: Mapped[str | None] = mapped_column(String(255))
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    is_won: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    close_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[float | None] = mapped_column(Float)
    contact_external_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)


class Ticket(SyncedMixin, Base):
    __tablename__ = "tickets"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_tickets_account", "source", "account_external_id"),
    )

    account_external_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(255))
    priority: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str | None] = mapped_column(String(64))
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    is_escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class SurveyResponse(SyncedMixin, Base):
    __tablename__ = "survey_responses"

    kind: Mapped[str] = mapped_column(String(8))
    score: Mapped[float] = mapped_column(Float)
    comment: Mapped[str | None] = mapped_column(Text)
    responded_at: Mapped[datetime]
    email: Mapped[str | None] = mapped_column(String(255), index=True)


class IntentSignal(SyncedMixin, Base):
    __tablename__ = "intent_signals"

    domain: Mapped[str] = mapped_column(String(255), index=True)
    topic: Mapped[str] = mapped_column(String(255))
    score: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime]


class UsageMetric(SyncedMixin, Base):
    __tablename__ = "usage_metrics"

    account_external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_domain: Mapped[str | None] = mapped_column(String(255))
    period_start: Mapped[date] = mapped_column(Date)
    active_users: Mapped[int | None] = mapped_column(Integer)
    licensed_seats: Mapped[int | None] = mapped_column(Integer)
    feature_adoption: Mapped[float | None] = mapped_column(Float)


class Invoice(SyncedMixin, Base):
    __tablename__ = "invoices"

    account_external_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_domain: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[float] = mapped_column(Float)
    issued_at: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    paid_at: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    failed_payments: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class AccountLink(Base):
    """A record from a non-CRM source (survey, intent, usage, invoice) matched to an account.

    One record can match accounts in several CRMs (Salesforce and HubSpot both on).
    """

    __tablename__ = "account_links"
    __table_args__ = (Index("ix_account_links_account", "account_id", "entity"),)

    entity: Mapped[str] = mapped_column(String(32), primary_key=True)  # the record's table
    record_id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the record's id
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16))  # external_id | email | domain


class SyncState(Base):
    """The cursor of one stream; advanced in the same transaction as the rows it covers."""

    __tablename__ = "sync_state"

    source: Mapped[str] = mapped_column(String(32), primary_key=True)
    stream: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[datetime | None]  # the highest source_updated_at committed
    cursor_token: Mapped[str | None] = mapped_column(String(255))  # for sources whose cursor is not a time
    backfill_done: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    records_synced: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    last_run_id: Mapped[str | None] = mapped_column(String(36))
    last_success_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Run(Base):
    """One run of the agent: what it pulled, scored and wrote, and how it ended."""

    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running | succeeded | partial | failed | interrupted
    trigger: Mapped[str] = mapped_column(String(16))  # cli | schedule | demo
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    host: Mapped[str | None] = mapped_column(String(255))
    report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class RejectedRow(Base):
    """A record skipped because it could not be mapped or stored, with the reason."""

    __tablename__ = "rejected_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    source: Mapped[str] = mapped_column(String(32))
    stream: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    seen_at: Mapped[datetime]


class ScoreHistory(Base):
    """One account's score from one run: the number, its band, and every measure behind it."""

    __tablename__ = "score_history"
    __table_args__ = (
        Index("ix_score_history_account_time", "account_id", "scored_at"),
        Index("ix_score_history_account_as_of", "account_id", "as_of", "id"),  # latest score before a moment
        Index("ix_score_history_as_of", "as_of"),  # the oldest rows, for retention
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    scored_at: Mapped[datetime]
    as_of: Mapped[datetime]  # the moment the data was taken at (differs from scored_at in backtests)
    scorecard: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Float)  # 0-100
    band: Mapped[str] = mapped_column(String(32))  # after hysteresis and override
    computed_band: Mapped[str] = mapped_column(String(32))  # before override
    coverage: Mapped[float] = mapped_column(Float)  # share of weight that had data, 0-1
    low_confidence: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    trend_delta: Mapped[float | None] = mapped_column(Float)  # points against trend_days ago
    trend_days: Mapped[int | None] = mapped_column(Integer)
    direction: Mapped[str | None] = mapped_column(String(8))  # up | down | flat
    relationship_capital: Mapped[float | None] = mapped_column(Float)  # 0-100
    thread_count: Mapped[int | None] = mapped_column(Integer)  # engaged contacts in 90 days
    flags: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # name -> {on, reason}
    measures: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{name, raw, points, weight, ...}]
    signals: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # every signal's raw value
    drivers: Mapped[str] = mapped_column(String(255), default="")  # the plain-language summary
    override_band: Mapped[str | None] = mapped_column(String(32))


class WrittenField(Base):
    """The value the agent last wrote to one CRM field of one record: what the next plan diffs against."""

    __tablename__ = "written_fields"

    crm: Mapped[str] = mapped_column(String(16), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    field: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str | None] = mapped_column(Text)  # JSON-encoded
    written_at: Mapped[datetime]
    run_id: Mapped[str] = mapped_column(String(36))


class WriteLedger(Base):
    """The audit trail: every write attempted, the value it replaced, and its outcome."""

    __tablename__ = "write_ledger"
    __table_args__ = (Index("ix_write_ledger_record", "crm", "object_type", "record_id", "field"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(36), index=True)
    crm: Mapped[str] = mapped_column(String(16))
    object_type: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(128))
    value: Mapped[str | None] = mapped_column(Text)  # JSON-encoded
    previous_value: Mapped[str | None] = mapped_column(Text)  # JSON-encoded; what the write replaced
    outcome: Mapped[str] = mapped_column(String(24))  # written | failed | skipped_human_edit | review_task
    error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[datetime]


class TaskLedger(Base):
    """Follow-up tasks by dedupe key, so a task is created once per (rule, account)."""

    __tablename__ = "task_ledger"

    dedupe_key: Mapped[str] = mapped_column(String(128), primary_key=True)
    crm: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[str | None] = mapped_column(String(64))  # None until the CRM confirmed the create
    status: Mapped[str] = mapped_column(String(16))  # pending | open | completed | closed
    subject: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    last_checked_at: Mapped[datetime | None]
    run_id: Mapped[str] = mapped_column(String(36))


class Lease(Base):
    """A named lease, so several replicas against one database run one cycle at a time."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime]
    expires_at: Mapped[datetime]


SYNCED_MODELS: dict[str, type[SyncedMixin]] = {
    m.__tablename__: m
    for m in (Account, Contact, User, Activity, Deal, Ticket, SurveyResponse, IntentSignal, UsageMetric, Invoice)
}
