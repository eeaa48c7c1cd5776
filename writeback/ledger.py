"""The write and task ledgers: what the agent last wrote (``written_fields``), the audit trail of every
write attempted (``write_ledger``) and follow-up tasks by dedupe key (``task_ledger``).

Callers own the transaction: an outcome and the ledger rows that record it commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select, tuple_, update

from store.models import TaskLedger, WriteLedger, WrittenField
from store.upsert import upsert_rows
from writeback.values import Canonical, decode, encode

_WF: Table = WrittenField.__table__  # type: ignore[assignment]
_WL: Table = WriteLedger.__table__  # type: ignore[assignment]
_TL: Table = TaskLedger.__table__  # type: ignore[assignment]
_CHUNK = 5_000


@dataclass(frozen=True)
class FieldOutcome:
    """One field of one record after an attempt: what was written (or not), what it replaced, and why."""

    crm: str
    object_type: str
    record_id: str
    field: str
    value: Canonical
    previous_value: Canonical
    outcome: str  # written | already_current | failed | skipped_human_edit | review_task | overwrote_human_edit
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


def record_outcomes(conn: Connection, run_id: str, outcomes: Sequence[FieldOutcome], at: datetime) -> None:
    """Add the outcomes to the audit trail and move ``written_fields`` for every value that landed."""
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
    landed = [
        {"crm": o.crm, "object_type": o.object_type, "record_id": o.record_id, "field": o.field,
         "value": encode(o.value), "written_at": at, "run_id": run_id}
        for o in outcomes
        if o.landed
    ]
    upsert_rows(conn, _WF, landed, ("crm", "object_type", "record_id", "field"))


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


def forget_written(conn: Connection, crm: str, object_type: str, keys: Sequence[tuple[str, str]]) -> None:
    """Drop ``written_fields`` rows of (record id, field) pairs (used when a record is gone from the CRM)."""
    for start in range(0, len(keys), _CHUNK):
        conn.execute(
            _WF.delete().where(
                _WF.c.crm == crm, _WF.c.object_type == object_type,
                tuple_(_WF.c.record_id, _WF.c.field).in_(list(keys[start : start + _CHUNK])),
            )
        )
