"""Migrations move existing data forward, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic import command
from sqlalchemy import Engine, Table, insert, inspect, select, text

from core.records import ActivityRecord, ActivityType, Direction
from store.db import make_engine, sqlite_driver
from store.migrate import alembic_config, head_revision, upgrade
from store.models import Activity, ActivityParticipant, epoch_us
from store.upsert import upsert_records

T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.mark.parametrize("old_sqlite", [False, True], ids=["update-from", "sqlite-before-3.33"])
def test_0002_copies_each_activity_onto_its_existing_participants(
    database_url: str, old_sqlite: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if old_sqlite:
        if not database_url.startswith("sqlite"):
            pytest.skip("the fallback is for SQLite only")
        monkeypatch.setattr(sqlite_driver(), "sqlite_version_info", (3, 31, 1))  # no UPDATE ... FROM
    engine: Engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0001")
        with engine.begin() as conn:  # rows as a 0001 store held them: participants without the copy
            conn.execute(text(
                "INSERT INTO activities (source, external_id, activity_type, direction, occurred_at, "
                "account_external_id, synced_at, is_deleted, extra) VALUES "
                "('hubspot', 'e1', 'meeting', 'two_way', '2026-03-02 09:30:00.000000', 'A1', "
                "'2026-03-03 00:00:00.000000', false, '{}'), "
                "('hubspot', 'e2', 'email', NULL, '2026-03-01 08:00:00.000000', 'A2', "
                "'2026-03-03 00:00:00.000000', true, '{}')"
            ))
            conn.execute(text(
                "INSERT INTO activity_participants (source, activity_external_id, contact_external_id) VALUES "
                "('hubspot', 'e1', 'c1'), ('hubspot', 'e1', 'c2'), ('hubspot', 'e2', 'c1'), ('hubspot', 'gone', 'c9')"
            ))
        assert upgrade(engine) == ("0001", head_revision())
        pt = ActivityParticipant.__table__
        with engine.connect() as conn:
            rows = conn.execute(select(pt).order_by(pt.c.activity_external_id, pt.c.contact_external_id)).all()
        copied = [(r.activity_external_id, r.contact_external_id, r.account_external_id, r.occurred_at,
                   r.activity_type, r.direction, r.is_deleted) for r in rows]
        assert copied == [
            ("e1", "c1", "A1", T0, "meeting", "two_way", False),
            ("e1", "c2", "A1", T0, "meeting", "two_way", False),
            ("e2", "c1", "A2", datetime(2026, 3, 1, 8, tzinfo=UTC), "email", None, True),
            ("gone", "c9", None, None, None, None, False),  # a participant without its activity keeps defaults
        ]
    finally:
        engine.dispose()


def test_participants_follow_their_activity_when_it_changes(store_engine: Engine) -> None:
    """Both times too: occurred_us is the activity's occurred_at in microseconds since 1970, after an update too."""
    activity = ActivityRecord(source="salesforce", external_id="00T1", activity_type=ActivityType.CALL,
                              direction=Direction.OUTBOUND, occurred_at=T0, account_external_id="001A",
                              contact_external_ids=("003A", "003B"))
    later = datetime(2026, 3, 4, 17, 5, 9, 123456, tzinfo=UTC)
    moved = activity.model_copy(update={"account_external_id": "001B", "activity_type": ActivityType.MEETING,
                                        "direction": Direction.TWO_WAY, "is_deleted": True, "occurred_at": later})
    pt, act = ActivityParticipant.__table__, Activity.__table__
    for record, expected in ((activity, ("001A", "call", "outbound", False, T0, 1772443800_000000)),
                             (moved, ("001B", "meeting", "two_way", True, later, 1772643909_123456))):
        with store_engine.begin() as conn:
            upsert_records(conn, [record])
        with store_engine.connect() as conn:
            rows = conn.execute(select(pt.c.contact_external_id, pt.c.account_external_id, pt.c.activity_type,
                                       pt.c.direction, pt.c.is_deleted, pt.c.occurred_at, pt.c.occurred_us)
                                .order_by(pt.c.contact_external_id)).all()
            own = conn.execute(select(act.c.occurred_at, act.c.occurred_us)).one()
        assert [tuple(r) for r in rows] == [(c, *expected) for c in ("003A", "003B")]
        assert tuple(own) == expected[-2:]


def test_0006_fills_occurred_us_exactly_from_occurred_at(database_url: str) -> None:
    """To the microsecond, for a time with and without a fraction of a second, and one before 1970."""
    engine: Engine = make_engine(database_url)
    times = {"e1": "2026-03-02 09:30:00.000000", "e2": "2026-05-11 03:07:48.040614", "e3": "1969-12-31 23:59:59.999999"}
    try:
        command.upgrade(alembic_config(engine), "0005")
        with engine.begin() as conn:
            for ext, when in times.items():
                conn.execute(text(
                    "INSERT INTO activities (source, external_id, activity_type, occurred_at, synced_at, is_deleted, "
                    "extra) VALUES ('hubspot', :ext, 'call', :when, '2026-03-03 00:00:00.000000', false, '{}')"),
                    {"ext": ext, "when": when})
                conn.execute(text(
                    "INSERT INTO activity_participants (source, activity_external_id, contact_external_id, "
                    "occurred_at, is_deleted) VALUES ('hubspot', :ext, 'c1', :when, false)"), {"ext": ext, "when": when})
            conn.execute(text("INSERT INTO activity_participants (source, activity_external_id, contact_external_id, "
                              "is_deleted) VALUES ('hubspot', 'gone', 'c9', false)"))  # no time: none in microseconds
        assert upgrade(engine) == ("0005", head_revision())
        expected = {"e1": 1772443800_000000, "e2": 1778468868_040614, "e3": -1}
        pt, act = ActivityParticipant.__table__, Activity.__table__
        with engine.connect() as conn:
            assert dict(conn.execute(select(act.c.external_id, act.c.occurred_us)).all()) == expected
            assert dict(conn.execute(select(pt.c.activity_external_id, pt.c.occurred_us)).all()) == {
                **expected, "gone": None}
            assert all(epoch_us(at) == us for at, us in conn.execute(select(act.c.occurred_at, act.c.occurred_us)))
        command.downgrade(alembic_config(engine), "0005")  # and back: the indexes on occurred_at again
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("activity_participants")}
        assert "occurred_us" not in {c["name"] for c in inspect(engine).get_columns("activity_participants")}
        assert indexes["ix_activity_participants_account"][3] == "occurred_at"
        assert upgrade(engine) == ("0005", head_revision())
        with engine.connect() as conn:
            assert dict(conn.execute(select(act.c.external_id, act.c.occurred_us)).all()) == expected
    finally:
        engine.dispose()


def test_an_insert_without_occurred_us_gets_it_from_occurred_at(store_engine: Engine) -> None:
    """The column default, for a writer other than ``store.upsert`` (which writes both)."""
    act: Table = Activity.__table__  # type: ignore[assignment]
    moment = datetime(2026, 5, 11, 5, 7, 48, 40614, tzinfo=timezone(timedelta(hours=2)))  # 03:07:48 UTC
    with store_engine.begin() as conn:
        conn.execute(insert(act), [{"source": "hubspot", "external_id": "e1", "activity_type": "call",
                                    "occurred_at": moment, "synced_at": T0}])
        assert conn.execute(select(act.c.occurred_us)).scalar_one() == 1778468868_040614


def test_0005_gives_every_existing_account_its_first_snapshot(database_url: str) -> None:
    """Dated by its last edit in the CRM, else by when it was synced."""
    from store.models import AccountSnapshot

    engine: Engine = make_engine(database_url)
    try:
        command.upgrade(alembic_config(engine), "0004")
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO accounts (source, external_id, arr, tier, renewal_date, source_updated_at, synced_at, "
                "is_deleted, extra, extra_domains) VALUES "
                "('salesforce', 'A1', 1000.5, 'smb', '2026-09-30', '2026-03-02 09:30:00.000000', "
                "'2026-03-05 00:00:00.000000', false, '{}', '[]'), "
                "('salesforce', 'A2', NULL, NULL, NULL, NULL, '2026-03-05 00:00:00.000000', false, '{}', '[]')"
            ))
        assert upgrade(engine) == ("0004", head_revision())
        snap = AccountSnapshot.__table__
        with engine.connect() as conn:
            rows = conn.execute(select(snap.c.valid_from, snap.c.arr, snap.c.tier, snap.c.renewal_date)
                                .order_by(snap.c.account_id)).all()
        assert [tuple(r) for r in rows] == [
            (T0, 1000.5, "smb", datetime(2026, 9, 30).date()),
            (datetime(2026, 3, 5, tzinfo=UTC), None, None, None),
        ]
    finally:
        engine.dispose()
