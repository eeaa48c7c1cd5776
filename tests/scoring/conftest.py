"""A small, hand-made book in the store: every signal of account A has a figure worked out by hand."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, Table, select

from core.records import (
    AccountRecord,
    ActivityRecord,
    ActivityType,
    CanonicalRecord,
    ContactRecord,
    Direction,
    IntentSignalRecord,
    InvoiceRecord,
    InvoiceStatus,
    Seniority,
    SurveyKind,
    SurveyResponseRecord,
    TicketRecord,
    UsageRecord,
)
from store.models import SYNCED_MODELS, AccountLink
from store.upsert import upsert_records, upsert_rows

T = datetime(2026, 6, 1, tzinfo=UTC)  # the scoring moment of the small book
SF = "salesforce"


def ago(days: float, hours: float = 0) -> datetime:
    return T - timedelta(days=days, hours=hours)


def store(engine: Engine, *records: CanonicalRecord) -> None:
    """Upsert records (any mix of entities) and link non-CRM ones to their account by external id or email."""
    by_entity: dict[str, list[CanonicalRecord]] = {}
    for r in records:
        by_entity.setdefault(r.entity, []).append(r)
    with engine.begin() as conn:
        for entity in ("users", "accounts", "contacts", "activities", "deals", "tickets", "survey_responses",
                       "intent_signals", "usage_metrics", "invoices"):
            if entity in by_entity:
                upsert_records(conn, by_entity[entity])


def link(engine: Engine, entity: str, external_ids: Sequence[str], account_external_id: str) -> None:
    """Link non-CRM records to a Salesforce account (what store.linking does, by hand)."""
    table: Table = SYNCED_MODELS[entity].__table__  # type: ignore[attr-defined]
    accounts: Table = SYNCED_MODELS["accounts"].__table__  # type: ignore[attr-defined]
    links: Table = AccountLink.__table__  # type: ignore[assignment]
    with engine.begin() as conn:
        account_id = conn.execute(
            select(accounts.c.id).where(accounts.c.source == SF, accounts.c.external_id == account_external_id)
        ).scalar_one()
        ids = conn.execute(select(table.c.id).where(table.c.external_id.in_(list(external_ids)))).scalars().all()
        upsert_rows(conn, links, [{"entity": entity, "record_id": i, "account_id": account_id, "method": "test"}
                                  for i in ids], ("entity", "record_id", "account_id"), update=[])


def _act(ext: str, kind: ActivityType, when: datetime, account: str, contacts: tuple[str, ...],
         direction: Direction | None = None, *, deleted: bool = False) -> ActivityRecord:
    return ActivityRecord(source=SF, external_id=ext, activity_type=kind, occurred_at=when,
                          account_external_id=account, contact_external_ids=contacts, direction=direction,
                          is_deleted=deleted)


def build_small_book(engine: Engine) -> None:
    """Accounts A (enterprise, every signal), B (smb, a champion who went quiet) and C (deleted)."""
    created = datetime(2024, 1, 1, tzinfo=UTC)
    store(
        engine,
        AccountRecord(source=SF, external_id="001A", name="Acme Corp", domain="acme.com", tier="enterprise",
                      arr=120_000, source_created_at=created, renewal_date=date(2026, 9, 29)),
        AccountRecord(source=SF, external_id="001B", name="Beta GmbH", domain="beta.io", tier="smb", arr=10_000,
                      source_created_at=created),
        AccountRecord(source=SF, external_id="001C", name="Gone Ltd", domain="gone.com", tier="smb", arr=5_000,
                      source_created_at=created, is_deleted=True),
        ContactRecord(source=SF, external_id="c1", account_external_id="001A", first_name="Ada", last_name="Ceo",
                      email="ada@acme.com", title="CEO", seniority=Seniority.C_LEVEL, department="executive"),
        ContactRecord(source=SF, external_id="c2", account_external_id="001A", first_name="Bob", last_name="Dev",
                      email="bob@acme.com", title="Engineer", seniority=Seniority.INDIVIDUAL,
                      department="engineering"),
        ContactRecord(source=SF, external_id="c3", account_external_id="001A", first_name="Cy", last_name="Vp",
                      email="cy@acme.com", title="VP Sales", seniority=Seniority.VP, has_left=True,
                      source_updated_at=ago(300)),
        ContactRecord(source=SF, external_id="b1", account_external_id="001B", first_name="Dee", last_name="Mgr",
                      email="dee@beta.io", title="Ops Manager", seniority=Seniority.MANAGER, department="operations"),
        _act("m1", ActivityType.MEETING, ago(10), "001A", ("c1",), Direction.TWO_WAY),
        _act("e1", ActivityType.EMAIL, ago(40), "001A", ("c2",), Direction.INBOUND),
        _act("e2", ActivityType.EMAIL, ago(100), "001A", ("c2",), Direction.OUTBOUND),
        _act("k1", ActivityType.CALL, ago(200), "001A", ("c3",), Direction.OUTBOUND),
        _act("d1", ActivityType.MEETING, ago(5), "001A", ("c2",), Direction.TWO_WAY, deleted=True),
        _act("n1", ActivityType.NOTE, ago(3), "001A", ()),
        _act("b-e1", ActivityType.EMAIL, ago(150), "001B", ("b1",), Direction.INBOUND),
        _act("b-e2", ActivityType.EMAIL, ago(140), "001B", ("b1",), Direction.OUTBOUND),
        _act("b-e3", ActivityType.EMAIL, ago(120), "001B", ("b1",), Direction.OUTBOUND),
        TicketRecord(source=SF, external_id="t1", account_external_id="001A", priority="p1", opened_at=ago(20)),
        TicketRecord(source=SF, external_id="t2", account_external_id="001A", priority="p3", is_closed=True,
                     opened_at=ago(50), closed_at=ago(48)),
        TicketRecord(source=SF, external_id="t3", account_external_id="001A", priority="p2", is_closed=True,
                     is_escalated=True, opened_at=ago(60), closed_at=ago(60) + timedelta(hours=72)),
        SurveyResponseRecord(source="nps", external_id="s1", kind=SurveyKind.NPS, score=3, responded_at=ago(30),
                             email="ada@acme.com"),
        SurveyResponseRecord(source="nps", external_id="s2", kind=SurveyKind.NPS, score=9, responded_at=ago(200),
                             email="someone@acme.com"),
        SurveyResponseRecord(source="nps", external_id="s3", kind=SurveyKind.CSAT, score=4, responded_at=ago(10),
                             email="bob@acme.com"),
        IntentSignalRecord(source="intent", external_id="i1", domain="eu.acme.com", topic="Expansion", score=80,
                           observed_at=ago(5)),
        IntentSignalRecord(source="intent", external_id="i2", domain="acme.com", topic="Expansion", score=95,
                           observed_at=ago(45)),
        *[UsageRecord(source="usage", external_id=f"u{m}", account_external_id="001A", period_start=date(2026, m, 1),
                      active_users=50, licensed_seats=100, feature_adoption=0.6) for m in (2, 3, 4)],
        UsageRecord(source="usage", external_id="u5", account_external_id="001A", period_start=date(2026, 5, 1),
                    active_users=40, licensed_seats=100, feature_adoption=0.5),
        InvoiceRecord(source="billing", external_id="inv1", account_external_id="001A", amount=30_000,
                      issued_at=date(2026, 3, 18), due_date=date(2026, 4, 17), status=InvoiceStatus.OPEN),
        InvoiceRecord(source="billing", external_id="inv2", account_external_id="001A", amount=30_000,
                      issued_at=date(2026, 2, 1), due_date=date(2026, 3, 3), paid_at=date(2026, 3, 1),
                      status=InvoiceStatus.PAID, failed_payments=2),
    )
    link(engine, "survey_responses", ["s1", "s2", "s3"], "001A")
    link(engine, "intent_signals", ["i1", "i2"], "001A")
    link(engine, "usage_metrics", ["u2", "u3", "u4", "u5"], "001A")
    link(engine, "invoices", ["inv1", "inv2"], "001A")


def add_future_rows(engine: Engine) -> None:
    """Rows dated at or after T: a point-in-time signal must not see any of them."""
    store(
        engine,
        AccountRecord(source=SF, external_id="001F", name="Future Inc", tier="smb", arr=1_000,
                      source_created_at=T + timedelta(days=1)),
        ContactRecord(source=SF, external_id="c9", account_external_id="001A", first_name="New", last_name="Exec",
                      email="new@acme.com", title="CFO", seniority=Seniority.C_LEVEL),
        _act("f1", ActivityType.MEETING, T, "001A", ("c9", "c2"), Direction.TWO_WAY),
        _act("f2", ActivityType.EMAIL, T + timedelta(days=2), "001B", ("b1",), Direction.INBOUND),
        TicketRecord(source=SF, external_id="tf", account_external_id="001A", priority="p1", opened_at=T),
        TicketRecord(source=SF, external_id="t1", account_external_id="001A", priority="p1", opened_at=ago(20),
                     is_closed=True, closed_at=T + timedelta(hours=5)),
        SurveyResponseRecord(source="nps", external_id="sf", kind=SurveyKind.NPS, score=10, responded_at=T,
                             email="ada@acme.com"),
        IntentSignalRecord(source="intent", external_id="if", domain="acme.com", topic="Expansion", score=99,
                           observed_at=T + timedelta(hours=1)),
        UsageRecord(source="usage", external_id="u6", account_external_id="001A", period_start=date(2026, 6, 1),
                    active_users=100, licensed_seats=100, feature_adoption=1.0),
        InvoiceRecord(source="billing", external_id="invf", account_external_id="001A", amount=99_000,
                      issued_at=date(2026, 6, 1), due_date=date(2026, 6, 1), status=InvoiceStatus.FAILED,
                      failed_payments=5),
    )
    link(engine, "survey_responses", ["sf"], "001A")
    link(engine, "intent_signals", ["if"], "001A")
    link(engine, "usage_metrics", ["u6"], "001A")
    link(engine, "invoices", ["invf"], "001A")


@pytest.fixture
def small_book(store_engine: Engine) -> Engine:
    build_small_book(store_engine)
    return store_engine
