"""SOQL literal escaping and raw JSON -> canonical records, bad records becoming RejectedRecord with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.fields import RecordMapper, get_path, tier_of
from connectors.hubspot.mapping import property_path
from connectors.salesforce.mapping import OBJECTS, deal_kind_of, direction_of, priority_of
from connectors.salesforce.soql import escape_string, identifier, literal, literal_list, soql_datetime
from core.config.sources import DealKindConfig
from core.errors import ConfigError
from core.records import AccountRecord, ActivityRecord, DealKind, DealRecord, Direction, RejectedRecord


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("O'Brien\\", "'O\\'Brien\\\\'"),
        ('say "hi"', "'say \\\"hi\\\"'"),
        ("' OR Name != '", "'\\' OR Name != \\''"),
        ("line\nbreak", "'line\\nbreak'"),
        ("株式会社", "'株式会社'"),
    ],
)
def test_soql_string_literals_are_escaped(value, expected):
    assert escape_string(value) == expected


def _unescape(literal_text: str) -> str:
    """Reads a SOQL string literal back the way Salesforce does (for the property test)."""
    body = literal_text[1:-1]
    out, i = [], 0
    table = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f"}
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            out.append(table.get(nxt, nxt))
            i += 2
            continue
        assert ch != "'", "an unescaped quote would end the literal"
        out.append(ch)
        i += 1
    return "".join(out)


@given(st.text())
def test_any_string_survives_a_soql_literal_round_trip(value):
    assert _unescape(escape_string(value)) == value


def test_other_literals():
    assert literal(None) == "null"
    assert literal(True) == "true"
    assert literal(3) == "3"
    assert literal(date(2026, 1, 2)) == "2026-01-02"
    assert soql_datetime(datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)) == "2026-01-02T03:04:05.678Z"
    assert literal_list(["a'b", "c"]) == "('a\\'b','c')"


@pytest.mark.parametrize("name", ["Name", "Owner.Email", "Usage_Score__c", "Account.Owner.Email"])
def test_identifiers_accept_api_names_and_relationship_paths(name):
    assert identifier(name) == name


@pytest.mark.parametrize("name", ["Name, (SELECT Id FROM Contacts)", "Name FROM Account--", "1Name", ""])
def test_identifiers_refuse_anything_else(name):
    with pytest.raises(ConfigError):
        identifier(name)


def _account_mapper() -> RecordMapper:
    spec = OBJECTS["accounts"]
    return RecordMapper(source="salesforce", stream="accounts", record_type=AccountRecord,
                        fields={**spec.fields, "tier": "Tier__c"}, extra_fields={"usage_score": "Usage_Score__c"},
                        finish=spec.finish(DealKindConfig()))


GOOD = {
    "Id": "001A", "Name": "Acme", "Website": "https://www.Acme.com/about", "NumberOfEmployees": 120,
    "AnnualRevenue": 5000.0, "OwnerId": "005A", "CreatedDate": "2024-01-01T00:00:00.000+0000",
    "SystemModstamp": "2025-02-03T04:05:06.000+0000", "IsDeleted": False, "Tier__c": "Mid-Market",
    "Usage_Score__c": 71.5, "Industry": None,
}


def test_a_good_account_maps_with_normalized_domain_tier_and_signal():
    record = _account_mapper().map(GOOD)
    assert isinstance(record, AccountRecord)
    assert (record.external_id, record.domain, record.tier, record.employees) == ("001A", "acme.com", "mid_market", 120)
    assert record.source_updated_at == datetime(2025, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert record.extra == {"usage_score": 71.5}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"Id": None}, "Id: missing record id"),
        ({"AnnualRevenue": "12,5x"}, "AnnualRevenue: not a number ('12,5x')"),
        ({"Name": "x" * 100_000}, "Name: too long (100000 characters)"),
        ({"Name": "bad \ud800 text"}, "Name: broken unicode (an unpaired surrogate)"),
        ({"Name": "nul \x00 byte"}, "Name: contains a NUL character"),
        ({"SystemModstamp": "yesterday"}, "SystemModstamp: not a date-time ('yesterday')"),
    ],
)
def test_bad_records_are_rejected_with_a_reason_naming_the_field(change, reason):
    result = _account_mapper().map({**GOOD, **change})
    assert isinstance(result, RejectedRecord)
    assert result.reason == reason
    assert result.stream == "accounts"


def test_relationship_paths_and_case_insensitive_keys():
    raw = {"Owner": {"Email": "a@b.com"}, "person": {"email": None}}
    assert get_path(raw, "Owner.Email") == "a@b.com"
    assert get_path(raw, "owner.email") == "a@b.com"
    assert get_path(raw, "person.email") is None
    assert get_path(raw, "Missing.Path") is None


def test_task_mapping_types_directions_and_participants():
    spec = OBJECTS["tasks"]
    mapper = RecordMapper(source="salesforce", stream="tasks", record_type=ActivityRecord,
                          fields={**spec.fields, "direction": "Direction__c"}, finish=spec.finish(DealKindConfig()))
    raw = {"Id": "00T1", "TaskSubtype": "Call", "Type": "Call", "CompletedDateTime": "2026-01-05T10:00:00.000+0000",
           "AccountId": None, "WhatId": "001X", "WhoId": "003Y", "OwnerId": "005Z", "Subject": "Check-in",
           "CallDurationInSeconds": 900, "Direction__c": "Inbound", "SystemModstamp": "2026-01-05T10:00:00.000+0000",
           "IsDeleted": False}
    record = mapper.map(raw)
    assert isinstance(record, ActivityRecord)
    assert (record.activity_type, record.direction, record.account_external_id) == ("call", Direction.INBOUND, "001X")
    assert (record.contact_external_ids, record.duration_minutes) == (("003Y",), 15.0)
    note = mapper.map({**raw, "TaskSubtype": "Task", "Type": "Other", "WhoId": None})
    assert isinstance(note, ActivityRecord)
    assert (note.activity_type, note.contact_external_ids) == ("note", ())


def test_deal_kinds_priorities_and_directions():
    config = DealKindConfig()
    assert deal_kind_of("Renewal", config) is DealKind.RENEWAL
    assert deal_kind_of("Existing Customer - Upgrade", config) is DealKind.EXPANSION
    assert deal_kind_of("New Business", config) is DealKind.NEW_BUSINESS
    assert deal_kind_of(None, config) is DealKind.OTHER
    assert [priority_of(p) for p in ("Critical", "HIGH", "Medium", "low")] == ["p1", "p2", "p3", "p4"]
    assert direction_of("INCOMING_EMAIL") is Direction.INBOUND
    assert direction_of("EMAIL") is Direction.OUTBOUND
    assert direction_of("Internal") is None
    assert tier_of("Mid Market") == "mid_market"


def test_hubspot_paths_default_to_properties():
    assert property_path("domain") == "properties.domain"
    assert property_path("associations.companies") == "associations.companies"
    assert property_path("updatedAt") == "updatedAt"


def test_opportunity_kind_by_configured_field():
    spec = OBJECTS["opportunities"]
    config = DealKindConfig(by="field", field="Kind__c", renewal=["R"])
    mapper = RecordMapper(source="salesforce", stream="opportunities", record_type=DealRecord,
                          fields={**spec.fields, "kind": "Kind__c"}, finish=spec.finish(config))
    record = mapper.map({"Id": "006A", "Kind__c": "R", "SystemModstamp": "2026-01-01T00:00:00Z", "IsDeleted": False})
    assert isinstance(record, DealRecord)
    assert record.kind is DealKind.RENEWAL
