"""Upserts keyed on (source, external id) behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from core.records import AccountRecord, ActivityRecord, ActivityType, ContactRecord
from store.migrate import head_revision, schema_drift, upgrade
from store.models import Account, AccountDomain, ActivityParticipant, Contact
from store.upsert import upsert_records

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_second_upgrade_is_a_no_op_and_models_match_migrations(store_engine: Engine) -> None:
    assert upgrade(store_engine) == (head_revision(), head_revision())
    assert schema_drift(store_engine) == []


def test_upsert_inserts_then_updates_by_source_and_external_id(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        upsert_records(conn, [AccountRecord(source="salesforce", external_id="001A", name="Acme", arr=100.0)])
        upsert_records(conn, [AccountRecord(source="hubspot", external_id="001A", name="Acme HS")])
    with store_engine.begin() as conn:
        upsert_records(conn, [AccountRecord(source="salesforce", external_id="001A", name="Acme Corp", arr=250.0)])
    with store_engine.connect() as conn:
        rows = conn.execute(select(Account.source, Account.name, Account.arr).order_by(Account.source)).all()
    assert [tuple(r) for r in rows] == [("hubspot", "Acme HS", None), ("salesforce", "Acme Corp", 250.0)]


def test_a_deleted_record_keeps_its_row_marked_deleted(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        upsert_records(conn, [ContactRecord(source="salesforce", external_id="003X", email="a@acme.com")])
        upsert_records(conn, [ContactRecord(source="salesforce", external_id="003X", is_deleted=True)])
    with store_engine.connect() as conn:
        row = conn.execute(select(Contact.is_deleted, Contact.deleted_at)).one()
    assert row.is_deleted is True
    assert row.deleted_at is not None and row.deleted_at.tzinfo is UTC


def test_the_last_version_of_a_record_in_one_batch_wins(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        result = upsert_records(
            conn,
            [
                AccountRecord(source="salesforce", external_id="001B", name="Old"),
                AccountRecord(source="salesforce", external_id="001B", name="New"),
            ],
        )
    assert result.rows == 1
    with store_engine.connect() as conn:
        assert conn.execute(select(Account.name)).scalar_one() == "New"


def test_participants_and_domains_are_replaced_not_accumulated(store_engine: Engine) -> None:
    activity = ActivityRecord(
        source="hubspot",
        external_id="e1",
        activity_type=ActivityType.MEETING,
        occurred_at=T0,
        contact_external_ids=("c1", "c2", "c1"),
    )
    with store_engine.begin() as conn:
        upsert_records(conn, [activity])
        upsert_records(
            conn, [AccountRecord(source="hubspot", external_id="9", domain="www.Acme.com", extra_domains=("acme.de",))]
        )
    with store_engine.begin() as conn:
        upsert_records(conn, [activity.model_copy(update={"contact_external_ids": ("c3",)})])
        upsert_records(conn, [AccountRecord(source="hubspot", external_id="9", domain="acme.com")])
    with store_engine.connect() as conn:
        participants = conn.execute(select(ActivityParticipant.contact_external_id)).scalars().all()
        domains = conn.execute(select(AccountDomain.domain)).scalars().all()
    assert participants == ["c3"]
    assert domains == ["acme.com"]


def test_large_batches_are_split_under_the_parameter_limit(store_engine: Engine) -> None:
    records = [AccountRecord(source="salesforce", external_id=f"A{i:06d}", name=f"N{i}") for i in range(5_000)]
    with store_engine.begin() as conn:
        upsert_records(conn, records)
    with store_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Account)).scalar_one() == 5_000


def test_append_rows_keeps_json_text_times_and_nulls_exactly(store_engine: Engine) -> None:
    """append_rows (COPY on PostgreSQL) stores what an INSERT would: awkward text survives COPY's escaping."""
    from datetime import timedelta, timezone

    from store.models import ScoreHistory
    from store.upsert import append_rows

    with store_engine.begin() as conn:
        upsert_records(conn, [AccountRecord(source="salesforce", external_id="001X", name="X")])
        account_id = conn.execute(select(Account.id)).scalar_one()
    awkward = 'tab\there, new\nline, back\\slash, quote " and \u00e9\u4e2d, \\N'
    row = {
        "run_id": "r1", "account_id": account_id, "scored_at": T0,
        "as_of": T0.astimezone(timezone(timedelta(hours=-5))), "scorecard": "default", "score": 42.5,
        "band": "yellow", "computed_band": "yellow", "coverage": 0.9, "low_confidence": False, "trend_delta": None,
        "trend_days": 30, "direction": None, "relationship_capital": 12.25, "thread_count": 2,
        "flags": {"lonely_client": {"on": True, "reason": awkward}},
        "measures": [{"name": "nps", "raw": None, "points": 14.29}], "signals": {"arr": 1e6},
        "drivers": awkward, "override_band": None,
    }
    with store_engine.begin() as conn:
        assert append_rows(conn, ScoreHistory.__table__, [row, {**row, "run_id": "r2"}]) == 2  # type: ignore[arg-type]
    from sqlalchemy.orm import Session

    with Session(store_engine) as session:
        stored = list(session.scalars(select(ScoreHistory).order_by(ScoreHistory.run_id)))
    first = stored[0]
    assert [s.run_id for s in stored] == ["r1", "r2"]
    assert (first.scored_at, first.as_of) == (T0, T0)
    assert first.flags == row["flags"] and first.measures == row["measures"] and first.signals == {"arr": 1e6}
    assert (first.drivers, first.trend_delta, first.low_confidence) == (awkward, None, False)


def test_an_account_snapshot_is_written_when_arr_tier_or_renewal_date_change_and_only_then(
    store_engine: Engine,
) -> None:
    from datetime import date, timedelta

    from store.models import AccountSnapshot

    def sync(at: datetime, edited: datetime | None, **fields: object) -> None:
        with store_engine.begin() as conn:  # beside an account that never changes
            upsert_records(conn, [AccountRecord(source="salesforce", external_id="001A", source_updated_at=edited,
                                                **{"name": "Acme", "arr": 100.0, "tier": "smb", **fields}),
                                  AccountRecord(source="salesforce", external_id="001B", name="Other", arr=5.0)],
                           synced_at=at)

    day = timedelta(days=1)
    sync(T0, T0 - 10 * day)  # first sight: dated by the last edit in the CRM
    sync(T0 + day, T0 - 10 * day)  # unchanged: nothing
    sync(T0 + 2 * day, T0 + day, name="Acme Corp")  # a name is not a snapshot's business
    sync(T0 + 3 * day, T0 + 2 * day, name="Acme Corp", arr=0.0)  # ARR zeroed after a churn
    sync(T0 + 4 * day, None, arr=0.0, renewal_date=date(2027, 1, 1))  # no edit time: dated by the sync
    sync(T0 + 5 * day, T0 - 30 * day, arr=0.0, renewal_date=date(2027, 1, 1), tier="Enterprise")  # a stale edit
    snap = AccountSnapshot.__table__
    with store_engine.connect() as conn:
        other = conn.execute(select(Account.id).where(Account.external_id == "001B")).scalar_one()
        assert conn.execute(select(func.count()).where(snap.c.account_id == other)).scalar_one() == 1
        rows = conn.execute(select(snap.c.valid_from, snap.c.arr, snap.c.tier, snap.c.renewal_date)
                            .where(snap.c.account_id != other).order_by(snap.c.id)).all()
    assert [tuple(r) for r in rows] == [
        (T0 - 10 * day, 100.0, "smb", None),
        (T0 + 2 * day, 0.0, "smb", None),
        (T0 + 4 * day, 0.0, "smb", date(2027, 1, 1)),
        (T0 + 4 * day, 0.0, "Enterprise", date(2027, 1, 1)),  # never before the latest snapshot
    ]
