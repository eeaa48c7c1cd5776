"""Migrations move existing data forward, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, select, text

from core.records import ActivityRecord, ActivityType, Direction
from store.db import make_engine, sqlite_driver
from store.migrate import alembic_config, head_revision, upgrade
from store.models import ActivityParticipant
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
    activity = ActivityRecord(source="salesforce", external_id="00T1", activity_type=ActivityType.CALL,
                              direction=Direction.OUTBOUND, occurred_at=T0, account_external_id="001A",
                              contact_external_ids=("003A", "003B"))
    moved = activity.model_copy(update={"account_external_id": "001B", "activity_type": ActivityType.MEETING,
                                        "direction": Direction.TWO_WAY, "is_deleted": True})
    pt = ActivityParticipant.__table__
    for record, expected in ((activity, ("001A", "call", "outbound", False)),
                             (moved, ("001B", "meeting", "two_way", True))):
        with store_engine.begin() as conn:
            upsert_records(conn, [record])
        with store_engine.connect() as conn:
            rows = conn.execute(select(pt.c.contact_external_id, pt.c.account_external_id, pt.c.activity_type,
                                       pt.c.direction, pt.c.is_deleted, pt.c.occurred_at)
                                .order_by(pt.c.contact_external_id)).all()
        assert [tuple(r) for r in rows] == [(c, *expected, T0) for c in ("003A", "003B")]


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
