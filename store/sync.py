"""Pulling streams into the store: batches upserted and committed together with the stream's cursor.

A stream is read from its saved cursor minus ``limits.cursor_lag_seconds`` (inclusive, so records that
share the cursor's timestamp are never lost). Each batch of ``limits.store_batch_size`` records is
upserted, its rejected records stored with their reasons, and the cursor advanced, in one transaction.
Records whose stored ``source_updated_at`` and delete mark are unchanged are not rewritten. A failing
stream keeps the cursor of what it committed, records the error, and does not stop the other streams.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, select

from connectors.base import ApiStats, Connector, Stream
from core.config.runtime import LimitsConfig
from core.errors import HealthAgentError
from core.records import CanonicalRecord, RejectedRecord, now_utc
from core.redaction import redact
from store.models import SYNCED_MODELS, RejectedRow, SyncState
from store.upsert import chunks, ids_by_source, upsert_records, upsert_rows

log = logging.getLogger(__name__)
MAX_REASONS = 50


@dataclass
class StreamReport:
    """What pulling one stream did. ``records`` counts rows written (new or changed); ``read`` all mapped ones."""

    source: str
    stream: str
    entity: str = ""
    read: int = 0
    records: int = 0
    rejected: int = 0
    rejected_reasons: list[str] = field(default_factory=list)  # "external_id: reason", the first MAX_REASONS
    deleted: int = 0
    pages: int = 0
    api_calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    error: str | None = None
    cursor_before: datetime | None = None
    cursor_after: datetime | None = None
    stopped: bool = False  # should_stop asked to stop between batches
    notes: list[str] = field(default_factory=list)  # what the stream chose to skip, e.g. a periodic sweep

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("cursor_before", "cursor_after"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def _load_state(engine: Engine, source: str, stream: str) -> tuple[datetime | None, int, str | None]:
    table: Table = SyncState.__table__  # type: ignore[assignment]
    with engine.connect() as conn:
        row = conn.execute(
            select(table.c.cursor, table.c.records_synced, table.c.cursor_token)
            .where(table.c.source == source, table.c.stream == stream)
        ).first()
    return (row[0], int(row[1] or 0), row[2]) if row else (None, 0, None)


def _save_state(conn: Connection, source: str, stream: str, values: dict[str, Any]) -> None:
    table: Table = SyncState.__table__  # type: ignore[assignment]
    row = {"source": source, "stream": stream, "updated_at": now_utc(), **values}
    upsert_rows(conn, table, [row], ("source", "stream"))


def _same_content(record: CanonicalRecord, stored: Any) -> bool:
    """A record without a source timestamp is unchanged when every stored column holds its value."""
    for key, value in record.model_dump().items():
        if key in stored:
            expected = list(value) if isinstance(value, tuple) else value
            if stored[key] != expected:
                return False
    return True


def _changed(conn: Connection, records: Sequence[CanonicalRecord]) -> list[CanonicalRecord]:
    """The records that are new or changed: by source timestamp and delete mark, else by content."""
    table: Table = SYNCED_MODELS[records[0].entity].__table__  # type: ignore[attr-defined]
    latest: dict[tuple[str, str], CanonicalRecord] = {}
    for r in records:
        latest[(r.source, r.external_id)] = r
    by_content = any(r.source_updated_at is None for r in latest.values())
    columns = list(table.columns) if by_content else [
        table.c.source, table.c.external_id, table.c.source_updated_at, table.c.is_deleted
    ]
    stored: dict[tuple[str, str], Any] = {}
    for source, external_ids in ids_by_source(latest).items():  # an index read per source (see ids_by_source)
        for chunk in chunks(external_ids):
            q = select(*columns).where(table.c.source == source, table.c.external_id.in_(chunk))
            stored.update({(row.source, row.external_id): row._mapping for row in conn.execute(q)})
    out = []
    for key, r in latest.items():
        before = stored.get(key)
        if before is None:
            out.append(r)
        elif r.source_updated_at is None:
            if not _same_content(r, before):
                out.append(r)
        elif (before["source_updated_at"], bool(before["is_deleted"])) != (r.source_updated_at, r.is_deleted):
            out.append(r)
    return out


class _Batch:
    def __init__(self) -> None:
        self.records: list[CanonicalRecord] = []
        self.rejected: list[RejectedRecord] = []

    def __len__(self) -> int:
        return len(self.records) + len(self.rejected)


def _commit(
    engine: Engine, stream: Stream, source: str, batch: _Batch, report: StreamReport, run_id: str, *, defer: bool
) -> None:
    max_seen = max((r.source_updated_at for r in batch.records if r.source_updated_at), default=None)
    with engine.begin() as conn:
        if batch.records:
            changed = _changed(conn, batch.records)
            if changed:
                result = upsert_records(conn, changed)
                report.records += result.rows
                report.deleted += result.deleted
        if batch.rejected:
            seen = now_utc()
            conn.execute(
                RejectedRow.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {"run_id": run_id, "source": r.source, "stream": r.stream, "external_id": r.external_id,
                     "reason": r.reason[:4000], "seen_at": seen}
                    for r in batch.rejected
                ],
            )
        cursor = report.cursor_after
        if max_seen is not None and (cursor is None or max_seen > cursor):
            cursor = max_seen
        report.cursor_after = cursor
        # An unordered read (e.g. a backfill by id) moves the cursor only once it has read everything.
        saved = report.cursor_before if defer else cursor
        _save_state(conn, source, stream.name, {"cursor": saved, "last_run_id": run_id})
    report.read += len(batch.records)
    report.rejected += len(batch.rejected)
    for r in batch.rejected:
        if len(report.rejected_reasons) < MAX_REASONS:
            report.rejected_reasons.append(f"{r.external_id or '(no id)'}: {r.reason}")
    batch.records.clear()
    batch.rejected.clear()


def pull_stream(
    engine: Engine,
    connector: Connector,
    stream: Stream,
    *,
    run_id: str,
    limits: LimitsConfig,
    should_stop: Callable[[], bool] | None = None,
) -> StreamReport:
    """Pull one stream from its cursor into the store; never raises for a stream failure (see ``error``)."""
    source = connector.name
    report = StreamReport(source=source, stream=stream.name, entity=stream.entity)
    stats: ApiStats | None = getattr(connector, "stats", None)
    system = getattr(connector, "system", source)
    before = stats.snapshot(system) if stats else None
    started = time.monotonic()
    cursor, synced, token = _load_state(engine, source, stream.name)
    restore_state = getattr(stream, "restore_state", None)  # a stream's own state besides the cursor
    if restore_state is not None:
        restore_state(token)
    report.cursor_before = report.cursor_after = cursor
    since = cursor - timedelta(seconds=limits.cursor_lag_seconds) if cursor is not None else None
    batch = _Batch()
    is_ordered = getattr(stream, "is_ordered", None)
    defer = is_ordered is not None and not is_ordered(since)
    extra = {"run_id": run_id, "source": source, "stream": stream.name}
    try:
        for item in stream.read(since):
            if isinstance(item, RejectedRecord):
                batch.rejected.append(item)
            else:
                batch.records.append(item)
            if len(batch) >= limits.store_batch_size:
                _commit(engine, stream, source, batch, report, run_id, defer=defer)
                if should_stop is not None and should_stop():
                    report.stopped = True
                    break
        if len(batch):
            _commit(engine, stream, source, batch, report, run_id, defer=defer)
        with engine.begin() as conn:
            values: dict[str, Any] = {"last_run_id": run_id, "last_error": None,
                                      "records_synced": synced + report.records}
            if not (defer and report.stopped):
                values["cursor"] = report.cursor_after
            if restore_state is not None:
                values["cursor_token"] = getattr(stream, "state_token", None)
            report.notes.extend(getattr(stream, "notes", ()))
            if not report.stopped:
                values.update(last_success_at=now_utc(), backfill_done=True)
            _save_state(conn, source, stream.name, values)
    except Exception as exc:  # one failing stream must not stop the others; the report says why
        message = exc.user_message if isinstance(exc, HealthAgentError) else f"{type(exc).__name__}: {exc}"
        report.error = redact(message)
        log.error("%s/%s failed: %s", source, stream.name, report.error, extra=extra,
                  exc_info=not isinstance(exc, HealthAgentError))
        try:
            with engine.begin() as conn:
                saved = report.cursor_before if defer else report.cursor_after
                _save_state(conn, source, stream.name, {"cursor": saved, "last_run_id": run_id,
                                                        "last_error": report.error})
        except Exception:  # the store itself is failing; the report still carries the stream's error
            log.exception("could not record the failure of %s/%s", source, stream.name, extra=extra)
    report.seconds = round(time.monotonic() - started, 3)
    if stats is not None and before is not None:
        after = stats.snapshot(system)
        report.api_calls = after.calls - before.calls
        report.retries = after.retries - before.retries
        report.pages = after.pages - before.pages
    log.info(
        "%s/%s: %d read, %d written, %d rejected, %d deleted, %d pages, %d API calls, %d retries, %.2f s%s",
        source, stream.name, report.read, report.records, report.rejected, report.deleted, report.pages,
        report.api_calls, report.retries, report.seconds, f" ERROR {report.error}" if report.error else "",
        extra=extra,
    )  # fmt: skip
    return report


def pull_all(
    engine: Engine,
    connectors: Sequence[Connector],
    *,
    run_id: str,
    limits: LimitsConfig,
    progress: Callable[[StreamReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[StreamReport]:
    """Pull every stream of every connector in turn; a failing stream or connector does not stop the rest.

    ``progress`` is called with each stream's report; ``should_stop`` is checked between batches and streams.
    """
    reports: list[StreamReport] = []
    for connector in connectors:
        try:
            streams = connector.streams()
        except Exception as exc:  # a connector that cannot list its streams fails alone
            message = exc.user_message if isinstance(exc, HealthAgentError) else f"{type(exc).__name__}: {exc}"
            report = StreamReport(source=connector.name, stream="*", error=redact(message))
            reports.append(report)
            if progress:
                progress(report)
            continue
        for stream in streams:
            if should_stop is not None and should_stop():
                return reports
            report = pull_stream(engine, connector, stream, run_id=run_id, limits=limits, should_stop=should_stop)
            reports.append(report)
            if progress:
                progress(report)
    return reports
