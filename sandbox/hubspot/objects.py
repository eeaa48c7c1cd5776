"""How book rows become HubSpot records: one SQL projection per object type, and the association types.

Each projection is an ``INSERT ... SELECT`` over the attached book database, so building the
emulator's store stays inside SQLite even for 100k companies and 2M engagements.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.ids import HUBSPOT_OFFSETS


def ts(column: str) -> str:
    """A book timestamp ``YYYY-MM-DDTHH:MM:SSZ`` as HubSpot sends it, with milliseconds."""
    return f"(substr({column}, 1, 19) || '.000Z')"


def midnight(column: str) -> str:
    """A book date ``YYYY-MM-DD`` as a HubSpot datetime at midnight UTC."""
    return f"({column} || 'T00:00:00.000Z')"


def num(column: str) -> str:
    """A number as HubSpot's string value: integers without a fractional part."""
    return (
        f"(CASE WHEN {column} IS NULL THEN NULL WHEN {column} = CAST({column} AS INTEGER) "
        f"THEN CAST(CAST({column} AS INTEGER) AS TEXT) ELSE CAST({column} AS TEXT) END)"
    )


def flag(column: str) -> str:
    return f"(CASE {column} WHEN 1 THEN 'true' WHEN 0 THEN 'false' END)"


def hs_id(object_type: str, column: str) -> str:
    return f"(CASE WHEN {column} IS NULL THEN NULL ELSE CAST({HUBSPOT_OFFSETS[object_type]} + {column} AS TEXT) END)"


@dataclass(frozen=True)
class Projection:
    """The book query behind one object type: its row source and property expressions."""

    source: str  # FROM clause over the attached ``book`` schema, aliased ``r``
    properties: tuple[tuple[str, str], ...]  # (property name, SQL expression)
    where: str = "1"
    created: str = "r.created_at"  # book column of the creation time
    updated: str = "r.updated_at"
    archived: str = "r.is_deleted = 1"  # SQL truth value


_STAGE = (
    "(CASE WHEN r.is_closed = 1 AND r.is_won = 1 THEN 'closedwon' WHEN r.is_closed = 1 THEN 'closedlost' "
    "ELSE CASE lower(r.stage) WHEN 'prospecting' THEN 'appointmentscheduled' WHEN 'qualification' "
    "THEN 'qualifiedtobuy' WHEN 'needs analysis' THEN 'presentationscheduled' WHEN 'proposal' "
    "THEN 'decisionmakerboughtin' WHEN 'negotiation' THEN 'contractsent' ELSE 'appointmentscheduled' END END)"
)

_TICKET_STAGE = (
    "(CASE r.status WHEN 'new' THEN '1' WHEN 'pending' THEN '2' WHEN 'open' THEN '3' WHEN 'closed' THEN '4' END)"
)


def _engagement(kind: str, *specific: tuple[str, str]) -> Projection:
    return Projection(
        source="book.activities AS r",
        where=f"r.kind = '{kind}'",
        properties=(
            ("hs_createdate", ts("r.created_at")),
            ("hs_timestamp", ts("r.occurred_at")),
            ("hubspot_owner_id", hs_id("owners", "r.owner_n")),
            *specific,
        ),
    )


PROJECTIONS: dict[str, Projection] = {
    "companies": Projection(
        source="book.accounts AS r",
        properties=(
            ("name", "r.name"),
            ("domain", "r.domain"),
            ("website", "r.website"),
            ("industry", "r.industry"),
            ("numberofemployees", num("r.employees")),
            ("description", "r.description"),
            ("lifecyclestage", "'customer'"),
            ("tier", "r.tier"),
            ("arr", num("r.arr")),
            ("renewal_date", "r.renewal_date"),
            ("hubspot_owner_id", hs_id("owners", "r.owner_n")),
            ("createdate", ts("r.created_at")),
        ),
    ),
    "contacts": Projection(
        source="book.contacts AS r",
        properties=(
            ("firstname", "r.first_name"),
            ("lastname", "r.last_name"),
            ("email", "r.email"),
            ("jobtitle", "r.title"),
            ("department", "r.department"),
            ("phone", "r.phone"),
            ("left_company", flag("r.has_left")),
            ("associatedcompanyid", hs_id("companies", "r.account_n")),
            ("lifecyclestage", "'customer'"),
            ("createdate", ts("r.created_at")),
        ),
    ),
    "deals": Projection(
        source="book.deals AS r LEFT JOIN book.accounts AS a ON a.n = r.account_n",
        properties=(
            ("dealname", "r.name"),
            ("dealtype", "(CASE r.kind WHEN 'new_business' THEN 'newbusiness' ELSE 'existingbusiness' END)"),
            ("deal_kind", "r.kind"),
            ("pipeline", "'default'"),
            ("dealstage", _STAGE),
            ("closedate", midnight("r.close_date")),
            ("amount", num("r.amount")),
            ("hs_is_closed", flag("r.is_closed")),
            ("hs_is_closed_won", flag("r.is_won")),
            ("hubspot_owner_id", hs_id("owners", "a.owner_n")),
            ("createdate", ts("r.created_at")),
        ),
    ),
    "tickets": Projection(
        source="book.tickets AS r LEFT JOIN book.accounts AS a ON a.n = r.account_n",
        properties=(
            ("subject", "r.subject"),
            ("hs_pipeline", "'0'"),
            ("hs_pipeline_stage", _TICKET_STAGE),
            ("hs_ticket_priority", "upper(r.priority)"),
            ("escalated", flag("r.is_escalated")),
            ("closed_date", ts("r.closed_at")),
            ("hubspot_owner_id", hs_id("owners", "a.owner_n")),
            ("createdate", ts("coalesce(r.opened_at, r.created_at)")),
        ),
    ),
    "calls": _engagement(
        "call",
        ("hs_call_title", "r.subject"),
        ("hs_call_body", "r.body"),
        ("hs_call_direction", "upper(r.direction)"),
        ("hs_call_duration", num("round(r.duration_minutes * 60000)")),
        ("hs_call_status", "'COMPLETED'"),
    ),
    "emails": _engagement(
        "email",
        ("hs_email_subject", "r.subject"),
        ("hs_email_text", "r.body"),
        ("hs_email_direction", "(CASE r.direction WHEN 'inbound' THEN 'INCOMING_EMAIL' ELSE 'EMAIL' END)"),
        ("hs_email_status", "'SENT'"),
    ),
    "meetings": _engagement(
        "meeting",
        ("hs_meeting_title", "r.subject"),
        ("hs_meeting_body", "r.body"),
        ("hs_meeting_start_time", ts("r.occurred_at")),
        (
            "hs_meeting_end_time",
            "(strftime('%Y-%m-%dT%H:%M:%S', r.occurred_at, '+' || CAST(coalesce(r.duration_minutes, 30) AS INTEGER) "
            "|| ' minutes') || '.000Z')",
        ),
        ("hs_meeting_outcome", "'COMPLETED'"),
    ),
    "notes": _engagement("note", ("hs_note_body", "r.body")),
}

# The body property of each engagement type; ``hs_body_preview`` is derived from it when read, not stored.
BODY_PROPERTY = {
    "calls": "hs_call_body",
    "emails": "hs_email_text",
    "meetings": "hs_meeting_body",
    "notes": "hs_note_body",
}
PREVIEW_CHARS = 512

ENGAGEMENT_KINDS = {"calls": "call", "emails": "email", "meetings": "meeting", "notes": "note"}

SINGULAR = {
    "companies": "company",
    "contacts": "contact",
    "deals": "deal",
    "tickets": "ticket",
    "calls": "call",
    "emails": "email",
    "meetings": "meeting",
    "notes": "note",
    "tasks": "task",
}

# HUBSPOT_DEFINED association type ids, from hubspot.crm.association_type (both directions listed).
ASSOCIATION_TYPE_IDS: dict[tuple[str, str], int] = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("contacts", "tickets"): 15,
    ("tickets", "contacts"): 16,
    ("deals", "tickets"): 27,
    ("tickets", "deals"): 28,
    ("companies", "calls"): 181,
    ("calls", "companies"): 182,
    ("companies", "emails"): 185,
    ("emails", "companies"): 186,
    ("companies", "meetings"): 187,
    ("meetings", "companies"): 188,
    ("companies", "notes"): 189,
    ("notes", "companies"): 190,
    ("companies", "tasks"): 191,
    ("tasks", "companies"): 192,
    ("contacts", "calls"): 193,
    ("calls", "contacts"): 194,
    ("contacts", "emails"): 197,
    ("emails", "contacts"): 198,
    ("contacts", "meetings"): 199,
    ("meetings", "contacts"): 200,
    ("contacts", "notes"): 201,
    ("notes", "contacts"): 202,
    ("contacts", "tasks"): 203,
    ("tasks", "contacts"): 204,
    ("deals", "calls"): 205,
    ("calls", "deals"): 206,
    ("deals", "emails"): 209,
    ("emails", "deals"): 210,
    ("deals", "meetings"): 211,
    ("meetings", "deals"): 212,
    ("deals", "notes"): 213,
    ("notes", "deals"): 214,
    ("deals", "tasks"): 215,
    ("tasks", "deals"): 216,
    ("tickets", "calls"): 219,
    ("calls", "tickets"): 220,
    ("tickets", "emails"): 223,
    ("emails", "tickets"): 224,
    ("tickets", "meetings"): 225,
    ("meetings", "tickets"): 226,
    ("tickets", "notes"): 227,
    ("notes", "tickets"): 228,
    ("tickets", "tasks"): 229,
    ("tasks", "tickets"): 230,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("tickets", "companies"): 339,
    ("companies", "tickets"): 340,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
}

# The "Primary" labelled type that rides along with the unlabeled one for a record's primary company.
PRIMARY_TYPE_IDS: dict[tuple[str, str], int] = {
    ("contacts", "companies"): 1,
    ("companies", "contacts"): 2,
    ("deals", "companies"): 5,
    ("companies", "deals"): 6,
    ("companies", "tickets"): 25,
    ("tickets", "companies"): 26,
}

ALL_TYPE_IDS = {**{v: k for k, v in ASSOCIATION_TYPE_IDS.items()}, **{v: k for k, v in PRIMARY_TYPE_IDS.items()}}


def v3_association_name(from_type: str, to_type: str, primary: bool) -> str:
    """The v3 ``associations`` field's type name, e.g. ``contact_to_company`` (primary) or ``..._unlabeled``."""
    base = f"{SINGULAR[from_type]}_to_{SINGULAR[to_type]}"
    if (from_type, to_type) in PRIMARY_TYPE_IDS:
        return base if primary else f"{base}_unlabeled"
    return base


# Book associations: (x_type, y_type, SQL selecting x_n, y_n, is_primary from the attached book).
BOOK_ASSOCIATIONS: tuple[tuple[str, str, str], ...] = (
    ("contacts", "companies", "SELECT n, account_n, 1 FROM book.contacts WHERE account_n IS NOT NULL"),
    ("deals", "companies", "SELECT n, account_n, 1 FROM book.deals WHERE account_n IS NOT NULL"),
    ("tickets", "companies", "SELECT n, account_n, 1 FROM book.tickets WHERE account_n IS NOT NULL"),
    ("tickets", "contacts", "SELECT n, contact_n, 0 FROM book.tickets WHERE contact_n IS NOT NULL"),
    (
        "deals",
        "contacts",
        "SELECT d.n, CAST(j.value AS INTEGER), 0 FROM book.deals AS d, json_each(coalesce(d.contact_ns, '[]')) AS j",
    ),
    *(
        (t, "companies", f"SELECT n, account_n, 0 FROM book.activities WHERE kind = '{k}' AND account_n IS NOT NULL")
        for t, k in ENGAGEMENT_KINDS.items()
    ),
    *(
        (
            t,
            "contacts",
            "SELECT a.n, CAST(j.value AS INTEGER), 0 FROM book.activities AS a, "
            f"json_each(coalesce(a.contact_ns, '[]')) AS j WHERE a.kind = '{k}'",
        )
        for t, k in ENGAGEMENT_KINDS.items()
    ),
)
