"""The HubSpot CRM v3/v4 emulator as a sandbox ``App``: request handling, routing, and the test hooks.

The endpoint groups live beside it: ``records`` (/crm/v3/objects), ``associations`` (/crm/v4),
``metadata`` (properties and owners), on the shared plumbing in ``base`` and the store in ``store``.

Status codes follow what hubspot-api-client 12 deserialises (201 create, 200 read/update, 207 mixed
batch, 204 archive); any other 2xx would make the client return None silently. Private-app tokens
cannot be refreshed, so an expired token stays expired until ``reset()``.

Where HubSpot's exact behaviour is not documented the emulator picks one and says so here: the text
of the 400 past 10,000 search results; injected write failures as ``LOCKED`` (423 on single writes)
or ``VALIDATION_ERROR``; batch update of an unknown id as a per-record ``OBJECT_NOT_FOUND``;
a batch naming an unknown property refused whole (400 ``PROPERTY_DOESNT_EXIST``); rate-limit headers
on search answers too; no ``Retry-After`` on 429 (the client would sleep on it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from sandbox.book import Book
from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxResponse, SandboxTokens
from sandbox.hubspot.associations import AssociationsApi
from sandbox.hubspot.base import ApiError, Counters
from sandbox.hubspot.metadata import MetadataApi
from sandbox.hubspot.properties import PropertyRegistry
from sandbox.hubspot.ratelimit import RateLimits
from sandbox.hubspot.records import ObjectsApi
from sandbox.hubspot.store import HubSpotStore


class HubSpotApp(ObjectsApi, AssociationsApi, MetadataApi):
    """HubSpot CRM v3/v4 over the book: objects, batch, search, associations v4, properties, owners.

    ``ten_second_limit`` and ``daily_limit`` are requests per rolling 10 s and per UTC day (Professional
    tier by default; ``faults.profile.daily_limit`` overrides the daily one), ``search_per_second`` the
    search endpoints' own limit. ``clock`` returns epoch seconds: it stamps writes and drives the limits.
    """

    name = "hubspot"

    def __init__(
        self,
        book: Book,
        faults: FaultState,
        tokens: SandboxTokens,
        *,
        ten_second_limit: int = 190,
        daily_limit: int = 625_000,
        search_per_second: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.book = book
        self.faults = faults
        self.tokens = tokens
        self.clock = clock
        self.base_url = "https://api.hubapi.com"
        self.limits = RateLimits(
            ten_second=ten_second_limit, daily=daily_limit, search_per_second=search_per_second, clock=clock
        )
        self.store = HubSpotStore(book.path)
        self.registry = PropertyRegistry()
        self._counters = Counters()
        self._path = ""  # the request being handled, for endpoint-scoped fault profiles

    # --- App protocol -------------------------------------------------------------------------------

    def set_base_url(self, url: str) -> None:
        """Where the server listens; paging links point there (no trailing slash)."""
        self.base_url = url.rstrip("/")

    def reset(self) -> None:
        with self.store.lock:
            self.store.reset()
            self.registry.reset()
            self.limits.reset()
            self._counters = Counters()

    def close(self) -> None:
        self.store.close()

    def configure_limits(
        self, *, ten_second: int | None = None, daily: int | None = None, search_per_second: int | None = None
    ) -> None:
        """Requests allowed per rolling 10 s, per UTC day, and search requests per second."""
        self.limits.configure(ten_second=ten_second, daily=daily, search_per_second=search_per_second)

    def error_response(self, kind: str) -> SandboxResponse:
        with self.store.lock:
            if kind == "rate_limited":
                headers = self.limits.headers(daily_limit=self.faults.profile.daily_limit)
                return self._rate_limited("TEN_SECONDLY_ROLLING", {**headers, "X-HubSpot-RateLimit-Remaining": "0"})
            return self._error(ApiError(502, "The server encountered a temporary error. Please retry.", "UNKNOWN"))

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        with self.store.lock:
            self._counters.requests += 1
            self._path = request.path
            response = self._answer(request)
            response.headers["X-HubSpot-Correlation-Id"] = self._correlation_id()
            return response

    def _answer(self, request: SandboxRequest) -> SandboxResponse:
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        is_search = request.method == "POST" and request.path.rstrip("/").endswith("/search")
        verdict = self.limits.count(is_search=is_search, daily_limit=self.faults.profile.daily_limit)
        if verdict.policy is not None:
            return self._rate_limited(verdict.policy, verdict.headers)
        self.store.db.execute("BEGIN")  # one transaction per request: a 100-record batch commits once
        try:
            response = self._route(request)
        except ApiError as error:
            response = self._error(error)
        finally:
            self.store.db.execute("COMMIT")
        response.headers.update(verdict.headers)
        return response

    # --- test hooks ---------------------------------------------------------------------------------

    def get_record(self, object_type: str, record_id: str) -> dict[str, Any]:
        """Every stored property of a record (archived ones too), plus hs_object_id and the modified time."""
        with self.store.lock:
            object_type = self._object_type(object_type)
            row = self._row_or_404(object_type, record_id, archived=None)
            return self._all_properties(object_type, row)

    def set_property(self, object_type: str, record_id: str, name: str, value: Any) -> None:
        """Simulate a person editing one property in HubSpot's UI (bumps the modified time to now)."""
        self.touch(object_type, [record_id], **{name: value})

    def touch(self, object_type: str, ids: list[str], **props: Any) -> None:
        """Bump the records' modified time to now, optionally changing properties (as a UI edit would)."""
        with self.store.lock:
            object_type = self._object_type(object_type)
            for record_id in ids:
                row = self._row_or_404(object_type, record_id, archived=None)
                changes = {k: self._normalise(object_type, k, v) for k, v in props.items()}
                self.store.update(object_type, row, changes, self._now(), "CRM_UI")

    def archive(self, object_type: str, record_id: str) -> None:
        """Archive a record as a person deleting it in the UI would."""
        with self.store.lock:
            object_type = self._object_type(object_type)
            row = self._row_or_404(object_type, record_id, archived=False)
            self.store.set_archived(object_type, row.n, True, self._now())

    def tasks_for(self, company_id: str) -> list[dict[str, Any]]:
        """Every live task associated with a company, oldest first, as property dicts."""
        with self.store.lock:
            n = self._n("companies", company_id)
            task_ns = [t for t, _ in self.store.associations("companies", [n], "tasks")[n]]
            rows = self.store.get_many("tasks", task_ns)
            return [self._all_properties("tasks", rows[t]) for t in sorted(rows)]

    # --- routing ------------------------------------------------------------------------------------

    def _route(self, request: SandboxRequest) -> SandboxResponse:
        parts = [unquote(p) for p in request.path.split("/") if p]
        method = request.method
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            return self._route_objects(method, self._object_type(parts[3]), parts[4:], request)
        if parts[:3] == ["crm", "v3", "owners"]:
            return self._route_owners(method, parts[3:], request)
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) >= 4:
            return self._route_properties(method, self._object_type(parts[3]), parts[4:], request)
        if parts[:3] == ["crm", "v4", "objects"] and len(parts) >= 7 and parts[5] == "associations":
            return self._route_v4_record(method, self._object_type(parts[3]), parts[4], parts[6:], request)
        if parts[:3] == ["crm", "v4", "associations"] and len(parts) in (7, 8) and parts[5] == "batch":
            from_type, to_type = self._object_type(parts[3]), self._object_type(parts[4])
            return self._route_v4_batch(method, from_type, to_type, "/".join(parts[6:]), request)
        raise ApiError(404, f"Unable to route {method} {request.path}", "OBJECT_NOT_FOUND")
