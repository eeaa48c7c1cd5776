"""HubSpot streams: list paging for the backfill, search on the modified date for increments, archived lists.

Search caps a query at 10,000 results; a longer increment is split by restarting the search from the
last modified time seen (records sharing it are read twice and deduplicated by the upsert).

Archived records can only be listed (every page, in id order, no filter), so an increment sweeps them at most
once per ``archived_sweep_hours``; the time of the last sweep is the stream's ``state_token``, which the sync
stores with the cursor (``sync_state.cursor_token``). Owners have no search either: an increment lists them all
at most once per ``owners_refresh_hours``, the time of that refresh kept the same way. A skipped sweep or
refresh is a note in the run report.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import Stream
from connectors.fields import RecordMapper, get_path
from connectors.hubspot.client import SEARCH_PAGE_SIZE, SEARCH_RESULT_CAP, HubSpotClient
from connectors.hubspot.mapping import TYPES, TypeSpec, modified_property, property_path
from core.config.sources import HubSpotSourceConfig, StreamConfig
from core.errors import ApiError, FatalApiError
from core.records import Record, RejectedRecord

log = logging.getLogger(__name__)
SOURCE = "hubspot"
# archivedAt is HubSpot's clock, the sweep time ours: a sweep re-reads archives this far before the last one.
SWEEP_CLOCK_MARGIN = timedelta(hours=1)


def _ms(value: datetime) -> str:
    return str(int(value.astimezone(UTC).timestamp() * 1000))


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if value in (None, ""):
        return None
    text = str(value)
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


class HubSpotStream:
    """One HubSpot object type read into one canonical table."""

    primary_key = "id"

    def __init__(
        self,
        spec: TypeSpec,
        mapper: RecordMapper,
        client: HubSpotClient,
        *,
        archived: bool,
        sweep_hours: float = 0.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.name = spec.stream
        self.object_type = spec.object_type
        self.entity = mapper.record_type.entity
        self.cursor_field = modified_property(spec.object_type)
        self.mapper = mapper
        self.client = client
        self.associations = spec.associations
        self.archived = archived and spec.archived
        self.sweep_every = timedelta(hours=sweep_hours)
        self.now = now
        self.state_token: str | None = None  # ISO time (UTC) the last archived sweep (owners: refresh) started
        self.notes: list[str] = []  # what the last read chose not to do, for the run report
        props = [p.split(".", 1)[1] for p in mapper.source_fields() if p.startswith("properties.")]
        self.properties = list(dict.fromkeys([*props, self.cursor_field]))

    def is_ordered(self, since: datetime | None) -> bool:
        """Increments come in modified-date order; a backfill (list paging) does not."""
        return since is not None

    def _with_associations(self, page: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not self.associations or not page:
            return page
        ids = [str(r["id"]) for r in page]
        found = {t: self.client.associations(self.object_type, ids, t) for t in self.associations}
        return [
            {**r, "associations": {t: {"results": [{"id": i} for i in found[t].get(str(r["id"]), [])]}
                                   for t in self.associations}}
            for r in page
        ]

    def _search(self, since: datetime) -> Iterator[list[dict[str, Any]]]:
        start = since
        while True:
            body_filter = [{"filters": [{"propertyName": self.cursor_field, "operator": "GTE", "value": _ms(start)}]}]
            sorts = [{"propertyName": self.cursor_field, "direction": "ASCENDING"}]
            after: str | None = None
            seen = 0
            last: datetime | None = None
            while True:
                page = self.client.search(self.object_type, body_filter, sorts, self.properties, after=after)
                results = page.get("results") or []
                seen += len(results)
                if results:
                    last = _as_datetime(get_path(results[-1], f"properties.{self.cursor_field}")) or last
                yield self._with_associations(results)
                nxt = ((page.get("paging") or {}).get("next") or {}).get("after")
                if not nxt:
                    return
                if seen + SEARCH_PAGE_SIZE > SEARCH_RESULT_CAP:
                    break  # the next page would pass the 10,000-result cap: restart from the last time seen
                after = str(nxt)
            if last is None or last <= start:
                raise FatalApiError(
                    f"hubspot: more than {SEARCH_RESULT_CAP} {self.object_type} share the modified time "
                    f"{start.isoformat()}; the search window cannot be split further",
                    system=SOURCE,
                )
            start = last

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        if since is None:
            yield from self.client.list_pages(self.object_type, self.properties, associations=self.associations)
        else:
            yield from self._search(since)
        if self.archived:
            yield from self._archived(since)

    def restore_state(self, token: str | None) -> None:
        """Take back the ``state_token`` saved by the last successful run (None: never swept or refreshed)."""
        self.state_token = token

    def _due(self, what: str, every: timedelta, since: datetime | None) -> datetime | None:
        """When this run's ``what`` starts, or None when the last one (``state_token``) was less than ``every`` ago,
        with a note for the run report saying so. A backfill (``since`` None) is always due."""
        started = self.now()
        last = _as_datetime(self.state_token)
        if since is None or last is None or started - last >= every:
            return started
        self.notes.append(f"{what} skipped: the last one was at {last.isoformat(timespec='seconds')}, "
                          f"the next is due at {(last + every).isoformat(timespec='seconds')}")
        return None

    def _archived(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        """Archived records since the last sweep, when a sweep is due (always on a backfill)."""
        started = self._due("archived sweep", self.sweep_every, since)
        if started is None:
            return
        last_sweep = _as_datetime(self.state_token)
        # Archives between two sweeps are older than the cursor: read back to the last sweep, not the cursor.
        start = since if since is None or last_sweep is None else min(since, last_sweep - SWEEP_CLOCK_MARGIN)
        for page in self.client.list_pages(self.object_type, self.properties, archived=True,
                                           associations=self.associations):
            yield [r for r in page if start is None or (_as_datetime(r.get("archivedAt")) or start) >= start]
        self.state_token = started.isoformat()

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]:
        self.notes = []
        for page in self._pages(since):
            for raw in page:
                yield self.mapper.map(raw)


class OwnersStream(HubSpotStream):
    """Owners have no search: a refresh lists every owner and yields those changed since the cursor.

    Owners rarely change, so an increment refreshes at most once per ``refresh_hours`` (0: every run); a
    backfill always does. An owner changed between two refreshes is yielded by the next one (the cursor does not
    move without a refresh).
    """

    def __init__(
        self,
        spec: TypeSpec,
        mapper: RecordMapper,
        client: HubSpotClient,
        *,
        refresh_hours: float = 0.0,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(spec, mapper, client, archived=False, now=now)
        self.refresh_every = timedelta(hours=refresh_hours)
        self.listed: int | None = None  # owners listed by the last read (None: no refresh was due)

    def is_ordered(self, since: datetime | None) -> bool:
        return False

    def _pages(self, since: datetime | None) -> Iterator[list[dict[str, Any]]]:
        self.listed = None
        started = self._due("owners refresh", self.refresh_every, since)
        if started is None:
            return
        self.listed = 0
        for page in self.client.owners():
            self.listed += len(page)
            yield [r for r in page if since is None or (_as_datetime(r.get("updatedAt")) or since) >= since]
        self.state_token = started.isoformat()


class HubSpotConnector:
    """Companies, contacts, deals, tickets, owners and engagements (calls, emails, meetings, notes)."""

    name = SOURCE

    def __init__(
        self,
        client: HubSpotClient,
        config: HubSpotSourceConfig,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.stats = client.stats
        self.config = config
        self._streams: list[HubSpotStream] = []
        for spec in TYPES.values():
            override = config.streams.get(spec.stream) or StreamConfig()
            if not override.enabled:
                continue
            fields = {**spec.fields, **override.fields}
            if spec.stream == "deals":
                fields.setdefault("kind", config.deal_kind.field)
            mapper = RecordMapper(
                source=SOURCE,
                stream=spec.stream,
                record_type=spec.record_type,
                fields={k: property_path(v) for k, v in fields.items()},
                extra_fields={k: property_path(v) for k, v in override.extra_fields.items()},
                finish=spec.finish(config.deal_kind),
            )
            actual = replace(spec, object_type=override.object) if override.object else spec
            if spec.stream == "owners":
                self._streams.append(OwnersStream(actual, mapper, client, refresh_hours=config.owners_refresh_hours,
                                                  now=now))
            else:
                self._streams.append(HubSpotStream(actual, mapper, client, archived=config.archived,
                                                   sweep_hours=config.archived_sweep_hours, now=now))

    def check(self) -> None:
        """One small call that proves the token works."""
        next(self.client.list_pages("companies", ["name"], page_size=1), None)

    def streams(self) -> list[Stream]:
        return list(self._streams)

    def check_fields(self) -> list[str]:
        """Every mapped property that does not exist on its object type, as ``type.property: why``."""
        problems: list[str] = []
        for stream in self._streams:
            if stream.object_type == "owners":
                continue
            try:
                names = {p.get("name") for p in self.client.properties(stream.object_type)}
            except ApiError as exc:
                problems.append(f"{stream.object_type}: properties cannot be read ({exc.user_message})")
                continue
            problems.extend(
                f"{stream.object_type}.{p}: no such property (stream {stream.name})"
                for p in stream.properties
                if p not in names
            )
        return problems

