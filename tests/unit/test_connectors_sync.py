"""store.sync with an in-memory connector: batches committed with their cursor, rejects stored, failures isolated."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from connectors.base import Stream
from core.config.runtime import LimitsConfig
from core.errors import FatalApiError
from core.records import AccountRecord, Record, RejectedRecord
from store.models import RejectedRow, SyncState
from store.sync import pull_all, pull_stream

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _account(n: int, minutes: int, name: str = "") -> AccountRecord:
    return AccountRecord(source="fake", external_id=f"A{n}", name=name or f"Account {n}",
                         source_updated_at=T0 + timedelta(minutes=minutes))


class FakeStream:
    entity = "accounts"
    primary_key = "id"
    cursor_field = "updated"

    def __init__(self, name: str, items: list[Record | RejectedRecord], fail_after: int | None = None) -> None:
        self.name = name
        self.items = items
        self.fail_after = fail_after
        self.since: list[datetime | None] = []

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]:
        self.since.append(since)
        for i, item in enumerate(self.items):
            if self.fail_after is not None and i == self.fail_after:
                raise FatalApiError("fake answered 400 INVALID_FIELD: No such column 'Nope__c'", system="fake")
            if since is None or isinstance(item, RejectedRecord) or (item.source_updated_at or T0) >= since:
                yield item


class FakeConnector:
    name = "fake"

    def __init__(self, *streams: FakeStream) -> None:
        self._streams = list(streams)

    def check(self) -> None:
        return None

    def streams(self) -> list[Stream]:
        return list(self._streams)


LIMITS = LimitsConfig(store_batch_size=2, cursor_lag_seconds=60)


def _cursor(engine: Engine, stream: str) -> datetime | None:
    with engine.connect() as conn:
        return conn.execute(select(SyncState.cursor).where(SyncState.stream == stream)).scalar_one_or_none()


def test_batches_commit_with_their_cursor_and_rejects_are_stored(store_engine: Engine) -> None:
    bad = RejectedRecord(source="fake", stream="accounts", external_id="A9", reason="Name: too long (100000 characters)")
    stream = FakeStream("accounts", [_account(1, 1), bad, _account(2, 2), _account(3, 3)])
    report = pull_stream(store_engine, FakeConnector(stream), stream, run_id="r1", limits=LIMITS)
    assert (report.read, report.records, report.rejected, report.error) == (3, 3, 1, None)
    assert report.rejected_reasons == ["A9: Name: too long (100000 characters)"]
    assert report.cursor_after == T0 + timedelta(minutes=3)
    assert _cursor(store_engine, "accounts") == T0 + timedelta(minutes=3)
    with store_engine.connect() as conn:
        assert conn.execute(select(RejectedRow.external_id, RejectedRow.reason)).all() == [
            ("A9", "Name: too long (100000 characters)")
        ]


def test_the_next_run_reads_from_the_cursor_minus_the_lag_and_rewrites_nothing(store_engine: Engine) -> None:
    stream = FakeStream("accounts", [_account(1, 1), _account(2, 2)])
    connector = FakeConnector(stream)
    pull_stream(store_engine, connector, stream, run_id="r1", limits=LIMITS)
    report = pull_stream(store_engine, connector, stream, run_id="r2", limits=LIMITS)
    assert stream.since == [None, T0 + timedelta(minutes=1)]
    assert (report.read, report.records) == (2, 0)


def test_a_changed_record_at_the_cursor_timestamp_is_written(store_engine: Engine) -> None:
    stream = FakeStream("accounts", [_account(1, 5)])
    connector = FakeConnector(stream)
    pull_stream(store_engine, connector, stream, run_id="r1", limits=LimitsConfig(cursor_lag_seconds=0))
    stream.items = [_account(1, 5), _account(2, 5, name="Late Arrival")]
    report = pull_stream(store_engine, connector, stream, run_id="r2", limits=LimitsConfig(cursor_lag_seconds=0))
    assert report.records == 1
    with store_engine.connect() as conn:
        assert conn.execute(text("SELECT name FROM accounts WHERE external_id = 'A2'")).scalar_one() == "Late Arrival"


def test_a_failing_stream_keeps_the_cursor_of_what_it_committed_and_the_others_go_on(store_engine: Engine) -> None:
    broken = FakeStream("broken", [_account(1, 1), _account(2, 2), _account(3, 3)], fail_after=2)
    fine = FakeStream("fine", [_account(4, 4)])
    reports = pull_all(store_engine, [FakeConnector(broken, fine)], run_id="r1", limits=LIMITS)
    assert [(r.stream, r.records, r.error) for r in reports] == [
        ("broken", 2, "fake answered 400 INVALID_FIELD: No such column 'Nope__c'"),
        ("fine", 1, None),
    ]
    assert _cursor(store_engine, "broken") == T0 + timedelta(minutes=2)
    with store_engine.connect() as conn:
        error = conn.execute(select(SyncState.last_error).where(SyncState.stream == "broken")).scalar_one()
    assert error == "fake answered 400 INVALID_FIELD: No such column 'Nope__c'"


def test_should_stop_ends_the_pull_between_batches_after_committing(store_engine: Engine) -> None:
    first = FakeStream("first", [_account(n, n) for n in range(1, 6)])
    second = FakeStream("second", [_account(9, 9)])
    asked: list[int] = []

    def should_stop() -> bool:  # checked before the first stream, then after each committed batch
        asked.append(1)
        return len(asked) > 1

    reports = pull_all(store_engine, [FakeConnector(first, second)], run_id="r1", limits=LIMITS,
                       should_stop=should_stop)
    assert [(r.stream, r.records, r.stopped) for r in reports] == [("first", 2, True)]
    assert _cursor(store_engine, "first") == T0 + timedelta(minutes=2)


def test_an_unordered_backfill_moves_the_cursor_only_when_it_finishes(store_engine: Engine) -> None:
    stream = FakeStream("unordered", [_account(1, 9), _account(2, 1), _account(3, 5)], fail_after=2)
    stream.is_ordered = lambda since: since is not None  # type: ignore[attr-defined]
    report = pull_stream(store_engine, FakeConnector(stream), stream, run_id="r1", limits=LIMITS)
    assert report.error is not None
    assert _cursor(store_engine, "unordered") is None


def test_progress_sees_every_report(store_engine: Engine) -> None:
    seen: list[str] = []
    pull_all(store_engine, [FakeConnector(FakeStream("a", [_account(1, 1)]))], run_id="r", limits=LIMITS,
             progress=lambda r: seen.append(f"{r.source}/{r.stream}:{r.records}"))
    assert seen == ["fake/a:1"]


@pytest.mark.parametrize("lag", [0, 300])
def test_the_report_serializes(store_engine: Engine, lag: int) -> None:
    stream = FakeStream("a", [_account(1, 1)])
    report = pull_stream(store_engine, FakeConnector(stream), stream, run_id="r", limits=LimitsConfig(cursor_lag_seconds=lag))
    assert report.as_dict()["cursor_after"] == "2026-01-01T00:01:00+00:00"

