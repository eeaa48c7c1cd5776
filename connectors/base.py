"""What every connector is: the ``Connector``/``Stream`` protocols, the page-token ``Paginator`` and ``ApiStats``.

A connector turns API answers into canonical records (``core.records``); it never imports ``store``.
``store.sync`` drives a stream: ``read(since)`` yields records ascending by ``cursor_field``.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

from core.errors import FatalApiError
from core.records import Record, RejectedRecord

T = TypeVar("T")


@runtime_checkable
class Stream(Protocol):
    """One object of one source, read incrementally.

    ``read(since)`` yields records whose ``source_updated_at >= since`` (all when ``since`` is None),
    ascending by the cursor, with records that cannot be mapped as ``RejectedRecord``.
    """

    name: str  # e.g. "accounts", "tasks"
    entity: str  # the canonical table it fills, e.g. "activities"
    primary_key: str  # the source field that is the record's external id
    cursor_field: str  # the source field the cursor follows (e.g. SystemModstamp)

    def read(self, since: datetime | None) -> Iterator[Record | RejectedRecord]: ...


@runtime_checkable
class Connector(Protocol):
    """One source system: ``check()`` raises a clear error when it cannot be used."""

    name: str  # salesforce | hubspot | nps | intent | usage | billing | <generic source name>

    def check(self) -> None: ...

    def streams(self) -> list[Stream]: ...


@dataclass
class SystemStats:
    """Counters of one system's API use during a run."""

    calls: int = 0  # HTTP requests sent, retries included
    retries: int = 0  # requests that were retries of a failed one
    pages: int = 0  # result pages read
    rate_limited: int = 0  # 429s (or REQUEST_LIMIT_EXCEEDED) received
    by_endpoint: Counter[str] = field(default_factory=Counter)  # calls by endpoint label

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "pages": self.pages,
            "rate_limited": self.rate_limited,
            "by_endpoint": dict(sorted(self.by_endpoint.items())),
        }


class ApiStats:
    """API calls, retries and pages per system, shared by reads and writes; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._systems: dict[str, SystemStats] = {}

    def _get(self, system: str) -> SystemStats:
        stats = self._systems.get(system)
        if stats is None:
            stats = self._systems[system] = SystemStats()
        return stats

    def call(self, system: str, endpoint: str) -> None:
        """Count one HTTP request to ``endpoint`` (a label such as ``GET query``)."""
        with self._lock:
            s = self._get(system)
            s.calls += 1
            s.by_endpoint[endpoint] += 1

    def retry(self, system: str) -> None:
        with self._lock:
            self._get(system).retries += 1

    def rate_limited(self, system: str) -> None:
        with self._lock:
            self._get(system).rate_limited += 1

    def page(self, system: str, count: int = 1) -> None:
        with self._lock:
            self._get(system).pages += count

    def snapshot(self, system: str) -> SystemStats:
        """A copy of one system's counters (zeros when it was never used)."""
        with self._lock:
            s = self._get(system)
            return SystemStats(s.calls, s.retries, s.pages, s.rate_limited, Counter(s.by_endpoint))

    def systems(self) -> list[str]:
        with self._lock:
            return sorted(self._systems)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: s.as_dict() for name, s in sorted(self._systems.items())}


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the token of the next one (None on the last page)."""

    items: list[T]
    next_token: str | None


class Paginator:
    """Follows page tokens and refuses one that repeats (a server bug that would loop forever)."""

    def __init__(self, system: str, what: str) -> None:
        self.system = system
        self.what = what
        self.pages = 0
        self._seen: set[str] = set()
        self.token: str | None = None
        self.finished = False

    def advance(self, next_token: str | None) -> None:
        """Record the token a page pointed to; None ends the paging."""
        self.pages += 1
        if next_token is None or next_token == "":
            self.finished = True
            self.token = None
            return
        if next_token in self._seen:
            raise FatalApiError(
                f"{self.system}: paging of {self.what} returned the page token {next_token!r} twice; "
                "stopping instead of looping",
                system=self.system,
                code="REPEATED_PAGE_TOKEN",
            )
        self._seen.add(next_token)
        self.token = next_token
