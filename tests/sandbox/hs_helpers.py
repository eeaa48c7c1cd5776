"""Shared set-up for the HubSpot emulator tests: one book, one app, one loopback server per test session."""

from __future__ import annotations

import atexit
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import hubspot

from sandbox.book import Book, build_book
from sandbox.faults import FaultState
from sandbox.http import SandboxTokens
from sandbox.hubspot import HubSpotApp
from sandbox.ids import hubspot_id
from sandbox.server import SandboxServer

ACCOUNTS = 600  # enough for 5,000+ emails to page through
SEED = 7
ANCHOR = datetime(2026, 11, 1, tzinfo=UTC).date()
TOKENS = SandboxTokens()


class FakeClock:
    """Epoch seconds that move only when a test says so."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class HubSpotSandbox:
    book: Book
    faults: FaultState
    clock: FakeClock
    app: HubSpotApp
    server: SandboxServer
    apis: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str = TOKENS.hubspot_access_token) -> Any:
        return hubspot.Client.create(access_token=token, host=self.url, base_url=self.url)

    def api(self, path: str) -> Any:
        """A cached generated API object, e.g. ``api("crm.companies.basic_api")``."""
        if path not in self.apis:
            target: Any = self.client()
            for part in path.split("."):
                target = getattr(target, part)
            self.apis[path] = target
        return self.apis[path]

    def stop(self) -> None:
        self.server.stop()
        self.app.close()

    def live_ids(self, table: str, object_type: str, count: int) -> list[str]:
        """HubSpot ids of the first ``count`` live (not deleted) rows of a book table."""
        with self.book.connect() as conn:
            rows = conn.execute(f"SELECT n FROM {table} WHERE is_deleted = 0 ORDER BY n LIMIT ?", (count,)).fetchall()
        return [hubspot_id(object_type, n) for (n,) in rows]

    def book_count(self, sql: str, *params: Any) -> int:
        with self.book.connect() as conn:
            return int(conn.execute(sql, params).fetchone()[0])


def make_app(book: Book, faults: FaultState | None = None, clock: FakeClock | None = None) -> HubSpotApp:
    start = datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp()
    return HubSpotApp(book, faults or FaultState(), TOKENS, clock=clock or FakeClock(start))


@cache
def book_of(accounts: int, seed: int = SEED) -> Book:
    directory = Path(tempfile.gettempdir()) / "hubspot-emulator-test-books"
    return build_book(accounts=accounts, seed=seed, anchor=ANCHOR, cache_dir=directory)


@cache
def shared_sandbox() -> HubSpotSandbox:
    book = book_of(ACCOUNTS)
    faults = FaultState()
    clock = FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=UTC).timestamp())
    app = make_app(book, faults, clock)
    server = SandboxServer(app, faults).start()
    app.set_base_url(server.url)
    sandbox = HubSpotSandbox(book, faults, clock, app, server)
    atexit.register(sandbox.stop)
    return sandbox
