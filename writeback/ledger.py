"""The write and task ledgers: what the agent last wrote (``written_fields``), the audit trail of every
write attempted (``write_ledger``) and follow-up tasks by dedupe key (``task_ledger``).

Callers own the transaction: an outcome and the ledger rows that record it commit together.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, update
from sqlalchemy.dialects import postgresql, sqlite

from store.models import TaskLedger, WriteLedger, WrittenField
from store.upsert import upsert_rows
from writeback.values import Canonical, decode, encode

_WF: Table = WrittenField.__table__  # type: ignore[assignment]
_WL: Table = WriteLedger.__table__  # type: ignore[assignment]
_TL: Table = TaskLedger.__table__  # type: ignore[assignment]
_CHUNK = 5_000
ATTEMPT_FIELD = "*"  # the field of an ``attempt`` row: its value holds every field sent to the record


@dataclass(frozen=True)
class FieldOutcome:
    """One field of one record after an attempt: what was written (or not), what it replaced, and why."""

    crm: str
    object_type: str
    record_id: str
    field: str
    value: Canonical
    previous_value: Canonical
    # attempt | written | already_current | failed | skipped_human_edit | review_task | overwrote_human_edit
    outcome: str
    error: str | None = None

    @property
    def landed(self) -> bool:
        """The CRM now holds ``value`` (so it becomes the value the next plan diffs against)."""
        return self.outcome in ("written", "already_current", "overwrote_human_edit")


def written_values(
    conn: Connection, crm: str, object_type: str, record_ids: Sequence[str] | None = None
) -> dict[str, dict[str, Canonical]]:
    """record id -> field -> the canonical value the agent last wrote there (every record when ids is None)."""
    out: dict[str, dict[str, Canonical]] = {}
    base = select(_WF.c.record_id, _WF.c.field, _WF.c.value).where(_WF.c.crm == crm, _WF.c.object_type == object_type)
    chunks: Iterable[Sequence[str] | None] = (
        [None] if record_ids is None else (record_ids[i : i + _CHUNK] for i in range(0, len(record_ids), _CHUNK))
    )
    for chunk in chunks:
        query = base if chunk is None else base.where(_WF.c.record_id.in_(list(chunk)))
        for record_id, field, value in conn.execute(query):
            out.setdefault(record_id, {})[field] = decode(value)
    return out


def record_attempts(
    conn: Connection, run_id: str, crm: str, object_type: str, records: Mapping[str, Mapping[str, Canonical]],
    at: datetime,
) -> None:
    """Note the values about to be sent, committed before the calls: one ``attempt`` row per record (field
    ``*``, value: field -> value). If the process dies before the outcome is recorded, the next run knows the
    record's fields are unsettled and that those values in the CRM came from the agent, not from a person."""
    conn.execute(_WL.insert(), [
        {"run_id": run_id, "crm": crm, "object_type": object_type, "record_id": rid, "field": ATTEMPT_FIELD,
         "value": json.dumps(dict(values), ensure_ascii=False), "previous_value": None, "outcome": "attempt",
         "error": None, "attempted_at": at}
        for rid, values in records.items()
    ])


def _attempts(
    conn: Connection, crm: str, object_type: str, record_ids: Sequence[str]
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(row id, record id, field -> value) of the unsettled attempts on these records."""
    for start in range(0, len(record_ids), _CHUNK):
        query = select(_WL.c.id, _WL.c.record_id, _WL.c.value).where(
            _WL.c.outcome == "attempt", _WL.c.field == ATTEMPT_FIELD, _WL.c.crm == crm,
            _WL.c.object_type == object_type, _WL.c.record_id.in_(list(record_ids[start : start + _CHUNK])),
        )
        for row_id, record_id, value in conn.execute(query):
            yield row_id, record_id, json.loads(value or "{}")


def agent_attempted(conn: Connection, crm: str, object_type: str, record_id: str, field: str, value: Canonical) -> bool:
    """True when the agent once sent ``value`` to this field without recording that it landed."""
    return any(
        field in sent and sent[field] == value for _, _, sent in _attempts(conn, crm, object_type, [record_id])
    )


def unconfirmed(conn: Connection, crm: str, object_type: str, record_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(record id, field) pairs with a value the agent sent but never saw land (a crash, a failure): the CRM
    may hold it, so ``written_fields`` cannot be trusted there until a write lands."""
    return {(rid, f) for _, rid, sent in _attempts(conn, crm, object_type, record_ids) for f in sent}


def record_outcomes(conn: Connection, run_id: str, outcomes: Sequence[FieldOutcome], at: datetime) -> None:
    """Add the outcomes to the audit trail and move ``written_fields`` for every value that landed.

    A landed value settles its field in the unsettled attempts (of any run); the attempts of values that did
    not land stay, so the next plan re-checks those fields.
    """
    if not outcomes:
        return
    landed = [o for o in outcomes if o.landed]
    by_object: dict[tuple[str, str], dict[str, set[str]]] = {}
    for o in landed:
        by_object.setdefault((o.crm, o.object_type), {}).setdefault(o.record_id, set()).add(o.field)
    for (crm, object_type), fields in by_object.items():
        _settle_attempts(conn, crm, object_type, fields)
    _insert_rows(conn, run_id, outcomes, at)
    if landed:
        rows = [
            {"crm": o.crm, "object_type": o.object_type, "record_id": o.record_id, "field": o.field,
             "value": encode(o.value), "written_at": at, "run_id": run_id}
            for o in landed
        ]
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(_WF)
        stmt = stmt.on_conflict_do_update(
            index_elements=["crm", "object_type", "record_id", "field"],
            set_={c: stmt.excluded[c] for c in ("value", "written_at", "run_id")},
        )
        conn.execute(stmt, rows)  # executemany: one compiled statement, whatever the number of rows


def _settle_attempts(conn: Connection, crm: str, object_type: str, landed: Mapping[str, set[str]]) -> None:
    settled: list[int] = []
    for row_id, record_id, sent in _attempts(conn, crm, object_type, list(landed)):
        rest = {f: v for f, v in sent.items() if f not in landed[record_id]}
        if rest:
            conn.execute(update(_WL).where(_WL.c.id == row_id).values(value=json.dumps(rest, ensure_ascii=False)))
        else:
            settled.append(row_id)
    for start in range(0, len(settled), _CHUNK):
        conn.execute(_WL.delete().where(_WL.c.id.in_(settled[start : start + _CHUNK])))


def _insert_rows(conn: Connection, run_id: str, outcomes: Sequence[FieldOutcome], at: datetime) -> None:
    if not outcomes:
        return
    conn.execute(
        _WL.insert(),
        [
            {
                "run_id": run_id, "crm": o.crm, "object_type": o.object_type, "record_id": o.record_id,
                "field": o.field, "value": encode(o.value), "previous_value": encode(o.previous_value),
                "outcome": o.outcome, "error": o.error, "attempted_at": at,
            }
            for o in outcomes
        ],
    )


def recent_writes(engine: Engine, limit: int = 50) -> list[dict[str, Any]]:
    """The newest ``limit`` rows of the audit trail, newest first, values decoded (for ``status --writes``)."""
    query = select(_WL).order_by(_WL.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
    return [
        {**dict(r), "value": decode(r["value"]), "previous_value": decode(r["previous_value"])}
        for r in rows
    ]


@dataclass
class TaskEntry:
    """One row of ``task_ledger``."""

    dedupe_key: str
    crm: str
    rule: str
    account_id: int
    task_id: str | None
    status: str  # pending | open | completed | closed
    subject: str
    created_at: datetime
    completed_at: datetime | None


def task_entries(conn: Connection, keys: Sequence[str] | None = None) -> dict[str, TaskEntry]:
    """dedupe key -> ledger entry (every entry when ``keys`` is None)."""
    columns = (_TL.c.dedupe_key, _TL.c.crm, _TL.c.rule, _TL.c.account_id, _TL.c.task_id, _TL.c.status,
               _TL.c.subject, _TL.c.created_at, _TL.c.completed_at)
    out: dict[str, TaskEntry] = {}
    if keys is None:
        for row in conn.execute(select(*columns)):
            out[row[0]] = TaskEntry(*row)
        return out
    for start in range(0, len(keys), _CHUNK):
        for row in conn.execute(select(*columns).where(_TL.c.dedupe_key.in_(list(keys[start : start + _CHUNK])))):
            out[row[0]] = TaskEntry(*row)
    return out


def save_task(conn: Connection, entry: TaskEntry, run_id: str, at: datetime) -> None:
    """Insert or replace the ledger entry of one dedupe key."""
    row = {
        "dedupe_key": entry.dedupe_key, "crm": entry.crm, "rule": entry.rule, "account_id": entry.account_id,
        "task_id": entry.task_id, "status": entry.status, "subject": entry.subject[:255],
        "created_at": entry.created_at, "completed_at": entry.completed_at, "last_checked_at": at, "run_id": run_id,
    }
    upsert_rows(conn, _TL, [row], ("dedupe_key",))


def set_task_status(conn: Connection, keys: Sequence[str], status: str, at: datetime) -> None:
    """Mark ledger entries completed or closed (``completed_at`` = ``at``, when the cooldown starts)."""
    for start in range(0, len(keys), _CHUNK):
        conn.execute(
            update(_TL)
            .where(_TL.c.dedupe_key.in_(list(keys[start : start + _CHUNK])))
            .values(status=status, completed_at=at, last_checked_at=at)
        )
