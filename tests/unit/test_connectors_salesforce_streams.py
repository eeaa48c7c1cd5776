"""Salesforce opportunities with their contact roles: one paged role query, and a re-read for deals changed mid-run."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from connectors.salesforce.streams import SalesforceConnector, SoqlStream
from core.config.runtime import LimitsConfig
from core.config.sources import SalesforceSourceConfig, StreamConfig
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
