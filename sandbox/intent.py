"""A marketing-intent API modelled on 6sense/Demandbase-style company intent feeds, serving the book.

``GET /v1/intent/companies``

Auth: ``X-API-Key: <key>``; a missing or wrong key gets ``401 {"error": {"code": "unauthorized", ...}}``.

Query parameters (all optional):

- ``since``: ISO-8601 (``2026-01-05T12:00:00Z`` or with an offset); signals *updated* at or after it.
- ``until``: ISO-8601; signals updated before it.
- ``domain``: exact domain as the vendor spelled it (the feed keeps ``www.``, subdomains and case as seen).
- ``limit``: 1-1000, default 100; ``cursor``: the previous answer's ``next_cursor``.

Answer: ``200 {"data": [{"id": "12", "domain": "acme.com", "topic": "Data Integration", "score": 87.5,
"observed_at": "2026-01-05T12:00:00Z", "updated_at": "2026-01-05T14:10:00Z"}], "next_cursor": "..."|null}``
in ascending (updated_at, id) order; ``score`` is a 0-100 surge score. The cursor is an opaque keyset
position, so paging is stable while data changes. Bad parameters get ``400``; injected rate limits ``429``
with ``Retry-After: 0``; injected server errors ``503``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from sandbox.http import ReadOnlyBookApp, SandboxRequest, SandboxResponse, key_matches

PATH = "/v1/intent/companies"
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


class IntentApp(ReadOnlyBookApp):
    """The company intent feed (read-only: ``reset()`` has nothing to undo)."""

    name = "intent"

    def error_response(self, kind: str) -> SandboxResponse:
        if kind == "rate_limited":
            return _error(429, "rate_limited", "Rate limit exceeded", {"Retry-After": "0"})
        return _error(503, "unavailable", "Service temporarily unavailable")

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        if not key_matches(request.headers.get("x-api-key"), self.tokens.intent_api_key):
            return _error(401, "unauthorized", "A valid X-API-Key header is required")
        if request.path.rstrip("/") != PATH:
            return _error(404, "not_found", f"No such endpoint: {request.path}")
        if request.method != "GET":
            return _error(405, "method_not_allowed", f"Method not allowed: {request.method}")
        try:
            return self._list(request)
        except ValueError as exc:
            return _error(400, "invalid_request", str(exc))

    def _list(self, request: SandboxRequest) -> SandboxResponse:
        raw_limit = request.param("limit") or str(DEFAULT_LIMIT)
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise ValueError(f"limit must be an integer between 1 and {MAX_LIMIT}")
        limit = int(raw_limit)
        where: list[str] = []
        params: list[str | int] = []
        since = request.param("since")
        if since:
            where.append("updated_at >= ?")
            params.append(_iso_param("since", since))
        until = request.param("until")
        if until:
            where.append("updated_at < ?")
            params.append(_iso_param("until", until))
        domain = request.param("domain")
        if domain:
            where.append("domain = ?")
            params.append(domain)
        cursor = request.param("cursor")
        if cursor:
            updated_at, n = _decode_cursor(cursor)
            where.append("(updated_at > ? OR (updated_at = ? AND n > ?))")
            params.extend([updated_at, updated_at, n])
        sql = (
            "SELECT n, domain, topic, score, observed_at, updated_at FROM intent_signals "
            f"{'WHERE ' + ' AND '.join(where) if where else ''} ORDER BY updated_at, n LIMIT ?"
        )
        rows = self.reader.query(sql, [*params, limit + 1])
        page = rows[:limit]
        next_cursor = _encode_cursor(page[-1]["updated_at"], page[-1]["n"]) if len(rows) > limit else None
        data = [
            {
                "id": str(row["n"]),
                "domain": row["domain"],
                "topic": row["topic"],
                "score": row["score"],
                "observed_at": row["observed_at"],
                "updated_at": row["updated_at"],
            }
            for row in page
        ]
        return SandboxResponse.of_json(200, {"data": data, "next_cursor": next_cursor})


def _iso_param(name: str, value: str) -> str:
    """An ISO-8601 parameter as the book's UTC text; naive values are taken as UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))  # a '+' in a query string arrives as a space
    except ValueError:
        raise ValueError(f"{name} must be an ISO-8601 timestamp, got {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode_cursor(updated_at: str, n: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, n]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, int]:
    try:
        updated_at, n = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("cursor is not one this API issued") from None
    if not isinstance(updated_at, str) or not isinstance(n, int):
        raise ValueError("cursor is not one this API issued")
    return updated_at, n


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> SandboxResponse:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    return SandboxResponse.of_json(status, body, headers)
