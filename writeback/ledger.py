"""The write and task ledgers: what the agent last wrote (``written_fields``), the audit trail of every
write attempted (``write_ledger``) and follow-up tasks by dedupe key (``task_ledger``).

Callers own the transaction: an outcome and the ledger rows that record it commit together.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
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


def record_attempts(conn: Connection, run_id: str, attempts: Sequence[FieldOutcome], at: datetime) -> None:
    """Note values about to be sent (outcome ``attempt``), committed before the call: if the process dies
    before the outcome is recorded, the next run knows a value it finds in the CRM came from the agent."""
    _insert_rows(conn, run_id, [replace(a, outcome="attempt") for a in attempts], at)


def agent_attempted(conn: Connection, crm: str, object_type: str, record_id: str, field: str, value: Canonical) -> bool:
    """True when the agent once sent ``value`` to this field without recording that it landed."""
    query = select(_WL.c.id).where(
        _WL.c.crm == crm, _WL.c.object_type == object_type, _WL.c.record_id == record_id, _WL.c.field == field,
        _WL.c.value == encode(value), _WL.c.outcome == "attempt",
    ).limit(1)
    return conn.execute(query).first() is not None


def record_outcomes(conn: Connection, run_id: str, outcomes: Sequence[FieldOutcome], at: datetime) -> None:
    """Add the outcomes to the audit trail and move ``written_fields`` for every value that landed.

    A landed value settles its field: the ``attempt`` rows of that field (from any run) are removed. The
    attempts of values that did not land stay, so the next plan re-checks those fields.
    """
    if not outcomes:
        return
    landed = [o for o in outcomes if o.landed]
    by_object: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for o in landed:
        by_object.setdefault((o.crm, o.object_type), []).append((o.record_id, o.field))
    for (crm, object_type), keys in by_object.items():
        for start in range(0, len(keys), _CHUNK):
            conn.execute(_WL.delete().where(
                _WL.c.outcome == "attempt", _WL.c.crm == crm, _WL.c.object_type == object_type,
                tuple_(_WL.c.record_id, _WL.c.field).in_(keys[start : start + _CHUNK]),
            ))
    _insert_rows(conn, run_id, outcomes, at)
    rows = [
        {"crm": o.crm, "object_type": o.object_type, "record_id": o.record_id, "field": o.field,
         "value": encode(o.value), "written_at": at, "run_id": run_id}
        for o in landed
    ]
    upsert_rows(conn, _WF, rows, ("crm", "object_type", "record_id", "field"))


def unconfirmed(conn: Connection, crm: str, object_type: str, record_ids: Sequence[str]) -> set[tuple[str, str]]:
    """(record id, field) pairs with a value the agent sent but never saw land (a crash, a failure): the CRM
    may hold it, so ``written_fields`` cannot be trusted there until a write lands."""
    out: set[tuple[str, str]] = set()
    for start in range(0, len(record_ids), _CHUNK):
        query = select(_WL.c.record_id, _WL.c.field).distinct().where(
            _WL.c.outcome == "attempt", _WL.c.crm == crm, _WL.c.object_type == object_type,
            _WL.c.record_id.in_(list(record_ids[start : start + _CHUNK])),
        )
        out.update((rid, f) for rid, f in conn.execute(query))
    return out


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
