"""Shared ground of the HubSpot emulator's API handlers: constants, the error type, and plumbing."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.book import Book
from sandbox.faults import FaultState
from sandbox.http import SandboxRequest, SandboxResponse, SandboxTokens
from sandbox.hubspot.objects import SINGULAR
from sandbox.hubspot.properties import OBJECT_TYPES, PropertyRegistry
from sandbox.hubspot.ratelimit import MESSAGES, RateLimits
from sandbox.hubspot.search import iso_instant
from sandbox.hubspot.store import HubSpotStore, Row, hubspot_n

BATCH_MAX = 100
HISTORY_MAX = 50
LIST_MAX = 100
OWNERS_MAX = 500
PORTAL_ID = 20_261_101  # the sandbox account's HubSpot portal id, as error messages name it
USER_ID_OFFSET = 7_000_000  # an owner's HubSpot user id is this plus its book index
_CORRELATION_NS = uuid.UUID("6f1c1a52-4d7e-4d0b-9a51-2b8e6b0f0a11")
PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

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
TYPE_ALIASES = {
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


def validation_error(problems: list[dict[str, Any]]) -> ApiError:
    text = json.dumps(problems, separators=(",", ":"), ensure_ascii=False)
    return ApiError(400, f"Property values were not valid: {text}", "VALIDATION_ERROR")


@dataclass
class Counters:
    """Requests seen and authenticated calls made since the last reset (token expiry counts the latter)."""

    requests: int = 0
    authenticated_calls: int = 0


class Core:
    """State and helpers every handler group uses; ``HubSpotApp`` sets the attributes."""

    book: Book
    faults: FaultState
    tokens: SandboxTokens
    clock: Callable[[], float]
    base_url: str
    limits: RateLimits
    store: HubSpotStore
    registry: PropertyRegistry
    _counters: Counters
    _path: str

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
        object_type = TYPE_ALIASES.get(raw.lower())
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

    @staticmethod
    def _not_allowed(method: str, path: str) -> ApiError:
        return ApiError(405, f"HTTP method {method} is not supported by {path}", "VALIDATION_ERROR")

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
