"""Salesforce opportunities with their contact roles (one paged role query, and a re-read for deals changed mid-run),
and the backfill preflight's questions: which objects it asks about, when, and what each stream is charged."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from connectors.base import ApiStats
from connectors.salesforce.streams import BackfillPreflight, SalesforceConnector, SoqlStream
from core.config.runtime import LimitsConfig
from core.config.sources import SalesforceSourceConfig, StreamConfig
from core.errors import ApiError, FatalApiError
from core.records import DealRecord

T1 = "2026-03-01T10:00:00.000+0000"
T2 = "2026-03-02T10:00:00.000+0000"


class FakeClient:
    """Answers SOQL by its FROM object; records every query."""

    def __init__(self, deals: list[dict[str, Any]], roles: list[dict[str, Any]], fallback: list[dict[str, Any]]):
        self.deals, self.roles, self.fallback = deals, roles, fallback
        self.queries: list[str] = []
        self.stats = None

    def query_pages(self, soql: str, *, include_deleted: bool = False) -> Iterator[list[dict[str, Any]]]:
        self.queries.append(soql)
        yield self.deals

    def query_iter(self, soql: str, *, include_deleted: bool = False) -> Iterator[dict[str, Any]]:
        self.queries.append(soql)
        yield from (self.fallback if "OpportunityId IN" in soql else self.roles)


def _deal(deal_id: str, stamp: str) -> dict[str, Any]:
    return {"Id": deal_id, "AccountId": "001A", "Name": deal_id, "StageName": "Prospecting", "IsClosed": False,
            "IsWon": False, "CloseDate": "2026-04-01", "Amount": 10.0, "Type": "New Business",
            "CreatedDate": T1, "SystemModstamp": stamp, "IsDeleted": False}


def _role(deal_id: str, contact_id: str, stamp: str) -> dict[str, Any]:
    return {"OpportunityId": deal_id, "ContactId": contact_id, "Opportunity": {"SystemModstamp": stamp}}


def _stream(client: FakeClient) -> SoqlStream:
    config = SalesforceSourceConfig(enabled=True, streams={n: StreamConfig(enabled=n == "opportunities") for n in (
        "accounts", "contacts", "users", "cases", "tasks", "events")})
    connector = SalesforceConnector(client, config, LimitsConfig(salesforce={"bulk_threshold": 0}))  # type: ignore[arg-type]
    (stream,) = connector.streams()
    assert isinstance(stream, SoqlStream)
    return stream


def _contacts(stream: SoqlStream, since: datetime | None) -> dict[str, tuple[str, ...]]:
    records = list(stream.read(since))
    assert all(isinstance(r, DealRecord) for r in records), records
    return {r.external_id: r.contact_external_ids for r in records if isinstance(r, DealRecord)}


def test_incremental_reads_roles_once_filtered_by_the_opportunity_modstamp() -> None:
    client = FakeClient([_deal("006A", T1), _deal("006B", T1), _deal("006C", T1)],
                        [_role("006A", "003X", T1), _role("006A", "003Y", T1), _role("006C", "003Z", T1)], [])
    stream = _stream(client)
    assert _contacts(stream, datetime(2026, 3, 1, tzinfo=UTC)) == {
        "006A": ("003X", "003Y"), "006B": (), "006C": ("003Z",)}
    assert client.queries[0] == (
        "SELECT OpportunityId, ContactId, Opportunity.SystemModstamp FROM OpportunityContactRole "
        "WHERE Opportunity.SystemModstamp >= 2026-03-01T00:00:00.000Z ORDER BY OpportunityId, Id")
    assert len(client.queries) == 2
    assert stream.roles_read == (3, "rest")


def test_backfill_reads_every_role_without_a_filter() -> None:
    client = FakeClient([_deal("006A", T1)], [_role("006A", "003X", T1)], [])
    assert _contacts(_stream(client), None) == {"006A": ("003X",)}
    assert "WHERE" not in client.queries[0]
    assert len(client.queries) == 2


def test_deals_changed_after_the_role_read_have_their_roles_read_again() -> None:
    # 006A changed between the two reads (new stamp), 006B is newer than every role read and may have gained
    # roles; 006C is unchanged and keeps the roles read first.
    client = FakeClient([_deal("006A", T2), _deal("006B", T2), _deal("006C", T1)],
                        [_role("006A", "003OLD", T1), _role("006C", "003Z", T1)],
                        [_role("006A", "003NEW", T2), _role("006B", "003B", T2)])
    assert _contacts(_stream(client), None) == {"006A": ("003NEW",), "006B": ("003B",), "006C": ("003Z",)}
    assert len(client.queries) == 3
    assert "WHERE OpportunityId IN ('006A','006B')" in client.queries[2]


class PreflightClient:
    """Answers recordCount from ``counts`` (objects not in it are left out) and describes every object but ``broken``;
    records each question and counts each call in ``stats`` as the real client does."""

    def __init__(self, counts: dict[str, int] | None, broken: str = "") -> None:
        self.counts, self.broken = counts, broken  # counts None: recordCount is refused
        self.stats = ApiStats()
        self.asked: list[tuple[str, list[str]]] = []

    def _call(self, what: str, names: list[str]) -> None:
        self.asked.append((what, names))
        self.stats.call("salesforce", what)

    def record_counts(self, sobjects: list[str]) -> dict[str, int]:
        self._call("recordCount", list(sobjects))
        if self.counts is None:
            raise FatalApiError("salesforce answered 403 INSUFFICIENT_ACCESS", system="salesforce", status=403)
        return {k.lower(): v for k, v in self.counts.items() if k in sobjects}

    def describe_many(self, sobjects: list[str]) -> dict[str, dict[str, Any] | ApiError]:
        self._call("composite", list(sobjects))
        return {name: FatalApiError(f"describe of {name} failed", system="salesforce") if name == self.broken
                else {"fields": [{"name": "Amount", "type": "currency"}]} for name in sobjects}

    def count(self, sobject: str) -> int:
        self._call("count", [sobject])
        return 3


def _preflight(client: PreflightClient) -> BackfillPreflight:
    preflight = BackfillPreflight(client, threshold=10)  # type: ignore[arg-type]
    for stream, sobject in (("accounts", "Account"), ("contacts", "Contact"), ("tasks", "Task"), ("events", "Event")):
        preflight.register(stream, sobject)
    return preflight


def test_preflight_asks_once_per_run_about_every_stream_not_read_with_a_cursor() -> None:
    client = PreflightClient({"Account": 5, "Contact": 50, "Task": 80})
    preflight = _preflight(client)
    preflight.start("accounts", backfill=False)
    assert client.asked == []
    preflight.start("contacts", backfill=True)
    assert preflight.goes_bulk("Contact")
    assert preflight.field_types("Contact") == {"amount": "currency"}
    preflight.start("tasks", backfill=True)
    assert preflight.goes_bulk("Task")
    assert preflight.field_types("Task") == {"amount": "currency"}
    preflight.start("events", backfill=True)
    assert not preflight.goes_bulk("Event")  # left out of recordCount's answer: counted with SELECT COUNT()
    assert client.asked == [("recordCount", ["Contact", "Task", "Event"]), ("composite", ["Contact", "Task"]),
                            ("count", ["Event"])]
    assert preflight.calls == {"contacts": 2}  # the fallback count is the events stream's own call

    client.asked.clear()
    preflight.start("accounts", backfill=True)  # a stream read again: a new run asks again
    assert not preflight.goes_bulk("Account")
    assert client.asked == [("recordCount", ["Account", "Contact", "Task", "Event"])]
    assert preflight.calls == {"accounts": 1}


def test_a_failed_describe_fails_only_its_own_object() -> None:
    client = PreflightClient({"Contact": 50, "Task": 80}, broken="Task")
    preflight = _preflight(client)
    preflight.start("contacts", backfill=True)
    assert preflight.goes_bulk("Contact")
    assert preflight.field_types("Contact") == {"amount": "currency"}
    preflight.start("tasks", backfill=True)
    assert preflight.goes_bulk("Task")
    with pytest.raises(FatalApiError, match="describe of Task"):
        preflight.field_types("Task")
    assert [what for what, _ in client.asked] == ["recordCount", "composite"]


def test_no_question_at_all_when_the_bulk_threshold_is_off() -> None:
    client = PreflightClient({"Contact": 50})
    preflight = BackfillPreflight(client, threshold=0)  # type: ignore[arg-type]
    preflight.register("contacts", "Contact")
    preflight.start("contacts", backfill=True)
    assert not preflight.goes_bulk("Contact")
    assert client.asked == []


def test_a_refused_record_count_falls_back_to_one_count_per_backfilling_object() -> None:
    client = PreflightClient(None)
    preflight = _preflight(client)
    for stream, sobject in (("accounts", "Account"), ("contacts", "Contact")):
        preflight.start(stream, backfill=True)
        assert not preflight.goes_bulk(sobject)
    assert client.asked == [("recordCount", ["Account", "Contact", "Task", "Event"]), ("count", ["Account"]),
                            ("count", ["Contact"])]


class DescribeClient:
    """Composite describes from a field list per object (an object not listed does not exist); records the calls."""

    def __init__(self, fields: dict[str, list[str]], *, refused: bool = False) -> None:
        self.fields, self.refused = fields, refused
        self.asked: list[list[str]] = []
        self.stats = ApiStats()

    def describe_many(self, sobjects: list[str]) -> dict[str, dict[str, Any] | ApiError]:
        self.asked.append(list(sobjects))
        if self.refused:
            raise FatalApiError("salesforce answered 403 API_DISABLED_FOR_ORG", system="salesforce", status=403)
        return {name: {"fields": [{"name": f.split(".")[0] + ("Id" if "." in f else ""),
                                   "relationshipName": f.split(".")[0] if "." in f else None}
                                  for f in self.fields[name]]}
                if name in self.fields else FatalApiError(f"describe of {name} (composite): NOT_FOUND",
                                                          system="salesforce", status=404)
                for name in sobjects}


def _checked(client: DescribeClient) -> list[str]:
    config = SalesforceSourceConfig(
        enabled=True, streams={"accounts": StreamConfig(extra_fields={"risk": "Churn_Risk__c"})},
        custom_objects=[{"name": "usage", "object": "Usage__c", "entity": "usage_metrics",
                         "fields": {"account_external_id": "Account__c"}}])
    return SalesforceConnector(client, config, LimitsConfig()).check_fields()  # type: ignore[arg-type]


def _every_default_field() -> dict[str, list[str]]:
    """Each standard object's describe as the default mapping needs it (``Churn_Risk__c`` and ``Usage__c`` not)."""
    default = SalesforceConnector(DescribeClient({}), SalesforceSourceConfig(enabled=True), LimitsConfig())  # type: ignore[arg-type]
    return {s.sobject: list(s.fields) for s in default.streams() if isinstance(s, SoqlStream)}


def test_check_fields_describes_every_object_in_one_composite_call_and_names_what_is_missing() -> None:
    client = DescribeClient(_every_default_field())
    assert _checked(client) == ["Account.Churn_Risk__c: no such field (stream accounts)",
                                "Usage__c: object cannot be described (describe of Usage__c (composite): NOT_FOUND)"]
    assert client.asked == [["Account", "Contact", "User", "Opportunity", "Case", "Task", "Event", "Usage__c"]]


def test_check_fields_names_every_object_when_the_composite_call_itself_fails() -> None:
    client = DescribeClient(_every_default_field(), refused=True)
    assert _checked(client) == [f"{name}: object cannot be described (salesforce answered 403 API_DISABLED_FOR_ORG)"
                                for name in ("Account", "Contact", "User", "Opportunity", "Case", "Task", "Event",
                                             "Usage__c")]
    assert len(client.asked) == 1
