"""Load a sandbox book straight into the store as canonical records, without the connectors.

Tests and benchmarks use it to get a book's data into the store quickly: CRM tables become records of one CRM
(``salesforce`` or ``hubspot``, with that CRM's ids from ``sandbox.ids``), surveys, intent, usage and invoices
become records of the ``nps``, ``intent``, ``usage`` and ``billing`` sources, and their ``account_links`` are
filled the way ``store.linking`` does it (survey by contact email, else email domain; intent by domain or a
parent domain; usage and invoices by account). Rows are read and written in streaming batches.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Engine, Table, select

from core.domains import PERSONAL_EMAIL_DOMAINS, email_domain, normalize_domain, parent_domains
from core.records import (
    AccountRecord,
    ActivityRecord,
    ActivityType,
    CanonicalRecord,
    ContactRecord,
    DealKind,
    DealRecord,
    Direction,
    IntentSignalRecord,
    InvoiceRecord,
    InvoiceStatus,
    SurveyKind,
    SurveyResponseRecord,
    TicketRecord,
    UsageRecord,
    UserRecord,
)
from core.titles import department_of, seniority_of
from sandbox.book import Book
from sandbox.ids import hubspot_id, salesforce_id
from store.models import SYNCED_MODELS, Account, AccountLink
from store.upsert import upsert_records, upsert_rows

log = logging.getLogger(__name__)

BATCH = 5_000
PRIORITY = {"urgent": "p1", "high": "p2", "medium": "p3", "low": "p4"}
_SF_OBJECT = {"accounts": "Account", "users": "User", "contacts": "Contact", "deals": "Opportunity",
              "tickets": "Case"}
_HS_OBJECT = {"accounts": "companies", "users": "owners", "contacts": "contacts", "deals": "deals",
              "tickets": "tickets"}
_HS_ACTIVITY = {"email": "emails", "call": "calls", "meeting": "meetings", "note": "notes"}


def _ts(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _day(value: str | None) -> date | None:
    return date.fromisoformat(value[:10]) if value else None


def _short(value: str | None, limit: int = 255) -> str | None:
    return value[:limit] if value else None


class _Ids:
    def __init__(self, source: str) -> None:
        if source not in ("salesforce", "hubspot"):
            raise ValueError(f"source must be salesforce or hubspot, not {source!r}")
        self.source = source

    def of(self, table: str, n: int | None) -> str | None:
        if n is None:
            return None
        if self.source == "salesforce":
            return salesforce_id(_SF_OBJECT[table], n)
        return hubspot_id(_HS_OBJECT[table], n)

    def activity(self, kind: str, n: int) -> str:
        if self.source == "salesforce":
            return salesforce_id("Event" if kind == "meeting" else "Task", n)
        return hubspot_id(_HS_ACTIVITY[kind], n)

    def contacts(self, ns_json: str | None) -> tuple[str, ...]:
        ns = json.loads(ns_json) if ns_json else []
        return tuple(str(self.of("contacts", int(n))) for n in ns)


def _rows(book_conn: sqlite3.Connection, table: str) -> Iterator[sqlite3.Row]:
    cur = book_conn.execute(f"SELECT * FROM {table} ORDER BY n")
    while True:
        chunk = cur.fetchmany(BATCH)
        if not chunk:
            return
        yield from chunk


def _mappers(ids: _Ids) -> dict[str, Callable[[sqlite3.Row], CanonicalRecord]]:
    src = ids.source

    def account(r: sqlite3.Row) -> CanonicalRecord:
        return AccountRecord(
            source=src, external_id=str(ids.of("accounts", r["n"])), name=_short(r["name"]),
            domain=normalize_domain(r["domain"] or r["website"]), industry=_short(r["industry"]),
            employees=r["employees"], arr=r["arr"], tier=r["tier"], owner_external_id=ids.of("users", r["owner_n"]),
            renewal_date=_day(r["renewal_date"]), source_created_at=_ts(r["created_at"]),
            source_updated_at=_ts(r["updated_at"]), is_deleted=bool(r["is_deleted"]),
        )

    def user(r: sqlite3.Row) -> CanonicalRecord:
        name = " ".join(x for x in (r["first_name"], r["last_name"]) if x) or None
        return UserRecord(
            source=src, external_id=str(ids.of("users", r["n"])), name=_short(name), email=_short(r["email"]),
            is_active=bool(r["is_active"]), source_created_at=_ts(r["created_at"]),
            source_updated_at=_ts(r["updated_at"]),
        )

    def contact(r: sqlite3.Row) -> CanonicalRecord:
        return ContactRecord(
            source=src, external_id=str(ids.of("contacts", r["n"])),
            account_external_id=ids.of("accounts", r["account_n"]), first_name=_short(r["first_name"]),
            last_name=_short(r["last_name"]), email=_short((r["email"] or "").lower() or None),
            title=_short(r["title"]),
            seniority=seniority_of(r["title"]), department=_short(r["department"] or department_of(r["title"]), 64),
            has_left=bool(r["has_left"]), source_created_at=_ts(r["created_at"]),
            source_updated_at=_ts(r["updated_at"]), is_deleted=bool(r["is_deleted"]),
        )

    def activity(r: sqlite3.Row) -> CanonicalRecord:
        kind = r["kind"]
        direction = Direction.TWO_WAY if kind == "meeting" else (Direction(r["direction"]) if r["direction"] else None)
        return ActivityRecord(
            source=src, external_id=ids.activity(kind, r["n"]), activity_type=ActivityType(kind), direction=direction,
            occurred_at=_ts(r["occurred_at"]), account_external_id=ids.of("accounts", r["account_n"]),
            owner_external_id=ids.of("users", r["owner_n"]), contact_external_ids=ids.contacts(r["contact_ns"]),
            subject=_short(r["subject"]), duration_minutes=r["duration_minutes"],
            source_created_at=_ts(r["created_at"]), source_updated_at=_ts(r["updated_at"]),
            is_deleted=bool(r["is_deleted"]),
        )

    def deal(r: sqlite3.Row) -> CanonicalRecord:
        kinds = {k.value for k in DealKind}
        return DealRecord(
            source=src, external_id=str(ids.of("deals", r["n"])),
            account_external_id=ids.of("accounts", r["account_n"]),
            name=_short(r["name"]), kind=DealKind(r["kind"]) if r["kind"] in kinds else DealKind.OTHER,
            stage=_short(r["stage"]), is_closed=bool(r["is_closed"]), is_won=bool(r["is_won"]),
            close_date=_day(r["close_date"]), amount=r["amount"], contact_external_ids=ids.contacts(r["contact_ns"]),
            source_created_at=_ts(r["created_at"]), source_updated_at=_ts(r["updated_at"]),
            is_deleted=bool(r["is_deleted"]),
        )

    def ticket(r: sqlite3.Row) -> CanonicalRecord:
        return TicketRecord(
            source=src, external_id=str(ids.of("tickets", r["n"])),
            account_external_id=ids.of("accounts", r["account_n"]), subject=_short(r["subject"]),
            priority=PRIORITY.get((r["priority"] or "").lower()), status=r["status"], is_closed=bool(r["is_closed"]),
            is_escalated=bool(r["is_escalated"]), opened_at=_ts(r["opened_at"]), closed_at=_ts(r["closed_at"]),
            source_created_at=_ts(r["created_at"]), source_updated_at=_ts(r["updated_at"]),
            is_deleted=bool(r["is_deleted"]),
        )

    def survey(r: sqlite3.Row) -> CanonicalRecord:
        return SurveyResponseRecord(
            source="nps", external_id=str(r["n"]), kind=SurveyKind(r["kind"]), score=r["score"],
            comment=_short(r["comment"], 32_000), responded_at=_ts(r["responded_at"]),
            email=_short((r["email"] or "").lower() or None), source_created_at=_ts(r["created_at"]),
            source_updated_at=_ts(r["updated_at"]),
        )

    def intent(r: sqlite3.Row) -> CanonicalRecord:
        return IntentSignalRecord(
            source="intent", external_id=str(r["n"]), domain=normalize_domain(r["domain"]) or r["domain"],
            topic=r["topic"], score=r["score"], observed_at=_ts(r["observed_at"]),
            source_updated_at=_ts(r["updated_at"]),
        )

    def usage(r: sqlite3.Row) -> CanonicalRecord:
        return UsageRecord(
            source="usage", external_id=str(r["n"]), account_external_id=str(r["account_n"]),
            account_domain=normalize_domain(r["account_domain"]), period_start=_day(r["period_start"]),
            active_users=r["active_users"], licensed_seats=r["licensed_seats"],
            feature_adoption=r["feature_adoption"],
        )

    def invoice(r: sqlite3.Row) -> CanonicalRecord:
        return InvoiceRecord(
            source="billing", external_id=str(r["n"]), account_external_id=str(r["account_n"]), amount=r["amount"],
            issued_at=_day(r["issued_at"]), due_date=_day(r["due_date"]), paid_at=_day(r["paid_at"]),
            status=InvoiceStatus(r["status"]), failed_payments=r["failed_payments"] or 0,
        )

    return {
        "users": user, "accounts": account, "contacts": contact, "activities": activity, "deals": deal,
        "tickets": ticket, "survey_responses": survey, "intent_signals": intent, "usage": usage, "invoices": invoice,
    }


class _Matcher:
    """Book-side keys -> store account ids, for the links of non-CRM records."""

    def __init__(self) -> None:
        self.by_n: dict[int, int] = {}
        self.by_domain: dict[str, list[int]] = {}
        self.by_email: dict[str, list[int]] = {}

    def domain(self, value: str | None) -> list[int]:
        d = normalize_domain(value)
        if not d or d in PERSONAL_EMAIL_DOMAINS:
            return []
        for candidate in parent_domains(d):
            if candidate in self.by_domain:
                return self.by_domain[candidate]
        return []

    def links(self, table: str, r: sqlite3.Row) -> list[tuple[int, str]]:
        if table in ("usage", "invoices"):
            acc = self.by_n.get(r["account_n"])
            return [(acc, "external_id")] if acc else []
        if table == "intent_signals":
            return [(a, "domain") for a in self.domain(r["domain"])]
        email = (r["email"] or "").lower()
        if email in self.by_email:
            return [(a, "email") for a in self.by_email[email]]
        return [(a, "domain") for a in self.domain(email_domain(email))]


_STORE_TABLE = {"usage": "usage_metrics"}
_LINKED = ("survey_responses", "intent_signals", "usage", "invoices")
_ORDER = ("users", "accounts", "contacts", "activities", "deals", "tickets", *_LINKED)


def _store_ids(conn: Connection, table: Table, source: str, external_ids: list[str]) -> dict[str, int]:
    q = select(table.c.external_id, table.c.id).where(table.c.source == source, table.c.external_id.in_(external_ids))
    return {str(e): int(i) for e, i in conn.execute(q)}


def load_book(book: Book, engine: Engine, source: str = "salesforce") -> dict[str, int]:
    """Upsert every book table into the store as ``source``'s records; returns records per table and links made."""
    ids = _Ids(source)
    mappers = _mappers(ids)
    matcher = _Matcher()
    counts: dict[str, int] = {}
    links_made = 0
    link_table: Table = AccountLink.__table__  # type: ignore[assignment]
    accounts_table: Table = Account.__table__  # type: ignore[assignment]
    book_conn = book.connect()
    book_conn.row_factory = sqlite3.Row
    try:
        for table in _ORDER:
            mapper = mappers[table]
            store_table: Table = SYNCED_MODELS[_STORE_TABLE.get(table, table)].__table__  # type: ignore[attr-defined]
            batch: list[sqlite3.Row] = []
            counts[table] = 0

            def flush(rows: list[sqlite3.Row], table: str = table, store_table: Table = store_table,
                      mapper: Callable[[sqlite3.Row], CanonicalRecord] = mapper) -> int:
                records = [mapper(r) for r in rows]
                with engine.begin() as conn:
                    upsert_records(conn, records)
                    if table == "accounts":
                        found = _store_ids(conn, accounts_table, source, [rec.external_id for rec in records])
                        for r, rec in zip(rows, records, strict=True):
                            if r["is_deleted"]:
                                continue
                            acc_id = found[rec.external_id]
                            matcher.by_n[r["n"]] = acc_id
                            d = normalize_domain(r["domain"] or r["website"])
                            if d:
                                matcher.by_domain.setdefault(d, []).append(acc_id)
                    elif table == "contacts":
                        for r in rows:
                            acc = matcher.by_n.get(r["account_n"])
                            if r["email"] and acc and not r["is_deleted"]:
                                matcher.by_email.setdefault(r["email"].lower(), []).append(acc)
                    elif table in _LINKED:
                        found = _store_ids(conn, store_table, records[0].source, [rec.external_id for rec in records])
                        link_rows = [
                            {"entity": store_table.name, "record_id": found[rec.external_id], "account_id": acc,
                             "method": method}
                            for r, rec in zip(rows, records, strict=True)
                            for acc, method in dict.fromkeys(matcher.links(table, r))
                        ]
                        upsert_rows(conn, link_table, link_rows, ("entity", "record_id", "account_id"),
                                    update=["method"])
                        return len(link_rows)
                return 0

            for row in _rows(book_conn, table):
                batch.append(row)
                if len(batch) >= BATCH:
                    links_made += flush(batch)
                    counts[table] += len(batch)
                    batch = []
            if batch:
                links_made += flush(batch)
                counts[table] += len(batch)
    finally:
        book_conn.close()
    counts["account_links"] = links_made
    log.info("loaded book %s into the store as %s: %s", book.path.name, source, counts)
    return counts


__all__ = ["load_book"]
