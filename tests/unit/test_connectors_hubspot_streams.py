"""HubSpot archived records: swept on a backfill, then at most once per archived_sweep_hours, back to the last sweep."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.hubspot.streams import HubSpotConnector, HubSpotStream
from core.config.sources import HubSpotSourceConfig, StreamConfig

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClient:
    """An empty search answer and a fixed archived list; counts both."""

    def __init__(self, archived: list[dict[str, Any]]) -> None:
        self.archived = archived
        self.calls: list[str] = []
        self.stats = None

    def search(self, object_type: str, *_: Any, after: str | None = None) -> dict[str, Any]:
        self.calls.append(f"search {object_type}")
        return {"results": []}

    def list_pages(self, object_type: str, properties: Sequence[str], *, archived: bool = False,
                   associations: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
        self.calls.append(f"list {object_type} archived={archived}")
        yield list(self.archived if archived else [])


def _archived(company_id: str, at: datetime) -> dict[str, Any]:
    stamp = at.isoformat().replace("+00:00", "Z")
    return {"id": company_id, "properties": {"name": company_id, "hs_lastmodifieddate": stamp},
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": stamp, "archived": True, "archivedAt": stamp}


def _companies(client: FakeClient, clock: list[datetime], hours: float = 24) -> HubSpotStream:
    config = HubSpotSourceConfig(enabled=True, archived_sweep_hours=hours, streams={
        n: StreamConfig(enabled=n == "companies") for n in (
            "contacts", "deals", "tickets", "owners", "calls", "emails", "meetings", "notes")})
    connector = HubSpotConnector(client, config, now=lambda: clock[0])  # type: ignore[arg-type]
    (stream,) = connector.streams()
    assert isinstance(stream, HubSpotStream)
    return stream


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
