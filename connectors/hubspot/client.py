"""``HubSpotClient``: hubspot-api-client behind the HTTP edge, with client-side rate limits.

The library client is created once (``host`` = the configured base URL) and its API objects are cached
(each property access would otherwise build a new connection pool). Every call:

- waits for the ten-second token bucket (``limits.hubspot.ten_second_limit`` less ``headroom_share``) and,
  for search, the per-second search limiter, so the agent stays under HubSpot's limits instead of
  collecting 429s;
- has a connect/read timeout (``_request_timeout``);
- is retried by ``connectors.http.RetryPolicy`` on 429 / 5xx / connection errors, POST search and batch
  included (the library's urllib3 retry is turned off: it never retries POST);
- is counted in the shared ``ApiStats`` (calls, retries, pages, by endpoint).

Failed calls raise ``core.errors`` errors (never the library's per-package ``ApiException``). Batch
writes return a ``BatchOutcome`` with per-record errors from a 207. Writeback uses this same client.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import urllib3
from urllib3.util.retry import Retry

from connectors.base import ApiStats, Paginator
from connectors.credentials import Credentials
from connectors.http import RetryPolicy, classify
from core.config.runtime import LimitsConfig
from core.errors import ApiError, FatalApiError, RateLimitedError, RetriableApiError
from core.redaction import redact
from core.tls import combined_ca_bundle

log = logging.getLogger(__name__)
SYSTEM = "hubspot"
T = TypeVar("T")
SEARCH_PAGE_SIZE = 200
SEARCH_RESULT_CAP = 10_000
OWNERS_PAGE_SIZE = 500  # the owners list's largest page (HubSpot changelog, "Sunset of v2 Owners API")
# Ids per associations batch read, v3 and v4 (HubSpot changelog, "Batch Read Limit for HubSpot Associations API"):
# a whole search page's associations of one type in one call.
ASSOCIATION_BATCH_SIZE = 1000


class SlidingWindowLimiter:
    """At most ``capacity`` calls in any ``window_seconds``; ``acquire`` waits (with the injected sleep) when full."""

    def __init__(
        self,
        capacity: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = max(1, capacity)
        self.window = window_seconds
        self.clock = clock
        self.sleep = sleep
        self._times: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = self.clock()
                while self._times and now - self._times[0] >= self.window:
                    self._times.popleft()
                if len(self._times) < self.capacity:
                    self._times.append(now)
                    return
                wait = self.window - (now - self._times[0])
            self.waited_seconds += wait
            self.sleep(max(wait, 0.001))


@dataclass(frozen=True)
class BatchError:
    """One failed input of a batch call: the ids it concerned, HubSpot's category and message."""

    ids: tuple[str, ...]
    category: str
    message: str


@dataclass
class BatchOutcome:
    """A batch call's result: records that succeeded (the API's JSON) and per-record errors (from a 207)."""

    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[BatchError] = field(default_factory=list)


def _next_after(page: Mapping[str, Any]) -> str | None:
    paging = page.get("paging") or {}
    nxt = paging.get("next") or {}
    after = nxt.get("after")
    return str(after) if after not in (None, "") else None


class HubSpotClient:
    """One HubSpot account (private-app token): ``HubSpotClient(credentials, limits=..., stats=...)``."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        limits: LimitsConfig,
        stats: ApiStats | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        api_factory: Callable[..., Any] | None = None,
    ) -> None:
        import hubspot

        credentials.require("hubspot_access_token", why="HubSpot")
        self.limit_config = limits
        self.stats = stats or ApiStats()
        self.base_url = credentials.hubspot_base_url.rstrip("/")
        self.policy = RetryPolicy(limits.http, system=SYSTEM, stats=self.stats, sleep=sleep)
        hs = limits.hubspot
        self.limiter = SlidingWindowLimiter(
            int(hs.ten_second_limit * (1 - hs.headroom_share)), 10.0, clock=clock, sleep=sleep
        )
        per_second = max(1, int(hs.search_per_second))
        self.search_limiter = SlidingWindowLimiter(per_second, per_second / hs.search_per_second, clock=clock,
                                                   sleep=sleep)
        self.timeout = (limits.http.connect_timeout_seconds, limits.http.read_timeout_seconds)
        kwargs: dict[str, Any] = {
            "access_token": credentials.secret("hubspot_access_token"),
            "host": self.base_url,
            "base_url": self.base_url,
            "retry": Retry(total=0, connect=0, read=0, redirect=0, status=0, raise_on_status=False),
        }
        if self.base_url.startswith("https://") and credentials.ca_bundle:
            kwargs["ssl_ca_cert"] = combined_ca_bundle(credentials.ca_bundle)
        if api_factory is not None:
            kwargs["api_factory"] = api_factory
        self.client = hubspot.Client.create(**kwargs)
        self._apis: dict[str, Any] = {}

    # --- the edge -----------------------------------------------------------------------------------

    def _api(self, path: str) -> Any:
        """A cached generated API object, e.g. ``crm.objects.basic_api``."""
        api = self._apis.get(path)
        if api is None:
            api = self.client
            for part in path.split("."):
                api = getattr(api, part)
            self._apis[path] = api
        return api

    def call(self, endpoint: str, fn: Callable[..., T], *args: Any, search: bool = False, **kwargs: Any) -> T:
        """Call a generated API method under the rate limiters, with a timeout and retries."""

        def attempt() -> T:
            if search:
                self.search_limiter.acquire()
            self.limiter.acquire()
            self.stats.call(SYSTEM, endpoint)
            try:
                return fn(*args, _request_timeout=self.timeout, **kwargs)
            except urllib3.exceptions.HTTPError as exc:
                raise RetriableApiError(
                    f"hubspot: {type(exc).__name__} on {endpoint}", system=SYSTEM, detail=redact(str(exc))
                ) from exc
            except ApiError:
                raise
            except Exception as exc:
                status = getattr(exc, "status", None)
                if not isinstance(status, int):
                    raise
                headers = {str(k): str(v) for k, v in dict(getattr(exc, "headers", None) or {}).items()}
                body = getattr(exc, "body", None) or ""
                if isinstance(body, bytes):
                    body = body.decode("utf-8", "replace")
                error = classify(SYSTEM, status, str(body), headers, what=endpoint)
                if isinstance(error, RateLimitedError):
                    self.stats.rate_limited(SYSTEM)
                raise error from None

        return self.policy.run(attempt, endpoint=endpoint)

    def call_json(self, endpoint: str, fn: Callable[..., Any], *args: Any, search: bool = False, **kwargs: Any) -> Any:
        """Like ``call``, but returns the answer's JSON as sent (camelCase keys), skipping the library's models.

        Reads use it: deserializing into models (dateutil on every timestamp) costs more than the call itself.
        """
        response = self.call(endpoint, fn, *args, search=search, _preload_content=False, **kwargs)
        data = response.data
        return json.loads(data) if data else {}

    # --- reads --------------------------------------------------------------------------------------

    def list_pages(
        self,
        object_type: str,
        properties: Sequence[str],
        *,
        archived: bool = False,
        associations: Sequence[str] = (),
        page_size: int | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every record of a type by list paging (``archived=True``: the archived ones), page by page.

        Records are the API's JSON: ``id``, ``properties``, ``createdAt``, ``updatedAt``, ``archived`` and, when
        asked, ``associations`` (``{"companies": {"results": [{"id", "type"}]}}``).
        """
        api = self._api("crm.objects.basic_api")
        paginator = Paginator(SYSTEM, f"{object_type} list")
        limit = page_size or self.limit_config.hubspot.page_size
        while True:
            kwargs: dict[str, Any] = {"limit": limit, "archived": archived, "properties": list(properties)}
            if associations:
                kwargs["associations"] = list(associations)
            if paginator.token:
                kwargs["after"] = paginator.token
            page = self.call_json(f"GET {object_type}", api.get_page, object_type, **kwargs)
            self.stats.page(SYSTEM)
            paginator.advance(_next_after(page))
            yield list(page.get("results") or [])
            if paginator.finished:
                return

    def search(
        self,
        object_type: str,
        filter_groups: Sequence[Mapping[str, Any]],
        sorts: Sequence[Any],
        properties: Sequence[str],
        after: str | None = None,
        limit: int = SEARCH_PAGE_SIZE,
    ) -> dict[str, Any]:
        """One search page: ``{"total", "results": [...], "paging": {"next": {"after"}}}``."""
        body: dict[str, Any] = {
            "filterGroups": [dict(g) for g in filter_groups],
            "sorts": list(sorts),
            "properties": list(properties),
            "limit": limit,
        }
        if after:
            body["after"] = after
        api = self._api("crm.objects.search_api")
        page: dict[str, Any] = self.call_json(f"POST {object_type}/search", api.do_search, object_type, body,
                                               search=True)
        self.stats.page(SYSTEM)
        return page

    def get(
        self,
        object_type: str,
        object_id: str,
        properties: Sequence[str] | None = None,
        associations: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if properties:
            kwargs["properties"] = list(properties)
        if associations:
            kwargs["associations"] = list(associations)
        api = self._api("crm.objects.basic_api")
        result: dict[str, Any] = self.call_json(f"GET {object_type}/id", api.get_by_id, object_type, object_id,
                                                **kwargs)
        return result

    def batch_read(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> BatchOutcome:
        """Records by id, in batches of 100 (missing ids come back as errors)."""
        api = self._api("crm.objects.batch_api")
        outcome = BatchOutcome()
        for start in range(0, len(ids), 100):
            body = {"properties": list(properties), "inputs": [{"id": i} for i in ids[start : start + 100]]}
            self._merge(outcome, self.call_json(f"POST {object_type}/batch/read", api.read, object_type, body))
        return outcome

    def associations(self, from_type: str, ids: Sequence[str], to_type: str) -> dict[str, list[str]]:
        """Associated ids of ``to_type`` for each id of ``from_type`` (v4 batch read, ``ASSOCIATION_BATCH_SIZE`` ids
        a call)."""
        api = self._api("crm.associations.v4.batch_api")
        out: dict[str, list[str]] = {i: [] for i in ids}
        for start in range(0, len(ids), ASSOCIATION_BATCH_SIZE):
            body = {"inputs": [{"id": i} for i in ids[start : start + ASSOCIATION_BATCH_SIZE]]}
            page = self.call_json(f"POST associations/{from_type}/{to_type}/batch/read", api.get_page, from_type,
                                  to_type, body)
            for row in page.get("results") or []:
                source_id = str((row.get("from") or {}).get("id"))
                out.setdefault(source_id, []).extend(str(t.get("toObjectId")) for t in row.get("to") or [])
        return out

    def owners(self, *, archived: bool = False) -> Iterator[list[dict[str, Any]]]:
        """Owners (users), ``OWNERS_PAGE_SIZE`` a page: ``id``, ``email``, ``firstName``, ``updatedAt``..."""
        api = self._api("crm.owners.owners_api")
        paginator = Paginator(SYSTEM, "owners")
        while True:
            kwargs: dict[str, Any] = {"limit": OWNERS_PAGE_SIZE, "archived": archived}
            if paginator.token:
                kwargs["after"] = paginator.token
            page = self.call_json("GET owners", api.get_page, **kwargs)
            self.stats.page(SYSTEM)
            paginator.advance(_next_after(page))
            yield list(page.get("results") or [])
            if paginator.finished:
                return

    def properties(self, object_type: str) -> list[dict[str, Any]]:
        """The object type's property definitions (``name``, ``type``, ``fieldType``, ``groupName``...)."""
        api = self._api("crm.properties.core_api")
        page = self.call_json(f"GET properties/{object_type}", api.get_all, object_type)
        return list(page.get("results") or [])

    def property_groups(self, object_type: str) -> list[dict[str, Any]]:
        """The object type's property groups (``name``, ``label``, ``displayOrder``, ``archived``)."""
        api = self._api("crm.properties.groups_api")
        page = self.call_json(f"GET properties/{object_type}/groups", api.get_all, object_type)
        return list(page.get("results") or [])

    # --- writes -------------------------------------------------------------------------------------

    def create(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        associations: Sequence[Mapping[str, Any]] = (),
    ) -> str:
        """Create one record (associations as ``[{"to": {"id"}, "types": [{"associationCategory",
        "associationTypeId"}]}]``); returns its id."""
        api = self._api("crm.objects.basic_api")
        body = {"properties": {k: _wire(v) for k, v in properties.items()}, "associations": list(associations)}
        created = self.call_json(f"POST {object_type}", api.create, object_type, body)
        if not created.get("id"):
            raise FatalApiError(f"HubSpot create {object_type} returned no id", system=SYSTEM)
        return str(created["id"])

    def update(self, object_type: str, object_id: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        api = self._api("crm.objects.basic_api")
        body = {"properties": {k: _wire(v) for k, v in properties.items()}}
        result: dict[str, Any] = self.call_json(f"PATCH {object_type}/id", api.update, object_type, object_id, body)
        return result

    def batch_update(self, object_type: str, inputs: Sequence[Mapping[str, Any]]) -> BatchOutcome:
        """Update records in batches of ``write_batch_size`` (<= 100); ``inputs``: ``[{"id", "properties"}]``.

        A 207 does not raise: its per-record errors come back in ``BatchOutcome.errors``.
        """
        api = self._api("crm.objects.batch_api")
        outcome = BatchOutcome()
        size = self.limit_config.hubspot.write_batch_size
        for start in range(0, len(inputs), size):
            chunk = [
                {"id": str(i["id"]), "properties": {k: _wire(v) for k, v in i["properties"].items()}}
                for i in inputs[start : start + size]
            ]
            self._merge(
                outcome,
                self.call_json(f"POST {object_type}/batch/update", api.update, object_type, {"inputs": chunk}),
            )
        return outcome

    def create_property(
        self,
        object_type: str,
        name: str,
        *,
        label: str,
        type: str = "string",
        field_type: str = "text",
        group_name: str = "customer_health",
        options: Sequence[Mapping[str, Any]] = (),
        description: str = "",
    ) -> dict[str, Any]:
        """Create a property (``type`` string/number/date/datetime/enumeration/bool)."""
        api = self._api("crm.properties.core_api")
        body: dict[str, Any] = {
            "name": name,
            "label": label,
            "type": type,
            "fieldType": field_type,
            "groupName": group_name,
            "description": description,
        }
        if options:
            body["options"] = [dict(o) for o in options]
        result: dict[str, Any] = self.call_json(f"POST properties/{object_type}", api.create, object_type, body)
        return result

    def create_property_group(
        self, object_type: str, name: str, *, label: str, display_order: int = -1
    ) -> dict[str, Any]:
        api = self._api("crm.properties.groups_api")
        body = {"name": name, "label": label, "displayOrder": display_order}
        result: dict[str, Any] = self.call_json(f"POST properties/{object_type}/groups", api.create, object_type,
                                                body)
        return result

    @staticmethod
    def _merge(outcome: BatchOutcome, page: dict[str, Any]) -> None:
        outcome.results.extend(page.get("results") or [])
        for err in page.get("errors") or []:
            context = err.get("context") or {}
            ids = tuple(str(i) for i in (context.get("ids") or context.get("id") or []))
            outcome.errors.append(BatchError(ids, str(err.get("category", "")), str(err.get("message", ""))))


def _wire(value: Any) -> Any:
    """HubSpot property values travel as strings (booleans lowercase); None clears a property."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
