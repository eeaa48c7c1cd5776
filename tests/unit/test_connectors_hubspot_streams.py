"""HubSpot archived records: swept on a backfill, then at most once per archived_sweep_hours, back to the last sweep;
owners: listed on a backfill, then at most once per owners_refresh_hours."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot.streams import HubSpotConnector, HubSpotStream, OwnersStream
from core.config.sources import HubSpotSourceConfig, StreamConfig

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClient:
    """An empty search answer, a fixed archived list and a fixed owners list; counts all three."""

    def __init__(self, archived: list[dict[str, Any]], owners: Sequence[dict[str, Any]] = ()) -> None:
        self.archived = archived
        self.owner_rows = list(owners)
        self.calls: list[str] = []
        self.stats = None

    def search(self, object_type: str, *_: Any, after: str | None = None) -> dict[str, Any]:
        self.calls.append(f"search {object_type}")
        return {"results": []}

    def list_pages(self, object_type: str, properties: Sequence[str], *, archived: bool = False,
                   associations: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
        self.calls.append(f"list {object_type} archived={archived}")
        yield list(self.archived if archived else [])

    def owners(self) -> Iterator[list[dict[str, Any]]]:
        self.calls.append("owners")
        yield list(self.owner_rows)


def _archived(company_id: str, at: datetime) -> dict[str, Any]:
    stamp = at.isoformat().replace("+00:00", "Z")
    return {"id": company_id, "properties": {"name": company_id, "hs_lastmodifieddate": stamp},
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": stamp, "archived": True, "archivedAt": stamp}


def _only(name: str, client: FakeClient, clock: list[datetime], **options: float) -> HubSpotStream:
    config = HubSpotSourceConfig(enabled=True, **options, streams={
        n: StreamConfig(enabled=n == name) for n in (
            "companies", "contacts", "deals", "tickets", "owners", "calls", "emails", "meetings", "notes")})
    connector = HubSpotConnector(client, config, now=lambda: clock[0])  # type: ignore[arg-type]
    (stream,) = connector.streams()
    assert isinstance(stream, HubSpotStream)
    return stream


def _companies(client: FakeClient, clock: list[datetime], hours: float = 24) -> HubSpotStream:
    return _only("companies", client, clock, archived_sweep_hours=hours)


def _owners(client: FakeClient, clock: list[datetime], hours: float = 24) -> OwnersStream:
    stream = _only("owners", client, clock, owners_refresh_hours=hours)
    assert isinstance(stream, OwnersStream)
    return stream


def _owner(owner_id: str, updated: datetime) -> dict[str, Any]:
    return {"id": owner_id, "email": f"{owner_id}@example.com", "createdAt": "2026-01-01T00:00:00Z",
            "updatedAt": updated.isoformat().replace("+00:00", "Z"), "archived": False}


def _ids(stream: HubSpotStream, since: datetime | None) -> list[str | None]:
    return [r.external_id for r in stream.read(since)]


def test_an_increment_within_the_sweep_period_skips_the_archived_list_and_says_so() -> None:
    client = FakeClient([_archived("1", START)])
    clock = [START]
    stream = _companies(client, clock)
    stream.restore_state((START - timedelta(hours=23)).isoformat())
    assert _ids(stream, START - timedelta(minutes=5)) == []
    assert client.calls == ["search companies"]
    assert stream.notes == ["archived sweep skipped: the last one was at 2026-02-28T13:00:00+00:00, "
                            "the next is due at 2026-03-01T13:00:00+00:00"]
    assert stream.state_token == (START - timedelta(hours=23)).isoformat()


def test_a_due_sweep_reads_archives_back_to_the_last_sweep_not_the_cursor() -> None:
    last_sweep = START - timedelta(hours=25)
    # Archived after the last sweep (but before the cursor), before the last sweep's clock margin, and at now.
    client = FakeClient([_archived("between", START - timedelta(hours=10)),
                         _archived("old", last_sweep - timedelta(hours=2)), _archived("new", START)])
    clock = [START]
    stream = _companies(client, clock)
    stream.restore_state(last_sweep.isoformat())
    assert _ids(stream, START - timedelta(minutes=5)) == ["between", "new"]
    assert client.calls == ["search companies", "list companies archived=True"]
    assert stream.notes == []
    assert stream.state_token == START.isoformat()


def test_a_backfill_always_sweeps_every_archived_record() -> None:
    client = FakeClient([_archived("old", START - timedelta(days=400))])
    stream = _companies(client, [START])
    stream.restore_state((START - timedelta(minutes=1)).isoformat())
    assert _ids(stream, None) == ["old"]
    assert client.calls == ["list companies archived=False", "list companies archived=True"]
    assert stream.state_token == START.isoformat()


def test_a_zero_period_sweeps_on_every_increment() -> None:
    client = FakeClient([])
    stream = _companies(client, [START], hours=0)
    stream.restore_state(START.isoformat())
    _ids(stream, START - timedelta(minutes=5))
    assert client.calls == ["search companies", "list companies archived=True"]


def test_an_increment_within_the_refresh_period_lists_no_owner_and_says_so() -> None:
    client = FakeClient([], [_owner("1", START)])
    stream = _owners(client, [START])
    stream.restore_state((START - timedelta(hours=23)).isoformat())
    assert _ids(stream, START - timedelta(minutes=5)) == []
    assert client.calls == []
    assert stream.notes == ["owners refresh skipped: the last one was at 2026-02-28T13:00:00+00:00, "
                            "the next is due at 2026-03-01T13:00:00+00:00"]
    assert (stream.state_token, stream.listed) == ((START - timedelta(hours=23)).isoformat(), None)


def test_a_due_refresh_lists_every_owner_and_yields_those_changed_since_the_cursor() -> None:
    # Owner 2 changed after the last refresh but within the skipped period: the cursor did not move, so it is read.
    client = FakeClient([], [_owner("1", START - timedelta(days=3)), _owner("2", START - timedelta(hours=20))])
    stream = _owners(client, [START])
    stream.restore_state((START - timedelta(hours=24)).isoformat())
    assert _ids(stream, START - timedelta(days=2)) == ["2"]
    assert client.calls == ["owners"]
    assert (stream.notes, stream.state_token, stream.listed) == ([], START.isoformat(), 2)


def test_an_owners_backfill_lists_and_yields_every_owner_whenever_the_last_refresh_was() -> None:
    client = FakeClient([], [_owner("1", START - timedelta(days=400)), _owner("2", START)])
    stream = _owners(client, [START])
    stream.restore_state((START - timedelta(minutes=1)).isoformat())
    assert _ids(stream, None) == ["1", "2"]
    assert client.calls == ["owners"]
    assert stream.state_token == START.isoformat()


def test_a_zero_refresh_period_lists_owners_on_every_increment() -> None:
    client = FakeClient([], [_owner("1", START)])
    stream = _owners(client, [START], hours=0)
    stream.restore_state(START.isoformat())
    _ids(stream, START - timedelta(minutes=5))
    _ids(stream, START - timedelta(minutes=5))
    assert client.calls == ["owners", "owners"]
