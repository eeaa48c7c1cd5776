"""Deterministic record ids in each CRM's own format, from a neutral book index.

The book numbers its records per entity from 1; each emulator turns (entity, n) into an id of its
own shape, and back. Tests and benchmarks use these to find a book record in an emulated CRM.
"""

from __future__ import annotations

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Salesforce key prefixes (the first three characters of an Id say the object).
SALESFORCE_PREFIXES = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "Task": "00T",
    "Event": "00U",
    "Case": "500",
    "OpportunityContactRole": "00K",
    "CustomField": "00N",
    "Usage__c": "a01",
    "RecordType": "012",
    "TaskRelation": "0RT",
    "EventRelation": "0RE",
}


def case_safe_suffix(id15: str) -> str:
    """Salesforce's case-safe 3-character checksum that turns a 15-character id into 18."""
    out = ""
    for chunk in (id15[0:5], id15[5:10], id15[10:15]):
        bits = sum(1 << i for i, ch in enumerate(chunk) if "A" <= ch <= "Z")
        out += "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"[bits]
    return out


def salesforce_id(sobject: str, n: int) -> str:
    """The 18-character Id of the n-th record (n >= 1) of a Salesforce object."""
    prefix = SALESFORCE_PREFIXES[sobject]
    digits = ""
    value = n
    for _ in range(9):
        value, rem = divmod(value, 62)
        digits = _B62[rem] + digits
    id15 = prefix + "Dg0" + digits  # 3 + 3 + 9 = 15
    return id15 + case_safe_suffix(id15)


def salesforce_index(record_id: str) -> int:
    """The book index behind a Salesforce Id made by ``salesforce_id``."""
    value = 0
    for ch in record_id[6:15]:
        value = value * 62 + _B62.index(ch)
    return value


# HubSpot ids are positive integers, distinct per object type; an offset keeps them realistic-looking.
HUBSPOT_OFFSETS = {
    "companies": 9_000_000_000,
    "contacts": 51_000_000,
    "deals": 12_000_000_000,
    "tickets": 2_100_000_000,
    "calls": 30_000_000_000,
    "emails": 31_000_000_000,
    "meetings": 32_000_000_000,
    "notes": 33_000_000_000,
    "tasks": 34_000_000_000,
    "owners": 40_000_000,
}


def hubspot_id(object_type: str, n: int) -> str:
    """The id of the n-th record (n >= 1) of a HubSpot object type."""
    return str(HUBSPOT_OFFSETS[object_type] + n)
