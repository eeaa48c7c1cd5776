"""The emulated org's records: Salesforce-shaped SQLite tables built from the book, writes, and an undo log.

Tables are filled with one ``INSERT ... SELECT`` per object from the attached book (no per-row Python),
so 100k accounts with 2M activities build in seconds. Every write first saves the row's original
values; ``reset`` puts those back and deletes created rows, so it costs what the test wrote, not the
size of the book. Columns of custom fields created at run time stay in the table (ADD COLUMN is free)
but vanish from the schema; the undo log sets them back to null.
"""

from __future__ import annotations

import sqlite3
import tempfile
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.ids import SALESFORCE_PREFIXES, salesforce_id, salesforce_index
from sandbox.salesforce.query import Compiler, Plan, render
from sandbox.salesforce.schema import NUMBER_TYPES, Field, Schema, SObject, standard_objects, tooling_objects
from sandbox.salesforce.soql import Query
from sandbox.salesforce.values import FieldValueError, coerce, format_datetime, id_from_tail_sql, id_tail_sql, make_id

_TS = "substr({0}, 1, 19) || '.000+0000'"  # book '2026-01-05T12:00:00Z' -> '2026-01-05T12:00:00.000+0000'


def _ts(column: str) -> str:
    return _TS.format(column)


def _sys(alias: str, created: str = "created_at") -> dict[str, str]:
    return {
        "CreatedDate": _ts(f"{alias}.{created}"),
        "LastModifiedDate": _ts(f"{alias}.updated_at"),
        "SystemModstamp": _ts(f"{alias}.updated_at"),
    }


# Opportunity record types, one per deal kind (for orgs that tell deal kinds apart by record type).
_RECORD_TYPES = (
    "(SELECT 1 AS n, 'New Business' AS name UNION ALL SELECT 2, 'Renewal' UNION ALL SELECT 3, 'Expansion') r"
)
# Every contact who took part in an activity (Task/EventRelation), numbered per kind of parent.
_RELATIONS = (
    "(SELECT a.n, a.account_n, a.created_at, a.updated_at, a.is_deleted, j.value AS contact_n, "
    "ROW_NUMBER() OVER (ORDER BY a.n, j.key) AS relation_n "
    "FROM book.activities a, json_each(a.contact_ns) j WHERE a.kind {}) r"
)
_DIRECTION = "CASE a.direction WHEN 'inbound' THEN 'Inbound' WHEN 'outbound' THEN 'Outbound' END"
_FIRST_CONTACT = "sfid('Contact', a.first_contact_n)"
_ACTIVITIES = (
    "(SELECT *, json_extract(contact_ns, '$[0]') AS first_contact_n FROM book.activities WHERE kind {}) a"
)

# Per object: (FROM clause over the attached book, column -> SQL expression, ORDER BY).
BOOK_MAPPING: dict[str, tuple[str, dict[str, str], str]] = {
    "User": ("book.users u", {
        "Id": "sfid('User', u.n)", "Username": "u.email", "FirstName": "u.first_name", "LastName": "u.last_name",
        "Name": "trim(coalesce(u.first_name, '') || ' ' || u.last_name)", "Email": "u.email", "Title": "u.title",
        "IsActive": "u.is_active", **_sys("u"), "IsDeleted": "0",
    }, "u.n"),
    "Account": ("book.accounts a", {
        "Id": "sfid('Account', a.n)", "Name": "a.name", "Website": "a.website", "Industry": "a.industry",
        "NumberOfEmployees": "a.employees", "AnnualRevenue": "a.arr", "Type": "'Customer - Direct'",
        "OwnerId": "sfid('User', a.owner_n)", "Description": "a.description",
        "Tier__c": "CASE a.tier WHEN 'enterprise' THEN 'Enterprise' WHEN 'mid_market' THEN 'Mid-Market' "
                   "WHEN 'smb' THEN 'SMB' END",
        "ARR__c": "a.arr", "Renewal_Date__c": "a.renewal_date",
        "Usage_Score__c": "(SELECT round(100.0 * min(1.0, 1.0 * u.active_users / u.licensed_seats), 1) "
                          "FROM book.usage u WHERE u.account_n = a.n AND u.licensed_seats > 0 "
                          "ORDER BY u.period_start DESC LIMIT 1)",
        **_sys("a"), "IsDeleted": "a.is_deleted",
    }, "a.n"),
    "Contact": ("book.contacts c LEFT JOIN book.accounts a ON a.n = c.account_n", {
        "Id": "sfid('Contact', c.n)", "AccountId": "sfid('Account', c.account_n)", "FirstName": "c.first_name",
        "LastName": "c.last_name", "Name": "trim(coalesce(c.first_name, '') || ' ' || c.last_name)",
        "Email": "c.email", "Title": "c.title", "Department": "c.department", "Phone": "c.phone",
        "OwnerId": "sfid('User', a.owner_n)", "No_Longer_At_Company__c": "c.has_left",
        **_sys("c"), "IsDeleted": "c.is_deleted",
    }, "c.n"),
    "RecordType": (_RECORD_TYPES, {
        "Id": "sfkey('012', r.n)", "Name": "r.name", "DeveloperName": "replace(r.name, ' ', '_')",
        "SobjectType": "'Opportunity'", "IsActive": "1", "CreatedDate": "'2020-01-01T00:00:00.000+0000'",
        "LastModifiedDate": "'2020-01-01T00:00:00.000+0000'", "SystemModstamp": "'2020-01-01T00:00:00.000+0000'",
        "IsDeleted": "0",
    }, "r.n"),
    "Opportunity": ("book.deals d LEFT JOIN book.accounts a ON a.n = d.account_n", {
        "Id": "sfid('Opportunity', d.n)", "AccountId": "sfid('Account', d.account_n)", "Name": "d.name",
        "Type": "CASE d.kind WHEN 'new_business' THEN 'New Business' WHEN 'renewal' THEN 'Renewal' "
                "WHEN 'expansion' THEN 'Existing Customer - Upgrade' END",
        "StageName": "d.stage", "IsClosed": "d.is_closed", "IsWon": "d.is_won", "CloseDate": "d.close_date",
        "Amount": "d.amount", "OwnerId": "sfid('User', a.owner_n)",
        "RecordTypeId": "sfkey('012', CASE d.kind WHEN 'new_business' THEN 1 WHEN 'renewal' THEN 2 ELSE 3 END)",
        **_sys("d"), "IsDeleted": "d.is_deleted",
    }, "d.n"),
    "OpportunityContactRole": (
        "(SELECT d.n, d.created_at, d.updated_at, d.is_deleted, j.key AS role_index, j.value AS contact_n, "
        "ROW_NUMBER() OVER (ORDER BY d.n, j.key) AS role_n FROM book.deals d, json_each(d.contact_ns) j) d", {
            "Id": "sfid('OpportunityContactRole', d.role_n)",
            "OpportunityId": "sfid('Opportunity', d.n)", "ContactId": "sfid('Contact', d.contact_n)",
            "Role": "CASE WHEN d.role_index = 0 THEN 'Decision Maker' ELSE 'Influencer' END",
            "IsPrimary": "d.role_index = 0", **_sys("d"), "IsDeleted": "d.is_deleted",
        }, "d.role_n"),
    "Case": ("book.tickets t LEFT JOIN book.accounts a ON a.n = t.account_n", {
        "Id": "sfid('Case', t.n)", "CaseNumber": "printf('%08d', t.n)", "AccountId": "sfid('Account', t.account_n)",
        "ContactId": "sfid('Contact', t.contact_n)", "Subject": "t.subject",
        "Priority": "CASE t.priority WHEN 'urgent' THEN 'Critical' WHEN 'high' THEN 'High' "
                    "WHEN 'medium' THEN 'Medium' ELSE 'Low' END",
        "Status": "CASE t.status WHEN 'new' THEN 'New' WHEN 'open' THEN 'Working' WHEN 'pending' THEN 'On Hold' "
                  "ELSE 'Closed' END",
        "IsClosed": "t.is_closed", "IsEscalated": "t.is_escalated", "ClosedDate": _ts("t.closed_at"),
        "OwnerId": "sfid('User', a.owner_n)", **_sys("t", created="opened_at"), "IsDeleted": "t.is_deleted",
    }, "t.n"),
    "Task": (_ACTIVITIES.format("IN ('email', 'call', 'note')"), {
        "Id": "sfid('Task', a.n)", "Subject": "a.subject",
        "TaskSubtype": "CASE a.kind WHEN 'email' THEN 'Email' WHEN 'call' THEN 'Call' ELSE 'Task' END",
        "Type": "CASE a.kind WHEN 'email' THEN 'Email' WHEN 'call' THEN 'Call' ELSE 'Other' END",
        "ActivityDate": "substr(a.occurred_at, 1, 10)", "CompletedDateTime": _ts("a.occurred_at"),
        "WhatId": "sfid('Account', a.account_n)", "WhoId": _FIRST_CONTACT, "AccountId": "sfid('Account', a.account_n)",
        "OwnerId": "sfid('User', a.owner_n)", "Status": "'Completed'", "Priority": "'Normal'", "IsClosed": "1",
        "Description": "a.body",
        "CallDurationInSeconds": "CASE WHEN a.kind = 'call' THEN CAST(round(a.duration_minutes * 60) AS INTEGER) END",
        "CallType": f"CASE WHEN a.kind = 'call' THEN {_DIRECTION} END", "Direction__c": _DIRECTION,
        **_sys("a"), "IsDeleted": "a.is_deleted",
    }, "a.n"),
    "Event": (_ACTIVITIES.format("= 'meeting'"), {
        "Id": "sfid('Event', a.n)", "Subject": "a.subject", "StartDateTime": _ts("a.occurred_at"),
        "EndDateTime": "strftime('%Y-%m-%dT%H:%M:%S', a.occurred_at, '+' || "
                       "CAST(round(coalesce(a.duration_minutes, 30)) AS INTEGER) || ' minutes') || '.000+0000'",
        "ActivityDateTime": _ts("a.occurred_at"), "ActivityDate": "substr(a.occurred_at, 1, 10)",
        "DurationInMinutes": "CAST(round(coalesce(a.duration_minutes, 30)) AS INTEGER)",
        "WhatId": "sfid('Account', a.account_n)", "WhoId": _FIRST_CONTACT, "AccountId": "sfid('Account', a.account_n)",
        "OwnerId": "sfid('User', a.owner_n)", "Description": "a.body", "Direction__c": _DIRECTION,
        **_sys("a"), "IsDeleted": "a.is_deleted",
    }, "a.n"),
    "TaskRelation": (_RELATIONS.format("IN ('email', 'call', 'note')"), {
        "Id": "sfkey('0RT', r.relation_n)", "TaskId": "sfid('Task', r.n)", "RelationId": "sfid('Contact', r.contact_n)",
        "AccountId": "sfid('Account', r.account_n)", "IsWhat": "0", **_sys("r"), "IsDeleted": "r.is_deleted",
    }, "r.relation_n"),
    "EventRelation": (_RELATIONS.format("= 'meeting'"), {
        "Id": "sfkey('0RE', r.relation_n)", "EventId": "sfid('Event', r.n)",
        "RelationId": "sfid('Contact', r.contact_n)",
        "AccountId": "sfid('Account', r.account_n)", "IsWhat": "0", "IsInvitee": "1", "Status": "'Accepted'",
        **_sys("r"), "IsDeleted": "r.is_deleted",
    }, "r.relation_n"),
}  # fmt: skip

INDEXED = (
    "SystemModstamp", "AccountId", "WhatId", "WhoId", "OpportunityId", "ContactId", "OwnerId", "TaskId", "EventId",
    "RelationId",
)  # fmt: skip

# Values Salesforce derives from others after every write (formula-like and system fields).
_DERIVED: dict[str, str] = {
    "Contact": "Name = trim(coalesce(FirstName, '') || ' ' || coalesce(LastName, ''))",
    "User": "Name = trim(coalesce(FirstName, '') || ' ' || coalesce(LastName, ''))",
    "Opportunity": "IsClosed = StageName IN ('Closed Won', 'Closed Lost'), IsWon = StageName = 'Closed Won'",
    "Task": "IsClosed = coalesce(Status = 'Completed', 0), "
    "CompletedDateTime = CASE WHEN Status = 'Completed' THEN coalesce(CompletedDateTime, :now) END, "
    "AccountId = CASE WHEN WhatId LIKE '001%' THEN WhatId "
    "ELSE (SELECT c.AccountId FROM sf_Contact c WHERE c.Id = WhoId) END",
    "Event": "AccountId = CASE WHEN WhatId LIKE '001%' THEN WhatId "
    "ELSE (SELECT c.AccountId FROM sf_Contact c WHERE c.Id = WhoId) END",
    "Case": "IsClosed = Status = 'Closed', "
    "ClosedDate = CASE WHEN Status = 'Closed' THEN coalesce(ClosedDate, :now) END",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "Task": {"Status": "Not Started", "Priority": "Normal", "TaskSubtype": "Task"},
    "Case": {"Status": "New", "Priority": "Medium"},
    "Account": {"Type": "Prospect"},
}


class WriteError(Exception):
    """A record write Salesforce would refuse: ``code`` is the statusCode, ``fields`` the fields at fault."""

    def __init__(self, code: str, message: str, fields: list[str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or []

    def as_error(self) -> dict[str, Any]:
        return {"statusCode": self.code, "message": self.message, "fields": self.fields}


@dataclass
class Cursor:
    """A query's snapshot: the rowids it matched, in order; pages are fetched from the live rows."""

    plan: Plan
    rowids: Sequence[int]  # an array('q'): 8 bytes a row, so a 2M-row snapshot stays small
    batch_size: int
    tooling: bool = False


def _sql_type(f: Field) -> str:
    if f.type in ("boolean", "int"):
        return "INTEGER"
    if f.type in NUMBER_TYPES:
        return "REAL"
    return "TEXT"


class OrgStore:
    """The org's tables in a private SQLite file, with the API user that writes through the REST API."""

    api_user_id = salesforce_id("User", 1)

    def __init__(self, book_path: Path, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.schema = Schema(standard_objects())
        self.tooling = Schema(tooling_objects())
        self._dir = tempfile.TemporaryDirectory(prefix="sandbox-salesforce-")
        self.conn = sqlite3.connect(Path(self._dir.name) / "org.db", check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode = MEMORY")  # rollback (allOrNone) needs a journal
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("PRAGMA cache_size = -200000")
        self._physical: dict[str, list[str]] = {}
        self._defaults: dict[str, dict[str, Any]] = {}  # table -> value of a run-time column on unwritten rows
        self._undo: dict[tuple[str, int], dict[str, Any] | None] = {}
        self._build(book_path)
        self._first_new = {o.name: self._max_index(o) + 1 for o in self._all_objects()}
        self.book_rows = {  # the last rowid built from the book, per object
            o.name: int(self.conn.execute(f"SELECT coalesce(max(rowid), 0) FROM {o.table}").fetchone()[0])
            for o in self._all_objects()
        }
        self._next_index = dict(self._first_new)

    def _all_objects(self) -> list[SObject]:
        return [*self.schema.objects.values(), *self.tooling.objects.values()]

    def _build(self, book_path: Path) -> None:
        conn = self.conn
        conn.execute("ATTACH DATABASE ? AS book", (f"{book_path.resolve().as_uri()}?mode=ro",))
        conn.execute("BEGIN")
        self._build_id_tails()
        for obj in self._all_objects():
            columns = ", ".join(f'"{f.name}" {_sql_type(f)}' for f in obj.fields.values())
            conn.execute(f"CREATE TABLE {obj.table} ({columns})")
            self._physical[obj.table] = list(obj.fields)
            mapping = BOOK_MAPPING.get(obj.name)
            if mapping is not None:
                source, exprs, order = mapping
                names = [n for n in obj.fields if n in exprs]
                select = ", ".join(_inline_ids(exprs[n]) for n in names)
                conn.execute(
                    f"INSERT INTO {obj.table} ({', '.join(names)}) SELECT {select} FROM {source} ORDER BY {order}"
                )
            conn.execute(f"CREATE UNIQUE INDEX ix_{obj.table}_Id ON {obj.table} (Id)")
            for name in INDEXED:
                if name in obj.fields:
                    conn.execute(f"CREATE INDEX ix_{obj.table}_{name} ON {obj.table} ({name})")
        conn.execute("DROP TABLE sfid_tail")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE book")
        conn.execute("ANALYZE")

    def _build_id_tails(self) -> None:
        """``sfid_tail(n, tail)`` for every n the book uses (the largest table, or the contact roles)."""
        tables = ("accounts", "users", "contacts", "activities", "deals", "tickets")
        largest = " UNION ALL ".join(f"SELECT max(n) AS m FROM book.{t}" for t in tables)
        roles = (
            "SELECT sum(json_array_length(contact_ns)) FROM book.deals "
            "UNION ALL SELECT sum(json_array_length(contact_ns)) FROM book.activities"
        )
        (top,) = self.conn.execute(f"SELECT max(m) FROM ({largest} UNION ALL {roles} UNION ALL SELECT 3)").fetchone()
        self.conn.execute("CREATE TEMP TABLE sfid_tail (n INTEGER PRIMARY KEY, tail TEXT NOT NULL)")
        self.conn.execute(
            "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < ?) "
            f"INSERT INTO sfid_tail SELECT n, {id_tail_sql('n')} FROM s",
            (int(top or 0),),
        )

    def _max_index(self, obj: SObject) -> int:
        row = self.conn.execute(f"SELECT Id FROM {obj.table} ORDER BY rowid DESC LIMIT 1").fetchone()
        return salesforce_index(row[0]) if row else 0

    def close(self) -> None:
        self.conn.close()
        self._dir.cleanup()

    def now(self) -> str:
        return format_datetime(self.clock())

    # -- reads ---------------------------------------------------------------------------------------------

    def compile(self, query: Query, include_deleted: bool, tooling: bool = False) -> Plan:
        return Compiler(self.tooling if tooling else self.schema, self.clock()).compile(query, include_deleted)

    def count(self, plan: Plan) -> int:
        sql, params = plan.count_sql()
        return int(self.conn.execute(sql, params).fetchone()[0])

    def live_count(self, obj: SObject) -> int:
        """Records of ``obj`` not in the recycle bin."""
        live = " WHERE IsDeleted = 0" if "IsDeleted" in obj.fields else ""
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {obj.table}{live}").fetchone()[0])

    def snapshot(self, plan: Plan) -> array[int]:
        """The rowids a query matches now, in query order."""
        sql, params = plan.rowids_sql()
        return array("q", (r[0] for r in self.conn.execute(sql, params)))

    def fetch(self, plan: Plan, rowids: Sequence[int]) -> list[tuple[Any, ...]]:
        """The selected values of these rows, in the given order (rows deleted since the snapshot are skipped)."""
        by_rowid: dict[int, tuple[Any, ...]] = {}
        for start in range(0, len(rowids), 2000):
            chunk = list(rowids[start : start + 2000])
            for row in self.conn.execute(plan.page_sql(len(chunk)), chunk):
                by_rowid[row[0]] = row[1:]
        return [by_rowid[r] for r in rowids if r in by_rowid]

    def records(
        self, plan: Plan, rowids: Sequence[int], base_path: str, tooling: bool = False
    ) -> list[dict[str, Any]]:
        schema = self.tooling if tooling else self.schema
        return [render(plan, row, schema, base_path) for row in self.fetch(plan, rowids)]

    def row(self, obj: SObject, record_id: str) -> dict[str, Any] | None:
        """A record's visible fields as stored, or None."""
        names = list(obj.fields)
        cur = self.conn.execute(f"SELECT {', '.join(names)} FROM {obj.table} WHERE Id = ?", (record_id,))
        found = cur.fetchone()
        return dict(zip(names, found, strict=True)) if found else None

    def rowid(self, obj: SObject, record_id: str) -> int | None:
        found = self.conn.execute(f"SELECT rowid FROM {obj.table} WHERE Id = ?", (record_id,)).fetchone()
        return int(found[0]) if found else None

    # -- writes --------------------------------------------------------------------------------------------

    def prepare(self, obj: SObject, body: Mapping[str, Any], creating: bool) -> dict[str, Any]:
        """A client's field values as stored values; refuses unknown, read-only and ill-typed fields."""
        values: dict[str, Any] = {}
        for name, raw in body.items():
            if name in ("attributes", "Id", "id") and not creating:
                continue
            if name == "attributes":
                continue
            f = obj.field(name)
            if f is None:
                raise WriteError("INVALID_FIELD", f"No such column '{name}' on sobject of type {obj.name}", [name])
            if not (f.createable if creating else f.updateable):
                action = "create" if creating else "update"
                raise WriteError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to {action} fields: {f.name}. Please check the security settings of this field and "
                    "verify that it is read/write for your profile or permission set.",
                    [f.name],
                )
            try:
                values[f.name] = coerce(f, raw)
            except FieldValueError as exc:
                raise WriteError(exc.code, exc.message, [exc.field]) from None
        if creating:
            missing = [
                f.name for f in obj.fields.values() if f.required_on_create and values.get(f.name) in (None, "")
            ]
            if missing:
                message = f"Required fields are missing: [{', '.join(missing)}]"
                raise WriteError("REQUIRED_FIELD_MISSING", message, missing)
        return values

    def _remember(self, table: str, rowid: int) -> None:
        key = (table, rowid)
        if key in self._undo:
            return
        names = self._physical[table]
        found = self.conn.execute(f"SELECT {', '.join(names)} FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        self._undo[key] = dict(zip(names, found, strict=True))

    def insert(self, obj: SObject, values: Mapping[str, Any]) -> str:
        """Create a record from prepared values; returns its new Id."""
        index = self._next_index[obj.name]
        self._next_index[obj.name] = index + 1
        known = obj.name in SALESFORCE_PREFIXES
        record_id = salesforce_id(obj.name, index) if known else make_id(obj.key_prefix, index)
        now = self.now()
        row: dict[str, Any] = {name: 0 for name, f in obj.fields.items() if f.type == "boolean"}
        row.update(_DEFAULTS.get(obj.name, {}))
        if "OwnerId" in obj.fields:
            row["OwnerId"] = self.api_user_id
        row.update(values)
        row.update({"Id": record_id, "CreatedDate": now, "LastModifiedDate": now, "SystemModstamp": now})
        if "IsDeleted" in obj.fields:
            row["IsDeleted"] = 0
        names = list(row)
        cur = self.conn.execute(
            f"INSERT INTO {obj.table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", list(row.values())
        )
        assert cur.lastrowid is not None
        self._undo[(obj.table, cur.lastrowid)] = None
        self._derive(obj, cur.lastrowid, now)
        return record_id

    def update(self, obj: SObject, record_id: str, values: Mapping[str, Any], *, stamp: bool = True) -> bool:
        """Write prepared values to a live record; False if there is no such record (or it is deleted)."""
        rowid = self.rowid(obj, record_id)
        if rowid is None:
            return False
        if "IsDeleted" in obj.fields:
            deleted = self.conn.execute(f"SELECT IsDeleted FROM {obj.table} WHERE rowid = ?", (rowid,)).fetchone()[0]
            if deleted:
                return False
        self._remember(obj.table, rowid)
        now = self.now()
        changes = dict(values)
        if stamp:
            changes.update({"LastModifiedDate": now, "SystemModstamp": now})
        if changes:
            assignments = ", ".join(f"{name} = ?" for name in changes)
            self.conn.execute(f"UPDATE {obj.table} SET {assignments} WHERE rowid = ?", [*changes.values(), rowid])
        self._derive(obj, rowid, now)
        return True

    def soft_delete(self, obj: SObject, record_id: str) -> bool:
        """Move a live record to the recycle bin (IsDeleted, seen only by queryAll); False if none."""
        if "IsDeleted" not in obj.fields:
            return False
        return self.update(obj, record_id, {"IsDeleted": 1})

    def _derive(self, obj: SObject, rowid: int, now: str) -> None:
        derived = _DERIVED.get(obj.name)
        if derived:
            self.conn.execute(f"UPDATE {obj.table} SET {derived} WHERE rowid = :rowid", {"now": now, "rowid": rowid})

    def add_column(self, obj: SObject, f: Field) -> None:
        """Make room for a custom field (kept physically across resets; values are nulled by the undo log)."""
        obj.add_field(f)
        physical = self._physical[obj.table]
        default = 0 if f.type == "boolean" else None  # an unchecked checkbox reads false, not null
        if f.name not in physical:
            clause = " DEFAULT 0" if default is not None else ""
            self.conn.execute(f'ALTER TABLE {obj.table} ADD COLUMN "{f.name}" {_sql_type(f)}{clause}')
            physical.append(f.name)
        elif default is not None:
            self.conn.execute(f'UPDATE {obj.table} SET "{f.name}" = 0 WHERE "{f.name}" IS NULL')
        self._defaults.setdefault(obj.table, {})[f.name] = default

    @contextmanager
    def savepoint(self) -> Iterator[Callable[[], None]]:
        """A unit of writes; call the yielded function to roll it (and its undo entries) back."""
        undo_before = dict(self._undo)
        next_before = dict(self._next_index)
        self.conn.execute("SAVEPOINT writes")

        def rollback() -> None:
            self.conn.execute("ROLLBACK TO writes")
            self._undo = undo_before
            self._next_index = next_before

        try:
            yield rollback
        finally:
            self.conn.execute("RELEASE writes")

    def reset(self) -> None:
        """Undo every write since construction (or the last reset)."""
        self.schema.reset()
        self.tooling.reset()
        self.conn.execute("BEGIN")
        for (table, rowid), original in self._undo.items():
            if original is None:
                self.conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
                continue
            names = self._physical[table]
            defaults = self._defaults.get(table, {})
            values = [original[n] if n in original else defaults.get(n) for n in names]
            assignments = ", ".join(f'"{n}" = ?' for n in names)
            self.conn.execute(f"UPDATE {table} SET {assignments} WHERE rowid = ?", [*values, rowid])
        self.conn.execute("COMMIT")
        self._undo.clear()
        self._next_index = dict(self._first_new)


def _inline_ids(expr: str) -> str:
    """Replace ``sfid('Object', n)`` / ``sfkey('prefix', n)`` in a mapping expression with a lookup of the id's
    n-dependent part in ``sfid_tail`` (computed once per n in SQL: one indexed lookup per reference)."""
    out = ""
    while True:
        start = min((i for i in (expr.find("sfid('"), expr.find("sfkey('")) if i >= 0), default=-1)
        if start < 0:
            return out + expr
        open_at = expr.index("(", start)
        depth, end = 0, open_at
        for end in range(open_at, len(expr)):
            depth += {"(": 1, ")": -1}.get(expr[end], 0)
            if depth == 0:
                break
        name, _, argument = expr[open_at + 1 : end].partition(",")
        key = name.strip().strip("'")
        prefix = SALESFORCE_PREFIXES[key] if expr.startswith("sfid", start) else key
        out += expr[:start] + id_from_tail_sql(prefix, f"(SELECT tail FROM sfid_tail WHERE n = {argument.strip()})")
        expr = expr[end + 1 :]
