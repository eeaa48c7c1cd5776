"""The HubSpot CRM v3/v4 emulator as a sandbox ``App``: routing, auth, limits, and HubSpot's JSON shapes.

Status codes follow what hubspot-api-client 12 deserialises (201 create, 200 read/update, 207 mixed
batch, 204 archive); any other 2xx would make the client return None silently. Private-app tokens
cannot be refreshed, so an expired token stays expired until ``reset()``.

Where HubSpot's exact behaviour is not documented the emulator picks one and says so here: the text
of the 400 past 10,000 search results; injected write failures as ``LOCKED`` (423 on single writes)
or ``VALIDATION_ERROR``; batch update/upsert of an unknown id as a per-record ``OBJECT_NOT_FOUND``;
a batch naming an unknown property refused whole (400 ``PROPERTY_DOESNT_EXIST``); rate-limit headers
on search answers too; no ``Retry-After`` on 429 (the client would sleep on it).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from sandbox.book import Book
from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxResponse, SandboxTokens
from sandbox.hubspot.objects import (
    ALL_TYPE_IDS,
    ASSOCIATION_TYPE_IDS,
    BODY_PROPERTY,
    PREVIEW_CHARS,
    PRIMARY_TYPE_IDS,
    SINGULAR,
    v3_association_name,
)
from sandbox.hubspot.properties import (
    CREATED_PROPERTY,
    DEFAULT_READ_PROPERTIES,
    MODIFIED_PROPERTY,
    OBJECT_TYPES,
    PropDef,
    PropertyGroup,
    PropertyRegistry,
)
from sandbox.hubspot.ratelimit import MESSAGES, RateLimits
from sandbox.hubspot.search import MAX_LIMIT, MAX_RESULTS, SearchCompiler, SearchError, iso_instant
from sandbox.hubspot.store import HubSpotStore, Row, hubspot_n
from sandbox.ids import HUBSPOT_OFFSETS, hubspot_id

BATCH_MAX = 100
HISTORY_MAX = 50
LIST_MAX = 100
OWNERS_MAX = 500
PORTAL_ID = 20_261_101  # the sandbox account's HubSpot portal id, as error messages name it
USER_ID_OFFSET = 7_000_000  # an owner's HubSpot user id is this plus its book index
_CORRELATION_NS = uuid.UUID("6f1c1a52-4d7e-4d0b-9a51-2b8e6b0f0a11")
_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

OBJECT_TYPE_IDS = {
    "contacts": "0-1",
    "companies": "0-2",
    "deals": "0-3",
    "tickets": "0-5",
    "calls": "0-48",
    "emails": "0-49",
    "meetings": "0-47",
    "notes": "0-46",
    "tasks": "0-27",
}
_TYPE_ALIASES = {
    **{t: t for t in OBJECT_TYPES},
    **{s: t for t, s in SINGULAR.items()},
    **{i: t for t, i in OBJECT_TYPE_IDS.items()},
}
REQUIRED_ON_CREATE = dict.fromkeys(("calls", "emails", "meetings", "notes", "tasks"), ("hs_timestamp",))
BATCH_TOO_LARGE = (
    "The maximum number of inputs supported in a batch is 100. Please reduce the number of items and try again"
)


class ApiError(Exception):
    """An answer HubSpot gives as an error body; raised inside handlers, turned into a response once."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.category = category
        self.extra = extra


def _validation(problems: list[dict[str, Any]]) -> ApiError:
    text = json.dumps(problems, separators=(",", ":"), ensure_ascii=False)
    return ApiError(400, f"Property values were not valid: {text}", "VALIDATION_ERROR")


@dataclass
class _Counters:
    requests: int = 0
    authenticated_calls: int = 0


class HubSpotApp:
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
        self._counters = _Counters()
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
            self._counters = _Counters()

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

    # --- plumbing -----------------------------------------------------------------------------------

    def _now(self) -> str:
        return iso_instant(int(self.clock() * 1000))

    def _correlation_id(self) -> str:
        return str(uuid.uuid5(_CORRELATION_NS, str(self._counters.requests)))

    def _json(self, status: int, payload: Any) -> SandboxResponse:
        return SandboxResponse.of_json(status, payload)

    def _error(self, error: ApiError) -> SandboxResponse:
        body: dict[str, Any] = {
            "status": "error",
            "message": error.message,
            "correlationId": self._correlation_id(),
            "category": error.category,
            **error.extra,
        }
        return self._json(error.status, body)

    def _rate_limited(self, policy: str, headers: dict[str, str]) -> SandboxResponse:
        body = {
            "status": "error",
            "message": MESSAGES[policy],
            "errorType": "RATE_LIMIT",
            "correlationId": self._correlation_id(),
            "policyName": policy,
            "groupName": "publicapi:private-app:sandbox",
        }
        return SandboxResponse.of_json(429, body, headers)

    def _authenticate(self, request: SandboxRequest) -> SandboxResponse | None:
        header = request.headers.get("authorization", "")
        if header != f"Bearer {self.tokens.hubspot_access_token}":
            return self._error(
                ApiError(
                    401,
                    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                    "INVALID_AUTHENTICATION",
                )
            )
        expiry = self.faults.profile.token_expiry_after
        if expiry is not None and self._counters.authenticated_calls >= expiry:
            return self._error(
                ApiError(
                    401, "The OAuth token used to make this call expired 0 second(s) ago.", "EXPIRED_AUTHENTICATION"
                )
            )
        self._counters.authenticated_calls += 1
        return None

    @staticmethod
    def _object_type(raw: str) -> str:
        object_type = _TYPE_ALIASES.get(raw.lower())
        if object_type is None:
            raise ApiError(400, f"Unable to infer object type from: {raw}", "VALIDATION_ERROR")
        return object_type

    @staticmethod
    def _n(object_type: str, record_id: str) -> int:
        n = hubspot_n(object_type, record_id)
        if n is None:
            raise ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
        return n

    def _row_or_404(self, object_type: str, record_id: str, *, archived: bool | None) -> Row:
        row = self.store.get(object_type, self._n(object_type, record_id))
        if row is None or (archived is not None and row.archived != archived):
            raise ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
        return row

    def _locate(
        self,
        object_type: str,
        record_id: str,
        id_property: str | None,
        *,
        archived: bool = False,
        writing: bool = False,
    ) -> Row:
        """The record an id names: its HubSpot id, or the value of a unique property (``idProperty``)."""
        if not id_property or (id_property == "hs_object_id" and not writing):
            return self._row_or_404(object_type, record_id, archived=archived)
        self._check_id_property(object_type, id_property)
        found = self.store.find_by(object_type, id_property, record_id)
        if found is None:
            raise ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
        return found

    def _check_id_property(self, object_type: str, id_property: str) -> None:
        """``idProperty`` must name a property with unique values (hs_object_id is not one, HubSpot says)."""
        prop = self.registry.get(object_type, id_property)
        if prop is None or not prop.unique:
            raise ApiError(
                400,
                f"Unable to perform update/upsert by non-unique {OBJECT_TYPE_IDS[object_type]} property "
                f"{id_property} in portal ID {PORTAL_ID}",
                "VALIDATION_ERROR",
            )

    def _body(self, request: SandboxRequest) -> Any:
        try:
            return request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, f"Invalid input JSON: {exc}", "VALIDATION_ERROR") from None

    @staticmethod
    def _names(request: SandboxRequest, param: str) -> list[str]:
        """A repeated or comma-separated query parameter, as HubSpot accepts both."""
        out: list[str] = []
        for value in request.query.get(param, []):
            out.extend(v for v in value.split(",") if v)
        return out

    @staticmethod
    def _int_param(request: SandboxRequest, name: str, default: int) -> int:
        raw = request.param(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise ApiError(400, f"Invalid value for {name}: {raw}", "VALIDATION_ERROR") from None

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

    @staticmethod
    def _not_allowed(method: str, path: str) -> ApiError:
        return ApiError(405, f"HTTP method {method} is not supported by {path}", "VALIDATION_ERROR")

    def _route_objects(
        self, method: str, object_type: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        if not rest:
            if method == "GET":
                return self._list(object_type, request)
            if method == "POST":
                return self._create(object_type, self._body(request))
        elif rest == ["search"] and method == "POST":
            return self._search(object_type, self._body(request))
        elif len(rest) == 2 and rest[0] == "batch" and method == "POST":
            return self._batch(object_type, rest[1], self._body(request), request)
        elif len(rest) == 1:
            if method == "GET":
                return self._get(object_type, rest[0], request)
            if method == "PATCH":
                return self._update(object_type, rest[0], self._body(request), request)
            if method == "DELETE":
                row = self._row_or_404(object_type, rest[0], archived=False)
                self.store.set_archived(object_type, row.n, True, self._now())
                return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    # --- rendering ----------------------------------------------------------------------------------

    def _all_properties(self, object_type: str, row: Row) -> dict[str, Any]:
        props = dict(row.props)
        props["hs_object_id"] = hubspot_id(object_type, row.n)
        props[MODIFIED_PROPERTY[object_type]] = row.updated_at
        props["hs_lastmodifieddate"] = row.updated_at
        props.setdefault(CREATED_PROPERTY[object_type], row.created_at)
        body = BODY_PROPERTY.get(object_type)
        if body is not None:
            text = props.get(body)
            props["hs_body_preview"] = text[:PREVIEW_CHARS] if isinstance(text, str) else None
        return props

    def _selected(self, object_type: str, row: Row, names: list[str] | None) -> dict[str, Any]:
        everything = self._all_properties(object_type, row)
        wanted = list(names) if names else list(DEFAULT_READ_PROPERTIES[object_type])
        always = ("hs_object_id", CREATED_PROPERTY[object_type], MODIFIED_PROPERTY[object_type])
        out: dict[str, Any] = {}
        for name in sorted({*wanted, *always}):
            if name in everything or self.registry.get(object_type, name) is not None:
                out[name] = everything.get(name)
        return out

    def _history(self, object_type: str, row: Row, names: list[str]) -> dict[str, list[dict[str, Any]]]:
        everything = self._all_properties(object_type, row)
        out: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            if name not in everything and self.registry.get(object_type, name) is None:
                continue
            written = self.store.history(object_type, row.n, name)
            if written:
                out[name] = [
                    {"value": v if v is not None else "", "timestamp": ts, "sourceType": src} for v, ts, src in written
                ]
            elif everything.get(name) is not None:
                out[name] = [{"value": everything[name], "timestamp": row.updated_at, "sourceType": "CRM_UI"}]
            else:
                out[name] = []
        return out

    def _record(
        self,
        object_type: str,
        row: Row,
        names: list[str] | None,
        history: list[str] | None = None,
        associations: dict[str, dict[int, list[tuple[int, bool]]]] | None = None,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "id": hubspot_id(object_type, row.n),
            "properties": self._selected(object_type, row, names),
            "createdAt": row.created_at,
            "updatedAt": row.updated_at,
            "archived": row.archived,
        }
        if row.archived:
            record["archivedAt"] = row.archived_at
        if history:
            record["propertiesWithHistory"] = self._history(object_type, row, history)
        if associations:
            linked: dict[str, Any] = {}
            for to_type, by_n in associations.items():
                results = []
                for to_n, primary in by_n.get(row.n, []):
                    to_id = hubspot_id(to_type, to_n)
                    if primary:
                        results.append({"id": to_id, "type": v3_association_name(object_type, to_type, True)})
                    results.append({"id": to_id, "type": v3_association_name(object_type, to_type, False)})
                if results:
                    linked[to_type] = {"results": results}
            if linked:
                record["associations"] = linked
        return record

    def _associations_for(self, object_type: str, ns: list[int], request: SandboxRequest) -> dict[str, Any]:
        out: dict[str, dict[int, list[tuple[int, bool]]]] = {}
        for raw in self._names(request, "associations"):
            to_type = _TYPE_ALIASES.get(raw.lower())
            if to_type is not None and to_type != object_type:
                out[to_type] = self.store.associations(object_type, ns, to_type)
        return out

    # --- objects: read ------------------------------------------------------------------------------

    def _list(self, object_type: str, request: SandboxRequest) -> SandboxResponse:
        names = self._names(request, "properties")
        history = self._names(request, "propertiesWithHistory")
        limit = max(1, min(self._int_param(request, "limit", 10), HISTORY_MAX if history else LIST_MAX))
        after_raw = request.param("after")
        after_n = 0
        if after_raw:
            parsed = hubspot_n(object_type, after_raw)
            if parsed is None:
                raise ApiError(400, f"Invalid value for after: {after_raw}", "VALIDATION_ERROR")
            after_n = parsed
        archived = (request.param("archived") or "false").lower() == "true"
        rows = self.store.page(object_type, archived=archived, after_n=after_n, limit=limit + 1)
        page, more = rows[:limit], len(rows) > limit
        assoc = self._associations_for(object_type, [r.n for r in page], request)
        body: dict[str, Any] = {"results": [self._record(object_type, r, names, history, assoc) for r in page]}
        if more:
            after = hubspot_id(object_type, page[-1].n)
            link = f"{self.base_url}/crm/v3/objects/{object_type}?limit={limit}&after={quote(after)}"
            body["paging"] = {"next": {"after": after, "link": link}}
        return self._json(200, body)

    def _get(self, object_type: str, record_id: str, request: SandboxRequest) -> SandboxResponse:
        archived = (request.param("archived") or "false").lower() == "true"
        row = self._locate(object_type, record_id, request.param("idProperty"), archived=archived)
        assoc = self._associations_for(object_type, [row.n], request)
        names = self._names(request, "properties")
        history = self._names(request, "propertiesWithHistory")
        return self._json(200, self._record(object_type, row, names, history, assoc))

    # --- objects: write -----------------------------------------------------------------------------

    def _normalise(self, object_type: str, name: str, value: Any) -> Any:
        """A written value as HubSpot stores it: strings; datetimes as ISO with ms; '' clears."""
        if value is None or value == "":
            return None
        prop = self.registry.get(object_type, name)
        kind = prop.type if prop else "string"
        if isinstance(value, bool):
            return "true" if value else "false"
        if kind == "datetime":
            try:
                return iso_instant(value)
            except SearchError:
                return str(value)
        if kind == "date":
            try:
                return iso_instant(value)[:10]
            except SearchError:
                return str(value)
        if kind == "bool":
            return str(value).lower()
        return str(value)

    def _check_properties(self, object_type: str, props: Any, *, creating: bool) -> dict[str, Any]:
        if not isinstance(props, dict):
            raise ApiError(400, "properties must be an object", "VALIDATION_ERROR")
        problems = self.registry.invalid_values(object_type, props)
        if creating:
            for name in REQUIRED_ON_CREATE.get(object_type, ()):
                if props.get(name) in (None, ""):
                    message = f"{name} is required"
                    problems.append(
                        {
                            "isValid": False,
                            "message": message,
                            "error": "REQUIRED_FIELD",
                            "name": name,
                            "localizedErrorMessage": message,
                        }
                    )
        if problems:
            raise _validation(problems)
        return {k: self._normalise(object_type, k, v) for k, v in props.items()}

    def _injected_failure(self, *, locked_possible: bool) -> ApiError | None:
        """A write refused by the fault profile: a locked record (423) or a failed validation rule (400)."""
        profile = self.faults.profile
        if not profile.applies_to(self._path) or not self.faults.roll(profile.write_failure_rate):
            return None
        if locked_possible and self.faults.roll(0.5):
            return ApiError(
                423, "This record is locked by another process. Wait at least 2 seconds and retry.", "LOCKED"
            )
        return ApiError(400, "The record failed a validation rule configured in this portal.", "VALIDATION_ERROR")

    def _duplicate(self, object_type: str, props: dict[str, Any]) -> ApiError | None:
        if object_type == "contacts" and props.get("email"):
            existing = self.store.find_by("contacts", "email", str(props["email"]))
            if existing is not None:
                existing_id = hubspot_id("contacts", existing.n)
                return ApiError(409, f"Contact already exists. Existing ID: {existing_id}", "CONFLICT")
        return None

    def _association_inputs(self, object_type: str, raw: Any) -> list[tuple[str, int]]:
        """Validate create-time associations: (to_type, to_n) pairs."""
        out: list[tuple[str, int]] = []
        for item in raw or []:
            to_id = str((item.get("to") or {}).get("id", ""))
            for spec in item.get("types") or []:
                type_id = spec.get("associationTypeId")
                pair = ALL_TYPE_IDS.get(type_id) if isinstance(type_id, int) else None
                if pair is None or pair[0] != object_type:
                    raise ApiError(
                        400, f"{type_id} is not a valid association type id for {object_type}", "VALIDATION_ERROR"
                    )
                to_n = hubspot_n(pair[1], to_id)
                target = self.store.get(pair[1], to_n) if to_n is not None else None
                if target is None or target.archived:
                    raise ApiError(
                        400,
                        f"One or more associations are invalid: {SINGULAR[pair[1]]} {to_id} not found",
                        "VALIDATION_ERROR",
                    )
                out.append((pair[1], target.n))
        return out

    def _insert(self, object_type: str, item: Any) -> tuple[Row, dict[str, Any]]:
        if not isinstance(item, dict):
            raise ApiError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
        props = self._check_properties(object_type, item.get("properties"), creating=True)
        links = self._association_inputs(object_type, item.get("associations"))
        duplicate = self._duplicate(object_type, props)
        if duplicate is not None:
            raise duplicate
        failure = self._injected_failure(locked_possible=False)
        if failure is not None:
            raise failure
        row = self.store.insert(
            object_type, {k: v for k, v in props.items() if v is not None}, self._now(), "INTEGRATION"
        )
        for to_type, to_n in links:
            self.store.add_association(object_type, row.n, to_type, to_n)
        return row, props

    def _create(self, object_type: str, body: Any) -> SandboxResponse:
        row, props = self._insert(object_type, body)
        return self._json(201, self._record(object_type, row, list(props)))

    def _apply_update(self, object_type: str, row: Row, props: dict[str, Any]) -> Row:
        failure = self._injected_failure(locked_possible=True)
        if failure is not None:
            raise failure
        return self.store.update(object_type, row, props, self._now(), "INTEGRATION")

    def _update(self, object_type: str, record_id: str, body: Any, request: SandboxRequest) -> SandboxResponse:
        props = self._check_properties(object_type, (body or {}).get("properties"), creating=False)
        row = self._locate(object_type, record_id, request.param("idProperty"), writing=True)
        updated = self._apply_update(object_type, row, props)
        return self._json(200, self._record(object_type, updated, list(props)))

    # --- batch ----------------------------------------------------------------------------------------

    def _batch_envelope(
        self, status: int, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
    ) -> SandboxResponse:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = errors
        body["startedAt"] = started
        body["completedAt"] = self._now()
        return self._json(207 if errors else status, body)

    @staticmethod
    def _record_error(error: ApiError, ids: list[str], trace_id: str | None = None) -> dict[str, Any]:
        context: dict[str, list[str]] = {"ids": ids}
        if trace_id:
            context["objectWriteTraceId"] = [trace_id]
        return {
            "status": "error",
            "category": error.category,
            "message": error.message,
            "context": context,
            "links": {},
            "errors": [],
            **error.extra,
        }

    def _batch(self, object_type: str, operation: str, body: Any, request: SandboxRequest) -> SandboxResponse:
        inputs = (body or {}).get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise ApiError(400, "inputs is required", "VALIDATION_ERROR")
        if len(inputs) > BATCH_MAX:
            raise ApiError(400, BATCH_TOO_LARGE, "VALIDATION_ERROR")
        started = self._now()
        if operation == "read":
            return self._batch_read(object_type, body, inputs, request, started)
        if operation == "archive":
            for item in inputs:
                n = hubspot_n(object_type, str((item or {}).get("id", "")))
                row = self.store.get(object_type, n) if n is not None else None
                if row is not None and not row.archived:
                    self.store.set_archived(object_type, row.n, True, started)
            return SandboxResponse(204)
        if operation == "create":
            return self._batch_create(object_type, inputs, started)
        if operation == "update":
            return self._batch_update(object_type, inputs, started)
        if operation == "upsert":
            return self._batch_upsert(object_type, inputs, started)
        raise self._not_allowed("POST", request.path)

    def _batch_read(
        self, object_type: str, body: dict[str, Any], inputs: list[Any], request: SandboxRequest, started: str
    ) -> SandboxResponse:
        history = list(body.get("propertiesWithHistory") or [])
        if history and len(inputs) > HISTORY_MAX:
            raise ApiError(
                400,
                "The maximum number of inputs supported in a batch with propertiesWithHistory is 50. "
                "Please reduce the number of items and try again",
                "VALIDATION_ERROR",
            )
        archived = (request.param("archived") or "false").lower() == "true"
        id_property = body.get("idProperty")
        rows: list[Row] = []
        missing: list[str] = []
        for item in inputs:
            raw = str((item or {}).get("id", ""))
            row: Row | None
            if id_property and id_property != "hs_object_id":
                row = self.store.find_by(object_type, id_property, raw)
            else:
                n = hubspot_n(object_type, raw)
                row = self.store.get(object_type, n) if n is not None else None
            if row is None or row.archived != archived:
                missing.append(raw)
            else:
                rows.append(row)
        names = list(body.get("properties") or [])
        results = [self._record(object_type, r, names, history) for r in rows]
        errors = []
        if missing:
            kind = SINGULAR[object_type].upper()
            message = f"Could not get some {kind} objects, they may be deleted or not exist. Check that ids are valid."
            errors.append(self._record_error(ApiError(404, message, "OBJECT_NOT_FOUND"), missing))
        return self._batch_envelope(200, results, errors, started)

    def _batch_props(self, object_type: str, inputs: list[Any], *, creating: bool) -> list[dict[str, Any]]:
        """Validate every input's properties first: one bad property name fails the whole request, as HubSpot does."""
        problems: list[dict[str, Any]] = []
        checked: list[dict[str, Any]] = []
        for item in inputs:
            try:
                checked.append(self._check_properties(object_type, (item or {}).get("properties"), creating=creating))
            except ApiError as error:
                if error.status != 400 or not error.message.startswith("Property values were not valid: "):
                    raise
                problems.extend(json.loads(error.message.removeprefix("Property values were not valid: ")))
        if problems:
            raise _validation(problems)
        return checked

    def _batch_write(
        self,
        inputs: list[Any],
        status: int,
        started: str,
        write: Callable[[dict[str, Any], int], dict[str, Any]],
    ) -> SandboxResponse:
        """Apply ``write(input, index)`` to each input; refused records become per-record errors (207)."""
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for index, raw in enumerate(inputs):
            item: dict[str, Any] = raw if isinstance(raw, dict) else {}
            trace = item.get("objectWriteTraceId")
            try:
                record = write(item, index)
            except ApiError as error:
                ids = [str(item["id"])] if "id" in item else []
                errors.append(self._record_error(error, ids, trace))
                continue
            if trace:
                record["objectWriteTraceId"] = trace
            results.append(record)
        return self._batch_envelope(status, results, errors, started)

    def _batch_create(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=True)
        for props in checked:  # HubSpot refuses the whole batch, naming the first existing record
            duplicate = self._duplicate(object_type, props)
            if duplicate is not None:
                raise duplicate

        def create(item: dict[str, Any], _: int) -> dict[str, Any]:
            row, props = self._insert(object_type, item)
            return self._record(object_type, row, list(props))

        return self._batch_write(inputs, 201, started, create)

    def _batch_update(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=False)

        for item in inputs:
            if (item or {}).get("idProperty"):
                self._check_id_property(object_type, item["idProperty"])

        def update(item: dict[str, Any], index: int) -> dict[str, Any]:
            row = self._locate(object_type, str(item.get("id", "")), item.get("idProperty"), writing=True)
            updated = self._apply_update(object_type, row, checked[index])
            return self._record(object_type, updated, list(checked[index]))

        return self._batch_write(inputs, 200, started, update)

    def _batch_upsert(self, object_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        checked = self._batch_props(object_type, inputs, creating=False)
        for item in inputs:
            id_property = (item or {}).get("idProperty")
            if not id_property:
                raise ApiError(400, "idProperty is required for every upsert input", "VALIDATION_ERROR")
            self._check_id_property(object_type, id_property)

        def upsert(item: dict[str, Any], index: int) -> dict[str, Any]:
            raw_id, id_property, props = str(item.get("id", "")), str(item["idProperty"]), checked[index]
            existing = self.store.find_by(object_type, id_property, raw_id)
            if existing is None:
                created = {**props, id_property: raw_id}
                row, _ = self._insert(object_type, {"properties": created})
                return {**self._record(object_type, row, list(created)), "new": True}
            row = self._apply_update(object_type, existing, props)
            return {**self._record(object_type, row, list(props)), "new": False}

        return self._batch_write(inputs, 200, started, upsert)

    # --- search ---------------------------------------------------------------------------------------

    def _search(self, object_type: str, body: Any) -> SandboxResponse:
        if not isinstance(body, dict):
            body = {}
        limit = body.get("limit", 10)
        after_raw = body.get("after") or "0"
        try:
            limit = int(limit)
            offset = int(after_raw)
        except (TypeError, ValueError):
            raise ApiError(400, "limit and after must be integers", "VALIDATION_ERROR") from None
        if limit > MAX_LIMIT:
            raise ApiError(400, f"limit must be less than or equal to {MAX_LIMIT}", "VALIDATION_ERROR")
        if offset >= MAX_RESULTS:
            raise ApiError(
                400,
                f"There was a problem with the request: the search can page through at most "
                f"{MAX_RESULTS} results (after={offset}).",
                "VALIDATION_ERROR",
            )
        # A page never reaches past the 10,000th result; the next ``after`` then points at the refused offset.
        limit = max(min(limit, MAX_RESULTS - offset), 1)
        try:
            compiled = SearchCompiler(object_type, self.registry, self.store.associated_ns).compile(body)
        except SearchError as error:
            raise ApiError(400, str(error), "VALIDATION_ERROR") from None
        total, rows = self.store.search(object_type, compiled.where, compiled.params, compiled.order, limit, offset)
        names = list(body.get("properties") or [])
        out: dict[str, Any] = {"total": total, "results": [self._record(object_type, r, names) for r in rows]}
        if offset + len(rows) < total:
            out["paging"] = {"next": {"after": str(offset + len(rows))}}
        return self._json(200, out)

    # --- associations v4 ----------------------------------------------------------------------------

    @staticmethod
    def _type_specs(from_type: str, to_type: str, primary: bool) -> list[dict[str, Any]]:
        specs = []
        if primary and (from_type, to_type) in PRIMARY_TYPE_IDS:
            specs.append(
                {"category": "HUBSPOT_DEFINED", "typeId": PRIMARY_TYPE_IDS[(from_type, to_type)], "label": "Primary"}
            )
        type_id = ASSOCIATION_TYPE_IDS.get((from_type, to_type))
        if type_id is not None:
            specs.append({"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None})
        return specs

    def _route_v4_record(
        self, method: str, from_type: str, record_id: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        if len(rest) == 1 and method == "GET":
            to_type = self._object_type(rest[0])
            row = self._row_or_404(from_type, record_id, archived=False)
            limit = max(1, min(self._int_param(request, "limit", 500), 500))
            after = self._int_param(request, "after", 0)
            linked = self.store.associations(from_type, [row.n], to_type)[row.n]
            page = linked[after : after + limit]
            body: dict[str, Any] = {
                "results": [
                    {
                        "toObjectId": HUBSPOT_OFFSETS[to_type] + to_n,
                        "associationTypes": self._type_specs(from_type, to_type, p),
                    }
                    for to_n, p in page
                ]
            }
            if after + limit < len(linked):
                next_after = str(after + limit)
                link = (
                    f"{self.base_url}/crm/v4/objects/{from_type}/{record_id}/associations/{to_type}?after={next_after}"
                )
                body["paging"] = {"next": {"after": next_after, "link": link}}
            return self._json(200, body)
        if len(rest) == 3 and rest[0] == "default" and method == "PUT":
            to_type = self._object_type(rest[1])
            row = self._row_or_404(from_type, record_id, archived=False)
            target = self._row_or_404(to_type, rest[2], archived=False)
            started = self._now()
            self.store.add_association(from_type, row.n, to_type, target.n)
            result = self._default_result(from_type, row.n, to_type, target.n)
            return self._json(
                200, {"status": "COMPLETE", "results": [result], "startedAt": started, "completedAt": self._now()}
            )
        if len(rest) == 2:
            to_type = self._object_type(rest[0])
            row = self._row_or_404(from_type, record_id, archived=False)
            target = self._row_or_404(to_type, rest[1], archived=False)
            if method == "DELETE":
                self.store.remove_association(from_type, row.n, to_type, target.n)
                return SandboxResponse(204)
            if method == "PUT":
                specs = self._body(request)
                for spec in specs if isinstance(specs, list) else []:
                    type_id = spec.get("associationTypeId")
                    if (
                        ALL_TYPE_IDS.get(type_id) != (from_type, to_type)
                        and spec.get("associationCategory") == "HUBSPOT_DEFINED"
                    ):
                        raise ApiError(
                            400,
                            f"{type_id} is not a valid association type from {from_type} to {to_type}",
                            "VALIDATION_ERROR",
                        )
                self.store.add_association(from_type, row.n, to_type, target.n)
                return self._json(
                    201,
                    {
                        "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                        "fromObjectId": HUBSPOT_OFFSETS[from_type] + row.n,
                        "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                        "toObjectId": HUBSPOT_OFFSETS[to_type] + target.n,
                        "labels": [],
                    },
                )
        raise self._not_allowed(method, request.path)

    @staticmethod
    def _default_result(from_type: str, from_n: int, to_type: str, to_n: int) -> dict[str, Any]:
        return {
            "from": {"id": hubspot_id(from_type, from_n)},
            "to": {"id": hubspot_id(to_type, to_n)},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": ASSOCIATION_TYPE_IDS.get((from_type, to_type), 0),
            },
        }

    def _route_v4_batch(
        self, method: str, from_type: str, to_type: str, operation: str, request: SandboxRequest
    ) -> SandboxResponse:
        if method != "POST":
            raise self._not_allowed(method, request.path)
        body = self._body(request)
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(inputs, list):
            raise ApiError(400, "inputs is required", "VALIDATION_ERROR")
        if len(inputs) > 1000 or (operation != "read" and len(inputs) > BATCH_MAX):
            raise ApiError(400, BATCH_TOO_LARGE, "VALIDATION_ERROR")
        started = self._now()
        if operation == "read":
            return self._v4_batch_read(from_type, to_type, inputs, started)
        if operation in ("associate/default", "create"):
            results = []
            errors = []
            for item in inputs:
                from_id = str(((item or {}).get("from") or {}).get("id", ""))
                to_id = str(((item or {}).get("to") or {}).get("id", ""))
                try:
                    row = self._row_or_404(from_type, from_id, archived=False)
                    target = self._row_or_404(to_type, to_id, archived=False)
                except ApiError as error:
                    errors.append(self._record_error(error, [from_id, to_id]))
                    continue
                self.store.add_association(from_type, row.n, to_type, target.n)
                if operation == "create":
                    results.append(
                        {
                            "fromObjectTypeId": OBJECT_TYPE_IDS[from_type],
                            "fromObjectId": HUBSPOT_OFFSETS[from_type] + row.n,
                            "toObjectTypeId": OBJECT_TYPE_IDS[to_type],
                            "toObjectId": HUBSPOT_OFFSETS[to_type] + target.n,
                            "labels": [],
                        }
                    )
                else:
                    results.append(self._default_result(from_type, row.n, to_type, target.n))
            status = 201 if operation == "create" else 200
            return self._batch_envelope(status, results, errors, started)
        if operation == "archive":
            for item in inputs:
                from_id = str(((item or {}).get("from") or {}).get("id", ""))
                from_n = hubspot_n(from_type, from_id)
                for to in (item or {}).get("to") or []:
                    to_n = hubspot_n(to_type, str((to or {}).get("id", "")))
                    if from_n is not None and to_n is not None:
                        self.store.remove_association(from_type, from_n, to_type, to_n)
            return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    def _v4_batch_read(self, from_type: str, to_type: str, inputs: list[Any], started: str) -> SandboxResponse:
        wanted: list[tuple[str, int | None]] = []
        for item in inputs:
            raw = str((item or {}).get("id", ""))
            wanted.append((raw, hubspot_n(from_type, raw)))
        ns = [n for _, n in wanted if n is not None]
        live = self.store.get_many(from_type, ns)
        linked = self.store.associations(from_type, [n for n in ns if n in live and not live[n].archived], to_type)
        results = []
        errors = []
        for raw, n in wanted:
            partners = linked.get(n, []) if n is not None else []
            if not partners:
                message = f"No {SINGULAR[to_type]} is associated with {SINGULAR[from_type]} {raw}."
                error = ApiError(404, message, "OBJECT_NOT_FOUND", subCategory="crm.associations.NO_ASSOCIATIONS_FOUND")
                entry = self._record_error(error, [])
                entry["context"] = {"fromObjectId": [raw], "toObjectType": [SINGULAR[to_type]]}
                errors.append(entry)
                continue
            results.append(
                {
                    "from": {"id": raw},
                    "to": [
                        {
                            "toObjectId": HUBSPOT_OFFSETS[to_type] + t,
                            "associationTypes": self._type_specs(from_type, to_type, p),
                        }
                        for t, p in partners
                    ],
                }
            )
        return self._batch_envelope(200, results, errors, started)

    # --- properties -----------------------------------------------------------------------------------

    def _route_properties(
        self, method: str, object_type: str, rest: list[str], request: SandboxRequest
    ) -> SandboxResponse:
        groups = self.registry.groups[object_type]
        if not rest:
            if method == "GET":
                props = sorted(self.registry.props[object_type].values(), key=lambda p: p.name)
                return self._json(200, {"results": [p.as_json() for p in props]})
            if method == "POST":
                return self._create_property(object_type, self._body(request))
        elif rest == ["groups"]:
            if method == "GET":
                return self._json(200, {"results": [g.as_json() for g in groups.values()]})
            if method == "POST":
                body = self._body(request) or {}
                name, label = body.get("name"), body.get("label")
                if not name or not label:
                    raise ApiError(400, "name and label are required", "VALIDATION_ERROR")
                if name in groups:
                    raise ApiError(409, f"A property group named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
                groups[name] = PropertyGroup(name, label, int(body.get("displayOrder", -1)))
                return self._json(201, groups[name].as_json())
        elif len(rest) == 2 and rest[0] == "groups" and method == "GET":
            if rest[1] not in groups:
                raise ApiError(404, f"Unable to find property group {rest[1]}", "OBJECT_NOT_FOUND")
            return self._json(200, groups[rest[1]].as_json())
        elif len(rest) == 1 and method in ("GET", "DELETE"):
            prop = self.registry.get(object_type, rest[0])
            if prop is None:
                raise ApiError(
                    404, f"Unable to find property {rest[0]} for object type {object_type}", "OBJECT_NOT_FOUND"
                )
            if method == "GET":
                return self._json(200, prop.as_json())
            if prop.hubspot_defined:
                raise ApiError(
                    400, f"Property {prop.name} is HubSpot-defined and cannot be archived", "VALIDATION_ERROR"
                )
            self.registry.remove(object_type, prop.name)
            return SandboxResponse(204)
        raise self._not_allowed(method, request.path)

    def _create_property(self, object_type: str, body: Any) -> SandboxResponse:
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid input: expected an object", "VALIDATION_ERROR")
        missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)]
        if missing:
            raise ApiError(400, f"Missing required fields: {', '.join(missing)}", "VALIDATION_ERROR")
        name = str(body["name"])
        if not _PROPERTY_NAME.match(name):
            raise ApiError(
                400,
                f"Property name {name} is invalid: use lowercase letters, digits and underscores",
                "VALIDATION_ERROR",
            )
        if self.registry.get(object_type, name) is not None:
            raise ApiError(409, f"Property named '{name}' already exists.", "OBJECT_ALREADY_EXISTS")
        if body["type"] not in ("string", "number", "date", "datetime", "enumeration", "bool"):
            raise ApiError(400, f"Invalid property type {body['type']}", "VALIDATION_ERROR")
        if body["groupName"] not in self.registry.groups[object_type]:
            raise ApiError(400, f"Property group {body['groupName']} does not exist", "VALIDATION_ERROR")
        options = tuple(str(o.get("value")) for o in body.get("options") or [] if isinstance(o, dict))
        prop = PropDef(
            name=name,
            label=str(body["label"]),
            type=str(body["type"]),
            group=str(body["groupName"]),
            options=options,
            hubspot_defined=False,
            field_type=str(body["fieldType"]),
            description=str(body.get("description") or ""),
            created_at=self._now(),
            unique=bool(body.get("hasUniqueValue", False)),
        )
        self.registry.add(object_type, prop)
        return self._json(201, prop.as_json())

    # --- owners ---------------------------------------------------------------------------------------

    def _owner_json(self, n: int) -> dict[str, Any]:
        owner = self.store.owner(n)
        assert owner is not None
        return {
            "id": hubspot_id("owners", owner.n),
            "email": owner.email,
            "type": "PERSON",
            "firstName": owner.first_name,
            "lastName": owner.last_name,
            "userId": USER_ID_OFFSET + owner.n,
            "userIdIncludingInactive": USER_ID_OFFSET + owner.n,
            "createdAt": owner.created_at,
            "updatedAt": owner.updated_at,
            "archived": owner.archived,
            "teams": [],
        }

    def _route_owners(self, method: str, rest: list[str], request: SandboxRequest) -> SandboxResponse:
        if method != "GET":
            raise self._not_allowed(method, request.path)
        archived = (request.param("archived") or "false").lower() == "true"
        if not rest:
            limit = max(1, min(self._int_param(request, "limit", 100), OWNERS_MAX))
            after_raw = request.param("after")
            after_n = (hubspot_n("owners", after_raw) or 0) if after_raw else 0
            owners = self.store.owners(
                archived=archived, after_n=after_n, limit=limit + 1, email=request.param("email")
            )
            page = owners[:limit]
            body: dict[str, Any] = {"results": [self._owner_json(o.n) for o in page]}
            if len(owners) > limit:
                after = hubspot_id("owners", page[-1].n)
                body["paging"] = {
                    "next": {"after": after, "link": f"{self.base_url}/crm/v3/owners/?limit={limit}&after={after}"}
                }
            return self._json(200, body)
        if len(rest) == 1:
            if request.param("idProperty") == "userId":
                n = int(rest[0]) - USER_ID_OFFSET if rest[0].isdigit() else 0
            else:
                n = hubspot_n("owners", rest[0]) or 0
            owner = self.store.owner(n)
            if owner is None or owner.archived != archived:
                raise ApiError(404, "resource not found", "OBJECT_NOT_FOUND")
            return self._json(200, self._owner_json(n))
        raise self._not_allowed(method, request.path)
