"""Upserts of canonical records keyed on (source, external id), in batches, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from core.domains import normalize_domain
from core.records import AccountRecord, ActivityRecord, CanonicalRecord, now_utc
from store.models import SYNCED_MODELS, AccountDomain, ActivityParticipant

# SQLite allows 32,766 bound parameters per statement; PostgreSQL 65,535. Keep batches under both.
MAX_PARAMS = 30_000


@dataclass
class UpsertResult:
    rows: int = 0
    deleted: int = 0


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is not supported on {conn.dialect.name}")


def upsert_rows(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    *,
    update: Sequence[str] | None = None,
) -> int:
    """Insert rows, or update the ``update`` columns (default: all but the key) where the key exists.

    All rows must have the same columns. Returns the number of rows sent.
    """
    if not rows:
        return 0
    columns = list(rows[0].keys())
    update_cols = [c for c in (update if update is not None else columns) if c not in key and c != "id"]
    per_batch = max(1, MAX_PARAMS // max(1, len(columns)))
    for start in range(0, len(rows), per_batch):
        batch = rows[start : start + per_batch]
        stmt = _insert(conn, table).values(list(batch))
        if update_cols:
            stmt = stmt.on_conflict_do_update(index_elements=list(key), set_={c: stmt.excluded[c] for c in update_cols})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(key))
        conn.execute(stmt)
    return len(rows)


def _row(record: CanonicalRecord, synced_at: datetime, columns: set[str]) -> dict[str, Any]:
    row = {k: list(v) if isinstance(v, tuple) else v for k, v in record.model_dump().items() if k in columns}
    row["synced_at"] = synced_at
    row["deleted_at"] = synced_at if record.is_deleted else None
    return row


def upsert_records(
    conn: Connection, records: Iterable[CanonicalRecord], *, synced_at: datetime | None = None
) -> UpsertResult:
    """Upsert canonical records of one entity; keeps activity participants and account domains in step.

    A record seen deleted keeps its row with ``is_deleted`` set (deletes are signals too).
    The caller owns the transaction, so rows and the stream's cursor commit together.
    """
    batch = list(records)
    result = UpsertResult()
    if not batch:
        return result
    entity = batch[0].entity
    if any(r.entity != entity for r in batch):
        raise ValueError("upsert_records takes records of one entity at a time")
    model = SYNCED_MODELS[entity]
    table: Table = model.__table__  # type: ignore[attr-defined]
    synced_at = synced_at or now_utc()
    columns = set(table.columns.keys())
    # The last version of a record in the batch wins (a page can repeat a record that changed mid-read).
    latest: dict[tuple[str, str], CanonicalRecord] = {}
    for record in batch:
        latest[(record.source, record.external_id)] = record
    rows = [_row(r, synced_at, columns) for r in latest.values()]
    result.rows = upsert_rows(conn, table, rows, ("source", "external_id"))
    result.deleted = sum(1 for r in latest.values() if r.is_deleted)
    if entity == "activities":
        _replace_participants(conn, [r for r in latest.values() if isinstance(r, ActivityRecord)])
    elif entity == "accounts":
        _replace_domains(conn, table, [r for r in latest.values() if isinstance(r, AccountRecord)])
    return result


def _replace_participants(conn: Connection, records: list[ActivityRecord]) -> None:
    pt: Table = ActivityParticipant.__table__  # type: ignore[assignment]
    keys = [(r.source, r.external_id) for r in records]
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        conn.execute(delete(pt).where(tuple_(pt.c.source, pt.c.activity_external_id).in_(chunk)))
    rows = [
        {"source": r.source, "activity_external_id": r.external_id, "contact_external_id": c}
        for r in records
        for c in dict.fromkeys(r.contact_external_ids)
    ]
    upsert_rows(conn, pt, rows, ("source", "activity_external_id", "contact_external_id"), update=[])


def _replace_domains(conn: Connection, accounts: Table, records: list[AccountRecord]) -> None:
    dt: Table = AccountDomain.__table__  # type: ignore[assignment]
    keys = [(r.source, r.external_id) for r in records]
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 10_000):
        chunk = keys[start : start + 10_000]
        q = select(accounts.c.source, accounts.c.external_id, accounts.c.id).where(
            tuple_(accounts.c.source, accounts.c.external_id).in_(chunk)
        )
        ids.update({(s, e): i for s, e, i in conn.execute(q)})
    id_list = list(ids.values())
    for start in range(0, len(id_list), 10_000):
        conn.execute(delete(dt).where(dt.c.account_id.in_(id_list[start : start + 10_000])))
    rows: list[dict[str, Any]] = []
    for r in records:
        if r.is_deleted:
            continue
        account_id = ids[(r.source, r.external_id)]
        domains = {normalize_domain(d) for d in (r.domain, *r.extra_domains)}
        rows.extend({"account_id": account_id, "domain": d} for d in sorted(x for x in domains if x))
    upsert_rows(conn, dt, rows, ("account_id", "domain"), update=[])
